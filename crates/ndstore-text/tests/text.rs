//! The text format's options, its errors (each with a line and a column), bounded memory on
//! hostile input, and numpy's own output read back.

// Tests may unwrap: a panic is how a test reports its failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ndarray::{Array1, Array2, Array3, array};
use ndstore_core::{Commit, DType, DTypeKind, Detail, Durable, ErrorKind, Location, SaveOptions};
use ndstore_text::{Delimiter, FloatFormat, Newline, TextOptions, TextReader, TextWriter};

fn line_col(err: &ndstore_core::Error) -> (u64, u64) {
    match err.location() {
        Some(Location::LineColumn { line, column }) => (*line, *column),
        other => panic!("no line and column in {err} ({other:?})"),
    }
}

fn load_err(text: &str) -> ndstore_core::Error {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.csv");
    std::fs::write(&path, text).unwrap();
    let err = ndstore_text::load_dyn(&path, &TextOptions::default()).unwrap_err();
    assert!(err.to_string().contains("bad.csv"), "{err}");
    err
}

#[test]
fn bad_input_names_line_and_column() {
    let cases: [(&str, (u64, u64), &str); 6] = [
        ("1,2,3\n4,5\n", (2, 4), "fields"),
        ("1,2,3\n4,x5,6\n", (2, 3), "not a number"),
        ("1,,3\n", (1, 3), "not a number"),
        (
            "# ndstore: {\"dtype\":\"|u1\",\"shape\":[2],\"order\":\"C\"}\n1\n256\n",
            (3, 1),
            "out of range",
        ),
        (
            "# ndstore: {\"dtype\":\"<f8\",\"shape\":[2,2],\"order\":\"C\"}\n1,2\n3,4",
            (3, 4),
            "no line ending",
        ),
        ("1,2\r\n3,4,\r\n", (2, 5), "fields"),
    ];
    for (text, place, words) in cases {
        let err = load_err(text);
        assert_eq!(line_col(&err), place, "{text:?}: {err}");
        assert!(err.to_string().contains(words), "{text:?}: {err}");
    }
}

#[test]
fn a_ragged_row_carries_its_counts_for_programs() {
    let int_meta = "# ndstore: {\"dtype\":\"<i4\",\"shape\":[2,3],\"order\":\"C\"}\n";
    let cases = [
        // Floats take the fast path; integers split the line first.
        ("1,2,3\n4,5\n".to_owned(), 2, 3, 2),
        ("1,2\n3,4,5\n".to_owned(), 2, 2, 3),
        ("1,2\r\n3,4,\r\n".to_owned(), 2, 2, 3),
        (format!("{int_meta}1,2,3\n4,5\n"), 3, 3, 2),
        (format!("{int_meta}1,2,3\n4,5,6,7\n"), 3, 3, 4),
    ];
    for (text, line, expected, found) in cases {
        let err = load_err(&text);
        assert_eq!(err.kind(), ErrorKind::Format, "{text:?}: {err}");
        assert_eq!(
            err.detail(),
            Some(&Detail::ColumnCount {
                line,
                expected,
                found
            }),
            "{text:?}: {err}"
        );
    }
}

/// A reader of one endless line, counting what it hands out.
struct EndlessLine(Arc<AtomicU64>);

impl Read for EndlessLine {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        buf.fill(b'7');
        self.0.fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(buf.len())
    }
}

#[test]
fn a_line_over_the_limit_fails_in_bounded_memory() {
    let read = Arc::new(AtomicU64::new(0));
    let source = Box::new(EndlessLine(Arc::clone(&read)).take(1 << 30));
    // Opening looks for the first data line, so the refusal may come there or at the first block.
    let err =
        match TextReader::from_reader(source, Path::new("endless.csv"), &TextOptions::default()) {
            Err(e) => e,
            Ok(mut reader) => reader.next_block::<f64>().unwrap_err(),
        };
    assert_eq!(line_col(&err), (1, (64 << 20) + 1), "{err}");
    let consumed = read.load(Ordering::Relaxed);
    assert!(
        consumed < 80 << 20,
        "read {consumed} bytes of a 1 GiB line before refusing it"
    );
}

#[test]
fn options_delimiters_header_footer_crlf_bom() {
    let dir = tempfile::tempdir().unwrap();
    let a = array![[1.5f64, -2.0], [3.25, 4e-300]];
    for (delimiter, newline, bom) in [
        (Delimiter::Byte(b'\t'), Newline::CrLf, true),
        (Delimiter::Whitespace, Newline::Lf, false),
        (Delimiter::Byte(b';'), Newline::Lf, true),
    ] {
        let mut options = TextOptions::new().delimiter(delimiter);
        options.newline = newline;
        options.bom = bom;
        options.header = Some("first header line\nsecond".to_owned());
        options.footer = Some("the end".to_owned());
        let path = dir.path().join("o.txt");
        ndstore_text::save(&path, &a, &options, &SaveOptions::default()).unwrap();
        let text = std::fs::read(&path).unwrap();
        assert_eq!(text.starts_with(b"\xef\xbb\xbf"), bom);
        assert_eq!(
            text.windows(2).any(|w| w == b"\r\n"),
            newline == Newline::CrLf
        );
        assert!(String::from_utf8_lossy(&text).contains("# the end"));
        let b: Array2<f64> = ndstore_text::load(&path, &options).unwrap();
        assert_eq!(a, b, "{delimiter:?}");
    }
}

#[test]
fn skiprows_usecols_max_rows_and_plain_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.csv");
    std::fs::write(
        &path,
        "title line\n# comment\n1,2,3\n4,5,6 # inline comment\n\n7,8,9\n",
    )
    .unwrap();
    let mut options = TextOptions::default();
    options.skip_rows = 1;
    let all: Array2<f64> = ndstore_text::load(&path, &options).unwrap();
    assert_eq!(
        all,
        array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]
    );
    options.use_cols = Some(vec![2, 0]);
    options.max_rows = Some(2);
    let some: Array2<i32> = ndstore_text::load(&path, &options).unwrap();
    assert_eq!(some, array![[3, 1], [6, 4]]);
    // One column squeezes to 1-d, as np.loadtxt does.
    std::fs::write(&path, "1\n2\n3\n").unwrap();
    let column: Array1<u8> = ndstore_text::load(&path, &TextOptions::default()).unwrap();
    assert_eq!(column, array![1, 2, 3]);
    // No metadata and no data is an error, not an empty array.
    std::fs::write(&path, "# only a comment\n").unwrap();
    assert_eq!(
        ndstore_text::load_dyn(&path, &TextOptions::default())
            .unwrap_err()
            .kind(),
        ErrorKind::Format
    );
}

#[test]
fn metadata_restores_nd_shape_dtype_and_fortran_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nd.csv");
    let a = Array3::<i16>::from_shape_fn((2, 3, 4), |(i, j, k)| (i * 100 + j * 10 + k) as i16);
    let f = a
        .t()
        .to_owned()
        .reversed_axes()
        .as_standard_layout()
        .to_owned();
    let fortran = {
        let mut out = Array3::<i16>::zeros(ndarray::ShapeBuilder::f((2, 3, 4)));
        out.assign(&f);
        out
    };
    ndstore_text::save(
        &path,
        &fortran,
        &TextOptions::default(),
        &SaveOptions::new().byte_order(ndstore_core::ByteOrder::Big),
    )
    .unwrap();
    let first_line = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(
        first_line,
        "# ndstore: {\"dtype\":\">i2\",\"shape\":[2,3,4],\"order\":\"F\"}"
    );
    let (meta, loaded) = ndstore_text::load_dyn(&path, &TextOptions::default()).unwrap();
    assert_eq!(
        meta.dtype,
        DType::new(DTypeKind::I16, ndstore_core::ByteOrder::Big)
    );
    assert_eq!(loaded.layout_order(), ndstore_core::Order::Fortran);
    assert_eq!(loaded.into_typed::<i16>().unwrap(), a.into_dyn());
    assert_eq!(
        ndstore_text::load::<f64, ndarray::Ix3>(&path, &TextOptions::default())
            .unwrap_err()
            .kind(),
        ErrorKind::TypeMismatch
    );
}

#[test]
fn streaming_writer_rewrites_the_row_count_and_reader_yields_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.csv");
    let mut writer = TextWriter::create(
        &path,
        DType::native(DTypeKind::F32),
        &[3],
        &TextOptions::default(),
        &SaveOptions::new().in_place(),
    )
    .unwrap();
    let block = Array2::<f32>::from_shape_fn((1000, 3), |(i, j)| (i * 3 + j) as f32 / 7.0);
    writer.append(&block).unwrap();
    writer.flush().unwrap();
    // Flushed in place: another reader sees a complete file of 1000 rows already.
    let seen: Array2<f32> = ndstore_text::load(&path, &TextOptions::default()).unwrap();
    assert_eq!(seen.dim(), (1000, 3));
    for _ in 0..99 {
        writer.append(&block).unwrap();
    }
    writer.commit().unwrap();
    let mut reader = TextReader::open(&path, &TextOptions::default()).unwrap();
    assert_eq!(reader.meta_line().unwrap().shape, vec![100_000, 3]);
    let mut rows = 0;
    let mut blocks = 0;
    while let Some((values, n)) = reader.next_block::<f32>().unwrap() {
        assert_eq!(values.len(), n * 3);
        rows += n;
        blocks += 1;
    }
    assert_eq!(rows, 100_000);
    assert!(blocks >= 1);
}

#[test]
fn exponent_format_is_numpy_default_and_reads_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.csv");
    let mut options = TextOptions::default();
    options.float_format = FloatFormat::Exponent(18);
    let a = array![0.1f64, -1e-310, 6.02214076e23];
    ndstore_text::save(&path, &a, &options, &SaveOptions::default()).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("1.000000000000000056e-01"), "{text}");
    let b: Array1<f64> = ndstore_text::load(&path, &options).unwrap();
    assert_eq!(a.map(|v| v.to_bits()), b.map(|v| v.to_bits()));
}

#[test]
fn numpy_savetxt_default_and_17g_read_bit_exactly() {
    if !ndstore_conformance::python::available_or_skip("numpy interop") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        "import numpy as np\nrng = np.random.default_rng(7)\na = rng.standard_normal((50, 4)) * 10.0 ** rng.integers(-300, 300, (50, 4))\na[0, 0] = -0.0\na[1, 1] = np.inf\na[2, 2] = np.nan\na[3, 3] = 5e-324\nnp.save({d:?} + '/a.npy', a)\nnp.savetxt({d:?} + '/default.txt', a)\nnp.savetxt({d:?} + '/g17.csv', a, fmt='%.17g', delimiter=',')\nc = (a[:, :2] + 1j * a[:, 2:]).astype(np.complex128)\nnp.save({d:?} + '/c.npy', c)\nnp.savetxt({d:?} + '/complex.txt', c)",
        d = dir.path().display().to_string()
    );
    ndstore_conformance::python::run_script(&script).unwrap();
    let reference: Array2<f64> = ndstore_file_free_npy(&dir.path().join("a.npy"));
    let default: Array2<f64> = ndstore_text::load(
        dir.path().join("default.txt"),
        &TextOptions::new().delimiter(Delimiter::Whitespace),
    )
    .unwrap();
    let g17: Array2<f64> =
        ndstore_text::load(dir.path().join("g17.csv"), &TextOptions::default()).unwrap();
    for (name, got) in [("%.18e", &default), ("%.17g", &g17)] {
        for (x, y) in reference.iter().zip(got.iter()) {
            assert!(
                x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
                "{name}: {x:e} read as {y:e}"
            );
        }
    }
    let complex: Array2<ndstore_core::num_complex::Complex<f64>> = ndstore_text::load(
        dir.path().join("complex.txt"),
        &TextOptions::new().delimiter(Delimiter::Whitespace),
    )
    .unwrap();
    assert_eq!(complex.dim(), (50, 2));
}

/// Reads a little-endian f64 `.npy` written by numpy (header length from the file), without
/// depending on another backend.
fn ndstore_file_free_npy(path: &Path) -> Array2<f64> {
    let bytes = std::fs::read(path).unwrap();
    let mut cursor = std::io::Cursor::new(&bytes);
    let header = ndstore_core::__private::npy_header::read(&mut cursor, 10_000).unwrap();
    let values: Vec<f64> = bytes[header.data_offset as usize..]
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    Array2::from_shape_vec((header.meta.shape[0], header.meta.shape[1]), values).unwrap()
}

#[test]
fn large_files_read_in_two_halves_keep_exact_line_numbers() {
    use std::fmt::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.csv");
    let rows = 2_000_000usize;
    let mut text = String::with_capacity(rows * 24);
    for i in 0..rows {
        writeln!(text, "{}.25,{}", i, i % 7).unwrap();
    }
    assert!(
        text.len() > 16 << 20,
        "the file must take the two-halves path"
    );
    std::fs::write(&path, &text).unwrap();
    let all: Array2<f64> = ndstore_text::load(&path, &TextOptions::default()).unwrap();
    assert_eq!(all.dim(), (rows, 2));
    assert_eq!(all[[rows - 1, 0]], (rows - 1) as f64 + 0.25);
    // A bad value far into the second half is reported at its own line.
    let bad_line = rows - 10;
    let mut lines: Vec<&str> = text.lines().collect();
    let replaced = format!("{}.25,oops", bad_line - 1);
    lines[bad_line - 1] = &replaced;
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let err = ndstore_text::load_dyn(&path, &TextOptions::default()).unwrap_err();
    let column = replaced.find("oops").unwrap() as u64 + 1;
    assert_eq!(line_col(&err), (bad_line as u64, column), "{err}");
}

/// A writer that fails once it has taken `limit` bytes, as a full disk would.
struct FailingWriter {
    written: usize,
    limit: usize,
}

impl std::io::Write for FailingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.written + buf.len() > self.limit {
            return Err(std::io::Error::from_raw_os_error(28));
        }
        self.written += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_failing_writer_stops_the_two_thread_writer_with_its_error() {
    let a = Array2::<f64>::from_shape_fn((200_000, 4), |(i, j)| (i * 4 + j) as f64 / 3.0);
    let mut out = FailingWriter {
        written: 0,
        limit: 1 << 20,
    };
    let err = ndstore_text::write_to(&mut out, &a, &TextOptions::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StorageFull, "{err}");
    assert_eq!(
        err.io_error().and_then(std::io::Error::raw_os_error),
        Some(28)
    );
}

#[test]
fn a_last_line_without_a_line_ending_loads_unless_a_metadata_line_says_more() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hand-edited.csv");
    std::fs::write(&path, "1,2\n3,4").unwrap();
    let a: Array2<f64> = ndstore_text::load(&path, &TextOptions::default()).unwrap();
    assert_eq!(a, array![[1.0, 2.0], [3.0, 4.0]]);
    // A final comment line without an ending is fine too.
    std::fs::write(&path, "1,2\n3,4\n# end").unwrap();
    let a: Array2<f64> = ndstore_text::load(&path, &TextOptions::default()).unwrap();
    assert_eq!(a, array![[1.0, 2.0], [3.0, 4.0]]);
    // With a metadata line, a short count is evidence of truncation.
    std::fs::write(
        &path,
        "# ndstore: {\"dtype\":\"<f8\",\"shape\":[3,2],\"order\":\"C\"}\n1,2\n3,4\n",
    )
    .unwrap();
    let err = ndstore_text::load_dyn(&path, &TextOptions::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Truncated, "{err}");
}

#[test]
fn numpy_and_pandas_files_without_a_final_line_ending_load_as_they_read_them() {
    if !ndstore_conformance::python::available_or_skip("numpy and pandas interop") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Files as numpy and pandas write them, then saved by an editor that drops the final line
    // ending; numpy and pandas read them back, and so must ndstore, to the same bits.
    let script = format!(
        "import numpy as np, pandas as pd\nd = {d:?}\nrng = np.random.default_rng(3)\na = rng.standard_normal((40, 3))\nnp.savetxt(d + '/np.csv', a, delimiter=',')\npd.DataFrame(a).to_csv(d + '/pd.csv', index=False, header=False)\nfor name in ('np.csv', 'pd.csv'):\n    p = d + '/' + name\n    text = open(p, 'rb').read()\n    assert text.endswith(b'\\n')\n    open(p, 'wb').write(text.rstrip(b'\\n'))\nnp.save(d + '/np.npy', np.loadtxt(d + '/np.csv', delimiter=','))\nnp.save(d + '/pd.npy', np.ascontiguousarray(pd.read_csv(d + '/pd.csv', header=None).to_numpy()))",
        d = dir.path().display().to_string()
    );
    ndstore_conformance::python::run_script(&script).unwrap();
    for name in ["np", "pd"] {
        let expected = ndstore_file_free_npy(&dir.path().join(format!("{name}.npy")));
        let got: Array2<f64> = ndstore_text::load(
            dir.path().join(format!("{name}.csv")),
            &TextOptions::default(),
        )
        .unwrap();
        assert_eq!(
            expected.map(|v| v.to_bits()),
            got.map(|v| v.to_bits()),
            "{name}"
        );
    }
}

#[test]
fn a_memory_limit_stops_a_load_without_a_metadata_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many.csv");
    let text: String = (0..10_000).map(|i| format!("{i},{i}\n")).collect();
    std::fs::write(&path, text).unwrap();
    let limits = ndstore_core::LoadOptions::new().memory_limit(1000);
    let err = ndstore_text::load_dyn_with(&path, &TextOptions::default(), &limits).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutOfMemory, "{err}");
    assert!(err.to_string().contains("many.csv"), "{err}");
    let enough = ndstore_core::LoadOptions::new().memory_limit(160_000);
    let (meta, _) = ndstore_text::load_dyn_with(&path, &TextOptions::default(), &enough).unwrap();
    assert_eq!(meta.shape, vec![10_000, 2]);
}

const OPEN_CHILD_ENV: &str = "NDSTORE_TEXT_OPEN_CHILD";

/// Run by the traced child: one load of a file large enough to be read as two halves.
#[test]
fn open_count_child() {
    let Some(path) = std::env::var_os(OPEN_CHILD_ENV) else {
        return;
    };
    let (meta, _) = ndstore_text::load_dyn(Path::new(&path), &TextOptions::default()).unwrap();
    assert_eq!(meta.shape, vec![1_500_000, 2]);
}

#[test]
fn a_large_load_opens_the_file_once() {
    use std::fmt::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("one-open.csv");
    let mut text = String::new();
    for i in 0..1_500_000u64 {
        writeln!(text, "{i}.5,{}", i % 13).unwrap();
    }
    // Over the 16 MiB at which the loader reads two halves side by side: every reader of the
    // load must read the one descriptor, or a rename between opens would mix two versions.
    assert!(text.len() > 16 << 20);
    std::fs::write(&path, text).unwrap();
    let opens = ndstore_conformance::testing::count_opens(
        "open_count_child",
        (OPEN_CHILD_ENV, &path.display().to_string()),
        &["one-open.csv"],
    )
    .unwrap();
    assert_eq!(opens, 1);
}

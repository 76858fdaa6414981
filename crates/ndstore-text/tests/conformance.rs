//! The `text` backend's conformance suite: the shared checks, driven through its capabilities,
//! and what only CSV knows — malformed and lying files, a realistic file with its metadata line
//! and its first, middle and last lines mapped, and numpy's `loadtxt`/`savetxt` for interop.

use std::path::Path;

use ndstore_conformance::fixtures::{Hostile, Realistic, Region};
use ndstore_conformance::{Fixtures, PythonInterop};
use ndstore_core::{Backend, DTypeKind, Order, SaveOptions};

ndstore_conformance::suite!(ndstore_text::TextBackend, TextFixtures);

/// What the `text` backend's CSV files know.
struct TextFixtures;

impl Fixtures for TextFixtures {
    fn hostile_inputs(&self) -> Vec<Hostile> {
        let meta = "# ndstore: {\"dtype\":\"<f8\",\"shape\":[2,3],\"order\":\"C\"}\n";
        let files: [(&str, String); 13] = [
            ("ragged-rows.csv", "1,2,3\n4,5\n".to_owned()),
            ("non-numeric.csv", "1,2,x\n".to_owned()),
            ("empty-field.csv", "1,,3\n".to_owned()),
            ("int-overflow.csv", "# ndstore: {\"dtype\":\"|i1\",\"shape\":[2],\"order\":\"C\"}\n1\n300\n".to_owned()),
            ("shape-mismatch.csv", format!("{meta}1,2,3\n")),
            ("bad-metadata-json.csv", "# ndstore: {\"dtype\":\"<f8\",\"shape\":[2,\n1,2\n".to_owned()),
            ("unsupported-dtype.csv", "# ndstore: {\"dtype\":\"|O\",\"shape\":[1],\"order\":\"C\"}\n1\n".to_owned()),
            ("shape-overflows.csv", "# ndstore: {\"dtype\":\"<f8\",\"shape\":[4611686018427387904,4611686018427387904],\"order\":\"C\"}\n1\n".to_owned()),
            ("bad-order.csv", "# ndstore: {\"dtype\":\"<f8\",\"shape\":[1],\"order\":\"Z\"}\n1\n".to_owned()),
            ("two-metadata-lines.csv", format!("{meta}{meta}1,2,3\n4,5,6\n")),
            // The metadata line claims 2^40 values; the file holds one.
            ("metadata-claims-2pow40-f64.csv", "# ndstore: {\"dtype\":\"<f8\",\"shape\":[1099511627776],\"order\":\"C\"}\n1\n".to_owned()),
            ("metadata-claims-2pow30-rows.csv", "# ndstore: {\"dtype\":\"<f8\",\"shape\":[1073741824,4],\"order\":\"C\"}\n1,2,3,4\n".to_owned()),
            ("bool-not-bool.csv", "# ndstore: {\"dtype\":\"|b1\",\"shape\":[2],\"order\":\"C\"}\n1\n2\n".to_owned()),
        ];
        files
            .into_iter()
            .map(|(n, t)| Hostile::new(n, t.into_bytes()))
            .collect()
    }

    fn realistic_files(&self, backend: &dyn Backend, dir: &Path) -> Result<Vec<Realistic>, String> {
        Ok(vec![realistic_csv(backend, dir)?])
    }

    fn python_interop(&self) -> Option<PythonInterop> {
        Some(PythonInterop {
            modules: &["json"],
            load: "meta = json.loads(open(path).readline().split('ndstore:', 1)[1])\n\
                   dt = np.dtype(meta['dtype'])\n\
                   arr = np.loadtxt(path, dtype=dt, delimiter=',', ndmin=1).reshape(meta['shape'])\n\
                   arr = np.array(arr, order=meta['order'])",
            save: "shape = list(arr.shape)\n\
                   rows = shape[0] if shape else 1\n\
                   cols = int(np.prod(shape[1:])) if len(shape) > 1 else 1\n\
                   fmt = {'f': {2: '%.5g', 4: '%.9g', 8: '%.17g'}, 'c': {8: '%.9g', 16: '%.17g'}}.get(arr.dtype.kind, {}).get(arr.dtype.itemsize, '%d')\n\
                   order = 'F' if arr.flags.f_contiguous and not arr.flags.c_contiguous and arr.ndim > 1 else 'C'\n\
                   header = 'ndstore: ' + json.dumps({'dtype': arr.dtype.str, 'shape': shape, 'order': order}, separators=(',', ':'))\n\
                   np.savetxt(path, np.ascontiguousarray(arr).reshape(rows, cols), fmt=fmt, delimiter=',', header=header, comments='# ')",
        })
    }
}

/// The byte ranges of the lines of `bytes`, each with its line ending.
fn lines(bytes: &[u8]) -> Vec<std::ops::Range<u64>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'\n' {
            out.push(start as u64..i as u64 + 1);
            start = i + 1;
        }
    }
    if start < bytes.len() {
        out.push(start as u64..bytes.len() as u64);
    }
    out
}

/// A realistic CSV of about 1.1 MiB (15,000 rows of 4 f64 values with the `# ndstore:` line) and
/// its map: the metadata line, the first, middle and last data lines (dense), and the lines
/// between them (sampled). A cut inside the last line may lose only a final digit, which no
/// format without a checksum can see, so it may load.
fn realistic_csv(backend: &dyn Backend, dir: &Path) -> Result<Realistic, String> {
    let path = dir.join("realistic.csv");
    let array = ndstore_conformance::sample::array_without_nan_payloads(
        DTypeKind::F64,
        &[15_000, 4],
        Order::C,
        0x7e47,
    );
    backend
        .save(&path, &array, &SaveOptions::default())
        .map_err(|e| e.to_string())?;
    let bytes = std::fs::read(&path).map_err(|e| e.to_string())?;
    let lines = lines(&bytes);
    let [meta, first, .., last] = lines.as_slice() else {
        return Err("the realistic file has too few lines".to_owned());
    };
    if !bytes.starts_with(b"# ndstore:") {
        return Err("the realistic file has no metadata line".to_owned());
    }
    let middle = &lines[lines.len() / 2];
    let regions = vec![
        Region::dense("metadata line", meta.clone()),
        Region::dense("first line", first.clone()),
        Region::sampled("lines before the middle", first.end..middle.start),
        Region::dense("middle line", middle.clone()),
        Region::sampled("lines after the middle", middle.end..last.start),
        Region::dense("last line", last.clone()).cut_may_load(),
    ];
    Ok(Realistic {
        name: "realistic.csv".to_owned(),
        path,
        loader: None,
        regions,
    })
}

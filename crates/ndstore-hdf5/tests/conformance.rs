//! The `hdf5` backend's conformance suite: the shared checks, driven through its capabilities,
//! and what only HDF5 knows — hostile files (unallocated huge datasets, link cycles), a
//! realistic file of chunked gzip datasets with attributes, groups and links whose regions come
//! from libhdf5 itself, a loader that walks every object, the explicitly in-process (trusted)
//! loader that BI reports apart, and h5py's snippets for interop.
// Tests may unwrap: a panic is how a test reports its failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::CString;
use std::path::Path;

use hdf5_metno::types::VarLenUnicode;
use ndstore_conformance::fixtures::{Editor, Hostile, Loader, Realistic, Region};
use ndstore_conformance::{Fixtures, PythonInterop};
use ndstore_core::{Backend, DTypeKind, LoadOptions, Order, SaveOptions};
use ndstore_hdf5::Object;

ndstore_conformance::suite!(ndstore_hdf5::Hdf5Backend, Hdf5Fixtures);

/// What HDF5 files know.
struct Hdf5Fixtures;

impl Fixtures for Hdf5Fixtures {
    fn hostile_inputs(&self) -> Vec<Hostile> {
        let mut signature_then_zeros = b"\x89HDF\r\n\x1a\n".to_vec();
        signature_then_zeros.extend_from_slice(&[0u8; 2040]);
        vec![
            Hostile::new(
                "not-hdf5.h5",
                b"this is plain text, not an HDF5 file\n".to_vec(),
            ),
            Hostile::new("empty.h5", Vec::new()),
            Hostile::new("signature-only.h5", b"\x89HDF\r\n\x1a\n".to_vec()),
            Hostile::new("signature-then-zeros.h5", signature_then_zeros),
            // A valid 1.4 KB file whose dataset of 2^31 f64 (16 GiB) was never written: a load
            // needs 16 GiB of fill values, over any sane limit.
            Hostile::new(
                "unallocated-2pow31-f64.h5",
                h5_bytes(|file| {
                    file.new_dataset::<f64>()
                        .shape(1usize << 31)
                        .create("data")?;
                    Ok(())
                }),
            ),
            // The same with 2^40 elements in chunks, none of them written.
            Hostile::new(
                "unallocated-chunked-2pow40-f64.h5",
                h5_bytes(|file| {
                    file.new_dataset::<f64>()
                        .chunk(1usize << 16)
                        .shape(1usize << 40)
                        .create("data")?;
                    Ok(())
                }),
            ),
            // `data` is a soft link to itself.
            Hostile::new(
                "soft-link-to-itself.h5",
                h5_bytes(|file| file.link_soft("/data", "data")),
            ),
            // A valid file with a soft link `/g/loop -> /`: listing it must not recurse forever.
            // Valid, so walking it may succeed; it must end, without a crash.
            Hostile::new(
                "soft-link-cycle.h5",
                h5_bytes(|file| {
                    small_data(file)?;
                    file.create_group("g")?.link_soft("/", "loop")
                }),
            )
            .loaded_by("walk")
            .valid(),
            // The same cycle through a hard link: `/g/up` is the root group itself.
            Hostile::new(
                "hard-link-cycle.h5",
                h5_bytes(|file| {
                    small_data(file)?;
                    file.create_group("g")?.link_hard("/", "up")
                }),
            )
            .loaded_by("walk")
            .valid(),
        ]
    }

    fn realistic_files(&self, _: &dyn Backend, dir: &Path) -> Result<Vec<Realistic>, String> {
        Ok(vec![realistic_h5(dir)?])
    }

    fn loaders(&self) -> Vec<Loader> {
        vec![Loader {
            name: "walk",
            load: walk,
        }]
    }

    fn editor(&self) -> Option<Editor> {
        Some(Editor {
            add: |path, name, array| {
                ndstore_hdf5::add_dataset(path, name, array, &SaveOptions::default())
            },
            names: |path| {
                Ok(ndstore_hdf5::list(path)?
                    .into_iter()
                    .filter(|entry| matches!(entry.object, Object::Dataset(_)))
                    .map(|entry| entry.path)
                    .collect())
            },
            load: |path, name| ndstore_hdf5::load_dyn(path, name).map(|(_, array)| array),
        })
    }

    fn trusted_loader(&self) -> Option<Loader> {
        // The explicitly in-process path, for files the caller trusts: BI reports what it does
        // with hostile files as a note, never as the backend's verdict.
        Some(Loader {
            name: "trusted",
            load: |path, options| {
                ndstore_hdf5::trusted::load_with(path, ndstore_hdf5::DEFAULT_DATASET, options)
                    .map(|_| ())
            },
        })
    }

    fn python_interop(&self) -> Option<PythonInterop> {
        Some(PythonInterop {
            modules: &["h5py", "json"],
            load: "f = h5py.File(path, 'r')\n\
                   d = f['data']\n\
                   meta = json.loads(d.attrs.get('ndstore', '{\"order\": \"C\"}'))\n\
                   arr = np.array(d[...], order='F' if meta['order'] == 'F' else 'C')\n\
                   f.close()",
            save: "with h5py.File(path, 'w') as f:\n\
                   \x20   d = f.create_dataset('data', data=np.ascontiguousarray(arr) if arr.ndim else arr)\n\
                   \x20   d.attrs['ndstore'] = json.dumps({'order': 'F' if arr.flags.f_contiguous and not arr.flags.c_contiguous and arr.ndim > 1 else 'C'})",
        })
    }

    fn arrays_may_exceed_file(&self) -> bool {
        // Chunks never written read as the fill value: a 1 KB file may hold 16 GiB.
        true
    }
}

/// What a user does with an HDF5 file someone sent them: list every object, then load every
/// dataset, through the default entry points.
fn walk(path: &Path, load: &LoadOptions) -> ndstore_core::Result<()> {
    let options = ndstore_hdf5::ReadOptions::new().load(*load);
    for entry in ndstore_hdf5::list_with(path, &options)? {
        // Every dataset the listing says ndstore loads.
        if matches!(entry.object, Object::Dataset(_)) {
            ndstore_hdf5::load_with(path, &entry.path, &options)?;
        }
    }
    Ok(())
}

/// A small valid `data` dataset, so the backend's own load succeeds on a file whose damage is
/// elsewhere.
fn small_data(file: &hdf5_metno::File) -> hdf5_metno::Result<()> {
    file.new_dataset_builder()
        .with_data(&ndarray::arr1(&[1.0f64, 2.0, 3.0]))
        .create("data")?;
    Ok(())
}

/// The bytes of an HDF5 file that `build` fills.
fn h5_bytes(build: impl FnOnce(&hdf5_metno::File) -> hdf5_metno::Result<()>) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostile.h5");
    {
        let file = hdf5_metno::File::create(&path).unwrap();
        build(&file).unwrap();
        file.close().unwrap();
    }
    std::fs::read(&path).unwrap()
}

/// The objects of the realistic file, for their header addresses.
const OBJECTS: [&str; 7] = [
    "/",
    "/data",
    "/g",
    "/g/ints",
    "/g/waves",
    "/g/sub",
    "/g/sub/small",
];

/// A realistic HDF5 file of about 1.4 MiB: ndstore's own chunked dataset `data` (Fletcher-32
/// checksums, and ndstore's attribute), and, written with libhdf5 directly, a group with
/// attributes, two chunked gzip datasets, a nested group with a contiguous dataset, a soft and a
/// hard link, and a variable-length string attribute on the root. The bulk of the bytes is not
/// compressed, so each of the thousands of damaged copies loads in milliseconds.
fn realistic_h5(dir: &Path) -> Result<Realistic, String> {
    let path = dir.join("realistic.h5");
    let data = ndstore_conformance::sample::array(DTypeKind::F64, &[640, 256], Order::C, 0x4df5);
    let mut layout = ndstore_hdf5::H5Options::new().chunk(&[128, 256]);
    layout.fletcher32 = true;
    ndstore_hdf5::save_with(
        &path,
        ndstore_hdf5::DEFAULT_DATASET,
        &data,
        &SaveOptions::default(),
        &layout,
    )
    .map_err(|e| e.to_string())?;
    let add = || -> hdf5_metno::Result<()> {
        let file = hdf5_metno::File::open_rw(&path)?;
        let title: VarLenUnicode = "a realistic file for damage".parse().unwrap();
        file.new_attr::<VarLenUnicode>()
            .create("title")?
            .write_scalar(&title)?;
        let g = file.create_group("g")?;
        g.new_attr::<f64>().create("scale")?.write_scalar(&0.5)?;
        g.new_attr::<u32>()
            .shape(4)
            .create("range")?
            .write(&[1u32, 2, 3, 4])?;
        let ints = ndarray::Array1::from_iter((0..20_000).map(|i: i32| i.wrapping_mul(7919)));
        let ds = g
            .new_dataset_builder()
            .chunk(4000)
            .deflate(4)
            .with_data(&ints)
            .create("ints")?;
        ds.new_attr::<i64>().create("offset")?.write_scalar(&-7)?;
        let waves = ndarray::Array2::from_shape_fn((64, 128), |(i, j)| ((i * j) as f64).sin());
        g.new_dataset_builder()
            .chunk((16, 128))
            .shuffle()
            .deflate(6)
            .with_data(&waves)
            .create("waves")?;
        let sub = g.create_group("sub")?;
        sub.new_dataset_builder()
            .with_data(&ndarray::Array1::from_iter(0..100u8))
            .create("small")?;
        g.link_soft("/g/sub/small", "alias")?;
        g.link_hard("/g/ints", "hard")?;
        file.close()
    };
    add().map_err(|e| e.to_string())?;
    let regions = h5_regions(&path)?;
    Ok(Realistic {
        name: "realistic.h5".to_owned(),
        path,
        loader: Some("walk"),
        regions,
    })
}

/// The map of `path` from libhdf5: the superblock, each object's header (address from
/// `H5Oget_info`, size from its header info), each chunk (`H5Dget_chunk_info`; Fletcher-32
/// chunks checksummed) and contiguous storage (`H5Dget_offset`); the rest is metadata too
/// (B-trees, heaps, symbol tables), named by its signature where it has one.
fn h5_regions(path: &Path) -> Result<Vec<Region>, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let len = bytes.len() as u64;
    // Superblock versions 0 and 1 (8-byte offsets and lengths) take 96 and 100 bytes, 2 and
    // 3 take 48.
    let superblock = match bytes.get(8) {
        Some(0) => 96,
        Some(1) => 100,
        _ => 48,
    };
    let mut regions = vec![Region::dense("superblock", 0..superblock)];
    let file = hdf5_metno::File::open(path).map_err(|e| e.to_string())?;
    for name in OBJECTS {
        let (addr, size) = object_header(&file, name)?;
        regions.push(Region::dense("object header", addr..(addr + size).min(len)));
    }
    for name in ["/data", "/g/ints", "/g/waves", "/g/sub/small"] {
        let ds = file.dataset(name).map_err(|e| e.to_string())?;
        let checksummed = name == "/data";
        match ds.num_chunks() {
            Some(n) if ds.is_chunked() => {
                for i in 0..n {
                    let chunk = ds.chunk_info(i).ok_or("no chunk info")?;
                    let region = Region::sampled("chunk", chunk.addr..chunk.addr + chunk.size);
                    regions.push(if checksummed {
                        region.checksummed()
                    } else {
                        region
                    });
                }
            }
            _ => {
                let offset = ds.offset().ok_or("no offset of contiguous storage")?;
                regions.push(Region::sampled(
                    "contiguous data",
                    offset..offset + ds.storage_size(),
                ));
            }
        }
    }
    file.close().map_err(|e| e.to_string())?;
    regions.extend(metadata_gaps(&bytes, &regions));
    Ok(regions)
}

/// The address and total header size of object `name`.
#[allow(deprecated)]
fn object_header(file: &hdf5_metno::File, name: &str) -> Result<(u64, u64), String> {
    use hdf5_metno_sys::h5o::{H5O_info1_t, H5Oget_info_by_name1};
    use hdf5_metno_sys::h5p::H5P_DEFAULT;
    let cname = CString::new(name).map_err(|e| e.to_string())?;
    let mut info = H5O_info1_t::default();
    let rc = hdf5_metno::sync::sync(|| {
        // SAFETY: `file.id()` is a live file id, `cname` a NUL-terminated string, and `info` a
        // struct of the layout libhdf5 fills for this (version 1) call.
        unsafe { H5Oget_info_by_name1(file.id(), cname.as_ptr(), &mut info, H5P_DEFAULT) }
    });
    if rc < 0 {
        return Err(format!("H5Oget_info_by_name failed for {name}"));
    }
    Ok((info.addr, info.hdr.space.total))
}

/// The bytes in no region yet: metadata too, split where a structure's signature starts so the
/// report can name it.
fn metadata_gaps(bytes: &[u8], regions: &[Region]) -> Vec<Region> {
    const SIGNATURES: [(&[u8; 4], &str); 8] = [
        (b"TREE", "B-tree node"),
        (b"HEAP", "local heap"),
        (b"GCOL", "global heap"),
        (b"SNOD", "symbol table node"),
        (b"OHDR", "object header"),
        (b"OCHK", "object header continuation"),
        (b"BTHD", "B-tree header"),
        (b"FRHP", "fractal heap"),
    ];
    let mut ranges: Vec<_> = regions.iter().map(|r| r.range.clone()).collect();
    ranges.sort_by_key(|r| r.start);
    let mut gaps = Vec::new();
    let mut at = 0u64;
    for range in ranges
        .iter()
        .chain(std::iter::once(&(bytes.len() as u64..u64::MAX)))
    {
        if range.start > at {
            gaps.push(at..range.start);
        }
        at = at.max(range.end);
    }
    let mut out = Vec::new();
    for gap in gaps {
        let mut start = gap.start;
        let mut name = "other metadata";
        for pos in gap.clone() {
            let found = bytes
                .get(pos as usize..pos as usize + 4)
                .and_then(|w| SIGNATURES.iter().find(|(s, _)| w == *s));
            if let Some((_, what)) = found {
                if pos > start {
                    out.push(Region::dense(name, start..pos));
                }
                start = pos;
                name = what;
            }
        }
        out.push(Region::dense(name, start..gap.end));
    }
    out
}

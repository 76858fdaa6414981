//! The `text` backend as the conformance harness sees it: comma-separated `.csv` files with
//! the metadata line.

use std::path::Path;

use ndstore_core::{
    ArrayMeta, ArrayWriter, Backend, Capabilities, CrashGuarantee, DType, DTypeKind, DynArray,
    LoadOptions, PythonInterop, Result, SaveOptions, with_dyn_array,
};

use crate::options::TextOptions;
use crate::write::TextWriter;

/// Delimited text files; reported as `text`.
#[derive(Clone, Copy, Debug, Default)]
pub struct TextBackend;

impl Backend for TextBackend {
    fn name(&self) -> &'static str {
        "text"
    }

    fn extension(&self) -> &'static str {
        "csv"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            dtypes: DTypeKind::ALL.to_vec(),
            // The metadata line records the byte order (and order), and loads restore them.
            both_byte_orders: true,
            fortran_order: true,
            max_ndim: 32,
            // Decimal text carries every value exactly except a NaN's payload and sign: every
            // NaN reads back as the quiet NaN.
            bit_exact: false,
            atomic_replace: true,
            in_place_update: false,
            partial_io: false,
            streaming_append: true,
            memory_map: false,
            compression: false,
            crash: CrashGuarantee::AtomicReplace,
            in_place_crash: CrashGuarantee::None,
            interop: true,
        }
    }

    fn save(&self, path: &Path, array: &DynArray, options: &SaveOptions) -> Result<()> {
        with_dyn_array!(array, a => crate::write::save_view(path, a.view(), &TextOptions::default(), options))
    }

    fn load_with(&self, path: &Path, options: &LoadOptions) -> Result<(ArrayMeta, DynArray)> {
        crate::load::load_dyn_with(path, &TextOptions::default(), options)
    }

    fn load_as(&self, path: &Path, kind: DTypeKind) -> Result<DynArray> {
        ndstore_core::with_dtype_kind!(kind, T => crate::load::load::<T, ndarray::IxDyn>(path, &TextOptions::default()).map(DynArray::from))
    }

    fn read_meta(&self, path: &Path) -> Result<ArrayMeta> {
        crate::load::read_meta(path, &TextOptions::default())
    }

    fn writer(
        &self,
        path: &Path,
        dtype: DType,
        row_shape: &[usize],
        options: &SaveOptions,
    ) -> Result<Box<dyn ArrayWriter>> {
        let dtype = DType::new(dtype.kind, options.effective_byte_order());
        Ok(Box::new(TextWriter::create(
            path,
            dtype,
            row_shape,
            &TextOptions::default(),
            options,
        )?))
    }

    fn hostile_inputs(&self) -> Vec<(String, Vec<u8>)> {
        let meta = "# ndstore: {\"dtype\":\"<f8\",\"shape\":[2,3],\"order\":\"C\"}\n";
        let files: [(&str, String); 11] = [
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
            ("bool-not-bool.csv", "# ndstore: {\"dtype\":\"|b1\",\"shape\":[2],\"order\":\"C\"}\n1\n2\n".to_owned()),
        ];
        files
            .into_iter()
            .map(|(n, t)| (n.to_owned(), t.into_bytes()))
            .collect()
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

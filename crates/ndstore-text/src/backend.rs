//! The `text` backend as the conformance harness sees it: comma-separated `.csv` files with
//! the metadata line.

use std::path::Path;

use ndstore_core::{
    ArrayMeta, ArrayWriter, Backend, Capabilities, CrashGuarantee, DType, DTypeKind, DynArray,
    LoadOptions, Result, SaveOptions, with_dyn_array,
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
            partial_io: false,
            streaming_append: true,
            memory_map: false,
            compression: false,
            crash: CrashGuarantee::AtomicReplace,
            in_place: None,
            interop: true,
        }
    }

    fn save(&self, path: &Path, array: &DynArray, options: &SaveOptions) -> Result<()> {
        with_dyn_array!(array, |a| crate::write::save_view(
            path,
            a.view(),
            &TextOptions::default(),
            options
        ))
    }

    fn load_with(&self, path: &Path, options: &LoadOptions) -> Result<(ArrayMeta, DynArray)> {
        crate::load::load_dyn_with(path, &TextOptions::default(), options)
    }

    fn load_as(&self, path: &Path, kind: DTypeKind) -> Result<DynArray> {
        ndstore_core::with_dtype_kind!(kind, |T| crate::load::load::<T, ndarray::IxDyn>(
            path,
            &TextOptions::default()
        )
        .map(DynArray::from))
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
}

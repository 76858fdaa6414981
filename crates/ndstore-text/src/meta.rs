//! The metadata line, `# ndstore: {"dtype":"<f4","shape":[2,3,4],"order":"C"}`, which
//! `np.loadtxt` skips as a comment and ndstore reads to restore dtype, shape and order.

use ndstore_core::{ArrayMeta, DType, Error, ErrorKind, Order, Result};
use serde::{Deserialize, Serialize};

/// Room left after the first axis length, so a streaming writer can rewrite it in place.
pub const FIRST_AXIS_WIDTH: usize = 20;

#[derive(Serialize, Deserialize)]
struct Json {
    dtype: String,
    shape: Vec<usize>,
    order: String,
}

/// A parsed metadata line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaLine {
    /// The stored dtype, byte order included.
    pub dtype: DType,
    /// The array's shape.
    pub shape: Vec<usize>,
    /// The array's memory order.
    pub order: Order,
}

impl MetaLine {
    /// Parses the JSON after `ndstore:`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Format`] for JSON that is not the line's shape or an order that is neither
    /// `C` nor `F`; [`ErrorKind::UnsupportedDType`] for a dtype ndstore does not store;
    /// [`ErrorKind::TooLarge`] for a shape whose byte count overflows. The caller attaches the
    /// file and the line.
    pub fn parse(json: &[u8]) -> Result<MetaLine> {
        let parsed: Json = serde_json::from_slice(json)
            .map_err(|e| Error::new(ErrorKind::Format, e.to_string()))?;
        let dtype = DType::from_numpy_descr(&parsed.dtype)?;
        let order = match parsed.order.as_str() {
            "C" => Order::C,
            "F" => Order::Fortran,
            other => {
                return Err(Error::new(
                    ErrorKind::Format,
                    format!("order '{other}' is neither C nor F"),
                ));
            }
        };
        let meta = ArrayMeta::new(dtype, parsed.shape.clone(), order);
        meta.byte_len()?;
        Ok(MetaLine {
            dtype,
            shape: parsed.shape,
            order,
        })
    }

    /// As array metadata.
    pub fn to_meta(&self) -> ArrayMeta {
        ArrayMeta::new(self.dtype, self.shape.clone(), self.order)
    }

    /// The line's text after the comment prefix, without a newline.
    pub fn render(meta: &ArrayMeta) -> String {
        MetaLine::render_with_first_axis_width(meta, 0)
    }

    /// [`MetaLine::render`] with the first axis followed by spaces up to
    /// [`FIRST_AXIS_WIDTH`] digits, so a streaming writer can rewrite it in place with more.
    pub fn render_padded(meta: &ArrayMeta) -> String {
        MetaLine::render_with_first_axis_width(meta, FIRST_AXIS_WIDTH)
    }

    fn render_with_first_axis_width(meta: &ArrayMeta, width: usize) -> String {
        let mut shape = String::from("[");
        for (i, n) in meta.shape.iter().enumerate() {
            if i > 0 {
                shape.push(',');
            }
            let digits = n.to_string();
            shape.push_str(&digits);
            if i == 0 {
                shape.push_str(&" ".repeat(width.saturating_sub(digits.len())));
            }
        }
        shape.push(']');
        let order = if meta.order == Order::Fortran {
            "F"
        } else {
            "C"
        };
        format!(
            "ndstore: {{\"dtype\":\"{}\",\"shape\":{shape},\"order\":\"{order}\"}}",
            meta.dtype.to_numpy_descr()
        )
    }
}

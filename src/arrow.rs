//! The Arrow names the core uses, re-exported from the arrow-* crates it depends on. The `arrow`
//! facade crate would also compile the arithmetic, string (regex), row and ordering kernels,
//! which lamina never calls: depending on the parts keeps a fresh build about a minute shorter.

pub mod array {
    pub use arrow_array::builder::{GenericStringBuilder, StringViewBuilder};
    pub use arrow_array::cast::AsArray;
    pub use arrow_array::*;
    pub use arrow_data::ArrayData;
}

pub mod buffer {
    pub use arrow_buffer::*;
}

pub mod datatypes {
    pub use arrow_array::types::*;
    pub use arrow_buffer::ArrowNativeType;
    pub use arrow_schema::*;
}

pub mod compute {
    pub use arrow_cast::{cast, cast_with_options, CastOptions};
    pub use arrow_select::concat::concat_batches;
    pub use arrow_select::filter::filter_record_batch;
    pub use arrow_select::nullif::nullif;
    pub use arrow_select::take::take;
}

pub mod error {
    pub use arrow_schema::ArrowError;
}

#[cfg(feature = "python")]
pub use arrow_array::{ffi, ffi_stream};

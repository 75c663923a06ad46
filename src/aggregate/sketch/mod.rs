//! Mergeable sketches, one file each, free of any Arrow or aggregate-table concern:
//!
//! * [`hll`]: HyperLogLog distinct counts (`count_distinct` in the speed layer);
//! * [`kll`]: KLL quantiles with a rank-error guarantee (`quantile`);
//! * [`frequent`]: frequent items with guaranteed per-item count bounds (`top_k`).
//!
//! Each sketch has a versioned binary codec with its own magic byte; decoding validates every
//! field and never panics on bad bytes.

pub mod codec;
pub mod frequent;
pub mod hll;
pub(crate) mod huffman;
pub mod kll;

pub use codec::SketchError;
pub use hll::*;

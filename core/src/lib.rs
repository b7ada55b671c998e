//! halo's computing core.
//!
//! Every computation of halo lives here: patient geometry, DICOM series
//! reading, NIfTI, the run-time loading of inference backends, and (as the
//! project grows) inference, uncertainty, contours, metrics and statistics.
//! The crate links no libtorch; see [`backend`] for how a backend plug-in is
//! found and loaded.
//!
//! Conventions (see `DESIGN.md`): patient coordinates are DICOM LPS in
//! millimetres; volumes are `ndarray::Array3` indexed `[z][y][x]`; spacing
//! is stored `[x, y, z]`.

#![deny(missing_docs)]

pub mod backend;
pub mod contour;
pub mod dicom;
pub mod error;
pub mod geometry;
pub mod inference;
pub mod metrics;
pub mod model;
pub mod nifti;
pub mod stats;
pub mod study;
pub mod uncertainty;
pub mod volume;

pub use error::{Error, Result};
pub use geometry::Grid;
pub use volume::Volume;

/// The version of halo-core, as in its `Cargo.toml`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

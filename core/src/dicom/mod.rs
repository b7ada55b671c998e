//! DICOM input and output.
//!
//! [`scan`] groups the files of a folder into series; [`series`] loads one
//! series into a [`Volume`](crate::Volume) with exact geometry. Attribute
//! helpers here read values by tag and name the tag when a value is
//! malformed.

pub mod attr;
pub mod scan;
pub mod series;

pub use scan::{scan_folder, ScanResult, SeriesEntry};
pub use series::{load_series, series_grid, SeriesSelector, SplitBy};

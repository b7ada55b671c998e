//! DICOM input and output.
//!
//! [`scan`] groups the files of a folder into series; [`series`] loads one
//! series into a [`Volume`](crate::Volume) with exact geometry. Attribute
//! helpers here read values by tag and name the tag when a value is
//! malformed. [`rtstruct`] writes and reads structure sets, [`pt`] writes
//! and reads the uncertainty map as a PT series; both are placed on an
//! image series through [`reference::ImageReference`]. [`send`] delivers
//! files to a storage SCP (C-ECHO, C-STORE).

pub mod attr;
mod dimse;
pub mod outputs;
pub mod pt;
pub mod reference;
pub mod rtstruct;
pub mod scan;
pub mod send;
pub mod series;
pub mod uid;
pub mod write;

pub use reference::{ImageReference, ReferencedImage};
pub use scan::{scan_folder, ScanResult, SeriesEntry};
pub use series::{load_series, series_grid, SeriesSelector, SplitBy};

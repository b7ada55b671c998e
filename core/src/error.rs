//! The one error type of `halo-core`.

use std::path::PathBuf;

/// Result alias used throughout `halo-core`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `halo-core`.
///
/// Messages are lowercase, carry no trailing period, and name the offending
/// file, tag, series or value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or folder could not be read or written.
    #[error("{path}: {cause}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error (in the message, not chained, so that it
        /// is printed once).
        cause: std::io::Error,
    },
    /// A DICOM file could not be parsed or lacks what is needed.
    #[error("{path}: {message}")]
    Dicom {
        /// The file involved.
        path: PathBuf,
        /// What is wrong, naming the tag.
        message: String,
    },
    /// A series cannot be loaded as one volume.
    #[error("series {series}: {message}")]
    Series {
        /// The series (its description and UID).
        series: String,
        /// What is wrong.
        message: String,
    },
    /// A NIfTI file could not be read or written.
    #[error("{path}: {message}")]
    Nifti {
        /// The file involved.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A model folder or its manifest is invalid.
    #[error("{path}: {message}")]
    Model {
        /// The file involved (manifest, member, plans).
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A backend plug-in could not be found, loaded or used.
    #[error("backend: {0}")]
    Backend(String),
    /// An argument is out of its domain.
    #[error("{0}")]
    InvalidInput(String),
    /// The operation was cancelled through a progress callback.
    #[error("cancelled")]
    Cancelled,
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            cause: source,
        }
    }

    /// A DICOM error about one file.
    pub fn dicom(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Dicom {
            path: path.into(),
            message: message.into(),
        }
    }
}

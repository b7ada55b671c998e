//! Scanning folders for DICOM files and grouping them into series.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dicom_dictionary_std::tags;
use dicom_object::{InMemDicomObject, OpenFileOptions};
use rayon::prelude::*;

use super::attr;
use crate::{Error, Result};

/// Attributes that may tell apart several volumes sharing one series UID
/// (diffusion b-values, echoes, time points), with their tags.
pub const SPLIT_ATTRIBUTES: &[(&str, dicom_core::Tag)] = &[
    ("DiffusionBValue", tags::DIFFUSION_B_VALUE),
    ("SequenceName", tags::SEQUENCE_NAME),
    ("EchoTime", tags::ECHO_TIME),
    ("EchoNumbers", tags::ECHO_NUMBERS),
    ("InversionTime", tags::INVERSION_TIME),
    ("AcquisitionNumber", tags::ACQUISITION_NUMBER),
    (
        "TemporalPositionIdentifier",
        tags::TEMPORAL_POSITION_IDENTIFIER,
    ),
    ("TriggerTime", tags::TRIGGER_TIME),
    ("ImageType", tags::IMAGE_TYPE),
];

/// What one file's header says, as far as series reading needs it.
///
/// Positions and directions are LPS, mm.
#[derive(Debug, Clone, Default)]
pub struct InstanceHeader {
    /// The file.
    pub path: PathBuf,
    /// SOPInstanceUID (0008,0018).
    pub sop_instance_uid: String,
    /// SOPClassUID (0008,0016).
    pub sop_class_uid: String,
    /// Modality (0008,0060).
    pub modality: String,
    /// SeriesInstanceUID (0020,000E).
    pub series_instance_uid: String,
    /// SeriesNumber (0020,0011).
    pub series_number: Option<i64>,
    /// SeriesDescription (0008,103E).
    pub series_description: String,
    /// FrameOfReferenceUID (0020,0052).
    pub frame_of_reference_uid: Option<String>,
    /// Rows (0028,0010).
    pub rows: Option<i64>,
    /// Columns (0028,0011).
    pub columns: Option<i64>,
    /// PixelSpacing (0028,0030): `[row spacing, column spacing]` = `[y, x]`, mm.
    pub pixel_spacing: Option<[f64; 2]>,
    /// ImageOrientationPatient (0020,0037): row cosine then column cosine.
    pub image_orientation_patient: Option<[f64; 6]>,
    /// ImagePositionPatient (0020,0032), mm.
    pub image_position_patient: Option<[f64; 3]>,
    /// SliceThickness (0018,0050), mm.
    pub slice_thickness: Option<f64>,
    /// InstanceNumber (0020,0013).
    pub instance_number: Option<i64>,
    /// NumberOfFrames (0028,0008).
    pub number_of_frames: Option<i64>,
    /// SamplesPerPixel (0028,0002).
    pub samples_per_pixel: Option<i64>,
    /// Values of [`SPLIT_ATTRIBUTES`] present in the file, by keyword.
    pub split_values: BTreeMap<String, String>,
    /// The first malformed geometry attribute, if any.
    pub problem: Option<String>,
}

/// The files of one SeriesInstanceUID.
#[derive(Debug, Clone)]
pub struct SeriesEntry {
    /// SeriesInstanceUID (0020,000E).
    pub series_instance_uid: String,
    /// SeriesNumber (0020,0011) of the first file.
    pub series_number: Option<i64>,
    /// SeriesDescription (0008,103E) of the first file.
    pub series_description: String,
    /// Modality (0008,0060) of the first file.
    pub modality: String,
    /// FrameOfReferenceUID (0020,0052) of the first file.
    pub frame_of_reference_uid: Option<String>,
    /// Every file of the series, in path order.
    pub instances: Vec<InstanceHeader>,
}

impl SeriesEntry {
    /// A short human name: description and UID.
    pub fn label(&self) -> String {
        if self.series_description.is_empty() {
            self.series_instance_uid.clone()
        } else {
            format!(
                "{:?} ({})",
                self.series_description, self.series_instance_uid
            )
        }
    }
}

/// The outcome of [`scan_folder`].
#[derive(Debug, Clone, Default)]
pub struct ScanResult {
    /// Series found, ordered by series number then UID.
    pub series: Vec<SeriesEntry>,
    /// Files that are not DICOM, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
    /// Files that carry the DICOM magic but could not be parsed, with the
    /// reason. Their series is unknown, so loading refuses while any exist.
    pub broken: Vec<(PathBuf, String)>,
}

/// Scans a folder recursively (or a single file) and groups its DICOM
/// files by SeriesInstanceUID. Files that are not DICOM are skipped with a
/// debug log and listed in [`ScanResult::skipped`].
///
/// # Errors
///
/// [`Error::Io`] when the path cannot be read; [`Error::InvalidInput`] when
/// it holds no DICOM file at all (naming what was skipped and why).
pub fn scan_folder(path: &Path) -> Result<ScanResult> {
    let mut files = Vec::new();
    collect_files(path, &mut files)?;
    files.sort();

    let read: Vec<(PathBuf, std::result::Result<InstanceHeader, String>)> = files
        .into_par_iter()
        .map(|f| {
            let h = read_header(&f);
            (f, h)
        })
        .collect();

    let mut result = ScanResult::default();
    let mut groups: BTreeMap<String, Vec<InstanceHeader>> = BTreeMap::new();
    for (path, header) in read {
        match header {
            Ok(h) => groups
                .entry(h.series_instance_uid.clone())
                .or_default()
                .push(h),
            Err(reason) if has_dicom_magic(&path) => {
                tracing::warn!(path = %path.display(), %reason, "DICOM file cannot be parsed");
                result.broken.push((path, reason));
            }
            Err(reason) => {
                tracing::debug!(path = %path.display(), %reason, "skipping file that is not DICOM");
                result.skipped.push((path, reason));
            }
        }
    }
    if groups.is_empty() {
        if let Some((p, why)) = result.broken.first() {
            return Err(Error::dicom(
                p,
                format!("is a DICOM file that cannot be parsed: {why}"),
            ));
        }
        let detail = match result.skipped.first() {
            Some((p, why)) => format!(
                "; {} file(s) skipped as not DICOM, for example {}: {why}",
                result.skipped.len(),
                p.display()
            ),
            None => "; the folder is empty".to_string(),
        };
        return Err(Error::InvalidInput(format!(
            "no DICOM files found in {}{detail}",
            path.display()
        )));
    }

    result.series = groups
        .into_iter()
        .map(|(uid, instances)| {
            let first = &instances[0];
            SeriesEntry {
                series_instance_uid: uid,
                series_number: first.series_number,
                series_description: first.series_description.clone(),
                modality: first.modality.clone(),
                frame_of_reference_uid: first.frame_of_reference_uid.clone(),
                instances,
            }
        })
        .collect();
    result.series.sort_by(|a, b| {
        (a.series_number, &a.series_instance_uid).cmp(&(b.series_number, &b.series_instance_uid))
    });
    Ok(result)
}

pub(crate) fn collect_files(path: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let entries = std::fs::read_dir(path).map_err(|e| Error::io(path, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(path, e))?;
        let p = entry.path();
        let ft = entry.file_type().map_err(|e| Error::io(&p, e))?;
        if ft.is_dir() {
            collect_files(&p, out)?;
        } else if ft.is_file() || (ft.is_symlink() && p.is_file()) {
            out.push(p);
        }
    }
    Ok(())
}

/// True when the file has the 128-byte preamble followed by `DICM`
/// (PS3.10 section 7.1).
fn has_dicom_magic(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 132];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .map(|()| &head[128..] == b"DICM")
        .unwrap_or(false)
}

/// Reads the header of one file (everything before PixelData).
fn read_header(path: &Path) -> std::result::Result<InstanceHeader, String> {
    let obj = OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(path)
        .map_err(|e| e.to_string())?;
    let obj: &InMemDicomObject = &obj;

    let mut h = InstanceHeader {
        path: path.to_path_buf(),
        sop_instance_uid: attr::string(obj, tags::SOP_INSTANCE_UID).unwrap_or_default(),
        sop_class_uid: attr::string(obj, tags::SOP_CLASS_UID).unwrap_or_default(),
        modality: attr::string(obj, tags::MODALITY).unwrap_or_default(),
        series_instance_uid: attr::string(obj, tags::SERIES_INSTANCE_UID).unwrap_or_default(),
        series_description: attr::string(obj, tags::SERIES_DESCRIPTION).unwrap_or_default(),
        frame_of_reference_uid: attr::string(obj, tags::FRAME_OF_REFERENCE_UID),
        ..Default::default()
    };
    for (kw, tag) in SPLIT_ATTRIBUTES {
        if let Some(v) = attr::string(obj, *tag) {
            h.split_values.insert(kw.to_string(), v);
        }
    }
    if let Err(e) = read_geometry(path, obj, &mut h) {
        h.problem = Some(e.to_string());
    }
    Ok(h)
}

fn read_geometry(path: &Path, obj: &InMemDicomObject, h: &mut InstanceHeader) -> Result<()> {
    h.series_number = attr::int(path, obj, tags::SERIES_NUMBER, "SeriesNumber")
        .ok()
        .flatten();
    h.instance_number = attr::int(path, obj, tags::INSTANCE_NUMBER, "InstanceNumber")
        .ok()
        .flatten();
    h.rows = attr::int(path, obj, tags::ROWS, "Rows")?;
    h.columns = attr::int(path, obj, tags::COLUMNS, "Columns")?;
    h.number_of_frames = attr::int(path, obj, tags::NUMBER_OF_FRAMES, "NumberOfFrames")?;
    h.samples_per_pixel = attr::int(path, obj, tags::SAMPLES_PER_PIXEL, "SamplesPerPixel")?;
    h.pixel_spacing =
        attr::floats_n(path, obj, tags::PIXEL_SPACING, "PixelSpacing", 2)?.map(|v| [v[0], v[1]]);
    h.image_orientation_patient = attr::floats_n(
        path,
        obj,
        tags::IMAGE_ORIENTATION_PATIENT,
        "ImageOrientationPatient",
        6,
    )?
    .map(|v| [v[0], v[1], v[2], v[3], v[4], v[5]]);
    h.image_position_patient = attr::floats_n(
        path,
        obj,
        tags::IMAGE_POSITION_PATIENT,
        "ImagePositionPatient",
        3,
    )?
    .map(|v| [v[0], v[1], v[2]]);
    h.slice_thickness = attr::floats(path, obj, tags::SLICE_THICKNESS, "SliceThickness")?
        .and_then(|v| v.first().copied());
    Ok(())
}

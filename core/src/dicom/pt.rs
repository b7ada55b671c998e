//! The uncertainty map as a PET image series, and reading it back.
//!
//! Planning systems overlay a PT series on the MR it shares a frame of
//! reference with and colour it; so the map is written as Positron Emission
//! Tomography Image Storage (PS3.3 A.21): one file per slice of the MR's
//! grid, 16-bit unsigned pixels, one RescaleSlope for every slice and
//! RescaleIntercept 0, Units NONE and DecayCorrection NONE (nothing was
//! counted), ImageType `DERIVED\PRIMARY`, ImageIndex 1..N and no
//! PatientPosition (the NM/PET Patient Orientation module carries that
//! role in this IOD).
//!
//! A small block of the scale maximum (0.5, the largest standard deviation
//! of a binary probability) sits in a corner of every slice, away from the
//! anatomy, so that a viewer that windows each image to its own range shows
//! every slice and every case on the same 0 to 0.5 scale.

use std::path::Path;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::InMemDicomObject;

use super::reference::ImageReference;
use super::scan::scan_folder;
use super::series::{load_series, SeriesSelector};
use super::uid::new_uid;
use super::write::{
    format_ds, now_date_time, publish_dir, put_ds, put_is, put_seq, put_str, put_us, save,
};
use crate::{Error, Result, Volume};

/// The top of the fixed colour scale: the largest population standard
/// deviation of a binary probability.
pub const SCALE_MAX: f64 = 0.5;

/// Largest stored pixel value (16-bit unsigned).
const STORED_MAX: f64 = 65_535.0;

/// A corner of each image, in the image's row and column order (row 0 is
/// the first row of the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corner {
    /// First row, first column.
    TopLeft,
    /// First row, last column.
    TopRight,
    /// Last row, first column.
    BottomLeft,
    /// Last row, last column.
    BottomRight,
}

impl std::str::FromStr for Corner {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "topleft" => Ok(Corner::TopLeft),
            "topright" => Ok(Corner::TopRight),
            "bottomleft" => Ok(Corner::BottomLeft),
            "bottomright" => Ok(Corner::BottomRight),
            _ => Err(Error::InvalidInput(format!(
                "corner {s:?} is not top-left, top-right, bottom-left or bottom-right"
            ))),
        }
    }
}

/// Uncertainty under the fixed-scale block from which a warning is given
/// (a 100th of the colour scale).
const BLOCK_WARN_LEVEL: f32 = 0.005;

/// The fixed-scale block: `size x size` voxels of value [`SCALE_MAX`] in
/// one corner of every slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScaleBlock {
    /// Where the block sits.
    pub corner: Corner,
    /// Its edge in voxels (rows and columns).
    pub size: usize,
}

impl Default for ScaleBlock {
    fn default() -> Self {
        ScaleBlock {
            corner: Corner::TopLeft,
            size: 4,
        }
    }
}

impl ScaleBlock {
    /// Its first row and column on an image of `rows x columns`.
    pub fn origin(&self, rows: usize, columns: usize) -> (usize, usize) {
        let r = match self.corner {
            Corner::TopLeft | Corner::TopRight => 0,
            _ => rows - self.size,
        };
        let c = match self.corner {
            Corner::TopLeft | Corner::BottomLeft => 0,
            _ => columns - self.size,
        };
        (r, c)
    }

    /// True when voxel `(row, column)` lies in the block.
    pub fn contains(&self, rows: usize, columns: usize, row: usize, column: usize) -> bool {
        let (r, c) = self.origin(rows, columns);
        (r..r + self.size).contains(&row) && (c..c + self.size).contains(&column)
    }

    /// The corner whose block is darkest in `image` over all slices (the
    /// one most likely outside the anatomy), keeping `size`.
    pub fn darkest_corner(image: &Volume<f32>, size: usize) -> ScaleBlock {
        let (_, rows, columns) = image.grid.shape_zyx();
        let size = size.min(rows).min(columns);
        let corners = [
            Corner::TopLeft,
            Corner::TopRight,
            Corner::BottomLeft,
            Corner::BottomRight,
        ];
        let mean = |b: &ScaleBlock| {
            let (r0, c0) = b.origin(rows, columns);
            let block = image
                .data
                .slice(ndarray::s![.., r0..r0 + size, c0..c0 + size]);
            block.iter().map(|&v| f64::from(v)).sum::<f64>()
        };
        corners
            .into_iter()
            .map(|corner| ScaleBlock { corner, size })
            .min_by(|a, b| mean(a).total_cmp(&mean(b)))
            .unwrap_or_default()
    }
}

/// Options of [`write_uncertainty_series`].
#[derive(Debug, Clone)]
pub struct PtOptions {
    /// SeriesDescription (0008,103E); `None` writes
    /// `halo uncertainty (std) <label> 0-0.5`.
    pub series_description: Option<String>,
    /// SeriesNumber (0020,0011).
    pub series_number: i64,
    /// The fixed-scale block.
    pub block: ScaleBlock,
    /// Replace an existing folder.
    pub overwrite: bool,
}

impl Default for PtOptions {
    fn default() -> Self {
        PtOptions {
            series_description: None,
            series_number: 9002,
            block: ScaleBlock::default(),
            overwrite: false,
        }
    }
}

/// What [`write_uncertainty_series`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct PtSeriesInfo {
    /// SeriesInstanceUID (0020,000E) of the new series.
    pub series_instance_uid: String,
    /// RescaleSlope (0028,1053) of every slice, as written (value = stored
    /// x slope): the quantisation step.
    pub rescale_slope: f64,
    /// Number of files, one per slice.
    pub files: usize,
}

/// The RescaleSlope for a map whose largest value is `max`: the scale top
/// ([`SCALE_MAX`] or `max` if larger) maps to the largest stored value, and
/// the slope is the one its 16-character decimal string gives back.
fn rescale_slope(max: f64) -> Result<f64> {
    let top = max.max(SCALE_MAX);
    let slope = format_ds(top / STORED_MAX)?
        .parse::<f64>()
        .map_err(|e| Error::InvalidInput(format!("rescale slope does not parse: {e}")))?;

    // The written slope may round down; widen by one step so that the top
    // still fits in 16 bits.
    if (top / slope).round() > STORED_MAX {
        return format_ds(top / (STORED_MAX - 1.0))?
            .parse::<f64>()
            .map_err(|e| Error::InvalidInput(format!("rescale slope does not parse: {e}")));
    }
    Ok(slope)
}

/// Writes an uncertainty map as a PT series into folder `dir` (created
/// through a temporary folder renamed into place), one file per slice of
/// `reference`'s grid, named `PT0001.dcm` and up.
///
/// Values are stored as `round(value / slope)`; the fixed-scale block
/// overwrites the map in its voxels.
///
/// # Errors
///
/// [`Error::InvalidInput`] when the map is not on the reference grid,
/// holds a negative or non-finite value, or the block does not fit the
/// image; [`Error::InvalidInput`] when `dir` exists and
/// `options.overwrite` is false; [`Error::Dicom`] or [`Error::Io`] when a
/// file cannot be written.
pub fn write_uncertainty_series(
    dir: &Path,
    reference: &ImageReference,
    map: &Volume<f32>,
    label: &str,
    options: &PtOptions,
) -> Result<PtSeriesInfo> {
    let grid = &reference.grid;
    let (nz, rows, columns) = grid.shape_zyx();
    if !map.grid.same_as(grid, 1e-4) {
        return Err(Error::InvalidInput(format!(
            "uncertainty map {label:?} is on the grid {} but the image series is on {grid}",
            map.grid
        )));
    }
    if reference.images.len() != nz {
        return Err(Error::InvalidInput(format!(
            "image reference has {} images for {nz} slices",
            reference.images.len()
        )));
    }
    let block = options.block;
    if block.size == 0 || block.size > rows || block.size > columns {
        return Err(Error::InvalidInput(format!(
            "fixed-scale block of {} voxels does not fit images of {rows} x {columns}",
            block.size
        )));
    }
    if let Some(bad) = map.data.iter().find(|v| !v.is_finite() || **v < 0.0) {
        return Err(Error::InvalidInput(format!(
            "uncertainty map {label:?} holds value {bad}; values must be finite and >= 0"
        )));
    }

    let max = map.data.iter().fold(0.0f64, |m, &v| m.max(f64::from(v)));
    let slope = rescale_slope(max)?;
    let series_instance_uid = new_uid();
    let header = series_header(reference, label, options, &series_instance_uid, slope)?;
    let (r0, c0) = block.origin(rows, columns);
    let block_stored = (SCALE_MAX / slope).round() as u16;
    let mut overwritten = 0.0f32;

    publish_dir(dir, options.overwrite, |staged| {
        for z in 0..nz {
            let slice = map.data.index_axis(ndarray::Axis(0), z);
            let mut pixels: Vec<u16> = slice
                .iter()
                .map(|&v| (f64::from(v) / slope).round() as u16)
                .collect();
            for r in r0..r0 + block.size {
                for c in c0..c0 + block.size {
                    overwritten = overwritten.max(slice[[r, c]]);
                    pixels[r * columns + c] = block_stored;
                }
            }
            let obj = slice_object(&header, reference, z, pixels)?;
            save(obj, &staged.join(format!("PT{:04}.dcm", z + 1)))?;
        }
        Ok(())
    })?;
    // Traces of uncertainty (the flips of one network disagree by 1e-4 far
    // from any organ) are not worth a warning; a visible level is.
    if overwritten >= BLOCK_WARN_LEVEL {
        tracing::warn!(
            label,
            max = f64::from(overwritten),
            "the fixed-scale block covers voxels of visible uncertainty; choose another corner"
        );
    }

    Ok(PtSeriesInfo {
        series_instance_uid,
        rescale_slope: slope,
        files: nz,
    })
}

/// The attributes every slice shares.
fn series_header(
    reference: &ImageReference,
    label: &str,
    options: &PtOptions,
    series_instance_uid: &str,
    slope: f64,
) -> Result<InMemDicomObject> {
    let grid = &reference.grid;
    let (nz, rows, columns) = grid.shape_zyx();
    let (date, time) = now_date_time();
    let mut obj = reference.new_derived_object();

    // SOP Common (C.12.1), General Series (C.7.3.1), PET Series (C.8.9.1).
    put_str(
        &mut obj,
        tags::SOP_CLASS_UID,
        VR::UI,
        uids::POSITRON_EMISSION_TOMOGRAPHY_IMAGE_STORAGE,
    );
    put_str(&mut obj, tags::INSTANCE_CREATION_DATE, VR::DA, &date);
    put_str(&mut obj, tags::INSTANCE_CREATION_TIME, VR::TM, &time);
    put_str(&mut obj, tags::MODALITY, VR::CS, "PT");
    put_str(
        &mut obj,
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        series_instance_uid,
    );
    put_is(&mut obj, tags::SERIES_NUMBER, options.series_number);
    put_str(&mut obj, tags::SERIES_DATE, VR::DA, &date);
    put_str(&mut obj, tags::SERIES_TIME, VR::TM, &time);
    let description = options
        .series_description
        .clone()
        .unwrap_or_else(|| format!("halo uncertainty (std) {label} 0-0.5"));
    put_str(&mut obj, tags::SERIES_DESCRIPTION, VR::LO, &description);
    put_str(&mut obj, tags::OPERATORS_NAME, VR::PN, "");
    // Laterality (0020,0060) is type 2C: it may be absent when the body part
    // is known and unpaired; otherwise it is written empty (unknown).
    match &reference.body_part_examined {
        Some(part) => put_str(&mut obj, tags::BODY_PART_EXAMINED, VR::CS, part),
        None => put_str(&mut obj, tags::LATERALITY, VR::CS, ""),
    }
    put_str(&mut obj, tags::UNITS, VR::CS, "NONE");
    put_str(&mut obj, tags::COUNTS_SOURCE, VR::CS, "EMISSION");
    put_str(&mut obj, tags::SERIES_TYPE, VR::CS, "STATIC\\IMAGE");
    put_str(&mut obj, tags::RECONSTRUCTION_METHOD, VR::LO, "");
    put_us(&mut obj, tags::NUMBER_OF_SLICES, nz as u16);
    put_str(&mut obj, tags::CORRECTED_IMAGE, VR::CS, "");
    put_str(&mut obj, tags::DECAY_CORRECTION, VR::CS, "NONE");
    put_str(&mut obj, tags::COLLIMATOR_TYPE, VR::CS, "NONE");

    // PET Isotope (C.8.9.2) and NM/PET Patient Orientation (C.8.4.6): type 2
    // sequences, empty since nothing was injected or acquired.
    put_seq(
        &mut obj,
        tags::RADIOPHARMACEUTICAL_INFORMATION_SEQUENCE,
        vec![],
    );
    put_seq(&mut obj, tags::PATIENT_ORIENTATION_CODE_SEQUENCE, vec![]);
    put_seq(
        &mut obj,
        tags::PATIENT_GANTRY_RELATIONSHIP_CODE_SEQUENCE,
        vec![],
    );

    // General Image (C.7.6.1), PET Image (C.8.9.4), Image Pixel (C.7.6.3).
    put_str(&mut obj, tags::IMAGE_TYPE, VR::CS, "DERIVED\\PRIMARY");
    put_str(
        &mut obj,
        tags::DERIVATION_DESCRIPTION,
        VR::ST,
        &format!("voxel-wise standard deviation of ensemble probabilities, {label}"),
    );
    let block = options.block;
    let (r0, c0) = block.origin(rows, columns);
    put_str(
        &mut obj,
        tags::IMAGE_COMMENTS,
        VR::LT,
        &format!(
            "halo fixed-scale block: value {SCALE_MAX} at rows {}-{}, columns {}-{} of every slice",
            r0,
            r0 + block.size - 1,
            c0,
            c0 + block.size - 1
        ),
    );
    put_str(&mut obj, tags::CONTENT_DATE, VR::DA, &date);
    put_str(&mut obj, tags::CONTENT_TIME, VR::TM, &time);
    put_str(&mut obj, tags::ACQUISITION_DATE, VR::DA, &date);
    put_str(&mut obj, tags::ACQUISITION_TIME, VR::TM, &time);
    put_ds(&mut obj, tags::FRAME_REFERENCE_TIME, &[0.0])?;
    put_is(&mut obj, tags::ACTUAL_FRAME_DURATION, 0);
    put_us(&mut obj, tags::SAMPLES_PER_PIXEL, 1);
    put_str(
        &mut obj,
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        "MONOCHROME2",
    );
    put_us(&mut obj, tags::ROWS, rows as u16);
    put_us(&mut obj, tags::COLUMNS, columns as u16);
    put_us(&mut obj, tags::BITS_ALLOCATED, 16);
    put_us(&mut obj, tags::BITS_STORED, 16);
    put_us(&mut obj, tags::HIGH_BIT, 15);
    put_us(&mut obj, tags::PIXEL_REPRESENTATION, 0);
    put_ds(&mut obj, tags::RESCALE_INTERCEPT, &[0.0])?;
    put_ds(&mut obj, tags::RESCALE_SLOPE, &[slope])?;

    // VOI LUT (C.11.2): a window over exactly 0 to 0.5 in rescaled units;
    // a width below 1 is only allowed with the LINEAR_EXACT function
    // (C.11.2.1.3.2), which also maps the window edges exactly.
    put_ds(&mut obj, tags::WINDOW_CENTER, &[SCALE_MAX / 2.0])?;
    put_ds(&mut obj, tags::WINDOW_WIDTH, &[SCALE_MAX])?;
    put_str(&mut obj, tags::VOILUT_FUNCTION, VR::CS, "LINEAR_EXACT");

    // Image Plane (C.7.6.2): PixelSpacing is [row spacing, column spacing].
    let row = grid.axis(0);
    let col = grid.axis(1);
    put_ds(
        &mut obj,
        tags::PIXEL_SPACING,
        &[grid.spacing[1], grid.spacing[0]],
    )?;
    put_ds(
        &mut obj,
        tags::IMAGE_ORIENTATION_PATIENT,
        &[row[0], row[1], row[2], col[0], col[1], col[2]],
    )?;
    put_ds(&mut obj, tags::SLICE_THICKNESS, &[grid.spacing[2]])?;
    Ok(obj)
}

fn slice_object(
    header: &InMemDicomObject,
    reference: &ImageReference,
    z: usize,
    pixels: Vec<u16>,
) -> Result<InMemDicomObject> {
    let grid = &reference.grid;
    let mut obj = header.clone();
    put_str(&mut obj, tags::SOP_INSTANCE_UID, VR::UI, &new_uid());
    put_is(&mut obj, tags::INSTANCE_NUMBER, z as i64 + 1);
    put_us(&mut obj, tags::IMAGE_INDEX, (z + 1) as u16);

    let position = grid.index_to_lps([0.0, 0.0, z as f64]);
    put_ds(&mut obj, tags::IMAGE_POSITION_PATIENT, &position)?;
    let normal = grid.axis(2);
    put_ds(
        &mut obj,
        tags::SLICE_LOCATION,
        &[crate::geometry::dot(&normal, &position)],
    )?;

    let largest = pixels.iter().copied().max().unwrap_or(0);
    let smallest = pixels.iter().copied().min().unwrap_or(0);
    obj.put(DataElement::new(
        tags::SMALLEST_IMAGE_PIXEL_VALUE,
        VR::US,
        PrimitiveValue::from(smallest),
    ));
    obj.put(DataElement::new(
        tags::LARGEST_IMAGE_PIXEL_VALUE,
        VR::US,
        PrimitiveValue::from(largest),
    ));

    // Source Image Sequence (C.7.6.1.1.3): the MR image this slice lies on.
    let mut source = InMemDicomObject::new_empty();
    let image = &reference.images[z];
    put_str(
        &mut source,
        tags::REFERENCED_SOP_CLASS_UID,
        VR::UI,
        &image.sop_class_uid,
    );
    put_str(
        &mut source,
        tags::REFERENCED_SOP_INSTANCE_UID,
        VR::UI,
        &image.sop_instance_uid,
    );
    put_seq(&mut obj, tags::SOURCE_IMAGE_SEQUENCE, vec![source]);

    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U16(pixels.into()),
    ));
    Ok(obj)
}

/// A PT series read back: the map on its grid (LPS, mm) and its frame of
/// reference.
#[derive(Debug, Clone)]
pub struct PtSeries {
    /// Rescaled values, `[z][y][x]`.
    pub volume: Volume<f32>,
    /// FrameOfReferenceUID (0020,0052).
    pub frame_of_reference_uid: Option<String>,
    /// Units (0054,1001) of the first file.
    pub units: String,
}

/// Reads a PT series (a folder holding one series, or a file of it) back
/// into a volume on its own grid, applying RescaleSlope and
/// RescaleIntercept.
///
/// # Errors
///
/// What [`scan_folder`], [`ScanResult::select`](super::ScanResult::select)
/// and [`load_series`] refuse; [`Error::Series`] when the series is not PT.
pub fn read_series(path: &Path, selector: &SeriesSelector) -> Result<PtSeries> {
    let scan = scan_folder(path)?;
    let series = scan.select(selector)?;
    if series.modality != "PT" {
        return Err(Error::Series {
            series: series.label(),
            message: format!("has Modality (0008,0060) {:?}, not PT", series.modality),
        });
    }
    let first = &series.instances[0].path;
    let header = dicom_object::OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(first)
        .map_err(|e| Error::dicom(first, format!("cannot read: {e}")))?;
    let units = super::attr::string(&header, tags::UNITS).unwrap_or_default();

    Ok(PtSeries {
        volume: load_series(series, None)?,
        frame_of_reference_uid: series.frame_of_reference_uid.clone(),
        units,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Grid;

    #[test]
    fn corners_parse_with_dashes_underscores_or_none() {
        assert_eq!("top-left".parse::<Corner>().unwrap(), Corner::TopLeft);
        assert_eq!(
            "Bottom_Right".parse::<Corner>().unwrap(),
            Corner::BottomRight
        );
        assert!("middle".parse::<Corner>().is_err());
    }

    #[test]
    fn the_darkest_corner_is_chosen_for_the_block() {
        let grid = Grid::axis_aligned([6, 5, 2], [1.0; 3], [0.0; 3]);
        let mut image = Volume::new(grid, ndarray::Array3::from_elem((2, 5, 6), 100.0f32)).unwrap();
        image.data[[0, 4, 5]] = 0.0;
        image.data[[1, 3, 4]] = 0.0;

        let block = ScaleBlock::darkest_corner(&image, 2);

        assert_eq!(
            block,
            ScaleBlock {
                corner: Corner::BottomRight,
                size: 2
            }
        );
        assert_eq!(block.origin(5, 6), (3, 4));
    }

    #[test]
    fn the_slope_maps_the_scale_top_into_16_bits() {
        for max in [0.0, 0.3, 0.5, 0.53, 2.0] {
            let slope = rescale_slope(max).unwrap();
            let top = max.max(SCALE_MAX);
            assert!(
                (top / slope).round() <= STORED_MAX,
                "max {max}: slope {slope}"
            );
            assert!(
                top / slope > STORED_MAX - 2.0,
                "max {max}: slope {slope} wastes range"
            );
        }
    }
}

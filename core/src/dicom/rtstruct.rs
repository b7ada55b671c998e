//! RT Structure Set (RTSTRUCT) writing and reading.
//!
//! The writer ([`write`]) traces each mask on voxel edges
//! ([`crate::contour`]) and stores one CLOSED_PLANAR contour per loop, on
//! the frame of reference of the image series, each contour referencing the
//! image of its slice (PS3.3 C.8.8.6, ROI Contour module). Filling those
//! contours at voxel centres with XOR gives back the mask exactly.
//!
//! The reader ([`read`], [`RtStruct::mask`]) assigns each contour to the
//! slice whose plane it lies in, along the slice normal, within
//! [`ReadOptions::plane_tolerance_fraction`] of the slice spacing; a
//! contour off every plane is refused. Contours of one slice are combined
//! by XOR, so holes drawn as separate contours come out as holes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dicom_core::VR;
use dicom_dictionary_std::{tags, uids};
use dicom_object::InMemDicomObject;

use super::attr;
use super::reference::ImageReference;
use super::uid::new_uid;
use super::write::{now_date_time, publish_file, put_ds, put_is, put_seq, put_str, save};
use crate::contour::{mask_to_polygons, polygons_to_mask, SlicePolygons};
use crate::{Error, Grid, Result, Volume};

/// SOP Class UID of RT Structure Set Storage.
pub const RT_STRUCTURE_SET_STORAGE: &str = uids::RT_STRUCTURE_SET_STORAGE;

/// Longest ROI name written: the limit of common planning systems, stricter
/// than the 64 characters of LO.
pub const ROI_NAME_MAX_CHARS: usize = 16;

/// Default fraction of the slice spacing within which a contour must lie
/// in a slice's plane, measured along the slice normal.
pub const PLANE_TOLERANCE_FRACTION: f64 = 0.02;

/// One structure to write: a mask on the image grid and how to label it.
#[derive(Debug, Clone)]
pub struct StructureMask {
    /// ROIName (3006,0026), at most [`ROI_NAME_MAX_CHARS`] characters.
    pub name: String,
    /// RTROIInterpretedType (3006,00A4), a defined term such as `ORGAN`,
    /// `CTV`, `PTV`, `AVOIDANCE` or `CONTROL`.
    pub interpreted_type: String,
    /// ROIDisplayColor (3006,002A), RGB.
    pub colour: [u8; 3],
    /// Non-zero inside; its grid must be the image series' grid.
    pub mask: Volume<u8>,
    /// ROIDescription (3006,0028); empty for none.
    pub description: String,
}

/// Options of [`write`].
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// StructureSetLabel (3006,0002).
    pub label: String,
    /// SeriesDescription (0008,103E).
    pub series_description: String,
    /// SeriesNumber (0020,0011).
    pub series_number: i64,
    /// OperatorsName (0008,1070); empty writes the attribute without value.
    pub operators_name: String,
    /// Replace an existing file.
    pub overwrite: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            label: "halo".to_string(),
            series_description: "halo ensemble contours".to_string(),
            series_number: 9001,
            operators_name: String::new(),
            overwrite: false,
        }
    }
}

/// The band of voxels where `uncertainty >= threshold`, as a structure
/// named `U>=<t> <label>` (cut to 16 characters), type CONTROL, magenta, so
/// that no one mistakes it for anatomy.
///
/// # Errors
///
/// [`Error::InvalidInput`] when `threshold` is not finite and positive.
pub fn band_structure(
    uncertainty: &Volume<f32>,
    threshold: f32,
    label: &str,
) -> Result<StructureMask> {
    if !threshold.is_finite() || threshold <= 0.0 {
        return Err(Error::InvalidInput(format!(
            "uncertainty band threshold {threshold} is not positive"
        )));
    }

    let mut name = format!("U>={threshold} {label}");
    name.truncate(
        name.char_indices()
            .nth(ROI_NAME_MAX_CHARS)
            .map_or(name.len(), |(i, _)| i),
    );
    Ok(StructureMask {
        name: name.trim_end().to_string(),
        interpreted_type: "CONTROL".to_string(),
        colour: [255, 0, 255],
        mask: uncertainty.map(|&u| u8::from(u >= threshold)),
        description: format!(
            "halo uncertainty band, not anatomy: ensemble standard deviation >= {threshold} \
             for {label}"
        ),
    })
}

/// Checks a code string value (PS3.5 6.2: upper-case letters, digits,
/// space and underscore, at most 16 characters).
fn check_cs(value: &str, what: &str) -> Result<()> {
    let ok = !value.is_empty()
        && value.len() <= 16
        && value
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' ' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "{what} {value:?} is not a code string (upper-case letters, digits, space, \
             underscore; at most 16 characters)"
        )))
    }
}

fn check_structures(reference: &ImageReference, structures: &[StructureMask]) -> Result<()> {
    if reference.images.len() != reference.grid.dims[2] {
        return Err(Error::InvalidInput(format!(
            "image reference has {} images for {} slices",
            reference.images.len(),
            reference.grid.dims[2]
        )));
    }
    let mut names = std::collections::HashSet::new();
    for s in structures {
        let n = s.name.chars().count();
        if n == 0 || n > ROI_NAME_MAX_CHARS {
            return Err(Error::InvalidInput(format!(
                "ROI name {:?} has {n} characters; 1 to {ROI_NAME_MAX_CHARS} are allowed",
                s.name
            )));
        }
        if s.name.contains('\\') || s.name.chars().any(char::is_control) {
            return Err(Error::InvalidInput(format!(
                "ROI name {:?} holds a backslash or control character",
                s.name
            )));
        }
        if !names.insert(s.name.as_str()) {
            return Err(Error::InvalidInput(format!(
                "ROI name {:?} is used twice",
                s.name
            )));
        }
        check_cs(
            &s.interpreted_type,
            &format!("RTROIInterpretedType of {:?}", s.name),
        )?;
        if !s.mask.grid.same_as(&reference.grid, 1e-4) {
            return Err(Error::InvalidInput(format!(
                "mask of ROI {:?} is on the grid {} but the image series is on {}",
                s.name, s.mask.grid, reference.grid
            )));
        }
    }
    Ok(())
}

/// Builds the RTSTRUCT object for `structures` on the image series
/// `reference` (not yet saved).
///
/// # Errors
///
/// [`Error::InvalidInput`] when an ROI name is empty, longer than 16
/// characters or repeated, an interpreted type is not a code string, or a
/// mask is not on the reference grid.
pub fn build(
    reference: &ImageReference,
    structures: &[StructureMask],
    options: &WriteOptions,
) -> Result<InMemDicomObject> {
    check_structures(reference, structures)?;
    let (date, time) = now_date_time();
    let sop_instance_uid = new_uid();
    let mut obj = reference.new_derived_object();

    // SOP Common (C.12.1) and RT Series (C.8.8.1).
    put_str(
        &mut obj,
        tags::SOP_CLASS_UID,
        VR::UI,
        RT_STRUCTURE_SET_STORAGE,
    );
    put_str(&mut obj, tags::SOP_INSTANCE_UID, VR::UI, &sop_instance_uid);
    put_str(&mut obj, tags::INSTANCE_CREATION_DATE, VR::DA, &date);
    put_str(&mut obj, tags::INSTANCE_CREATION_TIME, VR::TM, &time);
    put_str(&mut obj, tags::MODALITY, VR::CS, "RTSTRUCT");
    put_str(&mut obj, tags::SERIES_INSTANCE_UID, VR::UI, &new_uid());
    put_is(&mut obj, tags::SERIES_NUMBER, options.series_number);
    put_str(&mut obj, tags::SERIES_DATE, VR::DA, &date);
    put_str(&mut obj, tags::SERIES_TIME, VR::TM, &time);
    put_str(
        &mut obj,
        tags::SERIES_DESCRIPTION,
        VR::LO,
        &options.series_description,
    );
    put_str(
        &mut obj,
        tags::OPERATORS_NAME,
        VR::PN,
        &options.operators_name,
    );
    put_is(&mut obj, tags::INSTANCE_NUMBER, 1);

    // Structure Set module (C.8.8.5).
    put_str(&mut obj, tags::STRUCTURE_SET_LABEL, VR::SH, &options.label);
    put_str(&mut obj, tags::STRUCTURE_SET_DATE, VR::DA, &date);
    put_str(&mut obj, tags::STRUCTURE_SET_TIME, VR::TM, &time);
    put_seq(
        &mut obj,
        tags::REFERENCED_FRAME_OF_REFERENCE_SEQUENCE,
        vec![referenced_frame(reference)],
    );

    let mut set_rois = Vec::new();
    let mut roi_contours = Vec::new();
    let mut observations = Vec::new();
    for (k, s) in structures.iter().enumerate() {
        let number = k as i64 + 1;
        set_rois.push(structure_set_roi(reference, s, number));
        roi_contours.push(roi_contour(reference, s, number)?);
        observations.push(observation(s, number));
    }
    put_seq(&mut obj, tags::STRUCTURE_SET_ROI_SEQUENCE, set_rois);
    put_seq(&mut obj, tags::ROI_CONTOUR_SEQUENCE, roi_contours);
    put_seq(&mut obj, tags::RTROI_OBSERVATIONS_SEQUENCE, observations);
    Ok(obj)
}

/// Writes an RTSTRUCT file for `structures` on the image series
/// `reference`, through a temporary file renamed into place.
///
/// # Errors
///
/// As [`build`]; [`Error::InvalidInput`] when `path` exists and
/// `options.overwrite` is false; [`Error::Dicom`] or [`Error::Io`] when the
/// file cannot be written.
pub fn write(
    path: &Path,
    reference: &ImageReference,
    structures: &[StructureMask],
    options: &WriteOptions,
) -> Result<()> {
    let obj = build(reference, structures, options)?;
    publish_file(path, options.overwrite, |staged| save(obj, staged))
}

fn image_item(reference: &ImageReference, z: usize) -> InMemDicomObject {
    let mut item = InMemDicomObject::new_empty();
    let image = &reference.images[z];
    put_str(
        &mut item,
        tags::REFERENCED_SOP_CLASS_UID,
        VR::UI,
        &image.sop_class_uid,
    );
    put_str(
        &mut item,
        tags::REFERENCED_SOP_INSTANCE_UID,
        VR::UI,
        &image.sop_instance_uid,
    );
    item
}

/// The frame of reference with its study, series and every image
/// (RT Referenced Study and Series sequences, C.8.8.5).
fn referenced_frame(reference: &ImageReference) -> InMemDicomObject {
    let images = (0..reference.images.len())
        .map(|z| image_item(reference, z))
        .collect();
    let mut series = InMemDicomObject::new_empty();
    put_str(
        &mut series,
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        &reference.series_instance_uid,
    );
    put_seq(&mut series, tags::CONTOUR_IMAGE_SEQUENCE, images);

    // The study is referenced with the retired Detached Study Management
    // SOP class, the value PS3.3 C.8.8.5 examples and planning systems use.
    let mut study = InMemDicomObject::new_empty();
    put_str(
        &mut study,
        tags::REFERENCED_SOP_CLASS_UID,
        VR::UI,
        "1.2.840.10008.3.1.2.3.1",
    );
    put_str(
        &mut study,
        tags::REFERENCED_SOP_INSTANCE_UID,
        VR::UI,
        &reference.study_instance_uid,
    );
    put_seq(
        &mut study,
        tags::RT_REFERENCED_SERIES_SEQUENCE,
        vec![series],
    );

    let mut frame = InMemDicomObject::new_empty();
    put_str(
        &mut frame,
        tags::FRAME_OF_REFERENCE_UID,
        VR::UI,
        &reference.frame_of_reference_uid,
    );
    put_seq(&mut frame, tags::RT_REFERENCED_STUDY_SEQUENCE, vec![study]);
    frame
}

fn structure_set_roi(
    reference: &ImageReference,
    s: &StructureMask,
    number: i64,
) -> InMemDicomObject {
    let mut item = InMemDicomObject::new_empty();
    put_is(&mut item, tags::ROI_NUMBER, number);
    put_str(
        &mut item,
        tags::REFERENCED_FRAME_OF_REFERENCE_UID,
        VR::UI,
        &reference.frame_of_reference_uid,
    );
    put_str(&mut item, tags::ROI_NAME, VR::LO, &s.name);
    if !s.description.is_empty() {
        put_str(&mut item, tags::ROI_DESCRIPTION, VR::ST, &s.description);
    }
    put_str(
        &mut item,
        tags::ROI_GENERATION_ALGORITHM,
        VR::CS,
        "AUTOMATIC",
    );
    put_str(
        &mut item,
        tags::ROI_GENERATION_DESCRIPTION,
        VR::LO,
        "halo ensemble segmentation",
    );
    item
}

fn roi_contour(
    reference: &ImageReference,
    s: &StructureMask,
    number: i64,
) -> Result<InMemDicomObject> {
    let mut item = InMemDicomObject::new_empty();
    let colour = s.colour.map(|c| c.to_string()).join("\\");
    put_str(&mut item, tags::ROI_DISPLAY_COLOR, VR::IS, &colour);

    let slices = mask_to_polygons(&s.mask);
    if slices.is_empty() {
        tracing::warn!(roi = %s.name, "mask is empty: the ROI is written without contours");
    }
    let mut contours = Vec::new();
    for SlicePolygons { slice, polygons } in &slices {
        for poly in polygons {
            let mut c = InMemDicomObject::new_empty();
            put_seq(
                &mut c,
                tags::CONTOUR_IMAGE_SEQUENCE,
                vec![image_item(reference, *slice)],
            );
            put_str(
                &mut c,
                tags::CONTOUR_GEOMETRIC_TYPE,
                VR::CS,
                "CLOSED_PLANAR",
            );
            put_is(&mut c, tags::NUMBER_OF_CONTOUR_POINTS, poly.len() as i64);
            put_is(&mut c, tags::CONTOUR_NUMBER, contours.len() as i64 + 1);
            let flat: Vec<f64> = poly.iter().flatten().copied().collect();
            put_ds(&mut c, tags::CONTOUR_DATA, &flat)?;
            contours.push(c);
        }
    }
    if !contours.is_empty() {
        put_seq(&mut item, tags::CONTOUR_SEQUENCE, contours);
    }
    put_is(&mut item, tags::REFERENCED_ROI_NUMBER, number);
    Ok(item)
}

fn observation(s: &StructureMask, number: i64) -> InMemDicomObject {
    let mut item = InMemDicomObject::new_empty();
    put_is(&mut item, tags::OBSERVATION_NUMBER, number);
    put_is(&mut item, tags::REFERENCED_ROI_NUMBER, number);
    put_str(
        &mut item,
        tags::RTROI_INTERPRETED_TYPE,
        VR::CS,
        &s.interpreted_type,
    );
    put_str(&mut item, tags::ROI_INTERPRETER, VR::PN, "");
    item
}

// ---------------------------------------------------------------- reading

/// One contour as stored: its geometric type and points (LPS, mm).
#[derive(Debug, Clone, PartialEq)]
pub struct Contour {
    /// ContourGeometricType (3006,0042).
    pub geometric_type: String,
    /// ContourData (3006,0050) as points, LPS mm.
    pub points: Vec<[f64; 3]>,
}

/// One ROI of a structure set, with its contours.
#[derive(Debug, Clone, PartialEq)]
pub struct Roi {
    /// ROINumber (3006,0022).
    pub number: i64,
    /// ROIName (3006,0026).
    pub name: String,
    /// ReferencedFrameOfReferenceUID (3006,0024).
    pub frame_of_reference_uid: String,
    /// RTROIInterpretedType (3006,00A4), empty when absent.
    pub interpreted_type: String,
    /// ROIDisplayColor (3006,002A), when present.
    pub colour: Option<[u8; 3]>,
    /// The contours of its ROI Contour item, in file order.
    pub contours: Vec<Contour>,
}

/// A structure set read from a file.
#[derive(Debug, Clone)]
pub struct RtStruct {
    /// The file.
    pub path: PathBuf,
    /// The ROIs, in StructureSetROISequence order.
    pub rois: Vec<Roi>,
}

/// How contours are placed on a grid.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// A contour belongs to a slice when each of its points lies within
    /// this fraction of the slice spacing of the slice's plane, along the
    /// slice normal; default [`PLANE_TOLERANCE_FRACTION`].
    pub plane_tolerance_fraction: f64,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            plane_tolerance_fraction: PLANE_TOLERANCE_FRACTION,
        }
    }
}

/// How an ROI is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoiSelector {
    /// ROIName (3006,0026): exact, else unique case-insensitive match.
    Name(String),
    /// ROINumber (3006,0022).
    Number(i64),
}

/// Reads an RTSTRUCT file: its ROIs and their contours.
///
/// # Errors
///
/// [`Error::Dicom`] naming the file and tag when it cannot be read, is not
/// an RTSTRUCT, or an ROI item lacks its number or has malformed contour
/// data.
pub fn read(path: &Path) -> Result<RtStruct> {
    let obj = dicom_object::open_file(path)
        .map_err(|e| Error::dicom(path, format!("cannot read: {e}")))?;
    let modality = attr::string(&obj, tags::MODALITY).unwrap_or_default();
    let class = attr::string(&obj, tags::SOP_CLASS_UID).unwrap_or_default();
    if modality != "RTSTRUCT" && class != RT_STRUCTURE_SET_STORAGE {
        return Err(Error::dicom(
            path,
            format!("is not an RTSTRUCT: Modality (0008,0060) {modality:?}, SOPClassUID {class:?}"),
        ));
    }

    let mut rois = Vec::new();
    for item in items(&obj, tags::STRUCTURE_SET_ROI_SEQUENCE) {
        let number = attr::int(path, item, tags::ROI_NUMBER, "ROINumber")?.ok_or_else(|| {
            Error::dicom(
                path,
                "a StructureSetROISequence item has no ROINumber (3006,0022)",
            )
        })?;
        rois.push(Roi {
            number,
            name: attr::string(item, tags::ROI_NAME).unwrap_or_default(),
            frame_of_reference_uid: attr::string(item, tags::REFERENCED_FRAME_OF_REFERENCE_UID)
                .unwrap_or_default(),
            interpreted_type: String::new(),
            colour: None,
            contours: Vec::new(),
        });
    }
    let index: BTreeMap<i64, usize> = rois
        .iter()
        .enumerate()
        .map(|(i, r)| (r.number, i))
        .collect();

    for item in items(&obj, tags::ROI_CONTOUR_SEQUENCE) {
        let Some(&i) = attr::int(
            path,
            item,
            tags::REFERENCED_ROI_NUMBER,
            "ReferencedROINumber",
        )?
        .and_then(|n| index.get(&n)) else {
            tracing::warn!(path = %path.display(), "ROIContourSequence item refers to no ROI; ignored");
            continue;
        };
        rois[i].colour = attr::floats_n(path, item, tags::ROI_DISPLAY_COLOR, "ROIDisplayColor", 3)?
            .map(|c| [c[0] as u8, c[1] as u8, c[2] as u8]);
        for c in items(item, tags::CONTOUR_SEQUENCE) {
            let contour = read_contour(path, &rois[i], c)?;
            rois[i].contours.push(contour);
        }
    }
    for item in items(&obj, tags::RTROI_OBSERVATIONS_SEQUENCE) {
        let n = attr::int(
            path,
            item,
            tags::REFERENCED_ROI_NUMBER,
            "ReferencedROINumber",
        )?;
        if let Some(&i) = n.and_then(|n| index.get(&n)) {
            rois[i].interpreted_type =
                attr::string(item, tags::RTROI_INTERPRETED_TYPE).unwrap_or_default();
        }
    }
    Ok(RtStruct {
        path: path.to_path_buf(),
        rois,
    })
}

fn items(obj: &InMemDicomObject, tag: dicom_core::Tag) -> &[InMemDicomObject] {
    obj.get(tag).and_then(|e| e.items()).unwrap_or(&[])
}

fn read_contour(path: &Path, roi: &Roi, item: &InMemDicomObject) -> Result<Contour> {
    let geometric_type = attr::string(item, tags::CONTOUR_GEOMETRIC_TYPE).unwrap_or_default();
    let data = attr::floats(path, item, tags::CONTOUR_DATA, "ContourData")?.unwrap_or_default();
    if data.len() % 3 != 0 {
        return Err(Error::dicom(
            path,
            format!(
                "ROI {:?} (number {}): ContourData (3006,0050) has {} values, not a multiple of 3",
                roi.name,
                roi.number,
                data.len()
            ),
        ));
    }
    let points = data.chunks_exact(3).map(|p| [p[0], p[1], p[2]]).collect();
    Ok(Contour {
        geometric_type,
        points,
    })
}

impl RtStruct {
    /// Finds one ROI.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] naming the file and listing the ROIs when
    /// none or several match.
    pub fn find(&self, selector: &RoiSelector) -> Result<&Roi> {
        let found: Vec<&Roi> = match selector {
            RoiSelector::Number(n) => self.rois.iter().filter(|r| r.number == *n).collect(),
            RoiSelector::Name(name) => {
                let exact: Vec<&Roi> = self.rois.iter().filter(|r| &r.name == name).collect();
                if exact.is_empty() {
                    let lower = name.to_lowercase();
                    self.rois
                        .iter()
                        .filter(|r| r.name.to_lowercase() == lower)
                        .collect()
                } else {
                    exact
                }
            }
        };
        match found.as_slice() {
            [one] => Ok(one),
            _ => Err(Error::InvalidInput(format!(
                "{}: {} ROIs match {selector:?}; ROIs: {}",
                self.path.display(),
                found.len(),
                self.rois
                    .iter()
                    .map(|r| format!("#{} {:?}", r.number, r.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// Finds an ROI from text: an exact name, else an ROI number, else a
    /// unique case-insensitive name.
    ///
    /// # Errors
    ///
    /// As [`RtStruct::find`].
    pub fn select(&self, text: &str) -> Result<&Roi> {
        if let Ok(r) = self.find(&RoiSelector::Name(text.to_string())) {
            return Ok(r);
        }
        match text.trim().parse::<i64>() {
            Ok(n) => self.find(&RoiSelector::Number(n)),
            Err(_) => self.find(&RoiSelector::Name(text.to_string())),
        }
    }

    /// Rasterises one ROI onto `grid`: each contour goes to the slice whose
    /// plane holds it and the contours of a slice are combined by XOR,
    /// filling at voxel centres.
    ///
    /// `frame_of_reference_uid` is the image's; when given it must match the
    /// ROI's. An ROI without closed contours gives an empty mask and a
    /// warning; OPEN_PLANAR and POINT contours are ignored with a warning.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] naming the file, ROI, slice and distance when
    /// a contour lies off every slice plane or outside the grid's slices,
    /// and when the frames of reference differ.
    pub fn mask(
        &self,
        roi: &Roi,
        grid: &Grid,
        frame_of_reference_uid: Option<&str>,
        options: &ReadOptions,
    ) -> Result<Volume<u8>> {
        let what = format!(
            "{}: ROI {:?} (number {})",
            self.path.display(),
            roi.name,
            roi.number
        );
        if let Some(image_for) = frame_of_reference_uid {
            if !roi.frame_of_reference_uid.is_empty() && roi.frame_of_reference_uid != image_for {
                return Err(Error::InvalidInput(format!(
                    "{what} is on frame of reference {} but the image is on {image_for}",
                    roi.frame_of_reference_uid
                )));
            }
        }

        let slices = self.assign_slices(roi, grid, options, &what)?;
        if slices.is_empty() {
            tracing::warn!(roi = %roi.name, "ROI has no closed contours: its mask is empty");
        }
        polygons_to_mask(grid, &slices)
    }

    fn assign_slices(
        &self,
        roi: &Roi,
        grid: &Grid,
        options: &ReadOptions,
        what: &str,
    ) -> Result<Vec<SlicePolygons>> {
        let tolerance = options.plane_tolerance_fraction * grid.spacing[2];
        let mut out = Vec::new();
        for (k, c) in roi.contours.iter().enumerate() {
            if !c.geometric_type.starts_with("CLOSED_PLANAR") {
                tracing::warn!(roi = %roi.name, kind = %c.geometric_type, "contour is not closed planar; ignored");
                continue;
            }
            if c.points.len() < 3 {
                continue;
            }
            let z: Vec<f64> = c.points.iter().map(|&p| grid.lps_to_index(p)[2]).collect();
            let mean = z.iter().sum::<f64>() / z.len() as f64;
            let slice = mean.round();
            let off = z.iter().map(|v| (v - slice).abs()).fold(0.0, f64::max) * grid.spacing[2];
            if off > tolerance {
                return Err(Error::InvalidInput(format!(
                    "{what}: contour {} lies off the image planes: a point is {off:.4} mm from \
                     the plane of slice {slice} along the normal (tolerance {tolerance:.4} mm)",
                    k + 1
                )));
            }
            if slice < 0.0 || slice >= grid.dims[2] as f64 {
                return Err(Error::InvalidInput(format!(
                    "{what}: contour {} lies on slice {slice}, outside the image's {} slices",
                    k + 1,
                    grid.dims[2]
                )));
            }
            out.push(SlicePolygons {
                slice: slice as usize,
                polygons: vec![c.points.clone()],
            });
        }
        Ok(out)
    }
}

//! The image series that derived objects (RTSTRUCT, PT) are placed on.

use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{InMemDicomObject, OpenFileOptions};

use super::attr;
use super::scan::SeriesEntry;
use super::series::{series_grid, SplitBy};
use super::write::{put_str, PATIENT_STUDY_ATTRIBUTES};
use crate::{Error, Grid, Result};

/// One image of the referenced series.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferencedImage {
    /// SOPClassUID (0008,0016).
    pub sop_class_uid: String,
    /// SOPInstanceUID (0008,0018).
    pub sop_instance_uid: String,
}

/// What an RTSTRUCT or PT series needs to know of the image series it
/// derives from: its grid (LPS, mm), frame of reference, the instance of
/// each slice, and the patient and study attributes to copy.
#[derive(Debug, Clone)]
pub struct ImageReference {
    /// The grid of the series (slices ordered along the normal).
    pub grid: Grid,
    /// FrameOfReferenceUID (0020,0052).
    pub frame_of_reference_uid: String,
    /// StudyInstanceUID (0020,000D).
    pub study_instance_uid: String,
    /// SeriesInstanceUID (0020,000E).
    pub series_instance_uid: String,
    /// The image of each slice, `images[z]` for slice `z` of `grid`.
    pub images: Vec<ReferencedImage>,
    /// Patient and General Study attributes of the first image, to be
    /// copied into derived objects ([`PATIENT_STUDY_ATTRIBUTES`]).
    pub patient_study: InMemDicomObject,
    /// BodyPartExamined (0018,0015) of the first image, when present.
    pub body_part_examined: Option<String>,
}

impl ImageReference {
    /// Reads the reference of a scanned series (headers only).
    ///
    /// # Errors
    ///
    /// What [`series_grid`] refuses; [`Error::Series`] when the series has
    /// no FrameOfReferenceUID, StudyInstanceUID or SOPInstanceUID;
    /// [`Error::Dicom`] when the first file cannot be read again.
    pub fn from_series(series: &SeriesEntry, split: Option<&SplitBy>) -> Result<Self> {
        let (grid, ordered) = series_grid(series, split)?;
        let fail = |m: &str| Error::Series {
            series: series.label(),
            message: m.to_string(),
        };

        let frame_of_reference_uid = ordered[0]
            .frame_of_reference_uid
            .clone()
            .ok_or_else(|| fail("has no FrameOfReferenceUID (0020,0052)"))?;
        if ordered
            .iter()
            .any(|i| i.frame_of_reference_uid.as_deref() != Some(&frame_of_reference_uid))
        {
            return Err(fail(
                "FrameOfReferenceUID (0020,0052) varies between images",
            ));
        }
        let images = ordered
            .iter()
            .map(|i| {
                if i.sop_instance_uid.is_empty() || i.sop_class_uid.is_empty() {
                    Err(Error::dicom(
                        &i.path,
                        "has no SOPInstanceUID (0008,0018) or SOPClassUID (0008,0016)",
                    ))
                } else {
                    Ok(ReferencedImage {
                        sop_class_uid: i.sop_class_uid.clone(),
                        sop_instance_uid: i.sop_instance_uid.clone(),
                    })
                }
            })
            .collect::<Result<Vec<_>>>()?;

        let path = &ordered[0].path;
        let first = OpenFileOptions::new()
            .read_until(tags::PIXEL_DATA)
            .open_file(path)
            .map_err(|e| Error::dicom(path, format!("cannot read: {e}")))?;
        let study_instance_uid = attr::string(&first, tags::STUDY_INSTANCE_UID)
            .ok_or_else(|| Error::dicom(path, "has no StudyInstanceUID (0020,000D)"))?;
        let wanted = PATIENT_STUDY_ATTRIBUTES.iter().map(|a| a.0);
        let patient_study = copy_attributes(&first, wanted.chain([tags::SPECIFIC_CHARACTER_SET]));

        Ok(ImageReference {
            body_part_examined: attr::string(&first, tags::BODY_PART_EXAMINED),
            grid,
            frame_of_reference_uid,
            study_instance_uid,
            series_instance_uid: series.series_instance_uid.clone(),
            images,
            patient_study,
        })
    }

    /// A reference for tests and synthetic data: fresh UIDs, one image per
    /// slice of `grid`, MR Image Storage, no patient attributes.
    pub fn synthetic(grid: Grid) -> Self {
        let images = (0..grid.dims[2])
            .map(|_| ReferencedImage {
                sop_class_uid: dicom_dictionary_std::uids::MR_IMAGE_STORAGE.to_string(),
                sop_instance_uid: super::uid::new_uid(),
            })
            .collect();
        ImageReference {
            grid,
            frame_of_reference_uid: super::uid::new_uid(),
            study_instance_uid: super::uid::new_uid(),
            series_instance_uid: super::uid::new_uid(),
            images,
            patient_study: InMemDicomObject::new_empty(),
            body_part_examined: None,
        }
    }
}

impl ImageReference {
    /// A new object holding what every object derived from this series
    /// shares: the Patient and General Study modules copied from the images
    /// (PS3.3 C.7.1.1, C.7.2.1; type 2 attributes the images lack are
    /// written empty), the Frame of Reference module (C.7.4.1) and the
    /// General Equipment module (C.7.5.1) naming halo.
    pub fn new_derived_object(&self) -> InMemDicomObject {
        let mut obj = InMemDicomObject::new_empty();
        for e in self.patient_study.iter() {
            obj.put(e.clone());
        }
        for &(tag, vr, type2) in PATIENT_STUDY_ATTRIBUTES {
            if type2 && obj.get(tag).is_none() {
                put_str(&mut obj, tag, vr, "");
            }
        }
        put_str(
            &mut obj,
            tags::STUDY_INSTANCE_UID,
            VR::UI,
            &self.study_instance_uid,
        );

        put_str(
            &mut obj,
            tags::FRAME_OF_REFERENCE_UID,
            VR::UI,
            &self.frame_of_reference_uid,
        );
        put_str(&mut obj, tags::POSITION_REFERENCE_INDICATOR, VR::LO, "");
        put_str(&mut obj, tags::MANUFACTURER, VR::LO, "halo");
        put_str(&mut obj, tags::MANUFACTURER_MODEL_NAME, VR::LO, "halo");
        put_str(&mut obj, tags::SOFTWARE_VERSIONS, VR::LO, crate::VERSION);
        obj
    }
}

/// The elements of `from` with the given tags, where present.
fn copy_attributes(from: &InMemDicomObject, which: impl Iterator<Item = Tag>) -> InMemDicomObject {
    let mut out = InMemDicomObject::new_empty();
    for tag in which {
        if let Some(e) = from.get(tag) {
            out.put(e.clone());
        }
    }
    out
}

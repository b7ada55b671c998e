//! Building and saving the DICOM objects halo writes.
//!
//! Values follow PS3.5 6.2: a decimal string (DS) holds at most 16
//! characters, so numbers are formatted with [`format_ds`]; files are
//! Explicit VR Little Endian with a file meta group naming halo
//! ([`super::uid::IMPLEMENTATION_CLASS_UID`]); outputs appear atomically
//! ([`publish_file`], [`publish_dir`]).

use std::path::{Path, PathBuf};

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::InMemDicomObject;

use super::uid;
use crate::{Error, Result};

/// Largest number of characters in one DS value (PS3.5 table 6.2-1).
pub const DS_MAX_CHARS: usize = 16;

/// Formats a finite number as a DICOM decimal string of at most 16
/// characters, with as many significant digits as fit.
///
/// # Errors
///
/// [`Error::InvalidInput`] when `v` is not finite.
pub fn format_ds(v: f64) -> Result<String> {
    if !v.is_finite() {
        return Err(Error::InvalidInput(format!(
            "value {v} cannot be written as a decimal string"
        )));
    }

    // The fixed and the scientific form with the most digits that fit; the
    // one closer to `v` wins (fixed notation on a tie, as it reads better).
    let fixed = (0..=15usize)
        .rev()
        .map(|decimals| trim_zeros(format!("{v:.decimals$}")))
        .find(|s| s.len() <= DS_MAX_CHARS);
    let scientific = (0..=15usize)
        .rev()
        .map(|digits| format!("{v:.digits$e}"))
        .find(|s| s.len() <= DS_MAX_CHARS);
    let error = |s: &String| s.parse::<f64>().map_or(f64::INFINITY, |b| (b - v).abs());
    let best = match (fixed, scientific) {
        (Some(f), Some(e)) => Some(if error(&f) <= error(&e) { f } else { e }),
        (f, e) => f.or(e),
    };
    match best {
        Some(s) if s == "-0" => Ok("0".to_string()),
        Some(s) => Ok(s),
        None => Err(Error::InvalidInput(format!(
            "value {v} does not fit a decimal string"
        ))),
    }
}

fn trim_zeros(s: String) -> String {
    if !s.contains('.') {
        return s;
    }
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Formats several numbers as one multi-valued DS (values joined by `\`).
///
/// # Errors
///
/// As [`format_ds`].
pub fn format_ds_multi(values: &[f64]) -> Result<String> {
    let parts: Vec<String> = values
        .iter()
        .map(|&v| format_ds(v))
        .collect::<Result<_>>()?;
    Ok(parts.join("\\"))
}

/// Puts a string attribute (any string VR, empty for a type 2 attribute
/// without a value).
pub fn put_str(obj: &mut InMemDicomObject, tag: Tag, vr: VR, value: &str) {
    let v = if value.is_empty() {
        PrimitiveValue::Empty
    } else {
        PrimitiveValue::from(value)
    };
    obj.put(DataElement::new(tag, vr, v));
}

/// Puts a DS attribute from numbers.
///
/// # Errors
///
/// As [`format_ds`].
pub fn put_ds(obj: &mut InMemDicomObject, tag: Tag, values: &[f64]) -> Result<()> {
    put_str(obj, tag, VR::DS, &format_ds_multi(values)?);
    Ok(())
}

/// Puts an IS attribute.
pub fn put_is(obj: &mut InMemDicomObject, tag: Tag, value: i64) {
    put_str(obj, tag, VR::IS, &value.to_string());
}

/// Puts a US attribute.
pub fn put_us(obj: &mut InMemDicomObject, tag: Tag, value: u16) {
    obj.put(DataElement::new(tag, VR::US, PrimitiveValue::from(value)));
}

/// Puts a sequence attribute (zero items for an empty type 2 sequence).
pub fn put_seq(obj: &mut InMemDicomObject, tag: Tag, items: Vec<InMemDicomObject>) {
    obj.put(DataElement::new(tag, VR::SQ, DataSetSequence::from(items)));
}

/// Date (`YYYYMMDD`) and time (`HHMMSS`) of now, in UTC: halo does not
/// guess the time zone of the site, and (0008,0201) is not written.
pub fn now_date_time() -> (String, String) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;

    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);

    (
        format!("{y:04}{m:02}{d:02}"),
        format!("{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60),
    )
}

/// Writes one object as a DICOM file (Explicit VR Little Endian) with a
/// file meta group built from its SOPClassUID and SOPInstanceUID.
///
/// # Errors
///
/// [`Error::Dicom`] naming the file when it cannot be encoded or written.
pub fn save(obj: InMemDicomObject, path: &Path) -> Result<()> {
    let meta = FileMetaTableBuilder::new()
        .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
        .implementation_class_uid(uid::IMPLEMENTATION_CLASS_UID)
        .implementation_version_name(uid::IMPLEMENTATION_VERSION_NAME);
    let file = obj
        .with_meta(meta)
        .map_err(|e| Error::dicom(path, format!("cannot build the file meta group: {e}")))?;
    file.write_to_file(path)
        .map_err(|e| Error::dicom(path, format!("cannot write: {e}")))
}

/// A sibling of `target` to build an output in, unique to this process.
fn staging_path(target: &Path) -> Result<PathBuf> {
    let name = target.file_name().ok_or_else(|| {
        Error::InvalidInput(format!("output path {} has no file name", target.display()))
    })?;
    let mut staged = std::ffi::OsString::from(".");
    staged.push(name);
    staged.push(format!(".partial-{}", std::process::id()));
    Ok(target.with_file_name(staged))
}

/// Refuses an existing `target` unless `overwrite`; then removes it.
fn clear_target(target: &Path, overwrite: bool) -> Result<()> {
    if !target.exists() {
        return Ok(());
    }
    if !overwrite {
        return Err(Error::InvalidInput(format!(
            "output {} exists; refusing to replace it",
            target.display()
        )));
    }
    let removed = if target.is_dir() {
        std::fs::remove_dir_all(target)
    } else {
        std::fs::remove_file(target)
    };
    removed.map_err(|e| Error::io(target, e))
}

/// Writes a file through `write` into a temporary sibling and renames it
/// to `target`, so that a failure leaves no partial output.
///
/// # Errors
///
/// What `write` returns; [`Error::InvalidInput`] when `target` exists and
/// `overwrite` is false; [`Error::Io`] when the rename fails.
pub fn publish_file(
    target: &Path,
    overwrite: bool,
    write: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    if target.exists() && !overwrite {
        return clear_target(target, false);
    }
    let staged = staging_path(target)?;
    if let Err(e) = write(&staged) {
        let _ = std::fs::remove_file(&staged);
        return Err(e);
    }

    clear_target(target, overwrite)?;
    std::fs::rename(&staged, target).map_err(|e| Error::io(target, e))
}

/// Builds a folder through `write` in a temporary sibling and renames it to
/// `target`, so that a failure leaves no partial output.
///
/// # Errors
///
/// As [`publish_file`], and [`Error::Io`] when the folder cannot be made.
pub fn publish_dir(
    target: &Path,
    overwrite: bool,
    write: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    if target.exists() && !overwrite {
        return clear_target(target, false);
    }
    let staged = staging_path(target)?;
    if staged.exists() {
        std::fs::remove_dir_all(&staged).map_err(|e| Error::io(&staged, e))?;
    }
    std::fs::create_dir_all(&staged).map_err(|e| Error::io(&staged, e))?;
    if let Err(e) = write(&staged) {
        let _ = std::fs::remove_dir_all(&staged);
        return Err(e);
    }

    clear_target(target, overwrite)?;
    std::fs::rename(&staged, target).map_err(|e| Error::io(target, e))
}

/// Attributes of the Patient and General Study modules (PS3.3 C.7.1.1,
/// C.7.2.1) copied from the image series into derived objects, with their
/// VR and whether an empty value must be written when the source has none
/// (type 2).
pub const PATIENT_STUDY_ATTRIBUTES: &[(Tag, VR, bool)] = &[
    (tags::PATIENT_NAME, VR::PN, true),
    (tags::PATIENT_ID, VR::LO, true),
    (tags::ISSUER_OF_PATIENT_ID, VR::LO, false),
    (tags::PATIENT_BIRTH_DATE, VR::DA, true),
    (tags::PATIENT_SEX, VR::CS, true),
    (tags::PATIENT_AGE, VR::AS, false),
    (tags::PATIENT_SIZE, VR::DS, false),
    (tags::PATIENT_WEIGHT, VR::DS, false),
    (tags::PATIENT_IDENTITY_REMOVED, VR::CS, false),
    (tags::DEIDENTIFICATION_METHOD, VR::LO, false),
    (tags::STUDY_INSTANCE_UID, VR::UI, true),
    (tags::STUDY_DATE, VR::DA, true),
    (tags::STUDY_TIME, VR::TM, true),
    (tags::REFERRING_PHYSICIAN_NAME, VR::PN, true),
    (tags::STUDY_ID, VR::SH, true),
    (tags::ACCESSION_NUMBER, VR::SH, true),
    (tags::STUDY_DESCRIPTION, VR::LO, false),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_strings_never_exceed_16_characters() {
        for v in [
            0.0,
            -0.0,
            1.0,
            -123.456_789_012_345_67,
            1.0 / 3.0,
            -1.0 / 3.0,
            1e-20,
            -7.5e-9,
            123_456_789_012_345.0,
            9.87e200,
            -1.23e-200,
        ] {
            let s = format_ds(v).unwrap();
            assert!(s.len() <= DS_MAX_CHARS, "{v} -> {s:?}");
            let back: f64 = s.parse().unwrap();
            let rel = ((back - v) / v.abs().max(1e-300)).abs();
            assert!(rel < 1e-9 || (v == 0.0 && back == 0.0), "{v} -> {s:?}");
        }
    }

    #[test]
    fn decimal_strings_keep_the_precision_that_fits() {
        assert_eq!(
            format_ds(-123.456_789_012_345_67).unwrap(),
            "-123.45678901235"
        );
        assert_eq!(format_ds(0.5).unwrap(), "0.5");
        assert_eq!(format_ds(-0.0).unwrap(), "0");
        assert_eq!(format_ds(42.0).unwrap(), "42");
    }

    #[test]
    fn non_finite_values_are_refused() {
        assert!(format_ds(f64::NAN).is_err());
        assert!(format_ds(f64::INFINITY).is_err());
    }

    #[test]
    fn publish_dir_leaves_nothing_when_the_writer_fails() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("out");

        let r = publish_dir(&target, false, |d| {
            std::fs::write(d.join("a"), b"x").unwrap();
            Err(Error::InvalidInput("boom".into()))
        });

        assert!(r.is_err());
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    }

    #[test]
    fn publish_file_refuses_an_existing_target_without_overwrite() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("f");
        std::fs::write(&target, b"old").unwrap();

        let r = publish_file(&target, false, |p| {
            std::fs::write(p, b"new").map_err(|e| Error::io(p, e))
        });

        assert!(r.unwrap_err().to_string().contains("exists"));
        assert_eq!(std::fs::read(&target).unwrap(), b"old");
    }
}

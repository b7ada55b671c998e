//! Reading attribute values with errors that name the tag.

use std::path::Path;

use dicom_core::Tag;
use dicom_object::InMemDicomObject;

use crate::{Error, Result};

/// Formats a tag as `(gggg,eeee)`.
pub fn tag_str(tag: Tag) -> String {
    format!("({:04X},{:04X})", tag.group(), tag.element())
}

/// A string attribute, trimmed of padding; `None` when absent or empty.
pub fn string(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    let e = obj.element_opt(tag).ok().flatten()?;
    let s = e.to_str().ok()?;
    let s = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    (!s.is_empty()).then(|| s.to_string())
}

/// A multi-valued decimal attribute; `None` when absent or empty.
///
/// # Errors
///
/// [`Error::Dicom`] naming the keyword and tag when a value does not parse
/// as a finite number.
pub fn floats(
    path: &Path,
    obj: &InMemDicomObject,
    tag: Tag,
    keyword: &str,
) -> Result<Option<Vec<f64>>> {
    let Some(e) = obj.element_opt(tag).ok().flatten() else {
        return Ok(None);
    };
    if is_blank(e) {
        return Ok(None);
    }
    let v = e.to_multi_float64().map_err(|err| {
        let raw = e.to_str().map(|s| s.into_owned()).unwrap_or_default();
        Error::dicom(
            path,
            format!(
                "{keyword} {} value {raw:?} is not numeric: {err}",
                tag_str(tag)
            ),
        )
    })?;
    if let Some(bad) = v.iter().find(|x| !x.is_finite()) {
        return Err(Error::dicom(
            path,
            format!("{keyword} {} value {bad} is not finite", tag_str(tag)),
        ));
    }
    Ok(Some(v))
}

/// A decimal attribute that must hold exactly `n` values when present.
///
/// # Errors
///
/// As [`floats`], and when the number of values is not `n`.
pub fn floats_n(
    path: &Path,
    obj: &InMemDicomObject,
    tag: Tag,
    keyword: &str,
    n: usize,
) -> Result<Option<Vec<f64>>> {
    match floats(path, obj, tag, keyword)? {
        Some(v) if v.len() != n => Err(Error::dicom(
            path,
            format!(
                "{keyword} {} has {} values, {n} expected",
                tag_str(tag),
                v.len()
            ),
        )),
        other => Ok(other),
    }
}

/// An integer attribute; `None` when absent or empty.
///
/// # Errors
///
/// [`Error::Dicom`] naming the keyword and tag when it does not parse.
pub fn int(path: &Path, obj: &InMemDicomObject, tag: Tag, keyword: &str) -> Result<Option<i64>> {
    let Some(e) = obj.element_opt(tag).ok().flatten() else {
        return Ok(None);
    };
    if is_blank(e) {
        return Ok(None);
    }
    e.to_int::<i64>().map(Some).map_err(|err| {
        Error::dicom(
            path,
            format!("{keyword} {} is not an integer: {err}", tag_str(tag)),
        )
    })
}

fn is_blank(e: &dicom_object::mem::InMemElement) -> bool {
    e.to_str()
        .map(|s| {
            s.trim_matches(|c: char| c == '\0' || c.is_whitespace())
                .is_empty()
        })
        .unwrap_or(false)
}

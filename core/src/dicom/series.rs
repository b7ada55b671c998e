//! Loading one series into a volume with exact geometry.
//!
//! Slices are ordered by the projection of ImagePositionPatient (0020,0032)
//! on the slice normal (row cosine x column cosine), ascending, and the
//! slice spacing comes from those projections, never from SliceThickness
//! (0018,0050). This is the geometry SimpleITK's `ImageSeriesReader` gives.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::str::FromStr;

use dicom_dictionary_std::tags;
use dicom_pixeldata::PixelDecoder;
use ndarray::Array3;
use rayon::prelude::*;

use super::attr;
use super::scan::{InstanceHeader, ScanResult, SeriesEntry, SPLIT_ATTRIBUTES};
use crate::geometry::{cross, dot, norm};
use crate::{Error, Grid, Result, Volume};

/// Two slice positions closer than this along the normal (mm) are the same.
const SAME_POSITION_MM: f64 = 1e-3;
/// Relative tolerance of the slice spacing before a series is refused.
const SPACING_TOLERANCE: f64 = 0.01;

/// How a series is chosen among those of a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeriesSelector {
    /// The only series of the folder; an error when there are several.
    Only,
    /// By SeriesInstanceUID (0020,000E).
    Uid(String),
    /// By SeriesNumber (0020,0011).
    Number(i64),
    /// By SeriesDescription (0008,103E): exact, else a unique
    /// case-insensitive substring.
    Description(String),
}

impl std::fmt::Display for SeriesSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SeriesSelector::Only => write!(f, "the folder's only series"),
            SeriesSelector::Uid(u) => write!(f, "SeriesInstanceUID {u}"),
            SeriesSelector::Number(n) => write!(f, "SeriesNumber {n}"),
            SeriesSelector::Description(d) => write!(f, "SeriesDescription {d:?}"),
        }
    }
}

impl FromStr for SeriesSelector {
    type Err = Error;

    /// Digits alone are a series number, digits and dots a UID, anything
    /// else a description.
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        if s.is_empty() {
            return Err(Error::InvalidInput("empty series selector".to_string()));
        }
        if s.chars().all(|c| c.is_ascii_digit()) {
            return s
                .parse()
                .map(SeriesSelector::Number)
                .map_err(|_| Error::InvalidInput(format!("series number {s} is too large")));
        }
        if s.contains('.') && s.chars().all(|c| c.is_ascii_digit() || c == '.') {
            return Ok(SeriesSelector::Uid(s.to_string()));
        }
        Ok(SeriesSelector::Description(s.to_string()))
    }
}

/// Chooses the images of one volume among several sharing a series UID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitBy {
    /// A keyword of [`SPLIT_ATTRIBUTES`], for example `SequenceName`.
    pub attribute: String,
    /// The value to keep; `None` lists the values in the refusal.
    pub value: Option<String>,
}

impl ScanResult {
    /// Picks one series.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when nothing or several series match, listing
    /// the candidates; [`Error::Dicom`] when the folder holds a DICOM file
    /// that cannot be parsed (it might belong to the chosen series).
    pub fn select(&self, selector: &SeriesSelector) -> Result<&SeriesEntry> {
        if let Some((p, why)) = self.broken.first() {
            return Err(Error::dicom(
                p,
                format!(
                    "is a DICOM file that cannot be parsed ({why}); its series is unknown, so no \
                     series of this folder is loaded; remove or repair it"
                ),
            ));
        }
        let matches: Vec<&SeriesEntry> = match selector {
            SeriesSelector::Only => self.series.iter().collect(),
            SeriesSelector::Uid(uid) => self
                .series
                .iter()
                .filter(|s| &s.series_instance_uid == uid)
                .collect(),
            SeriesSelector::Number(n) => self
                .series
                .iter()
                .filter(|s| s.series_number == Some(*n))
                .collect(),
            SeriesSelector::Description(d) => {
                let exact: Vec<_> = self
                    .series
                    .iter()
                    .filter(|s| &s.series_description == d)
                    .collect();
                if exact.is_empty() {
                    let dl = d.to_lowercase();
                    self.series
                        .iter()
                        .filter(|s| s.series_description.to_lowercase().contains(&dl))
                        .collect()
                } else {
                    exact
                }
            }
        };
        match matches.as_slice() {
            [one] => Ok(one),
            [] => Err(Error::InvalidInput(format!(
                "no series matches {selector}; available: {}",
                self.listing()
            ))),
            _ => {
                let found = if matches!(selector, SeriesSelector::Only) {
                    format!("the folder holds {} series", matches.len())
                } else {
                    format!("{} series match {selector}", matches.len())
                };
                Err(Error::InvalidInput(format!(
                    "{found}; choose one by UID, number or description: {}",
                    matches
                        .iter()
                        .map(|s| describe(s))
                        .collect::<Vec<_>>()
                        .join("; ")
                )))
            }
        }
    }

    fn listing(&self) -> String {
        self.series
            .iter()
            .map(describe)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

fn describe(s: &SeriesEntry) -> String {
    format!(
        "#{} {:?} {}",
        s.series_number
            .map(|n| n.to_string())
            .unwrap_or_else(|| "-".into()),
        s.series_description,
        s.series_instance_uid
    )
}

/// Computes the grid of a series and its instances in slice order,
/// refusing anything that is not one regular volume.
///
/// # Errors
///
/// [`Error::Series`] naming the series and the problem: no images, a
/// missing slice, several volumes at the same positions, rows, columns,
/// orientation or pixel spacing that vary, a single slice without
/// SliceThickness, malformed or missing geometry attributes, duplicate
/// instances.
pub fn series_grid<'a>(
    series: &'a SeriesEntry,
    split: Option<&SplitBy>,
) -> Result<(Grid, Vec<&'a InstanceHeader>)> {
    let fail = |m: String| Error::Series {
        series: series.label(),
        message: m,
    };

    let mut inst: Vec<&InstanceHeader> = series.instances.iter().collect();
    if let Some(split) = split {
        let known = SPLIT_ATTRIBUTES.iter().any(|(k, _)| *k == split.attribute);
        if !known {
            return Err(fail(format!(
                "cannot split by {:?}; known attributes: {}",
                split.attribute,
                SPLIT_ATTRIBUTES
                    .iter()
                    .map(|(k, _)| *k)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let values: BTreeSet<&str> = inst
            .iter()
            .filter_map(|i| i.split_values.get(&split.attribute).map(String::as_str))
            .collect();
        match &split.value {
            Some(v) => {
                inst.retain(|i| i.split_values.get(&split.attribute) == Some(v));
                if inst.is_empty() {
                    return Err(fail(format!(
                        "no image has {} = {v:?}; values present: {values:?}",
                        split.attribute
                    )));
                }
            }
            None => {
                return Err(fail(format!(
                    "choose a value of {}: {values:?}",
                    split.attribute
                )))
            }
        }
    }

    if let Some(p) = inst.iter().find_map(|i| i.problem.as_ref()) {
        return Err(fail(p.clone()));
    }
    let first = inst
        .first()
        .ok_or_else(|| fail("holds no file".to_string()))?;
    check_duplicates(&inst).map_err(&fail)?;

    let rows = same(&inst, "Rows (0028,0010)", |i| i.rows).map_err(&fail)?;
    let columns = same(&inst, "Columns (0028,0011)", |i| i.columns).map_err(&fail)?;
    if rows <= 0 || columns <= 0 {
        return Err(fail(format!("image size {rows} x {columns} is empty")));
    }
    for i in &inst {
        if let Some(f) = i.number_of_frames.filter(|&f| f > 1) {
            return Err(fail(format!(
                "{} is a multi-frame image ({f} frames); only single-frame series are supported",
                i.path.display()
            )));
        }
        if let Some(s) = i.samples_per_pixel.filter(|&s| s != 1) {
            return Err(fail(format!(
                "{} has SamplesPerPixel (0028,0002) {s}; only greyscale images are supported",
                i.path.display()
            )));
        }
    }
    let spacing = same_f(&inst, "PixelSpacing (0028,0030)", 1e-4, |i| {
        i.pixel_spacing.map(|s| s.to_vec())
    })
    .map_err(&fail)?;
    if spacing.iter().any(|s| *s <= 0.0) {
        return Err(fail(format!(
            "PixelSpacing (0028,0030) {spacing:?} is not positive"
        )));
    }
    let orient = same_f(&inst, "ImageOrientationPatient (0020,0037)", 1e-4, |i| {
        i.image_orientation_patient.map(|o| o.to_vec())
    })
    .map_err(&fail)?;

    let row = [orient[0], orient[1], orient[2]];
    let col = [orient[3], orient[4], orient[5]];
    if (norm(&row) - 1.0).abs() > 1e-3
        || (norm(&col) - 1.0).abs() > 1e-3
        || dot(&row, &col).abs() > 1e-3
    {
        return Err(fail(format!(
            "ImageOrientationPatient (0020,0037) {orient:?} is not two orthogonal unit vectors"
        )));
    }
    let row = unit(row);
    let col = unit(col);
    let normal = unit(cross(&row, &col));

    let mut placed = Vec::with_capacity(inst.len());
    for i in &inst {
        let p = i.image_position_patient.ok_or_else(|| {
            fail(format!(
                "{} has no ImagePositionPatient (0020,0032)",
                i.path.display()
            ))
        })?;
        placed.push((dot(&normal, &p), p, *i));
    }
    placed.sort_by(|a, b| a.0.total_cmp(&b.0));

    check_single_volume(&placed).map_err(&fail)?;
    let n = placed.len();
    let z_spacing = if n == 1 {
        match first.slice_thickness {
            Some(t) if t > 0.0 => t,
            _ => {
                return Err(fail(
                    "is a single slice without a positive SliceThickness (0018,0050), so its slice spacing is unknown"
                        .to_string(),
                ))
            }
        }
    } else {
        check_regular(&placed).map_err(&fail)?
    };
    check_stacked(&placed, &normal, spacing[0].min(spacing[1])).map_err(&fail)?;

    let grid = Grid {
        dims: [columns as usize, rows as usize, n],
        spacing: [spacing[1], spacing[0], z_spacing],
        origin: placed[0].1,
        direction: [
            [row[0], col[0], normal[0]],
            [row[1], col[1], normal[1]],
            [row[2], col[2], normal[2]],
        ],
    };
    grid.validate().map_err(|e| fail(e.to_string()))?;
    Ok((grid, placed.into_iter().map(|(_, _, i)| i).collect()))
}

/// Loads a series into an `f32` volume, applying RescaleSlope (0028,1053)
/// and RescaleIntercept (0028,1052) per file.
///
/// # Errors
///
/// Everything [`series_grid`] refuses, and [`Error::Dicom`] naming the file
/// when pixel data is missing, cannot be decoded, has the wrong size, or the
/// rescale values are not finite.
pub fn load_series(series: &SeriesEntry, split: Option<&SplitBy>) -> Result<Volume> {
    let (grid, ordered) = series_grid(series, split)?;
    let (nz, ny, nx) = grid.shape_zyx();
    let per_slice = nx * ny;
    tracing::debug!(series = %series.series_instance_uid, ?grid.dims, "loading series");

    let slices: Vec<Vec<f32>> = ordered
        .par_iter()
        .map(|inst| read_slice(inst, per_slice))
        .collect::<Result<_>>()?;

    let mut data = Vec::with_capacity(nz * per_slice);
    for s in slices {
        data.extend_from_slice(&s);
    }
    let data = Array3::from_shape_vec((nz, ny, nx), data)
        .map_err(|e| Error::InvalidInput(format!("internal shape error: {e}")))?;
    Volume::new(grid, data)
}

fn read_slice(inst: &InstanceHeader, expected: usize) -> Result<Vec<f32>> {
    let path = &inst.path;
    let obj = dicom_object::open_file(path)
        .map_err(|e| Error::dicom(path, format!("cannot read: {e}")))?;
    if obj.element_opt(tags::PIXEL_DATA).ok().flatten().is_none() {
        return Err(Error::dicom(path, "has no PixelData (7FE0,0010)"));
    }
    let slope = attr::floats(path, &obj, tags::RESCALE_SLOPE, "RescaleSlope")?
        .and_then(|v| v.first().copied())
        .unwrap_or(1.0);
    let intercept = attr::floats(path, &obj, tags::RESCALE_INTERCEPT, "RescaleIntercept")?
        .and_then(|v| v.first().copied())
        .unwrap_or(0.0);
    if slope == 0.0 {
        return Err(Error::dicom(path, "RescaleSlope (0028,1053) is 0"));
    }

    let decoded = obj.decode_pixel_data().map_err(|e| {
        Error::dicom(
            path,
            format!("PixelData (7FE0,0010) cannot be decoded: {e}"),
        )
    })?;
    let mut raw =
        samples(&decoded).map_err(|m| Error::dicom(path, format!("PixelData (7FE0,0010) {m}")))?;
    if raw.len() > expected {
        // Trailing padding beyond Rows x Columns: PS3.5 allows only the one
        // byte that makes the length even, but scanners write more.
        tracing::warn!(
            path = %path.display(),
            extra = raw.len() - expected,
            "PixelData (7FE0,0010) is longer than Rows x Columns; ignoring the excess"
        );
        raw.truncate(expected);
    }
    if raw.len() != expected {
        return Err(Error::dicom(
            path,
            format!(
                "PixelData (7FE0,0010) holds {} samples, Rows x Columns is {expected}",
                raw.len()
            ),
        ));
    }

    let out: Vec<f32> = raw
        .iter()
        .map(|&v| (v * slope + intercept) as f32)
        .collect();
    if let Some(bad) = out.iter().find(|v| !v.is_finite()) {
        return Err(Error::dicom(
            path,
            format!("rescaled value {bad} is not finite (RescaleSlope {slope}, RescaleIntercept {intercept})"),
        ));
    }
    Ok(out)
}

/// Stored pixel values of decoded (native, little-endian) pixel data as
/// `f64`, honouring BitsAllocated (0028,0100), BitsStored (0028,0101) and
/// PixelRepresentation (0028,0103): signed samples are sign-extended from
/// their stored bit width, unsigned ones masked to it (PS3.5 section 8.1.1).
fn samples(
    decoded: &dicom_pixeldata::DecodedPixelData<'_>,
) -> std::result::Result<Vec<f64>, String> {
    let bytes = decoded.data();
    let allocated = decoded.bits_allocated() as u32;
    let stored = (decoded.bits_stored() as u32).clamp(1, allocated.max(1));
    let signed = decoded.pixel_representation() == dicom_pixeldata::PixelRepresentation::Signed;
    let width = match allocated {
        8 | 16 | 32 => (allocated / 8) as usize,
        other => {
            return Err(format!(
                "has BitsAllocated (0028,0100) {other}; 8, 16 or 32 supported"
            ))
        }
    };
    if bytes.len() % width != 0 {
        return Err(format!(
            "length {} is not a multiple of {width} bytes",
            bytes.len()
        ));
    }

    let mask: u64 = if stored >= 32 {
        u32::MAX as u64
    } else {
        (1u64 << stored) - 1
    };
    let convert = |raw: u64| -> f64 {
        let v = raw & mask;
        if signed && (v >> (stored - 1)) & 1 == 1 {
            v as f64 - (mask + 1) as f64
        } else {
            v as f64
        }
    };
    Ok(bytes
        .chunks_exact(width)
        .map(|c| {
            let raw = match width {
                1 => c[0] as u64,
                2 => u16::from_le_bytes([c[0], c[1]]) as u64,
                _ => u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as u64,
            };
            convert(raw)
        })
        .collect())
}

fn unit(v: [f64; 3]) -> [f64; 3] {
    let n = norm(&v);
    [v[0] / n, v[1] / n, v[2] / n]
}

fn same<T: PartialEq + Copy + std::fmt::Debug>(
    inst: &[&InstanceHeader],
    what: &str,
    get: impl Fn(&InstanceHeader) -> Option<T>,
) -> std::result::Result<T, String> {
    let mut found: Option<(T, &InstanceHeader)> = None;
    for i in inst {
        let v = get(i).ok_or_else(|| format!("{} has no {what}", i.path.display()))?;
        match found {
            None => found = Some((v, i)),
            Some((f, fi)) if f != v => {
                return Err(format!(
                    "{what} varies: {f:?} in {} but {v:?} in {}",
                    fi.path.display(),
                    i.path.display()
                ))
            }
            _ => {}
        }
    }
    found.map(|(v, _)| v).ok_or_else(|| format!("no {what}"))
}

fn same_f(
    inst: &[&InstanceHeader],
    what: &str,
    tol: f64,
    get: impl Fn(&InstanceHeader) -> Option<Vec<f64>>,
) -> std::result::Result<Vec<f64>, String> {
    let mut found: Option<(Vec<f64>, &InstanceHeader)> = None;
    for i in inst {
        let v = get(i).ok_or_else(|| format!("{} has no {what}", i.path.display()))?;
        match &found {
            None => found = Some((v, i)),
            Some((f, fi)) if f.iter().zip(&v).any(|(a, b)| (a - b).abs() > tol) => {
                return Err(format!(
                    "{what} varies: {f:?} in {} but {v:?} in {}",
                    fi.path.display(),
                    i.path.display()
                ))
            }
            _ => {}
        }
    }
    found.map(|(v, _)| v).ok_or_else(|| format!("no {what}"))
}

fn check_duplicates(inst: &[&InstanceHeader]) -> std::result::Result<(), String> {
    let mut seen: HashMap<&str, &InstanceHeader> = HashMap::new();
    for i in inst {
        if i.sop_instance_uid.is_empty() {
            continue;
        }
        if let Some(prev) = seen.insert(&i.sop_instance_uid, i) {
            return Err(format!(
                "duplicate instance: SOPInstanceUID (0008,0018) {} in {} and {}",
                i.sop_instance_uid,
                prev.path.display(),
                i.path.display()
            ));
        }
    }
    Ok(())
}

type Placed<'a> = (f64, [f64; 3], &'a InstanceHeader);

fn check_single_volume(placed: &[Placed<'_>]) -> std::result::Result<(), String> {
    let mut groups: Vec<Vec<&InstanceHeader>> = Vec::new();
    let mut last = f64::NEG_INFINITY;
    for (d, _, i) in placed {
        if (d - last).abs() < SAME_POSITION_MM {
            if let Some(g) = groups.last_mut() {
                g.push(i);
            }
        } else {
            groups.push(vec![i]);
            last = *d;
        }
    }
    let Some(max) = groups.iter().map(Vec::len).max().filter(|&m| m > 1) else {
        return Ok(());
    };

    // Which split attributes tell the images of one position apart?
    let stacked: Vec<&InstanceHeader> = groups
        .iter()
        .find(|g| g.len() == max)
        .cloned()
        .unwrap_or_default();
    let mut differing = Vec::new();
    for (kw, tag) in SPLIT_ATTRIBUTES {
        let vals: BTreeSet<Option<&String>> =
            stacked.iter().map(|i| i.split_values.get(*kw)).collect();
        if vals.len() > 1 {
            let all: BTreeSet<&str> = placed
                .iter()
                .filter_map(|(_, _, i)| i.split_values.get(*kw).map(String::as_str))
                .collect();
            differing.push(format!(
                "{kw} {} ({})",
                attr::tag_str(*tag),
                all.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    let hint = if differing.is_empty() {
        "no known attribute tells them apart".to_string()
    } else {
        format!(
            "they differ in {}; load one with --split-by KEYWORD --split-value VALUE",
            differing.join("; ")
        )
    };
    Err(format!(
        "several volumes share one series: {} files at {} positions, up to {max} images at one position; {hint}",
        placed.len(),
        groups.len()
    ))
}

/// Checks that slice positions are evenly spaced; returns the spacing
/// (first to last distance over n - 1, as ITK's series reader).
fn check_regular(placed: &[Placed<'_>]) -> std::result::Result<f64, String> {
    let n = placed.len();
    let gaps: Vec<f64> = placed.windows(2).map(|w| w[1].0 - w[0].0).collect();
    let mut sorted = gaps.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let tol = SPACING_TOLERANCE * median + 1e-4;

    for (k, g) in gaps.iter().enumerate() {
        if (g - median).abs() <= tol {
            continue;
        }
        let ratio = g / median;
        if ratio > 1.5 && (ratio - ratio.round()).abs() < 0.1 {
            return Err(format!(
                "missing slice: gap of {g:.4} mm between slice positions {:.4} and {:.4} mm along the normal \
                 (between {} and {}), where the spacing is {median:.4} mm; about {} slice(s) missing of {}",
                placed[k].0,
                placed[k + 1].0,
                placed[k].2.path.display(),
                placed[k + 1].2.path.display(),
                ratio.round() as i64 - 1,
                n + ratio.round() as usize - 1
            ));
        }
        return Err(format!(
            "slice spacing varies from {:.4} to {:.4} mm",
            sorted[0],
            sorted[sorted.len() - 1]
        ));
    }
    Ok((placed[n - 1].0 - placed[0].0) / (n - 1) as f64)
}

/// Checks that every slice lies on the line through the first along the
/// normal (no shear), within a tenth of the smallest pixel spacing.
fn check_stacked(
    placed: &[Placed<'_>],
    normal: &[f64; 3],
    pixel: f64,
) -> std::result::Result<(), String> {
    let p0 = placed[0].1;
    for (d, p, i) in placed {
        let along = d - placed[0].0;
        let off: Vec<f64> = (0..3).map(|c| p[c] - p0[c] - normal[c] * along).collect();
        let off = (off[0] * off[0] + off[1] * off[1] + off[2] * off[2]).sqrt();
        if off > 0.1 * pixel {
            return Err(format!(
                "slices are not stacked along the normal: {} is offset {off:.3} mm in-plane",
                i.path.display()
            ));
        }
    }
    Ok(())
}

/// Summary of a split: values of `attribute` and how many files hold each.
pub fn split_values(series: &SeriesEntry, attribute: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for i in &series.instances {
        if let Some(v) = i.split_values.get(attribute) {
            *out.entry(v.clone()).or_insert(0) += 1;
        }
    }
    out
}

/// Convenience: scan, select and load in one call.
///
/// # Errors
///
/// As [`super::scan_folder`], [`ScanResult::select`] and [`load_series`].
pub fn load_from_folder(
    path: &std::path::Path,
    selector: &SeriesSelector,
    split: Option<&SplitBy>,
) -> Result<Volume> {
    let scan = super::scan_folder(path)?;
    let series = scan.select(selector)?;
    load_series(series, split)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_parse_numbers_uids_and_descriptions() {
        assert_eq!(
            "4".parse::<SeriesSelector>().unwrap(),
            SeriesSelector::Number(4)
        );
        assert_eq!(
            "1.2.840.1".parse::<SeriesSelector>().unwrap(),
            SeriesSelector::Uid("1.2.840.1".into())
        );
        assert_eq!(
            "t2_tse_tra".parse::<SeriesSelector>().unwrap(),
            SeriesSelector::Description("t2_tse_tra".into())
        );
    }
}

//! `halo compare`: edit analytics of a reference (edited) and a test
//! (automatic) contour, one pair or a batch.
//!
//! Inputs name a mask by file and an optional `#selector`: a NIfTI file is
//! a mask of its voxels above 0.5, or with `#k` of the voxels equal to
//! label `k`; a DICOM RTSTRUCT names its ROI after `#` and needs `--series`
//! for the image grid. The uncertainty is a NIfTI map or a folder holding
//! one DICOM series (halo's PT uncertainty series).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use halo_core::dicom::{load_series, rtstruct, scan_folder, SeriesSelector};
use halo_core::metrics::{
    compare, AplMode, BoundaryModel, CompareOptions, Comparison, HistogramBins,
};
use halo_core::Volume;
use rayon::prelude::*;
use serde_json::{json, Value};

/// Arguments of `halo compare`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The reference mask (the clinician's edited contour): `mask.nii.gz`,
    /// `labels.nii.gz#2`, or `rtstruct.dcm#ROI-name` with --series.
    #[arg(long, value_name = "MASK", required_unless_present = "batch")]
    pub reference: Option<String>,
    /// The test mask (the automatic contour), as --reference.
    #[arg(long, value_name = "MASK", required_unless_present = "batch")]
    pub test: Option<String>,
    /// Uncertainty map on the masks' grid: a NIfTI file or a folder with
    /// one DICOM series (PT). Enables the histogram of edited voxels.
    #[arg(long, value_name = "MAP")]
    pub uncertainty: Option<String>,
    /// The image series (folder) that gives RTSTRUCT masks their grid.
    #[arg(long, value_name = "FOLDER")]
    pub series: Option<PathBuf>,
    /// Tolerance in mm of surface Dice and added path length.
    #[arg(long, default_value_t = 1.0, value_name = "MM")]
    pub tolerance: f64,
    /// Boundary model of surface metrics: surfel (DeepMind) or voxel (MONAI).
    #[arg(long, default_value = "surfel", value_parser = parse_boundary)]
    pub boundary: BoundaryModel,
    /// Added path length: exact (mm distances) or platipy (its dilation).
    #[arg(long, default_value = "exact", value_parser = parse_apl_mode)]
    pub apl_mode: AplMode,
    /// Width of the uncertainty bins.
    #[arg(long, default_value_t = 0.1)]
    pub bin_width: f64,
    /// Upper end of the binned uncertainty range (the last bin is open).
    #[arg(long, default_value_t = 0.5)]
    pub bin_upper: f64,
    /// Write the edit map (1 added, 2 removed) as NIfTI uint8.
    #[arg(long, value_name = "FILE.nii.gz", conflicts_with = "batch")]
    pub edit_map: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// A CSV of pairs with columns reference,test and optionally
    /// uncertainty and id; one output row per pair.
    #[arg(long, value_name = "PAIRS.csv", requires = "out")]
    pub batch: Option<PathBuf>,
    /// The CSV of results of --batch.
    #[arg(long, value_name = "RESULTS.csv", requires = "batch")]
    pub out: Option<PathBuf>,
    /// Replace the --out CSV (or --edit-map) if it exists.
    #[arg(long)]
    pub force: bool,
}

fn parse_boundary(s: &str) -> Result<BoundaryModel, String> {
    s.parse().map_err(|e: halo_core::Error| e.to_string())
}

fn parse_apl_mode(s: &str) -> Result<AplMode, String> {
    s.parse().map_err(|e: halo_core::Error| e.to_string())
}

/// Runs `halo compare`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let options = CompareOptions {
        boundary: args.boundary,
        tolerance_mm: args.tolerance,
        apl_mode: args.apl_mode,
        bins: HistogramBins::covering(args.bin_width, args.bin_upper)?,
        ..CompareOptions::default()
    };
    if let (Some(batch), Some(out)) = (&args.batch, &args.out) {
        if out.exists() && !args.force {
            bail!("output {} exists; use --force to replace it", out.display());
        }
        return run_batch(batch, out, &args, options);
    }

    // OK because clap requires both without --batch.
    let reference = args.reference.as_deref().expect("--reference");
    let test = args.test.as_deref().expect("--test");
    let c = compare_pair(reference, test, args.uncertainty.as_deref(), &args, options)?;

    if let Some(path) = &args.edit_map {
        let r = load_mask(&InputSpec::parse(reference), args.series.as_deref())?;
        let t = load_mask(&InputSpec::parse(test), args.series.as_deref())?;
        let map = halo_core::metrics::edit_map(&r, &t)?;
        write_atomically(path, |tmp| Ok(halo_core::nifti::write_u8(tmp, &map)?))?;
        eprintln!("halo: wrote edit map {}", path.display());
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&to_json(&c))?);
    } else {
        print!("{}", to_text(&c));
    }
    Ok(ExitCode::SUCCESS)
}

/// What a mask argument names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputSpec {
    /// A NIfTI mask: voxels above 0.5, or equal to the label.
    Nifti {
        /// The file.
        path: PathBuf,
        /// `#k`: the label to select.
        label: Option<i64>,
        /// The selector text as given, for errors.
        raw_label: Option<String>,
    },
    /// An ROI of a DICOM RTSTRUCT, by name or number.
    Rtstruct {
        /// The RTSTRUCT file.
        path: PathBuf,
        /// The ROI name (or number) after `#`.
        roi: Option<String>,
    },
}

impl InputSpec {
    /// Splits `file#selector` at the last `#` and tells NIfTI from DICOM
    /// by the file name.
    pub fn parse(text: &str) -> Self {
        let (path, selector) = match text.rsplit_once('#') {
            Some((p, s)) if !s.contains('/') => (p, Some(s.to_string())),
            _ => (text, None),
        };
        let path = PathBuf::from(path);
        let name = path.to_string_lossy().to_ascii_lowercase();
        if name.ends_with(".nii") || name.ends_with(".nii.gz") {
            InputSpec::Nifti {
                path,
                label: selector.as_deref().and_then(|s| s.trim().parse().ok()),
                raw_label: selector,
            }
        } else {
            InputSpec::Rtstruct {
                path,
                roi: selector,
            }
        }
    }
}

/// Loads the mask an input names, on its own grid (NIfTI) or the grid of
/// `series` (RTSTRUCT).
fn load_mask(spec: &InputSpec, series: Option<&Path>) -> anyhow::Result<Volume<u8>> {
    match spec {
        InputSpec::Nifti {
            path,
            label,
            raw_label,
        } => {
            if let (None, Some(raw)) = (label, raw_label) {
                bail!(
                    "{}: label selector #{raw} is not an integer",
                    path.display()
                );
            }
            let v = halo_core::nifti::read(path)?;
            match label {
                Some(k) if *k <= 0 => bail!(
                    "{}#{k}: label {k} is the background or invalid; labels are 1 or more",
                    path.display()
                ),
                Some(k) => {
                    let mask = v.map(|x| (*x as f64 == *k as f64) as u8);
                    if !mask.data.iter().any(|&m| m != 0) {
                        bail!(
                            "{}#{k}: no voxel has label {k}; labels present: {:?}",
                            path.display(),
                            labels_present(&v)
                        );
                    }
                    Ok(mask)
                }
                None => {
                    if let Some(bad) = v.data.iter().find(|&&x| x != 0.0 && x != 1.0) {
                        bail!(
                            "{}: not a binary mask (holds the value {bad}); select a label with {}#K",
                            path.display(),
                            path.display()
                        );
                    }
                    Ok(v.map(|x| (*x > 0.5) as u8))
                }
            }
        }
        InputSpec::Rtstruct { path, roi } => {
            let series = series.with_context(|| {
                format!(
                    "{}: an RTSTRUCT input needs --series MR_FOLDER, the image its contours lie on",
                    path.display()
                )
            })?;
            let scan = scan_folder(series)?;
            let images: Vec<_> = scan
                .series
                .iter()
                .filter(|s| !s.modality.starts_with("RT") && s.modality != "SEG")
                .collect();
            let [image] = images.as_slice() else {
                bail!(
                    "--series {} holds {} image series; give a folder with exactly one",
                    series.display(),
                    images.len()
                );
            };
            let (grid, _) = halo_core::dicom::series_grid(image, None)?;

            let rs = rtstruct::read(path)?;
            let chosen = match roi {
                Some(r) => rs.select(r)?,
                None => match rs.rois.as_slice() {
                    [only] => only,
                    rois => bail!(
                        "{}: holds {} ROIs; name one as FILE#ROI: {}",
                        path.display(),
                        rois.len(),
                        rois.iter()
                            .map(|r| r.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                },
            };
            Ok(rs.mask(
                chosen,
                &grid,
                image.frame_of_reference_uid.as_deref(),
                &rtstruct::ReadOptions::default(),
            )?)
        }
    }
}

/// Up to 20 distinct non-zero integer values of a label map, ascending.
fn labels_present(v: &Volume<f32>) -> Vec<i64> {
    let mut set = std::collections::BTreeSet::new();
    for &x in v.data.iter() {
        if x != 0.0 && x.fract() == 0.0 {
            set.insert(x as i64);
            if set.len() >= 20 {
                break;
            }
        }
    }
    set.into_iter().collect()
}

/// Loads an uncertainty map: a NIfTI file, or a folder with one series.
fn load_uncertainty(text: &str) -> anyhow::Result<Volume<f32>> {
    let path = Path::new(text);
    if path.is_dir() {
        let scan = scan_folder(path)?;
        let series = scan
            .select(&SeriesSelector::Only)
            .with_context(|| format!("uncertainty folder {}", path.display()))?;
        return check_uncertainty_range(text, load_series(series, None)?);
    }
    check_uncertainty_range(text, halo_core::nifti::read(path)?)
}

/// Refuses a map with values outside 0 to 1: a standard deviation of
/// probabilities stays below 0.5 with ddof 0 and below 0.71 with ddof 1,
/// so larger values mean another kind of map (a label map, say).
fn check_uncertainty_range(text: &str, v: Volume<f32>) -> anyhow::Result<Volume<f32>> {
    if let Some(bad) = v.data.iter().find(|&&u| !(-1e-6..=1.0).contains(&u)) {
        bail!("{text}: value {bad} is outside 0 to 1: not an uncertainty map");
    }
    Ok(v)
}

fn compare_pair(
    reference: &str,
    test: &str,
    uncertainty: Option<&str>,
    args: &Args,
    options: CompareOptions,
) -> anyhow::Result<Comparison> {
    let series = args.series.as_deref();
    let start = std::time::Instant::now();
    let (r, t) = rayon::join(
        || {
            load_mask(&InputSpec::parse(reference), series)
                .with_context(|| format!("reference {reference}"))
        },
        || load_mask(&InputSpec::parse(test), series).with_context(|| format!("test {test}")),
    );
    let (r, t) = (r?, t?);
    let u = uncertainty
        .map(|u| load_uncertainty(u).with_context(|| format!("uncertainty {u}")))
        .transpose()?;
    tracing::debug!("loaded {reference} and {test} in {:?}", start.elapsed());

    let start = std::time::Instant::now();
    let c = compare(&r, &t, u.as_ref(), options)
        .with_context(|| format!("comparing reference {reference} with test {test}"));
    tracing::debug!("compared in {:?}", start.elapsed());
    c
}

/// A number for JSON: NaN as `null`, infinities as `"inf"` / `"-inf"`.
fn num(v: f64) -> Value {
    if v.is_nan() {
        Value::Null
    } else if v.is_infinite() {
        Value::String(if v > 0.0 { "inf" } else { "-inf" }.to_string())
    } else {
        json!(v)
    }
}

/// The scalar results in a fixed order (JSON keys and CSV columns).
fn scalars(c: &Comparison) -> Vec<(&'static str, f64)> {
    let o = &c.overlap;
    let s = &c.surface;
    let tau = c.options.tolerance_mm;
    vec![
        ("dice", o.dice()),
        ("surface_dice", s.surface_dice(tau)),
        ("hausdorff", s.hausdorff()),
        ("hausdorff95", s.percentile_hausdorff(95.0)),
        ("hausdorff99", s.percentile_hausdorff(99.0)),
        ("asd_reference_to_test", s.asd_reference_to_test()),
        ("asd_test_to_reference", s.asd_test_to_reference()),
        ("asd_symmetric", s.asd_symmetric()),
        ("volume_reference_cm3", o.volume_reference_cm3()),
        ("volume_test_cm3", o.volume_test_cm3()),
        ("volume_difference_cm3", o.volume_difference_cm3()),
        ("volume_ratio", o.volume_ratio()),
        ("sensitivity", o.sensitivity()),
        ("specificity", o.specificity()),
        ("apl_total_mm", c.apl.total_mm),
        ("apl_mean_mm", c.apl.mean_mm),
        ("added_voxels", c.added_voxels as f64),
        ("removed_voxels", c.removed_voxels as f64),
        ("tolerance_mm", tau),
    ]
}

fn to_json(c: &Comparison) -> Value {
    let mut m = serde_json::Map::new();
    for (k, v) in scalars(c) {
        let value = match k {
            "added_voxels" | "removed_voxels" => json!(v as u64),
            _ => num(v),
        };
        m.insert(k.to_string(), value);
    }
    let per_slice: Vec<Value> = c
        .apl
        .per_slice
        .iter()
        .map(|s| json!({"slice": s.slice, "mm": num(s.mm)}))
        .collect();
    m.insert("apl_per_slice_mm".into(), Value::Array(per_slice));
    m.insert("apl_mode".into(), json!(c.apl.mode.name()));
    m.insert("boundary_model".into(), json!(c.surface.model.name()));
    m.insert(
        "hausdorff_percentile_rule".into(),
        json!(c.surface.model.percentile_rule()),
    );
    m.insert(
        "asd_symmetric_rule".into(),
        json!(c.surface.model.asd_symmetric_rule()),
    );
    let histogram = c.histogram.as_ref().map_or(Value::Null, |h| {
        json!({
            "edges": h.bins.edges(),
            "last_bin_open": true,
            "counts": h.edited(),
            "added": h.added,
            "removed": h.removed,
        })
    });
    m.insert("edited_histogram".into(), histogram);
    Value::Object(m)
}

fn to_text(c: &Comparison) -> String {
    let mut out = String::new();
    // OK because writing to a String cannot fail.
    let _ = writeln!(
        out,
        "boundary model {} (percentile rule {}, symmetric ASD {}), APL {}",
        c.surface.model,
        c.surface.model.percentile_rule(),
        c.surface.model.asd_symmetric_rule(),
        c.apl.mode.name()
    );
    for (k, v) in scalars(c) {
        let _ = writeln!(out, "{k:<24} {v}");
    }
    for s in &c.apl.per_slice {
        let _ = writeln!(out, "apl slice {:<14} {} mm", s.slice, s.mm);
    }
    if let Some(h) = &c.histogram {
        let edges = h.bins.edges();
        for (k, (a, r)) in h.added.iter().zip(&h.removed).enumerate() {
            let upper = if k + 1 == h.bins.bins {
                "...".to_string()
            } else {
                format!("{:.3}", edges[k + 1])
            };
            let _ = writeln!(
                out,
                "uncertainty [{:.3}, {upper}) added {a} removed {r}",
                edges[k]
            );
        }
    }
    out
}

/// One row of the pairs file.
struct Pair {
    line: usize,
    id: String,
    reference: String,
    test: String,
    uncertainty: Option<String>,
}

fn read_pairs(path: &Path) -> anyhow::Result<Vec<Pair>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read pairs file {}", path.display()))?;
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        bail!("pairs file {} is empty", path.display());
    };
    let columns: Vec<String> = split_csv(header)
        .iter()
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let col = |name: &str| columns.iter().position(|c| c == name);
    let (Some(ri), Some(ti)) = (col("reference"), col("test")) else {
        bail!(
            "pairs file {}: header {header:?} lacks the columns reference and test",
            path.display()
        );
    };
    let (ui, ii) = (col("uncertainty"), col("id"));

    let mut pairs = Vec::new();
    for (n, line) in lines {
        let cells = split_csv(line);
        let get = |i: usize| {
            cells
                .get(i)
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        };
        let (Some(reference), Some(test)) = (get(ri), get(ti)) else {
            bail!(
                "pairs file {} line {}: reference or test is missing",
                path.display(),
                n + 1
            );
        };
        pairs.push(Pair {
            line: n + 1,
            id: ii
                .and_then(get)
                .unwrap_or_else(|| format!("{}", pairs.len() + 1)),
            reference: resolve(path, &reference),
            test: resolve(path, &test),
            uncertainty: ui.and_then(get).map(|u| resolve(path, &u)),
        });
    }
    Ok(pairs)
}

/// Paths in the pairs file are relative to its folder.
fn resolve(csv: &Path, entry: &str) -> String {
    let p = Path::new(entry);
    if p.is_absolute() {
        return entry.to_string();
    }
    csv.parent()
        .unwrap_or(Path::new("."))
        .join(p)
        .to_string_lossy()
        .into_owned()
}

/// Splits one CSV line; fields may be double-quoted with `""` escapes.
fn split_csv(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                out.last_mut().unwrap().push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(String::new()),
            _ => out.last_mut().unwrap().push(c),
        }
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv_number(v: f64) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        format!("{v}")
    }
}

fn run_batch(
    batch: &Path,
    out: &Path,
    args: &Args,
    options: CompareOptions,
) -> anyhow::Result<ExitCode> {
    let pairs = read_pairs(batch)?;
    eprintln!(
        "halo: comparing {} pairs from {}",
        pairs.len(),
        batch.display()
    );

    let results: Vec<anyhow::Result<Comparison>> = pairs
        .par_iter()
        .map(|p| {
            compare_pair(
                &p.reference,
                &p.test,
                p.uncertainty.as_deref(),
                args,
                options,
            )
            .with_context(|| format!("{} line {} (id {})", batch.display(), p.line, p.id))
        })
        .collect();
    let mut rows = Vec::with_capacity(results.len());
    for r in results {
        rows.push(r?);
    }

    let bins = options.bins.bins;
    let mut header = vec!["id".to_string(), "reference".into(), "test".into()];
    if let Some(first) = rows.first() {
        header.extend(scalars(first).iter().map(|(k, _)| k.to_string()));
    }
    header.extend(["boundary_model".into(), "apl_mode".into()]);
    header.extend((0..bins).map(|k| format!("edited_bin_{k}")));
    let mut text = header.join(",") + "\n";
    for (p, c) in pairs.iter().zip(&rows) {
        let mut cells = vec![
            csv_field(&p.id),
            csv_field(&p.reference),
            csv_field(&p.test),
        ];
        cells.extend(scalars(c).iter().map(|(_, v)| csv_number(*v)));
        cells.extend([c.surface.model.name().into(), c.apl.mode.name().into()]);
        let edited = c.histogram.as_ref().map(|h| h.edited());
        cells.extend((0..bins).map(|k| {
            edited
                .as_ref()
                .map(|e| e[k].to_string())
                .unwrap_or_default()
        }));
        text += &(cells.join(",") + "\n");
    }
    write_atomically(out, |tmp| {
        std::fs::write(tmp, &text).with_context(|| format!("cannot write {}", tmp.display()))
    })?;
    eprintln!("halo: wrote {} rows to {}", rows.len(), out.display());
    Ok(ExitCode::SUCCESS)
}

/// Writes through a temporary file beside `path`, renamed into place, so
/// that a failure leaves no partial output.
fn write_atomically(
    path: &Path,
    write: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .context("output has no file name")?
        .to_string_lossy();
    // Keep the extension last: the NIfTI writer compresses by name.
    let tmp = dir.join(format!(".partial-{}-{name}", std::process::id()));
    let result = write(&tmp).and_then(|()| {
        std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_split_at_the_last_hash() {
        assert_eq!(
            InputSpec::parse("a/b.nii.gz#2"),
            InputSpec::Nifti {
                path: "a/b.nii.gz".into(),
                label: Some(2),
                raw_label: Some("2".into())
            }
        );
        assert_eq!(
            InputSpec::parse("rs.dcm#Prostate CTV"),
            InputSpec::Rtstruct {
                path: "rs.dcm".into(),
                roi: Some("Prostate CTV".into())
            }
        );
        assert!(matches!(
            InputSpec::parse("x.nii"),
            InputSpec::Nifti { label: None, .. }
        ));
    }

    #[test]
    fn csv_lines_keep_quoted_commas() {
        assert_eq!(split_csv(r#"a,"b,c",d"#), vec!["a", "b,c", "d"]);
        assert_eq!(split_csv(r#""say ""hi""",x"#), vec![r#"say "hi""#, "x"]);
    }

    #[test]
    fn non_finite_numbers_have_a_json_form() {
        assert_eq!(num(f64::NAN), Value::Null);
        assert_eq!(num(f64::INFINITY), json!("inf"));
        assert_eq!(num(0.5), json!(0.5));
    }
}

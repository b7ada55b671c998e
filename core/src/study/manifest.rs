//! The observer-study manifest (TOML) and its ratings table (CSV).
//!
//! ```toml
//! [study]
//! name = "Prostate CTV with and without uncertainty maps"
//! ratings = "ratings.csv"          # relative to the manifest
//! outlier_volume_ratio = [0.8, 1.25]
//! bootstrap = 2000                 # VGC resampling
//! permutations = 2000
//! seed = 1
//! observers = ["O1", "O2"]
//! structures = ["prostate"]
//!
//! [[cases]]
//! id = "case01"
//! mr = "case01/mr.nii.gz"
//! uncertainty = "case01/uncertainty.nii.gz"
//! automatic = { prostate = "case01/auto_prostate.nii.gz" }
//! step1 = { O1 = { prostate = "case01/O1_step1_prostate.nii.gz" }, O2 = { ... } }
//! step2 = { O1 = { prostate = "case01/O1_step2_prostate.nii.gz" }, O2 = { ... } }
//! ```
//!
//! A contour is a NIfTI mask path (non-zero voxels inside), or
//! `{ rtstruct = "file.dcm", roi = "Prostate" }`. The ratings CSV has a
//! header `case,observer,step,minutes,<question>...`: one row per case,
//! observer and step (1 or 2), the editing time in minutes, and one column
//! per rating question (for example `quality` on the four-point scale and
//! `confidence` on the five-point one).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{Error, Result};

/// The parsed manifest, paths resolved against its folder.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The manifest file.
    pub path: PathBuf,
    /// Study-wide settings.
    pub study: StudySettings,
    /// The cases, in manifest order.
    pub cases: Vec<Case>,
    /// The ratings and editing times.
    pub ratings: Ratings,
}

/// The `[study]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudySettings {
    /// A title for the report.
    pub name: String,
    /// The ratings CSV, relative to the manifest.
    pub ratings: PathBuf,
    /// Observer identifiers, in report order.
    pub observers: Vec<String>,
    /// Structure names, in report order.
    pub structures: Vec<String>,
    /// Step 2 / step 1 volume ratios outside `[low, high]` are outliers.
    #[serde(default = "default_outlier_limits")]
    pub outlier_volume_ratio: [f64; 2],
    /// VGC bootstrap replicates.
    #[serde(default = "default_resamples")]
    pub bootstrap: usize,
    /// VGC permutations.
    #[serde(default = "default_resamples")]
    pub permutations: usize,
    /// Seed of the VGC resampling.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Tolerance of the surface Dice, mm.
    #[serde(default = "default_tolerance")]
    pub surface_dice_tolerance_mm: f64,
}

fn default_outlier_limits() -> [f64; 2] {
    [0.8, 1.25]
}

fn default_resamples() -> usize {
    2000
}

fn default_seed() -> u64 {
    1
}

fn default_tolerance() -> f64 {
    1.0
}

/// Where a contour comes from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ContourSource {
    /// A NIfTI mask; voxels with non-zero values are inside.
    Nifti(PathBuf),
    /// An ROI of a DICOM RTSTRUCT.
    Rtstruct {
        /// The RTSTRUCT file.
        rtstruct: PathBuf,
        /// The ROIName (3006,0026).
        roi: String,
    },
}

/// One case of the study.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// The case identifier used in the ratings CSV.
    pub id: String,
    /// The MR series (folder or NIfTI file).
    pub mr: PathBuf,
    /// The uncertainty map (NIfTI, on the grid of the masks).
    pub uncertainty: PathBuf,
    /// The automatic contour of each structure.
    pub automatic: BTreeMap<String, ContourSource>,
    /// Step 1 (without the map): per observer, per structure.
    pub step1: BTreeMap<String, BTreeMap<String, ContourSource>>,
    /// Step 2 (with the map): per observer, per structure.
    pub step2: BTreeMap<String, BTreeMap<String, ContourSource>>,
}

impl Case {
    /// The edited contour of `observer` and `structure` in `step` (1 or 2).
    pub fn edited(&self, step: u8, observer: &str, structure: &str) -> Option<&ContourSource> {
        let steps = if step == 1 { &self.step1 } else { &self.step2 };
        steps.get(observer)?.get(structure)
    }
}

/// One row of the ratings CSV.
#[derive(Debug, Clone, PartialEq)]
pub struct RatingRow {
    /// Case identifier.
    pub case: String,
    /// Observer identifier.
    pub observer: String,
    /// 1 (without the map) or 2 (with it).
    pub step: u8,
    /// Editing time, minutes.
    pub minutes: f64,
    /// One rating per question, in [`Ratings::questions`] order.
    pub answers: Vec<f64>,
}

/// The ratings CSV.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Ratings {
    /// Question names, from the header after `minutes`.
    pub questions: Vec<String>,
    /// The rows.
    pub rows: Vec<RatingRow>,
}

impl Ratings {
    /// The row of a case, observer and step.
    pub fn get(&self, case: &str, observer: &str, step: u8) -> Option<&RatingRow> {
        self.rows
            .iter()
            .find(|r| r.case == case && r.observer == observer && r.step == step)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    study: StudySettings,
    cases: Vec<Case>,
}

impl Manifest {
    /// Reads and checks a manifest and its ratings CSV. Relative paths are
    /// resolved against the manifest's folder; files are not opened yet
    /// (except the CSV).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] naming the file and the key or line when
    /// the TOML or CSV is malformed, an observer or structure lacks a
    /// contour, ids repeat, or a rating row is missing or repeated.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let file: File = toml::from_str(&text)
            .map_err(|e| Error::InvalidInput(format!("{}: {}", path.display(), e.message())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let bad = |what: String| Error::InvalidInput(format!("{}: {what}", path.display()));

        let mut study = file.study;
        study.ratings = base.join(&study.ratings);
        let [low, high] = study.outlier_volume_ratio;
        if !(low > 0.0 && low < high) {
            return Err(bad(format!(
                "study.outlier_volume_ratio [{low}, {high}] is not 0 < low < high"
            )));
        }
        if study.observers.is_empty() || study.structures.is_empty() || file.cases.is_empty() {
            return Err(bad("needs at least one observer, structure and case".into()));
        }

        let mut cases = file.cases;
        let mut seen = std::collections::BTreeSet::new();
        for case in &mut cases {
            if !seen.insert(case.id.clone()) {
                return Err(bad(format!("case id {} appears twice", case.id)));
            }
            check_case(case, &study).map_err(|w| bad(format!("case {}: {w}", case.id)))?;
            resolve_case(case, base);
        }

        let ratings = read_ratings(&study.ratings)?;
        for case in &cases {
            for observer in &study.observers {
                for step in [1, 2] {
                    if ratings.get(&case.id, observer, step).is_none() {
                        return Err(Error::InvalidInput(format!(
                            "{}: no row for case {}, observer {observer}, step {step}",
                            study.ratings.display(),
                            case.id
                        )));
                    }
                }
            }
        }
        Ok(Manifest {
            path: path.to_owned(),
            study,
            cases,
            ratings,
        })
    }
}

/// Every structure has an automatic contour and every observer both edits.
fn check_case(case: &Case, study: &StudySettings) -> std::result::Result<(), String> {
    for s in &study.structures {
        if !case.automatic.contains_key(s) {
            return Err(format!("automatic.{s} is missing"));
        }
        for o in &study.observers {
            for step in [1, 2] {
                if case.edited(step, o, s).is_none() {
                    return Err(format!("step{step}.{o}.{s} is missing"));
                }
            }
        }
    }
    Ok(())
}

fn resolve_case(case: &mut Case, base: &Path) {
    let resolve = |c: &mut ContourSource| match c {
        ContourSource::Nifti(p) => *p = base.join(&*p),
        ContourSource::Rtstruct { rtstruct, .. } => *rtstruct = base.join(&*rtstruct),
    };
    case.mr = base.join(&case.mr);
    case.uncertainty = base.join(&case.uncertainty);
    case.automatic.values_mut().for_each(resolve);
    for steps in [&mut case.step1, &mut case.step2] {
        steps
            .values_mut()
            .flat_map(|m| m.values_mut())
            .for_each(resolve);
    }
}

/// Parses the ratings CSV (comma-separated, no quoting).
fn read_ratings(path: &Path) -> Result<Ratings> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let bad = |line: usize, what: String| {
        Error::InvalidInput(format!("{}: line {line}: {what}", path.display()))
    };

    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines.next().ok_or_else(|| bad(1, "no header".into()))?;
    let columns: Vec<&str> = header.split(',').map(str::trim).collect();
    if columns.len() < 4 || columns[..4] != ["case", "observer", "step", "minutes"] {
        return Err(bad(
            1,
            format!("header {header:?} does not start with case,observer,step,minutes"),
        ));
    }
    let questions: Vec<String> = columns[4..].iter().map(|s| s.to_string()).collect();

    let mut rows: Vec<RatingRow> = Vec::new();
    for (i, line) in lines {
        let n = i + 1;
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != columns.len() {
            return Err(bad(
                n,
                format!("{} fields, the header has {}", fields.len(), columns.len()),
            ));
        }
        let number = |k: usize| -> Result<f64> {
            fields[k]
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| bad(n, format!("{} {:?} is not a number", columns[k], fields[k])))
        };
        let step = match fields[2] {
            "1" => 1,
            "2" => 2,
            other => return Err(bad(n, format!("step {other:?} is not 1 or 2"))),
        };
        let row = RatingRow {
            case: fields[0].to_string(),
            observer: fields[1].to_string(),
            step,
            minutes: number(3)?,
            answers: (4..fields.len()).map(number).collect::<Result<_>>()?,
        };
        if rows
            .iter()
            .any(|r| r.case == row.case && r.observer == row.observer && r.step == step)
        {
            return Err(bad(
                n,
                format!("second row for {} {} step {step}", row.case, row.observer),
            ));
        }
        rows.push(row);
    }
    Ok(Ratings { questions, rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    const MANIFEST: &str = r#"
[study]
name = "t"
ratings = "ratings.csv"
observers = ["A"]
structures = ["p"]

[[cases]]
id = "c1"
mr = "mr.nii.gz"
uncertainty = "u.nii.gz"
automatic = { p = "auto.nii.gz" }
step1 = { A = { p = "a1.nii.gz" } }
step2 = { A = { p = { rtstruct = "rs.dcm", roi = "Prostate" } } }
"#;

    #[test]
    fn manifest_resolves_paths_and_reads_ratings() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "ratings.csv",
            "case,observer,step,minutes,quality\nc1,A,1,5.5,3\nc1,A,2,4,4\n",
        );
        let m = Manifest::load(&write(dir.path(), "study.toml", MANIFEST)).unwrap();

        assert_eq!(m.study.outlier_volume_ratio, [0.8, 1.25]);
        assert_eq!(m.cases[0].mr, dir.path().join("mr.nii.gz"));
        let s2 = m.cases[0].edited(2, "A", "p").unwrap();
        assert!(matches!(s2, ContourSource::Rtstruct { roi, .. } if roi == "Prostate"));
        assert_eq!(m.ratings.questions, vec!["quality"]);
        assert_eq!(m.ratings.get("c1", "A", 1).unwrap().minutes, 5.5);
    }

    #[test]
    fn missing_pieces_are_named() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "ratings.csv",
            "case,observer,step,minutes,quality\nc1,A,1,5,3\n",
        );
        let err = Manifest::load(&write(dir.path(), "study.toml", MANIFEST)).unwrap_err();
        assert!(
            err.to_string()
                .contains("no row for case c1, observer A, step 2"),
            "{err}"
        );

        write(
            dir.path(),
            "ratings.csv",
            "case,observer,step,minutes,quality\nc1,A,1,x,3\n",
        );
        let err = Manifest::load(&dir.path().join("study.toml")).unwrap_err();
        assert!(
            err.to_string()
                .contains("line 2: minutes \"x\" is not a number"),
            "{err}"
        );

        let broken = MANIFEST.replace("step1 = { A = { p = \"a1.nii.gz\" } }", "step1 = {}");
        let err = Manifest::load(&write(dir.path(), "s2.toml", &broken)).unwrap_err();
        assert!(
            err.to_string().contains("case c1: step1.A.p is missing"),
            "{err}"
        );
    }
}

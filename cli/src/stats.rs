//! `halo stats`: run one observer-study test on a JSON file.
//!
//! The file holds one entry shaped like those of
//! `shared/reference/stats_vectors.json`:
//!
//! - `wilcoxon`: `x`, optional `y` (paired: `x - y` is tested), optional
//!   `kwargs` with SciPy's `zero_method`, `correction`, `alternative`,
//!   `method`;
//! - `fligner`: `samples` (a list of groups), optional `kwargs` with
//!   `center` and `proportiontocut`;
//! - `vgc`: `reference_step1` and `test_step2` (one list of case ratings
//!   per reader), or `reference` and `test` (one reader, or one list per
//!   reader).
//!
//! Other keys (`id`, `expected`, notes) are ignored. The result is printed
//! as JSON on stdout; NaN prints as `null`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context};
use halo_core::stats::{self, wilcoxon, Center, ReaderModel, ReaderRatings, VgcOptions};
use serde_json::{Map, Value};

/// Arguments of `halo stats`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    test: Test,
}

#[derive(Debug, clap::Subcommand)]
enum Test {
    /// Wilcoxon signed-rank test of `x` or of the pairs `x - y`.
    Wilcoxon {
        /// JSON file with `x`, optional `y` and `kwargs`.
        file: PathBuf,
        /// SciPy release whose rules to follow (1.14 or 1.15; later
        /// releases behave as 1.15).
        #[arg(long, default_value = "1.15", value_name = "VERSION")]
        scipy: String,
        /// Seed of a Monte Carlo permutation test (method permutation, n > 13).
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Fligner-Killeen test of equal variances across groups.
    Fligner {
        /// JSON file with `samples` and optional `kwargs`.
        file: PathBuf,
    },
    /// Visual grading characteristics analysis of paired ratings.
    Vgc {
        /// JSON file with per-reader reference and test ratings.
        file: PathBuf,
        /// Bootstrap replicates for the SD and the 95 % interval.
        #[arg(long, default_value_t = 2000)]
        bootstrap: usize,
        /// Permutations for the p-value (all 2^cases swaps when fewer).
        #[arg(long, default_value_t = 2000)]
        permutations: usize,
        /// Seed of the bootstrap and permutation streams.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// `fixed` readers (cases resampled) or `random` (readers too).
        #[arg(long, default_value = "fixed")]
        readers: String,
    },
}

/// Runs `halo stats`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let output = match args.test {
        Test::Wilcoxon { file, scipy, seed } => {
            let entry = Entry::read(&file)?;
            let rules = scipy.parse().map_err(|e| anyhow!("--scipy: {e}"))?;
            run_wilcoxon(&entry, rules, seed)?
        }
        Test::Fligner { file } => run_fligner(&Entry::read(&file)?)?,
        Test::Vgc {
            file,
            bootstrap,
            permutations,
            seed,
            readers,
        } => {
            let readers = readers.parse().map_err(|e| anyhow!("--readers: {e}"))?;
            let options = VgcOptions {
                bootstrap,
                permutations,
                seed,
                readers,
            };
            run_vgc(&Entry::read(&file)?, &options)?
        }
    };

    println!("{}", serde_json::to_string_pretty(&output)?);
    Ok(ExitCode::SUCCESS)
}

fn run_wilcoxon(entry: &Entry, rules: wilcoxon::ScipyRules, seed: u64) -> anyhow::Result<Value> {
    let x = entry.numbers("x")?;
    let y = entry
        .optional("y")
        .map(|_| entry.numbers("y"))
        .transpose()?;
    let mut options = wilcoxon::Options {
        rules,
        seed,
        ..Default::default()
    };
    for (key, value) in entry.kwargs()? {
        let text = || entry.kwarg_str(key, value);
        match key.as_str() {
            "zero_method" => options.zero_method = parse_kwarg(entry, key, text()?)?,
            "alternative" => options.alternative = parse_kwarg(entry, key, text()?)?,
            "method" => options.method = parse_kwarg(entry, key, text()?)?,
            "correction" => {
                options.correction = value
                    .as_bool()
                    .ok_or_else(|| entry.error(&format!("kwargs.{key}"), "is not true or false"))?
            }
            _ => return Err(entry.error(&format!("kwargs.{key}"), "is not a wilcoxon option")),
        }
    }

    let r = wilcoxon::wilcoxon(&x, y.as_deref(), &options).map_err(|e| entry.fail(e))?;
    Ok(serde_json::json!({
        "test": "wilcoxon",
        "statistic": r.statistic,
        "pvalue": r.pvalue,
        "zstatistic": r.zstatistic,
        "method": r.method,
        "n": r.n,
        "n_zero": r.n_zero,
        "r_plus": r.r_plus,
        "r_minus": r.r_minus,
        "scipy_rules": options.rules,
    }))
}

fn run_fligner(entry: &Entry) -> anyhow::Result<Value> {
    let samples = entry.matrix("samples")?;
    let mut center = "median".to_string();
    let mut proportiontocut = 0.05;
    for (key, value) in entry.kwargs()? {
        match key.as_str() {
            "center" => center = entry.kwarg_str(key, value)?.to_string(),
            "proportiontocut" => {
                proportiontocut = value
                    .as_f64()
                    .ok_or_else(|| entry.error(&format!("kwargs.{key}"), "is not a number"))?
            }
            _ => return Err(entry.error(&format!("kwargs.{key}"), "is not a fligner option")),
        }
    }
    let center = match center.as_str() {
        "median" => Center::Median,
        "mean" => Center::Mean,
        "trimmed" => Center::Trimmed { proportiontocut },
        other => {
            let why = format!("{other:?} is not one of median, mean, trimmed");
            return Err(entry.error("kwargs.center", &why));
        }
    };

    let groups: Vec<&[f64]> = samples.iter().map(Vec::as_slice).collect();
    let r = stats::fligner(&groups, center).map_err(|e| entry.fail(e))?;
    Ok(serde_json::json!({
        "test": "fligner",
        "statistic": r.statistic,
        "pvalue": r.pvalue,
        "df": r.df,
    }))
}

fn run_vgc(entry: &Entry, options: &VgcOptions) -> anyhow::Result<Value> {
    let pick = |names: [&str; 2]| -> anyhow::Result<Vec<Vec<f64>>> {
        let key = names
            .iter()
            .find(|k| entry.optional(k).is_some())
            .ok_or_else(|| entry.error(&format!("{} or {}", names[0], names[1]), "is missing"))?;
        match entry.optional(key) {
            Some(Value::Array(a)) if a.iter().all(Value::is_number) => {
                Ok(vec![entry.numbers(key)?])
            }
            _ => entry.matrix(key),
        }
    };
    let reference = pick(["reference_step1", "reference"])?;
    let test = pick(["test_step2", "test"])?;
    if reference.len() != test.len() {
        let why = format!(
            "has {} readers but the reference has {}",
            test.len(),
            reference.len()
        );
        return Err(entry.error("test", &why));
    }

    let readers: Vec<ReaderRatings> = reference
        .into_iter()
        .zip(test)
        .map(|(reference, test)| ReaderRatings { reference, test })
        .collect();
    let r = stats::vgc(&readers, options).map_err(|e| entry.fail(e))?;
    let mut out = serde_json::to_value(&r)?;
    out["test"] = "vgc".into();
    if options.readers == ReaderModel::Random {
        out["note"] = "per-reader estimates resample cases only".into();
    }
    Ok(out)
}

fn parse_kwarg<T: std::str::FromStr<Err = halo_core::Error>>(
    entry: &Entry,
    key: &str,
    text: &str,
) -> anyhow::Result<T> {
    text.parse()
        .map_err(|e: halo_core::Error| entry.error(&format!("kwargs.{key}"), &e.to_string()))
}

/// One JSON object read from a file, with errors that name the file and
/// the key.
struct Entry {
    path: PathBuf,
    object: Map<String, Value>,
}

impl Entry {
    fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
        let value: Value = serde_json::from_str(&text)
            .with_context(|| format!("{}: not valid JSON", path.display()))?;
        match value {
            Value::Object(object) => Ok(Entry {
                path: path.to_owned(),
                object,
            }),
            _ => bail!("{}: expected a JSON object", path.display()),
        }
    }

    fn error(&self, key: &str, why: &str) -> anyhow::Error {
        anyhow!("{}: key {key} {why}", self.path.display())
    }

    fn fail(&self, e: halo_core::Error) -> anyhow::Error {
        anyhow!("{}: {e}", self.path.display())
    }

    fn optional(&self, key: &str) -> Option<&Value> {
        self.object.get(key).filter(|v| !v.is_null())
    }

    fn numbers(&self, key: &str) -> anyhow::Result<Vec<f64>> {
        let value = self
            .optional(key)
            .ok_or_else(|| self.error(key, "is missing"))?;
        numbers(value).ok_or_else(|| self.error(key, "is not a list of numbers"))
    }

    fn matrix(&self, key: &str) -> anyhow::Result<Vec<Vec<f64>>> {
        let value = self
            .optional(key)
            .ok_or_else(|| self.error(key, "is missing"))?;
        value
            .as_array()
            .and_then(|rows| rows.iter().map(numbers).collect())
            .ok_or_else(|| self.error(key, "is not a list of lists of numbers"))
    }

    fn kwargs(&self) -> anyhow::Result<Vec<(&String, &Value)>> {
        match self.optional("kwargs") {
            None => Ok(Vec::new()),
            Some(Value::Object(map)) => Ok(map.iter().collect()),
            Some(_) => Err(self.error("kwargs", "is not an object")),
        }
    }

    fn kwarg_str<'a>(&self, key: &str, value: &'a Value) -> anyhow::Result<&'a str> {
        value
            .as_str()
            .ok_or_else(|| self.error(&format!("kwargs.{key}"), "is not a string"))
    }
}

fn numbers(value: &Value) -> Option<Vec<f64>> {
    value.as_array()?.iter().map(Value::as_f64).collect()
}

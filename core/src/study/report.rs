//! Writes a study's `report.md`, its CSV tables, `results.json` and plots
//! into a folder.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::analysis::{StudyResults, BINS, BIN_WIDTH, COMPARISONS};
use super::plots;
use crate::{Error, Result};

/// Writes everything into `dir` (which must exist) and returns the files
/// written, relative to `dir`.
///
/// # Errors
///
/// [`Error::Io`] naming the file that could not be written, or a plot
/// error.
pub fn write(dir: &Path, results: &StudyResults) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut put = |name: &str, text: String| -> Result<()> {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
        files.push(PathBuf::from(name));
        Ok(())
    };

    let json = serde_json::to_string_pretty(results)
        .map_err(|e| Error::InvalidInput(format!("results.json: {e}")))?;
    put("results.json", json)?;
    put("cases.csv", cases_csv(results))?;
    put("vgc.csv", vgc_csv(results))?;
    put("metrics.csv", metrics_csv(results))?;
    put("wilcoxon.csv", wilcoxon_csv(results))?;
    put("fligner.csv", fligner_csv(results))?;
    put("histograms.csv", histograms_csv(results))?;
    put("outliers.csv", outliers_csv(results))?;

    let plot_dir = dir.join("plots");
    std::fs::create_dir_all(&plot_dir).map_err(|e| Error::io(&plot_dir, e))?;
    let mut plot_files = Vec::new();
    for o in &results.observers {
        for s in &results.structures {
            let [h1, h2] = summed_histograms(results, o, s);
            let stem = plot_dir.join(format!("edits_{}_{}", slug(o), slug(s)));
            let title = format!("Edited voxels by uncertainty: {o}, {s}");
            for f in plots::edit_histogram_plot(&stem, &title, &h1, &h2)? {
                plot_files.push(f.strip_prefix(dir).unwrap_or(&f).to_path_buf());
            }
        }
    }

    let report = markdown(results, &plot_files);
    files.extend(plot_files);
    let path = dir.join("report.md");
    std::fs::write(&path, report).map_err(|e| Error::io(&path, e))?;
    files.push("report.md".into());
    Ok(files)
}

/// File-name-safe version of an identifier.
fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A number for a table: fixed decimals, `n/a` for NaN.
fn num(v: f64, decimals: usize) -> String {
    if v.is_finite() {
        format!("{v:.decimals$}")
    } else {
        "n/a".into()
    }
}

/// A p-value for a table: three significant decimals, `<0.001` below.
fn pval(p: f64) -> String {
    match p {
        p if !p.is_finite() => "n/a".into(),
        p if p < 0.001 => "<0.001".into(),
        p => format!("{p:.3}"),
    }
}

/// Appends one CSV line.
fn push_row(out: &mut String, fields: &[String]) {
    out.push_str(&fields.join(","));
    out.push('\n');
}

/// A number for CSV: full precision, empty for NaN.
fn csv(v: f64) -> String {
    if v.is_finite() {
        v.to_string()
    } else {
        String::new()
    }
}

fn summed_histograms(results: &StudyResults, observer: &str, structure: &str) -> [[u64; BINS]; 2] {
    let mut h = [[0u64; BINS]; 2];
    for r in results
        .records
        .iter()
        .filter(|r| r.observer == observer && r.structure == structure)
    {
        for (step, counts) in r.histograms.iter().enumerate() {
            for (b, c) in counts.iter().enumerate() {
                h[step][b] += c;
            }
        }
    }
    h
}

fn cases_csv(results: &StudyResults) -> String {
    let mut out = String::from("case,observer,structure,comparison,dice,surface_dice\n");
    for r in &results.records {
        for (m, c) in r.comparisons.iter().zip(COMPARISONS) {
            let surface = m.surface_dice.map(csv).unwrap_or_default();
            let ids = [&r.case, &r.observer, &r.structure];
            let mut row: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
            row.extend([c.to_string(), csv(m.dice), surface]);
            push_row(&mut out, &row);
        }
    }
    out
}

fn vgc_csv(results: &StudyResults) -> String {
    let mut out = String::from(
        "question,observer,auc,sd,ci_low,ci_high,pvalue,bootstrap,permutations,seed\n",
    );
    for q in &results.vgc {
        let r = &q.result;
        let o = &r.options;
        let names = results.observers.iter().map(String::as_str).chain(["all"]);
        for (name, e) in names.zip(r.readers.iter().chain([&r.pooled])) {
            let mut row = vec![q.question.clone(), name.to_string()];
            row.extend([e.auc, e.sd, e.ci_low, e.ci_high, e.pvalue].map(csv));
            row.extend([o.bootstrap as u64, o.permutations as u64, o.seed].map(|v| v.to_string()));
            push_row(&mut out, &row);
        }
    }
    out
}

fn metrics_csv(results: &StudyResults) -> String {
    let mut out = String::from("observer,structure,comparison,metric,n,median,mean,sd,min,max\n");
    for m in &results.metrics {
        let s = &m.summary;
        let mut row = vec![
            m.observer.clone(),
            m.structure.clone(),
            m.comparison.clone(),
        ];
        row.extend([m.metric.clone(), s.n.to_string()]);
        row.extend([s.median, s.mean, s.sd, s.min, s.max].map(csv));
        push_row(&mut out, &row);
    }
    out
}

fn wilcoxon_csv(results: &StudyResults) -> String {
    let mut out = String::from(
        "observer,structure,measure,median_step1,median_step2,median_change,\
         median_change_percent,statistic,pvalue\n",
    );
    for t in &results.step_tests {
        let structure = t.structure.clone().unwrap_or_default();
        let mut row = vec![t.observer.clone(), structure, t.measure.clone()];
        let (a, b, c) = (t.median_step1, t.median_step2, t.median_change);
        row.extend([a, b, c, t.median_change_percent, t.statistic, t.pvalue].map(csv));
        push_row(&mut out, &row);
    }
    out
}

fn fligner_csv(results: &StudyResults) -> String {
    let mut out = String::from("structure,comparison,metric,statistic,pvalue\n");
    for f in &results.spreads {
        let mut row = vec![f.structure.clone(), f.comparison.clone(), f.metric.clone()];
        row.extend([f.statistic, f.pvalue].map(csv));
        push_row(&mut out, &row);
    }
    out
}

fn histograms_csv(results: &StudyResults) -> String {
    let mut out = String::from("case,observer,structure,step,bin_low,bin_high,edited_voxels\n");
    for r in &results.records {
        for (step, counts) in r.histograms.iter().enumerate() {
            for (b, c) in counts.iter().enumerate() {
                let (lo, hi) = (b as f64 * BIN_WIDTH, (b + 1) as f64 * BIN_WIDTH);
                let mut row = vec![r.case.clone(), r.observer.clone(), r.structure.clone()];
                row.extend([
                    (step + 1).to_string(),
                    format!("{lo:.1}"),
                    format!("{hi:.1}"),
                ]);
                row.push(c.to_string());
                push_row(&mut out, &row);
            }
        }
    }
    out
}

fn outliers_csv(results: &StudyResults) -> String {
    let mut out = String::from("case,observer,structure,volume_ratio\n");
    for o in &results.outliers {
        let row = [
            o.case.clone(),
            o.observer.clone(),
            o.structure.clone(),
            csv(o.volume_ratio),
        ];
        push_row(&mut out, &row);
    }
    out
}

fn markdown(results: &StudyResults, plot_files: &[PathBuf]) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# {}\n", results.name);
    let _ = writeln!(
        md,
        "Step 1: contours edited without the uncertainty map; step 2: with it. \
         Tables as CSV beside this file; everything in `results.json`.\n"
    );

    let _ = writeln!(md, "## Ratings: VGC analysis\n");
    if let Some(q) = results.vgc.first() {
        let o = &q.result.options;
        let _ = writeln!(
            md,
            "AUC +- bootstrap SD [95 % interval] (two-sided permutation p). Step 1 is the \
             reference, step 2 the test: AUC above 0.5 means step 2 was rated higher. \
             {} bootstrap samples, {} permutations, seed {}, fixed readers; \"all\" is the \
             mean of the observers' AUCs.\n",
            o.bootstrap, o.permutations, o.seed
        );
    }
    let _ = writeln!(md, "| question | {} | all |", results.observers.join(" | "));
    let _ = writeln!(md, "|---|{}---|", "---|".repeat(results.observers.len()));
    for q in &results.vgc {
        let cell = |e: &crate::stats::VgcEstimate| {
            format!(
                "{} +- {} [{}, {}] ({})",
                num(e.auc, 2),
                num(e.sd, 2),
                num(e.ci_low, 2),
                num(e.ci_high, 2),
                pval(e.pvalue)
            )
        };
        let cells: Vec<String> = q.result.readers.iter().map(cell).collect();
        let _ = writeln!(
            md,
            "| {} | {} | {} |",
            q.question,
            cells.join(" | "),
            cell(&q.result.pooled)
        );
    }

    let _ = writeln!(
        md,
        "\n## Agreement\n\nMedian +- SD [min, max] over cases.\n"
    );
    let _ = writeln!(
        md,
        "| observer | structure | metric | {} |",
        COMPARISONS.join(" | ")
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|");
    for o in &results.observers {
        for s in &results.structures {
            for metric in super::analysis::METRICS {
                let cells: Vec<String> = COMPARISONS
                    .iter()
                    .map(|c| {
                        results
                            .metrics
                            .iter()
                            .find(|m| {
                                &m.observer == o
                                    && &m.structure == s
                                    && m.comparison == *c
                                    && m.metric == metric
                            })
                            .map(|m| {
                                let d = &m.summary;
                                if d.n == 0 {
                                    "n/a".to_string()
                                } else {
                                    format!(
                                        "{} +- {} [{}, {}]",
                                        num(d.median, 3),
                                        num(d.sd, 3),
                                        num(d.min, 3),
                                        num(d.max, 3)
                                    )
                                }
                            })
                            .unwrap_or_default()
                    })
                    .collect();
                let _ = writeln!(md, "| {o} | {s} | {metric} | {} |", cells.join(" | "));
            }
        }
    }
    if results
        .metrics
        .iter()
        .any(|m| m.metric == "surface_dice" && m.summary.n == 0)
    {
        let _ = writeln!(
            md,
            "\nSurface Dice: n/a until halo's metrics module provides it."
        );
    }

    let _ = writeln!(
        md,
        "\n## Step 1 against step 2 (Wilcoxon signed-rank)\n\n\
         Metrics against the automatic contour; change is step 2 minus step 1 (median of the \
         paired changes; percent of the step 1 median). Two-sided, SciPy 1.15 rules.\n"
    );
    let _ = writeln!(
        md,
        "| observer | structure | measure | step 1 | step 2 | change | change % | W | p |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|");
    for t in &results.step_tests {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            t.observer,
            t.structure.as_deref().unwrap_or("-"),
            t.measure,
            num(t.median_step1, 3),
            num(t.median_step2, 3),
            num(t.median_change, 3),
            num(t.median_change_percent, 1),
            num(t.statistic, 1),
            pval(t.pvalue)
        );
    }

    let _ = writeln!(
        md,
        "\n## Spread across observers (Fligner-Killeen, median centred)\n"
    );
    let _ = writeln!(md, "| structure | comparison | metric | statistic | p |");
    let _ = writeln!(md, "|---|---|---|---|---|");
    for f in &results.spreads {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            f.structure,
            f.comparison,
            f.metric,
            num(f.statistic, 3),
            pval(f.pvalue)
        );
    }

    let [lo, hi] = results.outlier_limits;
    let _ = writeln!(md, "\n## Outliers\n\nCase-observer pairs whose step 2 / step 1 volume ratio lies outside [{lo}, {hi}].\n");
    if results.outliers.is_empty() {
        let _ = writeln!(md, "None.");
    } else {
        let _ = writeln!(
            md,
            "| case | observer | structure | volume ratio |\n|---|---|---|---|"
        );
        for o in &results.outliers {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} |",
                o.case,
                o.observer,
                o.structure,
                num(o.volume_ratio, 3)
            );
        }
    }

    let _ = writeln!(
        md,
        "\n## Edited voxels by uncertainty\n\nVoxels where the edited contour differs from the \
         automatic one, summed over cases, in uncertainty bins of width {BIN_WIDTH}.\n"
    );
    for p in plot_files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "svg"))
    {
        let _ = writeln!(md, "![{}]({})\n", p.display(), p.display());
    }
    if !plots::plots_available() {
        let _ = writeln!(md, "Plots skipped: no TrueType font (set HALO_FONT).");
    }
    md
}

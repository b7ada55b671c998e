//! `halo inspect`: list the DICOM series of a folder with their geometry.

use std::path::PathBuf;
use std::process::ExitCode;

use halo_core::dicom::{scan_folder, series_grid, SplitBy};
use serde::Serialize;

/// Arguments of `halo inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A folder (searched recursively) or a single DICOM file.
    pub folder: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// List the volumes inside multi-volume series split by this attribute
    /// (for example SequenceName or DiffusionBValue).
    #[arg(long, value_name = "KEYWORD")]
    pub split_by: Option<String>,
}

/// One series as `--json` prints it. `dims` and `spacing` are `[x, y, z]`,
/// `origin` LPS in mm, `direction` SimpleITK's `GetDirection()` order.
#[derive(Debug, Serialize)]
struct SeriesJson {
    series_instance_uid: String,
    series_number: Option<i64>,
    series_description: String,
    modality: String,
    files: usize,
    dims: Option<[usize; 3]>,
    spacing: Option<[f64; 3]>,
    origin: Option<[f64; 3]>,
    direction: Option<[f64; 9]>,
    frame_of_reference_uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    split: Option<SplitJson>,
    problem: Option<String>,
}

#[derive(Debug, Serialize)]
struct SplitJson {
    attribute: String,
    value: String,
}

/// Runs `halo inspect`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let scan = scan_folder(&args.folder)?;

    let mut out = Vec::new();
    for s in &scan.series {
        let values = args
            .split_by
            .as_ref()
            .map(|a| halo_core::dicom::series::split_values(s, a))
            .filter(|v| v.len() > 1);
        let splits: Vec<Option<SplitBy>> = match (&args.split_by, values) {
            (Some(attribute), Some(values)) => values
                .into_keys()
                .map(|v| {
                    Some(SplitBy {
                        attribute: attribute.clone(),
                        value: Some(v),
                    })
                })
                .collect(),
            _ => vec![None],
        };
        for split in splits {
            let geometry = series_grid(s, split.as_ref());
            let files = match &geometry {
                Ok((_, inst)) => inst.len(),
                Err(_) => s.instances.len(),
            };
            let grid = geometry.as_ref().ok().map(|(g, _)| g.clone());
            out.push(SeriesJson {
                series_instance_uid: s.series_instance_uid.clone(),
                series_number: s.series_number,
                series_description: s.series_description.clone(),
                modality: s.modality.clone(),
                files,
                dims: grid.as_ref().map(|g| g.dims),
                spacing: grid.as_ref().map(|g| g.spacing),
                origin: grid.as_ref().map(|g| g.origin),
                direction: grid.as_ref().map(|g| g.direction_flat()),
                frame_of_reference_uid: s.frame_of_reference_uid.clone(),
                split: split.map(|sp| SplitJson {
                    attribute: sp.attribute,
                    value: sp.value.unwrap_or_default(),
                }),
                problem: geometry.err().map(|e| e.to_string()),
            });
        }
    }
    for (p, why) in &scan.broken {
        eprintln!(
            "halo: warning: {} is a DICOM file that cannot be parsed: {why}",
            p.display()
        );
    }
    if !scan.skipped.is_empty() {
        eprintln!(
            "halo: skipped {} file(s) that are not DICOM (-v lists them)",
            scan.skipped.len()
        );
    }

    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "series": out }))?
        );
    } else {
        print_table(&out);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(rows: &[SeriesJson]) {
    println!(
        "{:>4}  {:<28} {:<4} {:>5}  {:<16} {:<22} status",
        "#", "description", "mod", "files", "dims", "spacing (mm)"
    );
    for r in rows {
        let num = r
            .series_number
            .map(|n| n.to_string())
            .unwrap_or_else(|| "-".into());
        let mut desc = r.series_description.clone();
        if let Some(s) = &r.split {
            desc = format!("{desc} [{}={}]", s.attribute, s.value);
        }
        let dims = r
            .dims
            .map(|d| format!("{}x{}x{}", d[0], d[1], d[2]))
            .unwrap_or_else(|| "-".into());
        let spacing = r
            .spacing
            .map(|s| format!("{:.3}x{:.3}x{:.3}", s[0], s[1], s[2]))
            .unwrap_or_else(|| "-".into());
        let status = r.problem.clone().unwrap_or_else(|| "ok".into());
        println!(
            "{num:>4}  {:<28} {:<4} {:>5}  {dims:<16} {spacing:<22} {status}",
            truncate(&desc, 28),
            r.modality,
            r.files
        );
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).chain(std::iter::once('~')).collect()
    }
}

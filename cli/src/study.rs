//! `halo study`: analyse an observer study and write its report.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;

use anyhow::{bail, Context};
use halo_core::study::{self, Manifest};

use crate::progress::Progress;

/// Arguments of `halo study`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The study manifest (TOML).
    pub manifest: PathBuf,
    /// Folder to create for report.md, the CSV and JSON tables and plots.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace `--out` if it exists.
    #[arg(long)]
    pub force: bool,
}

/// Runs `halo study`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    crate::guard::output_is_not_input(
        &args.out,
        &[args.manifest.parent().unwrap_or(std::path::Path::new("."))],
    )?;
    if args.out.exists() && !args.force {
        bail!("{}: exists (use --force to replace it)", args.out.display());
    }
    let manifest = Manifest::load(&args.manifest)?;

    let progress = Mutex::new(Progress::new("cases", manifest.cases.len() as u64));
    let report = |done: usize, _total: usize| {
        if let Ok(mut p) = progress.lock() {
            p.set(done as u64);
        }
    };
    let records = study::measure(&manifest, &report)?;
    if let Ok(p) = progress.into_inner() {
        p.finish();
    }
    let results = study::analyse(&manifest, records)?;

    // Write into a sibling temporary folder and rename, so that a failure
    // leaves no partial report.
    let parent = match args.out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).with_context(|| format!("{}", parent.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".halo-study-")
        .tempdir_in(&parent)
        .with_context(|| format!("{}: cannot create a temporary folder", parent.display()))?;
    let files = study::report::write(tmp.path(), &results)?;
    if args.out.exists() {
        std::fs::remove_dir_all(&args.out).with_context(|| format!("{}", args.out.display()))?;
    }
    let tmp = tmp.keep();
    std::fs::rename(&tmp, &args.out).with_context(|| format!("{}", args.out.display()))?;

    println!(
        "{}: {} files",
        args.out.join("report.md").display(),
        files.len()
    );
    Ok(ExitCode::SUCCESS)
}

//! `halo convert`: write one DICOM series as a NIfTI volume.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use halo_core::dicom::{load_series, scan_folder, SeriesSelector, SplitBy};

/// Arguments of `halo convert`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A folder holding the series (searched recursively).
    pub series: PathBuf,
    /// The output file, `.nii` or `.nii.gz`.
    pub out: PathBuf,
    /// Which series: SeriesInstanceUID, SeriesNumber or SeriesDescription.
    /// Needed when the folder holds more than one.
    #[arg(long = "series", value_name = "UID|NUMBER|DESCRIPTION")]
    pub select: Option<String>,
    /// Split a multi-volume series by this attribute (for example
    /// SequenceName); use with --split-value.
    #[arg(long, value_name = "KEYWORD", requires = "split_value")]
    pub split_by: Option<String>,
    /// The value of --split-by to keep.
    #[arg(long, value_name = "VALUE", requires = "split_by")]
    pub split_value: Option<String>,
    /// Replace OUT if it exists.
    #[arg(long)]
    pub force: bool,
}

/// Runs `halo convert`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let name = args.out.to_string_lossy();
    if !(name.ends_with(".nii") || name.ends_with(".nii.gz")) {
        anyhow::bail!("output {} must end in .nii or .nii.gz", args.out.display());
    }
    if args.out.exists() && !args.force {
        anyhow::bail!(
            "output {} exists; use --force to replace it",
            args.out.display()
        );
    }
    let selector = match &args.select {
        Some(s) => s.parse()?,
        None => SeriesSelector::Only,
    };
    let split = args.split_by.clone().map(|attribute| SplitBy {
        attribute,
        value: args.split_value.clone(),
    });

    eprintln!("halo: scanning {}", args.series.display());
    let scan = scan_folder(&args.series)?;
    let series = scan.select(&selector)?;
    eprintln!("halo: loading series {}", series.label());
    let volume = load_series(series, split.as_ref())?;

    // Write beside the target and rename, so that a failure leaves no
    // partial output.
    let dir = args
        .out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let file = args
        .out
        .file_name()
        .context("output has no file name")?
        .to_string_lossy()
        .into_owned();
    // One extension only: the nifti writer derives names from the first dot.
    let tmp = dir.join(format!(
        ".halo-partial-{}{}",
        std::process::id(),
        if file.ends_with(".gz") {
            ".nii.gz"
        } else {
            ".nii"
        }
    ));
    let written = halo_core::nifti::write(&tmp, &volume).and_then(|()| {
        std::fs::rename(&tmp, &args.out).map_err(|e| halo_core::Error::io(&args.out, e))
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.into());
    }

    let d = volume.grid.dims;
    eprintln!(
        "halo: wrote {} ({}x{}x{} voxels)",
        args.out.display(),
        d[0],
        d[1],
        d[2]
    );
    Ok(ExitCode::SUCCESS)
}

//! `halo rasterize`: the ROIs of an RTSTRUCT as NIfTI masks on an image
//! grid, with their volumes.
//!
//! The grid is a DICOM series (whose frame of reference the ROIs must
//! share) or the grid of a NIfTI file. Contours go to the slice whose plane
//! holds them and are filled at voxel centres, XOR-ing those of a slice.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::bail;
use halo_core::dicom::rtstruct::{self, ReadOptions};
use halo_core::dicom::{scan_folder, ImageReference, SeriesSelector};
use halo_core::Grid;

/// Arguments of `halo rasterize`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The RTSTRUCT file.
    pub rtstruct: PathBuf,
    /// The output folder for `<number>_<name>.nii.gz` masks (must not
    /// exist unless --force).
    pub out: PathBuf,
    /// A folder holding the image series that gives the grid.
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present = "like",
        conflicts_with = "like"
    )]
    pub image: Option<PathBuf>,
    /// Which series of --image: SeriesInstanceUID, SeriesNumber or
    /// SeriesDescription.
    #[arg(long = "series", value_name = "UID|NUMBER|DESCRIPTION")]
    pub select: Option<String>,
    /// A NIfTI file whose grid is used (no frame-of-reference check).
    #[arg(long, value_name = "NIFTI")]
    pub like: Option<PathBuf>,
    /// ROIs to write, by name or number; all when absent. Repeatable.
    #[arg(long = "roi", value_name = "NAME|NUMBER")]
    pub rois: Vec<String>,
    /// Replace OUT if it exists.
    #[arg(long)]
    pub force: bool,
}

/// Runs `halo rasterize`; prints one JSON object per ROI on stdout.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    crate::guard::output_is_not_input(&args.out, &[&args.rtstruct])?;
    if args.out.exists() && !args.force {
        bail!(
            "output {} exists; use --force to replace it",
            args.out.display()
        );
    }
    let (grid, frame) = grid_of(&args)?;
    let rs = rtstruct::read(&args.rtstruct)?;
    let rois: Vec<&rtstruct::Roi> = if args.rois.is_empty() {
        rs.rois.iter().collect()
    } else {
        args.rois
            .iter()
            .map(|r| rs.select(r))
            .collect::<Result<_, _>>()?
    };

    let mut report = Vec::new();
    let mut masks = Vec::new();
    for roi in rois {
        let mask = rs.mask(roi, &grid, frame.as_deref(), &ReadOptions::default())?;
        let voxels = mask.data.iter().filter(|&&v| v != 0).count();
        let file = format!("{}_{}.nii.gz", roi.number, file_stem(&roi.name));
        report.push(serde_json::json!({
            "number": roi.number,
            "name": roi.name,
            "contours": roi.contours.len(),
            "voxels": voxels,
            "volume_cm3": voxels as f64 * grid.voxel_volume_mm3() / 1000.0,
            "file": file,
        }));
        masks.push((file, mask));
    }

    halo_core::dicom::write::publish_dir(&args.out, args.force, |staged| {
        for (file, mask) in &masks {
            halo_core::nifti::write_u8(&staged.join(file), mask)?;
        }
        Ok(())
    })?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(ExitCode::SUCCESS)
}

fn grid_of(args: &Args) -> anyhow::Result<(Grid, Option<String>)> {
    if let Some(like) = &args.like {
        return Ok((halo_core::nifti::read(like)?.grid, None));
    }
    let image: &Path = args.image.as_deref().unwrap_or(Path::new("."));
    let selector = match &args.select {
        Some(s) => s.parse()?,
        None => SeriesSelector::Only,
    };
    let scan = scan_folder(image)?;
    let reference = ImageReference::from_series(scan.select(&selector)?, None)?;
    Ok((reference.grid, Some(reference.frame_of_reference_uid)))
}

/// An ROI name as a file name: letters, digits, `-` and `_` kept, the rest
/// replaced by `_`.
fn file_stem(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

//! `halo export-dicom`: NIfTI masks and uncertainty maps on an MR series
//! as an RTSTRUCT and PT series that a planning system imports.
//!
//! OUT receives `rtstruct.dcm` (every `--mask`, plus `--band` structures)
//! and one `uncertainty-<label>/` PT series per `--uncertainty`. It is
//! built in a temporary sibling folder and renamed into place.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use halo_core::dicom::pt::{self, Corner, PtOptions, ScaleBlock};
use halo_core::dicom::rtstruct::{self, StructureMask, WriteOptions};
use halo_core::dicom::{scan_folder, ImageReference, SeriesSelector};
use halo_core::{Grid, Volume};

/// Arguments of `halo export-dicom`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A folder holding the MR series the outputs are placed on.
    pub series: PathBuf,
    /// The output folder (must not exist unless --force).
    pub out: PathBuf,
    /// Which series: SeriesInstanceUID, SeriesNumber or SeriesDescription.
    #[arg(long = "series", value_name = "UID|NUMBER|DESCRIPTION")]
    pub select: Option<String>,
    /// A structure: NAME=MASK.nii[.gz][:TYPE[:R,G,B]] (TYPE an
    /// RTROIInterpretedType, default ORGAN). Repeatable.
    #[arg(long = "mask", value_name = "SPEC")]
    pub masks: Vec<String>,
    /// An uncertainty map: LABEL=MAP.nii[.gz]. Repeatable.
    #[arg(long = "uncertainty", value_name = "SPEC")]
    pub uncertainty: Vec<String>,
    /// Also write, per uncertainty map, a structure of voxels with
    /// uncertainty >= this value.
    #[arg(long, value_name = "T")]
    pub band: Option<f32>,
    /// Corner of the fixed-scale block: top-left, top-right, bottom-left,
    /// bottom-right, or auto (the darkest corner of the MR).
    #[arg(long, default_value = "auto")]
    pub block_corner: String,
    /// Edge of the fixed-scale block in voxels.
    #[arg(long, default_value_t = 4)]
    pub block_size: usize,
    /// Replace OUT if it exists.
    #[arg(long)]
    pub force: bool,
}

/// Runs `halo export-dicom`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.masks.is_empty() && args.uncertainty.is_empty() {
        bail!("nothing to export: give at least one --mask or --uncertainty");
    }
    crate::guard::output_is_not_input(&args.out, &[&args.series])?;
    if args.out.exists() && !args.force {
        bail!(
            "output {} exists; use --force to replace it",
            args.out.display()
        );
    }
    let selector = match &args.select {
        Some(s) => s.parse()?,
        None => SeriesSelector::Only,
    };
    let scan = scan_folder(&args.series)?;
    let series = scan.select(&selector)?;
    let reference = ImageReference::from_series(series, None)?;

    let mut structures = Vec::new();
    for spec in &args.masks {
        structures.push(read_mask(spec, &reference.grid)?);
    }
    let mut maps = Vec::new();
    for spec in &args.uncertainty {
        let (label, path) = spec
            .split_once('=')
            .with_context(|| format!("--uncertainty {spec:?} is not LABEL=PATH"))?;
        let map = on_grid(
            halo_core::nifti::read(Path::new(path))?,
            &reference.grid,
            path,
        )?;
        if let Some(t) = args.band {
            structures.push(rtstruct::band_structure(&map, t, label)?);
        }
        maps.push((label.to_string(), map));
    }
    let block = block(&args, series)?;

    halo_core::dicom::write::publish_dir(&args.out, args.force, |staged| {
        if !structures.is_empty() {
            let options = WriteOptions {
                overwrite: true,
                ..WriteOptions::default()
            };
            rtstruct::write(
                &staged.join("rtstruct.dcm"),
                &reference,
                &structures,
                &options,
            )?;
        }
        for (k, (label, map)) in maps.iter().enumerate() {
            let options = PtOptions {
                block,
                series_number: 9002 + k as i64,
                ..PtOptions::default()
            };
            let dir = staged.join(format!("uncertainty-{label}"));
            pt::write_uncertainty_series(&dir, &reference, map, label, &options)?;
        }
        Ok(())
    })?;
    eprintln!("halo: wrote {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}

/// Parses NAME=PATH[:TYPE[:R,G,B]] and reads the mask onto `grid`.
fn read_mask(spec: &str, grid: &Grid) -> anyhow::Result<StructureMask> {
    let (name, rest) = spec
        .split_once('=')
        .with_context(|| format!("--mask {spec:?} is not NAME=PATH[:TYPE[:R,G,B]]"))?;
    let mut parts = rest.splitn(3, ':');
    let path = parts.next().unwrap_or_default();
    let interpreted_type = parts.next().unwrap_or("ORGAN").to_string();
    let colour = match parts.next() {
        Some(c) => {
            let v: Vec<u8> = c
                .split(',')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .with_context(|| format!("colour {c:?} of --mask {name} is not R,G,B"))?;
            <[u8; 3]>::try_from(v)
                .map_err(|_| anyhow::anyhow!("colour {c:?} of --mask {name} is not R,G,B"))?
        }
        None => [255, 0, 0],
    };
    let mask = on_grid(halo_core::nifti::read(Path::new(path))?, grid, path)?;
    Ok(StructureMask {
        name: name.to_string(),
        interpreted_type,
        colour,
        mask: mask.map(|&v| u8::from(v >= 0.5)),
        description: String::new(),
    })
}

/// Places a NIfTI volume on the MR grid, refusing one that is elsewhere
/// (NIfTI stores geometry as float32, hence the tolerances).
fn on_grid(volume: Volume, grid: &Grid, path: &str) -> anyhow::Result<Volume> {
    let g = &volume.grid;
    let close = |a: &[f64], b: &[f64], tol: f64| a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol);
    let same = g.dims == grid.dims
        && close(&g.spacing, &grid.spacing, 1e-4)
        && close(&g.origin, &grid.origin, 1e-3)
        && close(&g.direction_flat(), &grid.direction_flat(), 1e-4);
    if !same {
        bail!("{path} is on the grid {g}, not on the series grid {grid}");
    }
    Ok(Volume::new(grid.clone(), volume.data)?)
}

fn block(args: &Args, series: &halo_core::dicom::SeriesEntry) -> anyhow::Result<ScaleBlock> {
    if args.block_corner == "auto" {
        let mr = halo_core::dicom::load_series(series, None)?;
        return Ok(ScaleBlock::darkest_corner(&mr, args.block_size));
    }
    let corner: Corner = args.block_corner.parse()?;
    Ok(ScaleBlock {
        corner,
        size: args.block_size,
    })
}

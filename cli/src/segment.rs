//! `halo segment`: run a model's ensemble on one series and write what the
//! planning system imports: `rtstruct.dcm` (the ensemble contours) and one
//! PT series `uncertainty-<label>/` per structure, plus `report.json`, and
//! with `--nifti` the labels, mean probabilities and uncertainty maps as
//! NIfTI. `--send` then delivers the DICOM outputs by C-STORE.
//!
//! Everything is written into a temporary folder beside OUT and renamed
//! into place at the end, so a failed or interrupted run leaves nothing.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use halo_core::backend::Backend;
use halo_core::dicom::outputs::{self, file_part, DicomOutputs, Structure};
use halo_core::dicom::pt::{Corner, ScaleBlock};
use halo_core::dicom::send::{send_paths, Destination, SendOptions};
use halo_core::dicom::{load_series, scan_folder, ImageReference, SeriesSelector};
use halo_core::inference::generic::LabelSource;
use halo_core::inference::{self, Observer, Options, Prediction, Step};
use halo_core::model::{Model, PluginMembers, Preprocessing};
use halo_core::uncertainty::{summarize, EnsembleRule};
use halo_core::{Grid, Volume};
use ndarray::{Array3, Array4, Axis};
use rayon::prelude::*;
use serde_json::json;

use crate::progress::Progress;

/// Uncertainty at or above which a voxel counts as uncertain in the report.
const UNCERTAIN_AT: f32 = 0.1;

/// Arguments of `halo segment`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model folder (with halo-model.json); defaults to the embedded
    /// sample model.
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// A folder holding the DICOM series (searched recursively).
    #[arg(long, value_name = "DIR", required_unless_present = "image")]
    pub series: Option<PathBuf>,
    /// Which series of the folder: SeriesInstanceUID, SeriesNumber or
    /// SeriesDescription (as `halo convert --series`).
    #[arg(long, value_name = "UID|NUMBER|DESCRIPTION", requires = "series")]
    pub select: Option<String>,
    /// A NIfTI image instead of a DICOM series.
    #[arg(long, value_name = "FILE", conflicts_with = "series")]
    pub image: Option<PathBuf>,
    /// The output folder.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Replace OUT if it exists.
    #[arg(long)]
    pub force: bool,
    /// Delta degrees of freedom of the standard deviation: 0 (population,
    /// range 0 to 0.5 for a binary structure) or 1 (sample).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=1))]
    pub ddof: u8,
    /// Worker threads (0: all cores; at most 256).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=256))]
    pub threads: u16,
    /// Segment the series even when its ImageType says it is a diffusion
    /// image and the model's channel is not (ADC or trace into a T2 model).
    #[arg(long)]
    pub any_series: bool,
    /// Device for the networks: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu", value_parser = parse_device)]
    pub device: String,
    /// Ensemble label rule.
    #[arg(long, value_enum, default_value_t = Rule::MeanLogits)]
    pub ensemble: Rule,
    /// Also write the entropy of the mean probabilities.
    #[arg(long)]
    pub entropy: bool,
    /// Also write the mutual information between prediction and member.
    #[arg(long)]
    pub mutual_information: bool,
    /// Also write every member's probabilities (research and testing).
    #[arg(long)]
    pub member_probabilities: bool,
    /// Also write NIfTI research outputs (labels, probabilities,
    /// uncertainty); always on for a NIfTI --image, which has no DICOM to
    /// reference.
    #[arg(long)]
    pub nifti: bool,
    /// Add uncertainty band structures (uncertainty >= T, type CONTROL,
    /// named `U>=T <label>`) to the RTSTRUCT; repeat for several levels.
    #[arg(long = "band", value_name = "T", value_parser = parse_band)]
    pub bands: Vec<f32>,
    /// Corner of the fixed-scale block (value 0.5) in every PT slice:
    /// auto (the darkest corner of the MR), top-left, top-right,
    /// bottom-left or bottom-right.
    #[arg(long, default_value = "auto")]
    pub block_corner: String,
    /// Side of the fixed-scale block in voxels.
    #[arg(long, default_value_t = 4)]
    pub block_size: usize,
    /// Send the DICOM outputs to the planning system's DICOM import,
    /// written AE@HOST:PORT, after writing them.
    #[arg(long, value_name = "AE@HOST:PORT")]
    pub send: Option<String>,
    /// Calling AE title for --send.
    #[arg(long, value_name = "AE", default_value = "HALO", requires = "send")]
    pub calling_ae: String,
}

/// The ensemble label rule on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Rule {
    /// Mean of the members' logits (nnU-Net's rule).
    MeanLogits,
    /// Mean of the members' probabilities.
    MeanProbabilities,
}

/// Runs `halo segment`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    if args.out.exists() && !args.force {
        anyhow::bail!(
            "output {} exists; use --force to replace it",
            args.out.display()
        );
    }
    let model_dir = match &args.model {
        Some(m) => m.clone(),
        None => default_model()?,
    };
    let model = Model::open(&model_dir)?;
    if model.pipeline.input_channels != 1 {
        anyhow::bail!(
            "model {} takes {} input channels; halo segment passes one image",
            model_dir.display(),
            model.pipeline.input_channels
        );
    }

    let inputs: Vec<&Path> = [
        args.series.as_deref(),
        args.image.as_deref(),
        args.model.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect();
    crate::guard::output_is_not_input(&args.out, &inputs)?;
    if let Some(series) = &args.series {
        crate::guard::output_is_not_inside(&args.out, series)?;
    }
    halo_core::dicom::send::validate_ae_title(&args.calling_ae, "--calling-ae")?;
    let destination = match &args.send {
        Some(d) => Some(crate::send::parse_destination(d).map_err(anyhow::Error::msg)?),
        None => None,
    };
    let t = Instant::now();
    let (volume, input_label, reference) = load_input(&args, &model)?;
    let load_s = t.elapsed().as_secs_f64();
    if destination.is_some() && reference.is_none() {
        anyhow::bail!("--send needs a DICOM --series: a NIfTI --image gives no DICOM outputs");
    }
    let block = scale_block(&args, &volume, reference.is_some())?;

    let backend = Backend::load()?;
    let mut members = PluginMembers::new(&model, backend, &args.device, usize::from(args.threads));
    let options = Options {
        ddof: usize::from(args.ddof),
        ensemble: match args.ensemble {
            Rule::MeanLogits => EnsembleRule::MeanLogits,
            Rule::MeanProbabilities => EnsembleRule::MeanProbabilities,
        },
        entropy: args.entropy,
        mutual_information: args.mutual_information,
        threads: usize::from(args.threads),
    };
    let mut observer = CliObserver {
        progress: None,
        keep_members: args.member_probabilities,
        members: vec![],
    };
    let g = &volume.grid;
    let spacing_zyx = [g.spacing[2], g.spacing[1], g.spacing[0]];
    let values: Vec<u16> = model.manifest.labels.iter().map(|l| l.value).collect();
    let prediction = match &model.manifest.preprocessing {
        Preprocessing::Monai(_) => inference::generic::predict(
            &[volume.data.view()],
            &volume.grid,
            &model,
            &mut members,
            &options,
            &mut observer,
        ),
        _ => inference::predict(
            &[volume.data.view()],
            spacing_zyx,
            &model.pipeline,
            &values,
            &mut members,
            &options,
            &mut observer,
        ),
    };
    if let Some(p) = observer.progress.take() {
        p.finish();
    }
    let prediction = prediction?;

    let t = Instant::now();
    let report = report(
        &model,
        &volume.grid,
        &prediction,
        &args,
        &input_label,
        load_s,
    );
    let outputs = Outputs {
        grid: &volume.grid,
        model: &model,
        prediction: &prediction,
        member_probabilities: &observer.members,
        report,
        reference: reference.as_ref(),
        nifti: args.nifti || reference.is_none(),
        bands: &args.bands,
        block,
    };
    write_atomically(&args.out, args.force, |dir| {
        write_outputs(dir, &outputs, started, t)
    })?;

    eprintln!(
        "halo: wrote {} ({} members, {:.1} s)",
        args.out.display(),
        prediction.members,
        started.elapsed().as_secs_f64()
    );
    match destination {
        Some(d) => send_outputs(&args, &d),
        None => Ok(ExitCode::SUCCESS),
    }
}

/// Sends the DICOM outputs (RTSTRUCT and PT series) to `destination`;
/// fails when any instance was not stored.
fn send_outputs(args: &Args, destination: &Destination) -> anyhow::Result<ExitCode> {
    let mut paths = vec![];
    for entry in std::fs::read_dir(&args.out)? {
        let p = entry?.path();
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name == "rtstruct.dcm" || (p.is_dir() && name.starts_with("uncertainty-")) {
            paths.push(p);
        }
    }
    paths.sort();
    eprintln!(
        "halo: sending {} output(s) to {}",
        paths.len(),
        args.send.as_deref().unwrap_or("")
    );
    let options = SendOptions {
        calling_ae_title: args.calling_ae.clone(),
        ..SendOptions::default()
    };
    let report = send_paths(destination, &paths, &options)?;
    crate::send::print_summary(&report);
    if report.all_stored() {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::FAILURE)
    }
}

/// `--device`: checked before anything loads (whether the GPU exists is
/// the plug-in's to say).
fn parse_device(s: &str) -> Result<String, String> {
    let ok = s == "cpu"
        || s == "cuda"
        || s.strip_prefix("cuda:").is_some_and(|n| {
            !n.is_empty() && n.len() <= 4 && n.bytes().all(|b| b.is_ascii_digit())
        });
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!("unknown device {s:?}; use cpu, cuda or cuda:N"))
    }
}

/// `--band`: an uncertainty level above 0 and below 1 (the map is at most
/// 0.5, or somewhat more with `--ddof 1`).
fn parse_band(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(t) if t.is_finite() && t > 0.0 && t < 1.0 => Ok(t),
        Ok(_) => Err(format!(
            "{s} is not an uncertainty level above 0 and below 1"
        )),
        Err(_) => Err(format!("{s:?} is not a number")),
    }
}

/// The fixed-scale block of the PT series, from the options; with `dicom`
/// (PT outputs to come) at most a quarter of the slice's shorter side.
fn scale_block(args: &Args, image: &Volume, dicom: bool) -> anyhow::Result<ScaleBlock> {
    if args.block_size == 0 {
        anyhow::bail!("--block-size must be at least 1 voxel");
    }
    // Checked before the run, not after it: the PT writer refuses it too.
    let (rows, columns) = (image.grid.dims[1], image.grid.dims[0]);
    if dicom && args.block_size > rows.min(columns) / 4 {
        anyhow::bail!(
            "--block-size {} would hide the uncertainty map: the slices are {rows} x {columns}, \
             so at most {} voxels",
            args.block_size,
            rows.min(columns) / 4
        );
    }
    if args.block_corner == "auto" {
        return Ok(ScaleBlock::darkest_corner(image, args.block_size));
    }
    let corner: Corner = args.block_corner.parse()?;
    Ok(ScaleBlock {
        corner,
        size: args.block_size,
    })
}

/// The embedded sample model: `samples/model` of the source tree the
/// binary was built in, found from the executable (`target/<profile>/`),
/// or `HALO_MODEL`.
fn default_model() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("HALO_MODEL") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().context("cannot locate the halo executable")?;
    for dir in exe.ancestors().skip(1).take(4) {
        let candidate = dir.join("samples").join("model");
        if candidate.join(halo_core::model::MANIFEST_FILE).is_file() {
            return Ok(candidate);
        }
    }
    anyhow::bail!(
        "no --model given and no sample model found near {}",
        exe.display()
    )
}

fn load_input(
    args: &Args,
    model: &Model,
) -> anyhow::Result<(Volume, String, Option<ImageReference>)> {
    if let Some(image) = &args.image {
        let v = halo_core::nifti::read(image)?;
        return Ok((v, image.display().to_string(), None));
    }
    // OK because clap requires --series when --image is absent.
    let folder = args.series.as_ref().expect("--series or --image");
    let selector = match &args.select {
        Some(s) => s.parse()?,
        None => SeriesSelector::Only,
    };
    eprintln!("halo: scanning {}", folder.display());
    let scan = scan_folder(folder)?;
    let series = scan.select(&selector)?;
    if !args.any_series {
        check_series_type(series, model)?;
    }
    eprintln!("halo: loading series {}", series.label());
    let v = load_series(series, None)?;
    let reference = ImageReference::from_series(series, None)?;
    Ok((v, series.label(), Some(reference)))
}

/// Diffusion-derived images (ImageType (0008,0008) value 3 onwards) that a
/// structural channel such as T2 must not be fed.
const DIFFUSION_TYPES: &[&str] = &["DIFFUSION", "ADC", "TRACEW", "EADC", "FA", "CALC_BVALUE"];

/// Refuses a diffusion-derived series for a model whose channel is not a
/// diffusion one: the network would segment it without complaint and the
/// planning system would receive a meaningless (often empty) contour.
fn check_series_type(series: &halo_core::dicom::SeriesEntry, model: &Model) -> anyhow::Result<()> {
    let channel = &model.manifest.input_channels[0];
    let lower = channel.to_ascii_lowercase();
    if ["dwi", "adc", "diffusion", "trace"]
        .iter()
        .any(|d| lower.starts_with(d))
    {
        return Ok(());
    }
    let Some(image_type) = series
        .instances
        .first()
        .and_then(|i| i.split_values.get("ImageType"))
    else {
        return Ok(());
    };
    if let Some(kind) = image_type
        .split('\\')
        .map(str::trim)
        .find(|v| DIFFUSION_TYPES.contains(v))
    {
        anyhow::bail!(
            "series {} is a diffusion image (ImageType (0008,0008) {image_type}, {kind}) but the \
             model {:?} expects {channel}; choose its {channel} series, or pass --any-series to \
             segment it anyway",
            series.label(),
            model.manifest.name
        );
    }
    Ok(())
}

struct CliObserver {
    progress: Option<Progress>,
    keep_members: bool,
    members: Vec<Array4<f32>>,
}

impl Observer for CliObserver {
    fn step(&mut self, s: Step) -> bool {
        let total = (s.members * s.tiles) as u64;
        let p = self
            .progress
            .get_or_insert_with(|| Progress::new("segmenting", total));
        p.set((s.member * s.tiles + s.tile) as u64);
        true
    }

    fn wants_member_probabilities(&self) -> bool {
        self.keep_members
    }

    fn member_probabilities(
        &mut self,
        _member: usize,
        probs: &Array4<f32>,
    ) -> halo_core::Result<()> {
        self.members.push(probs.clone());
        Ok(())
    }
}

/// Everything `write_outputs` writes.
struct Outputs<'a> {
    grid: &'a Grid,
    model: &'a Model,
    prediction: &'a Prediction,
    member_probabilities: &'a [Array4<f32>],
    report: serde_json::Value,
    /// The MR series the DICOM outputs reference; `None` for NIfTI input.
    reference: Option<&'a ImageReference>,
    /// Whether to write the NIfTI research outputs.
    nifti: bool,
    /// Uncertainty levels of band structures.
    bands: &'a [f32],
    /// The PT series' fixed-scale block.
    block: ScaleBlock,
}

/// Writes every output into `dir` (a fresh temporary folder): the
/// RTSTRUCT and PT series for DICOM input, NIfTI when asked, the report.
fn write_outputs(dir: &Path, o: &Outputs<'_>, started: Instant, t: Instant) -> anyhow::Result<()> {
    if let Some(reference) = o.reference {
        let structures = Structure::of(o.prediction, &o.model.manifest.labels);
        let dicom = DicomOutputs {
            prediction: o.prediction,
            grid: o.grid,
            structures: &structures,
            model_name: &o.model.manifest.name,
            bands: o.bands,
            block: o.block,
        };
        outputs::write(dir, reference, &dicom)?;
    }
    if o.nifti {
        write_nifti(dir, o)?;
    }

    let mut report = o.report.clone();
    report["timings"]["write_s"] = json!(t.elapsed().as_secs_f64());
    report["timings"]["total_s"] = json!(started.elapsed().as_secs_f64());
    let text = serde_json::to_string_pretty(&report)?;
    std::fs::write(dir.join("report.json"), text + "\n")?;
    Ok(())
}

/// The NIfTI research outputs.
fn write_nifti(dir: &Path, o: &Outputs<'_>) -> anyhow::Result<()> {
    let p = o.prediction;
    let labels = &o.model.manifest.labels;
    let vol = |data: Array3<f32>| Volume {
        grid: o.grid.clone(),
        data,
    };

    let max_label = p.labels.iter().copied().max().unwrap_or(0);
    if max_label <= u16::from(u8::MAX) {
        let l = Volume {
            grid: o.grid.clone(),
            data: p.labels.mapv(|v| v as u8),
        };
        halo_core::nifti::write_u8(&dir.join("labels.nii.gz"), &l)?;
    } else {
        halo_core::nifti::write(&dir.join("labels.nii.gz"), &vol(p.labels.mapv(f32::from)))?;
    }
    // The maps, compressed on every core: gzip is most of the writing time.
    let mut maps: Vec<(String, ndarray::ArrayView3<'_, f32>)> = vec![];
    for (i, &c) in p.foreground_channels.iter().enumerate() {
        let name = file_part(&labels[c].name);
        maps.push((
            format!("probability_{name}.nii.gz"),
            p.probabilities.index_axis(Axis(0), c),
        ));
        maps.push((
            format!("uncertainty_{name}.nii.gz"),
            p.uncertainty.index_axis(Axis(0), i),
        ));
    }
    if let Some(h) = &p.entropy {
        maps.push(("entropy.nii.gz".to_string(), h.view()));
    }
    if let Some(h) = &p.mutual_information {
        maps.push(("mutual_information.nii.gz".to_string(), h.view()));
    }
    maps.par_iter().try_for_each(|(file, data)| {
        halo_core::nifti::write(&dir.join(file), &vol(data.to_owned()))
    })?;
    if !o.member_probabilities.is_empty() {
        let mdir = dir.join("members");
        std::fs::create_dir(&mdir).with_context(|| format!("creating {}", mdir.display()))?;
        for (m, probs) in o.member_probabilities.iter().enumerate() {
            for (c, label) in labels.iter().enumerate() {
                let prob = probs.index_axis(Axis(0), c).to_owned();
                let f = mdir.join(format!(
                    "member_{m}_probability_{}.nii.gz",
                    file_part(&label.name)
                ));
                halo_core::nifti::write(&f, &vol(prob))?;
            }
        }
    }
    Ok(())
}

/// Writes into a temporary folder beside `out`, then renames it into
/// place (replacing `out` when `force`).
fn write_atomically(
    out: &Path,
    force: bool,
    write: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = out
        .file_name()
        .context("output has no folder name")?
        .to_string_lossy();
    let tmp = parent.join(format!(".{name}.partial-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;

    let result = write(&tmp).and_then(|()| {
        if out.exists() {
            if !force {
                anyhow::bail!(
                    "output {} appeared while running; not replaced",
                    out.display()
                );
            }
            std::fs::remove_dir_all(out).with_context(|| format!("removing {}", out.display()))?;
        }
        std::fs::rename(&tmp, out).with_context(|| format!("renaming into {}", out.display()))
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

fn report(
    model: &Model,
    grid: &Grid,
    p: &Prediction,
    args: &Args,
    input: &str,
    load_s: f64,
) -> serde_json::Value {
    let labels = &model.manifest.labels;
    let structures: Vec<serde_json::Value> = p
        .foreground_channels
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let label = &labels[c];
            let mask = p.structure_mask(i, label.value);
            let unc = p.uncertainty.index_axis(Axis(0), i);
            let summary = summarize(&mask, unc, grid.voxel_volume_mm3(), UNCERTAIN_AT);
            let mut entry = json!({
                "name": label.name,
                "value": label.value,
                "rt_type": label.rt_type,
            });
            if let (Some(e), Ok(serde_json::Value::Object(m))) =
                (entry.as_object_mut(), serde_json::to_value(&summary))
            {
                e.extend(m);
            }
            entry
        })
        .collect();

    json!({
        "halo_version": halo_core::VERSION,
        "input": input,
        "grid": {"dims": grid.dims, "spacing_mm": grid.spacing},
        "model": {
            "name": model.manifest.name,
            "dir": model.dir.display().to_string(),
            "source": model.manifest.source,
            "license": model.manifest.license,
        },
        "members": model.manifest.members.iter().map(|m| json!({
            "file": m.file, "sha256": m.sha256, "fold": m.fold,
        })).collect::<Vec<_>>(),
        "settings": {
            "ddof": args.ddof,
            "ensemble": match (&model.manifest.preprocessing, args.ensemble) {
                (Preprocessing::Monai(g), _) if g.labels_from == LabelSource::Unflipped => {
                    "unflipped-pass"
                }
                (_, Rule::MeanLogits) => "mean-logits",
                (_, Rule::MeanProbabilities) => "mean-probabilities",
            },
            "device": args.device,
            "threads": args.threads,
        },
        "ensemble": inference::generic::ensemble_members(&model.manifest),
        "structures": structures,
        "timings": {
            "load_s": load_s,
            "preprocess_s": p.timings.preprocess_s,
            "members_s": p.timings.members_s,
            "finish_s": p.timings.finish_s,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");

        let r = write_atomically(&out, false, |d| {
            std::fs::write(d.join("half.txt"), "x")?;
            anyhow::bail!("disk full")
        });

        assert!(r.is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}

//! The generic pipeline (`"kind": "monai"`) for networks that are not
//! nnU-Net's, as MONAI's transforms and `sliding_window_inference` run
//! them (MONAI 1.6; the TAPS prostate model's pipeline is one instance):
//!
//! 1. orientation: to RAS (MONAI `Orientation`) or the native axes;
//! 2. resampling to the target spacing, linear or cubic (MONAI `Spacing`:
//!    `round((n - 1) * old / new + 1)` samples from voxel 0, positions
//!    clamped at the border; an axis within `spacing_tolerance` of its
//!    target is left alone);
//! 3. z-score normalisation, over the non-zero voxels or all;
//! 4. crop to the voxels above zero with a margin (MONAI `CropForeground`,
//!    zero-padded where the margin leaves the image);
//! 5. sliding window with overlap and Gaussian (or constant) weights
//!    (MONAI `sliding_window_inference`), under each test-time flip;
//! 6. optional Gaussian smoothing of the logits (SciPy `gaussian_filter`,
//!    sigma in voxels of the resampled grid, edges extended);
//! 7. un-cropping with logit 0, resampling back, the inverse orientation;
//! 8. sigmoid or SoftMax, then the label map: sigmoid probability above
//!    `threshold` or the SoftMax argmax, optionally the largest 26-connected
//!    component of each label.
//!
//! The ensemble is every member file under every test-time flip, so a
//! single network still yields an uncertainty map: its members are the
//! flips (for example none, x, y and xy). Each member's probabilities are
//! streamed into the [`Accumulator`] as in [`super::predict`].
//!
//! Axes are those of the array after orientation, `[z, y, x]`.

use std::time::Instant;

use ndarray::{s, Array3, Array4, Array5, ArrayD, ArrayView3, Axis};
use serde::{Deserialize, Serialize};

use super::generic_ops::{
    crop_pad, foreground_region, gaussian_filter, importance_map, largest_component, resample_axis,
    spacing_shape, uncrop, window_starts, zscore, Kernel, Region, Reorientation,
};
use super::{MaskRule, MemberSource, Observer, Options, Prediction, Step, Timings};
use crate::backend::Network;
use crate::geometry::Grid;
use crate::model::{
    Accumulate, Activation, Manifest, Model, Normalisation, Pipeline, Preprocessing, ResampleSpec,
    MANIFEST_FILE, NNUNET_ANISOTROPY_THRESHOLD,
};
use crate::uncertainty::{activate, foreground_channels, labels_from_probabilities, Accumulator};
use crate::{Error, Result};

/// The manifest's description of a generic pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonaiPipeline {
    /// Axes the network expects.
    pub orientation: Orientation,
    /// Spacing in mm, `[z, y, x]` after orientation; `None` keeps the
    /// image's own.
    #[serde(default)]
    pub target_spacing: Option<[f64; 3]>,
    /// An axis whose spacing is within this many mm of the target is not
    /// resampled (MONAI's `AFFINE_TOL`, 1e-3).
    #[serde(default = "affine_tol")]
    pub spacing_tolerance: f64,
    /// Interpolation of the image.
    #[serde(default)]
    pub resample: Interpolation,
    /// Intensity normalisation (every channel on its own).
    pub normalisation: GenericNormalisation,
    /// Crop to the voxels above zero (after normalisation), with a margin.
    #[serde(default)]
    pub crop_foreground: Option<CropForeground>,
    /// Patch size in voxels, `[z, y, x]`.
    pub patch_size: [usize; 3],
    /// Every patch side must be a multiple of this (the network's total
    /// down-sampling factor).
    #[serde(default)]
    pub divisible_by: Option<usize>,
    /// Overlap of neighbouring windows, a fraction of the patch in [0, 1).
    #[serde(default = "half")]
    pub overlap: f64,
    /// Window weighting.
    #[serde(default)]
    pub blend: Blend,
    /// Sigma of the Gaussian weights as a fraction of the patch.
    #[serde(default = "eighth")]
    pub sigma_scale: f64,
    /// Sigma in voxels of a Gaussian smoothing of the logits; 0 for none.
    #[serde(default)]
    pub logit_smoothing_sigma: f64,
    /// Probability above which a sigmoid channel paints its label (0.5
    /// when absent); not allowed for SoftMax.
    #[serde(default)]
    pub threshold: Option<f64>,
    /// Interpolation of the logits back to the image grid.
    #[serde(default)]
    pub export_resample: Interpolation,
    /// Keep only the largest 26-connected component of each label.
    #[serde(default)]
    pub largest_component: bool,
    /// Test-time flips; every member file runs under each. Absent: one
    /// pass without flipping.
    #[serde(default = "no_flip")]
    pub test_time_flips: Vec<Flip>,
    /// Which passes form the label map.
    #[serde(default)]
    pub labels_from: LabelSource,
}

/// Which passes form the label map; the probability and uncertainty maps
/// always come from every member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LabelSource {
    /// The whole ensemble, by the run's ensemble rule.
    #[default]
    Ensemble,
    /// The unflipped pass of each member file (their mean logits): the
    /// networks' own prediction, with the flips only measuring how stable
    /// it is. For a single published network this keeps its validated
    /// output.
    Unflipped,
}

/// Axes the network expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Orientation {
    /// x towards the patient's right, y anterior, z superior.
    Ras,
    /// The image's own axes.
    Native,
}

/// Interpolation of a resampling step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interpolation {
    /// Linear in each axis (trilinear).
    #[default]
    Linear,
    /// Cubic convolution (a = -0.75) in each axis.
    Cubic,
}

/// Intensity normalisation of the generic pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum GenericNormalisation {
    /// Values pass unchanged.
    None,
    /// Z-score with the population standard deviation (1 when it is 0).
    Zscore {
        /// Statistics over, and normalisation of, the non-zero voxels only.
        #[serde(default)]
        nonzero: bool,
    },
}

/// Crop to the foreground.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CropForeground {
    /// Voxels added on every side of the bounding box.
    pub margin: usize,
}

/// Window weighting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Blend {
    /// MONAI's Gaussian importance map.
    #[default]
    Gaussian,
    /// Equal weights.
    Constant,
}

/// One test-time flip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flip {
    /// Name shown in reports (`none`, `x`, `xy`, ...).
    pub name: String,
    /// Array axes flipped (0 = z, 1 = y, 2 = x); empty for none.
    pub flip: Vec<usize>,
}

fn affine_tol() -> f64 {
    1e-3
}

fn half() -> f64 {
    0.5
}

fn eighth() -> f64 {
    0.125
}

fn no_flip() -> Vec<Flip> {
    vec![Flip {
        name: "none".into(),
        flip: vec![],
    }]
}

fn merr(dir: &std::path::Path, message: impl std::fmt::Display) -> Error {
    Error::Model {
        path: dir.join(MANIFEST_FILE),
        message: message.to_string(),
    }
}

/// Checks a generic description and expresses what it shares with the
/// nnU-Net pipeline as a [`Pipeline`] (patch, step, activation, channels),
/// so that [`Manifest::pipeline`] validates both kinds alike.
///
/// # Errors
///
/// [`Error::Model`] naming the manifest and the offending value.
pub fn pipeline(dir: &std::path::Path, g: &MonaiPipeline, m: &Manifest) -> Result<Pipeline> {
    if !(0.0..1.0).contains(&g.overlap) {
        return Err(merr(dir, format!("overlap {} is not in [0, 1)", g.overlap)));
    }
    if let Some(d) = g.divisible_by {
        if d == 0 || g.patch_size.iter().any(|p| p % d != 0) {
            return Err(merr(
                dir,
                format!("patch size {:?} is not divisible by {d}", g.patch_size),
            ));
        }
    }
    let in_range =
        g.sigma_scale > 0.0 && g.logit_smoothing_sigma >= 0.0 && g.spacing_tolerance >= 0.0;
    if !in_range {
        return Err(merr(
            dir,
            format!(
                "sigma_scale {}, logit_smoothing_sigma {} or spacing_tolerance {} is out of range",
                g.sigma_scale, g.logit_smoothing_sigma, g.spacing_tolerance
            ),
        ));
    }
    match (g.threshold, m.activation) {
        (Some(t), Activation::Sigmoid) if !(t > 0.0 && t < 1.0) => {
            return Err(merr(dir, format!("threshold {t} is not in (0, 1)")));
        }
        (Some(t), Activation::Softmax) => {
            return Err(merr(
                dir,
                format!("threshold {t} is given for a softmax model (labels are the argmax)"),
            ));
        }
        _ => {}
    }
    if g.test_time_flips.is_empty() {
        return Err(merr(
            dir,
            "test_time_flips is empty (use [{\"name\": \"none\", \"flip\": []}])",
        ));
    }
    if g.labels_from == LabelSource::Unflipped
        && !g.test_time_flips.iter().any(|f| f.flip.is_empty())
    {
        return Err(merr(
            dir,
            "labels_from \"unflipped\" needs a flip with no axes",
        ));
    }
    for f in &g.test_time_flips {
        let mut axes = f.flip.clone();
        axes.sort_unstable();
        axes.dedup();
        if axes.len() != f.flip.len() || axes.iter().any(|&a| a > 2) {
            return Err(merr(
                dir,
                format!(
                    "flip {:?} has axes {:?}; use distinct axes 0, 1 or 2",
                    f.name, f.flip
                ),
            ));
        }
    }

    let channels = m.input_channels.len();
    let normalisation = match g.normalisation {
        GenericNormalisation::None => Normalisation::None,
        GenericNormalisation::Zscore { nonzero } => Normalisation::Zscore { use_mask: nonzero },
    };
    let order = |i: Interpolation| match i {
        Interpolation::Linear => 1,
        Interpolation::Cubic => 3,
    };
    let spec = |i| ResampleSpec {
        order: order(i),
        order_z: 0,
        force_separate_z: Some(false),
        anisotropy_threshold: NNUNET_ANISOTROPY_THRESHOLD,
    };
    Ok(Pipeline {
        transpose_forward: [0, 1, 2],
        transpose_backward: [0, 1, 2],
        crop_nonzero: g.crop_foreground.is_some(),
        normalisation: vec![normalisation; channels],
        target_spacing: g.target_spacing,
        data_resampling: spec(g.resample),
        logit_resampling: spec(g.export_resample),
        patch_size: g.patch_size,
        tile_step_size: 1.0 - g.overlap,
        gaussian: g.blend == Blend::Gaussian,
        mirror_axes: vec![],
        accumulate: Accumulate::Float32,
        activation: m.activation,
        input_channels: channels,
        output_channels: m.labels.len(),
        regions_class_order: m.labels.iter().map(|l| l.value).collect(),
    })
}

/// The ensemble members of a generic model as reports list them: every
/// member file under every test-time flip, in run order.
pub fn ensemble_members(m: &Manifest) -> Option<serde_json::Value> {
    let Preprocessing::Monai(g) = &m.preprocessing else {
        return None;
    };
    let list: Vec<serde_json::Value> = m
        .members
        .iter()
        .flat_map(|member| {
            g.test_time_flips.iter().map(move |f| {
                serde_json::json!({
                    "file": member.file,
                    "test_time_flip": f.name,
                    "flipped_axes_zyx": f.flip,
                })
            })
        })
        .collect();
    Some(serde_json::json!({
        "kind": if m.members.len() == 1 { "test-time flips of one network" }
                else { "member files under test-time flips" },
        "labels_from": match g.labels_from {
            LabelSource::Ensemble => "the ensemble",
            LabelSource::Unflipped => "the unflipped pass (the network's own prediction)",
        },
        "members": list,
    }))
}

/// The image after orientation, resampling, normalisation and cropping,
/// and what is needed to map logits back.
struct Prepared {
    /// Network input, `[c, z, y, x]` on the cropped, resampled grid.
    data: Array4<f32>,
    reorientation: Reorientation,
    /// Shape after orientation (the shape logits return to).
    oriented_shape: [usize; 3],
    /// Spacing after orientation, mm.
    oriented_spacing: [f64; 3],
    /// Spacing actually resampled to, mm.
    spacing: [f64; 3],
    /// Shape of the resampled image.
    resampled_shape: [usize; 3],
    /// The crop in resampled voxels.
    region: Region,
}

fn prepare(channels: &[ArrayView3<'_, f32>], grid: &Grid, g: &MonaiPipeline) -> Result<Prepared> {
    let reorientation = match g.orientation {
        Orientation::Ras => Reorientation::to_ras(grid),
        Orientation::Native => Reorientation::IDENTITY,
    };
    let spacing_zyx = [grid.spacing[2], grid.spacing[1], grid.spacing[0]];
    let oriented_spacing = reorientation.permute(spacing_zyx);
    let spacing: [f64; 3] = match g.target_spacing {
        None => oriented_spacing,
        Some(t) => [0, 1, 2].map(|a| {
            if (oriented_spacing[a] - t[a]).abs() <= g.spacing_tolerance {
                oriented_spacing[a]
            } else {
                t[a]
            }
        }),
    };

    let mut out = vec![];
    let mut oriented_shape = [0; 3];
    let mut resampled_shape = [0; 3];
    for c in channels {
        let mut a = reorientation.apply(c.view());
        oriented_shape = [a.dim().0, a.dim().1, a.dim().2];
        for axis in 0..3 {
            if spacing[axis] != oriented_spacing[axis] {
                let n = spacing_shape(oriented_shape[axis], oriented_spacing[axis], spacing[axis]);
                let step = spacing[axis] / oriented_spacing[axis];
                a = resample_axis(&a, axis, n, step, kernel(g.resample));
            }
        }
        resampled_shape = [a.dim().0, a.dim().1, a.dim().2];
        match g.normalisation {
            GenericNormalisation::None => {}
            GenericNormalisation::Zscore { nonzero } => zscore(&mut a, nonzero),
        }
        out.push(a.insert_axis(Axis(0)));
    }
    let views: Vec<_> = out.iter().map(|a| a.view()).collect();
    // OK because the channels were checked to share one shape.
    let stacked = ndarray::concatenate(Axis(0), &views).expect("channels share a shape");

    let full: Region = resampled_shape.map(|n| [0, n as isize]);
    let region = match g.crop_foreground {
        None => full,
        Some(c) => foreground_region(&stacked, c.margin).ok_or_else(|| {
            Error::InvalidInput(
                "no voxel is above zero after normalisation: nothing to crop to (is the image \
                 constant?)"
                    .into(),
            )
        })?,
    };
    let data = if region == full {
        stacked
    } else {
        crop_pad(&stacked, &region)
    };
    Ok(Prepared {
        data,
        reorientation,
        oriented_shape,
        oriented_spacing,
        spacing,
        resampled_shape,
        region,
    })
}

fn kernel(i: Interpolation) -> Kernel {
    match i {
        Interpolation::Linear => Kernel::Linear,
        Interpolation::Cubic => Kernel::Cubic,
    }
}

/// Runs every member of `members` under every test-time flip of the
/// generic `model` on `channels` (each `[z][y][x]` on `grid`) and returns
/// the ensemble on the input grid.
///
/// # Errors
///
/// [`Error::InvalidInput`] for a model of another kind, channels that
/// disagree with the model or an image with nothing to crop to;
/// [`Error::Cancelled`] when the observer cancels; the errors of opening
/// or running a member, prefixed with its name and flip.
pub fn predict(
    channels: &[ArrayView3<'_, f32>],
    grid: &Grid,
    model: &Model,
    members: &mut dyn MemberSource,
    options: &Options,
    observer: &mut dyn Observer,
) -> Result<Prediction> {
    let Preprocessing::Monai(g) = &model.manifest.preprocessing else {
        return Err(Error::InvalidInput(format!(
            "model {} is not of the generic (monai) kind",
            model.dir.display()
        )));
    };
    let pipeline = &model.pipeline;
    let label_values: Vec<u16> = model.manifest.labels.iter().map(|l| l.value).collect();
    let shape = (grid.dims[2], grid.dims[1], grid.dims[0]);
    if channels.len() != pipeline.input_channels {
        return Err(Error::InvalidInput(format!(
            "the model takes {} input channels, {} given",
            pipeline.input_channels,
            channels.len()
        )));
    }
    if let Some(c) = channels.iter().position(|c| c.dim() != shape) {
        return Err(Error::InvalidInput(format!(
            "channel {c} has shape {:?}, the grid {shape:?}",
            channels[c].dim()
        )));
    }
    let flips = &g.test_time_flips;
    let n = members.len() * flips.len();
    let (pool, extras) = super::start_run(options, n)?;

    let t0 = Instant::now();
    let prep = pool.install(|| prepare(channels, grid, g))?;
    let mut timings = Timings {
        preprocess_s: t0.elapsed().as_secs_f64(),
        ..Timings::default()
    };
    tracing::debug!(
        oriented = ?prep.oriented_shape,
        resampled = ?prep.resampled_shape,
        region = ?prep.region,
        spacing = ?prep.spacing,
        "generic pipeline prepared"
    );

    let k = pipeline.output_channels;
    let mut acc = Accumulator::new(pipeline.activation, k, [shape.0, shape.1, shape.2], extras);
    let crop_shape = [prep.data.dim().1, prep.data.dim().2, prep.data.dim().3];
    let tiles = (0..3)
        .map(|a| window_starts(crop_shape[a], g.patch_size[a], g.overlap).len())
        .product();
    if !observer.step(Step {
        member: 0,
        members: n,
        tile: 0,
        tiles,
    }) {
        return Err(Error::Cancelled);
    }

    let mut unflipped: Option<Array4<f32>> = None;
    let weights = match g.blend {
        Blend::Gaussian => importance_map(g.patch_size, g.sigma_scale),
        Blend::Constant => Array3::from_elem(g.patch_size, 1.0),
    };
    for file in 0..members.len() {
        let name = members.name(file);
        let mut net = members
            .open(file)
            .map_err(|e| prefix(&format!("member {name}"), e))?;
        for (f, flip) in flips.iter().enumerate() {
            let t = Instant::now();
            let m = file * flips.len() + f;
            let mut on_tile = |done: usize, total: usize| {
                observer.step(Step {
                    member: m,
                    members: n,
                    tile: done,
                    tiles: total,
                })
            };
            let logits = sliding_window(
                net.as_mut(),
                &prep.data,
                g,
                &weights,
                &flip.flip,
                k,
                &mut on_tile,
            )
            .map_err(|e| prefix(&format!("member {name} (flip {})", flip.name), e))?;
            let logits = pool.install(|| logits_to_grid(logits, &prep, g));
            let probs = activate(&logits, pipeline.activation);
            if observer.wants_member_probabilities() {
                observer.member_probabilities(m, &probs)?;
            }
            acc.add(&probs, extras.logits.then_some(&logits))?;
            if g.labels_from == LabelSource::Unflipped && flip.flip.is_empty() {
                match &mut unflipped {
                    Some(sum) => *sum += &logits,
                    None => unflipped = Some(logits),
                }
            }
            timings.members_s.push(t.elapsed().as_secs_f64());
        }
    }

    let t = Instant::now();
    let summary = acc.finish(options.ddof)?;
    let label_probs = match (unflipped, &summary.mean_logits) {
        (Some(sum), _) => activate(&(sum / members.len() as f32), pipeline.activation),
        (None, Some(l)) => activate(l, pipeline.activation),
        (None, None) => summary.mean.clone(),
    };
    let labels = label_map(&label_probs, pipeline, &label_values, g);
    timings.finish_s = t.elapsed().as_secs_f64();

    Ok(Prediction {
        labels,
        probabilities: summary.mean,
        uncertainty: summary.std,
        foreground_channels: foreground_channels(pipeline.activation, k).collect(),
        entropy: summary.entropy,
        mutual_information: summary.mutual_information,
        members: summary.members,
        timings,
        masks: MaskRule::LabelMap,
    })
}

/// Runs `model` on `channels` (each `[z][y][x]` on `grid`) with the
/// pipeline its manifest names: [`predict`] for the generic kind,
/// [`super::predict`] for the others. The entry point for callers that
/// take any model folder (the CLI, the C ABI).
///
/// # Errors
///
/// Those of the pipeline run.
pub fn predict_model(
    channels: &[ArrayView3<'_, f32>],
    grid: &Grid,
    model: &Model,
    members: &mut dyn MemberSource,
    options: &Options,
    observer: &mut dyn Observer,
) -> Result<Prediction> {
    if let Preprocessing::Monai(_) = model.manifest.preprocessing {
        return predict(channels, grid, model, members, options, observer);
    }
    let values: Vec<u16> = model.manifest.labels.iter().map(|l| l.value).collect();
    let spacing_zyx = [grid.spacing[2], grid.spacing[1], grid.spacing[0]];
    super::predict(
        channels,
        spacing_zyx,
        &model.pipeline,
        &values,
        members,
        options,
        observer,
    )
}

/// Smoothing, un-cropping, resampling back and the inverse orientation of
/// one member's logits `[k, crop]`.
fn logits_to_grid(mut logits: Array4<f32>, prep: &Prepared, g: &MonaiPipeline) -> Array4<f32> {
    if g.logit_smoothing_sigma > 0.0 {
        for mut ch in logits.outer_iter_mut() {
            let mut a = ch.to_owned();
            gaussian_filter(&mut a, g.logit_smoothing_sigma);
            ch.assign(&a);
        }
    }
    let full = if prep.region == prep.resampled_shape.map(|n| [0, n as isize]) {
        logits
    } else {
        uncrop(&logits, &prep.region, prep.resampled_shape)
    };

    let channels: Vec<Array3<f32>> = full
        .outer_iter()
        .map(|ch| {
            let mut a = ch.to_owned();
            for axis in 0..3 {
                if prep.spacing[axis] != prep.oriented_spacing[axis] {
                    let step = prep.oriented_spacing[axis] / prep.spacing[axis];
                    let n = prep.oriented_shape[axis];
                    a = resample_axis(&a, axis, n, step, kernel(g.export_resample));
                }
            }
            prep.reorientation.invert(a.view())
        })
        .collect();
    let views: Vec<_> = channels
        .iter()
        .map(|a| a.view().insert_axis(Axis(0)))
        .collect();
    // OK because every channel went through the same steps.
    ndarray::concatenate(Axis(0), &views).expect("channels share a shape")
}

/// The label map from ensemble probabilities `[k, z, y, x]`.
fn label_map(
    probs: &Array4<f32>,
    pipeline: &Pipeline,
    label_values: &[u16],
    g: &MonaiPipeline,
) -> Array3<u16> {
    let mut labels = match pipeline.activation {
        Activation::Softmax => labels_from_probabilities(probs, Activation::Softmax, label_values),
        Activation::Sigmoid => {
            let t = g.threshold.unwrap_or(0.5) as f32;
            let (_, d0, d1, d2) = probs.dim();
            let mut out = Array3::<u16>::zeros((d0, d1, d2));
            for (c, p) in probs.outer_iter().enumerate() {
                let v = pipeline.regions_class_order[c];
                out.zip_mut_with(&p, |o, &x| {
                    if x > t {
                        *o = v;
                    }
                });
            }
            out
        }
    };
    if g.largest_component {
        for &v in label_values.iter().filter(|&&v| v != 0) {
            let mut mask = labels.mapv(|l| l == v);
            largest_component(&mut mask);
            labels.zip_mut_with(&mask, |l, &keep| {
                if *l == v && !keep {
                    *l = 0;
                }
            });
        }
    }
    labels
}

/// MONAI's `sliding_window_inference` (batch 1) with the patch flipped
/// along `flip` before the network and its logits flipped back.
fn sliding_window(
    net: &mut dyn Network,
    data: &Array4<f32>,
    g: &MonaiPipeline,
    weights: &Array3<f32>,
    flip: &[usize],
    k: usize,
    on_tile: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<Array4<f32>> {
    let p = g.patch_size;
    let (c, d0, d1, d2) = data.dim();
    let shape = [d0, d1, d2];

    // Inputs smaller than the patch are zero-padded, floor of the
    // difference before (torch.nn.functional.pad as MONAI calls it).
    let padded = [0, 1, 2].map(|a| shape[a].max(p[a]));
    let below = [0, 1, 2].map(|a| (padded[a] - shape[a]) / 2);
    let image = if padded == shape {
        data.clone()
    } else {
        let mut a = Array4::<f32>::zeros((c, padded[0], padded[1], padded[2]));
        a.slice_mut(s![
            ..,
            below[0]..below[0] + d0,
            below[1]..below[1] + d1,
            below[2]..below[2] + d2
        ])
        .assign(data);
        a
    };

    let starts: Vec<Vec<usize>> = (0..3)
        .map(|a| window_starts(padded[a], p[a], g.overlap))
        .collect();
    let total = starts.iter().map(Vec::len).product();
    let mut sum = Array4::<f32>::zeros((k, padded[0], padded[1], padded[2]));
    let mut count = Array3::<f32>::zeros((padded[0], padded[1], padded[2]));
    let mut done = 0;
    for &z in &starts[0] {
        for &y in &starts[1] {
            for &x in &starts[2] {
                let r = s![.., z..z + p[0], y..y + p[1], x..x + p[2]];
                let tile = image.slice(r).to_owned().insert_axis(Axis(0));
                let out = forward_flipped(net, tile, flip, k, p)?;
                let mut acc = sum.slice_mut(r);
                for (mut a, o) in acc.outer_iter_mut().zip(out.outer_iter()) {
                    ndarray::Zip::from(&mut a)
                        .and(&o)
                        .and(weights)
                        .for_each(|a, &o, &w| *a += o * w);
                }
                let mut n = count.slice_mut(s![z..z + p[0], y..y + p[1], x..x + p[2]]);
                n += weights;

                done += 1;
                if !on_tile(done, total) {
                    return Err(Error::Cancelled);
                }
            }
        }
    }

    for mut ch in sum.outer_iter_mut() {
        ch.zip_mut_with(&count, |v, &w| *v /= w);
    }
    if sum.iter().any(|v| !v.is_finite()) {
        return Err(Error::InvalidInput(
            "the network produced non-finite logits".into(),
        ));
    }
    Ok(sum
        .slice(s![
            ..,
            below[0]..below[0] + d0,
            below[1]..below[1] + d1,
            below[2]..below[2] + d2
        ])
        .to_owned())
}

/// One `[1, c, p]` tile through the network under a flip; returns the
/// logits `[k, p]` in the tile's own orientation.
fn forward_flipped(
    net: &mut dyn Network,
    mut tile: Array5<f32>,
    flip: &[usize],
    k: usize,
    p: [usize; 3],
) -> Result<Array4<f32>> {
    if !flip.is_empty() {
        let mut v = tile.view();
        for &a in flip {
            v.invert_axis(Axis(a + 2));
        }
        tile = v.as_standard_layout().into_owned();
    }
    let out: ArrayD<f32> = net.forward(tile.view().into_dyn())?;
    let want = [1, k, p[0], p[1], p[2]];
    if out.shape() != want {
        return Err(Error::InvalidInput(format!(
            "the network returned shape {:?} for a {:?} patch, expected {want:?} ({k} output \
             channels, one per label of the manifest)",
            out.shape(),
            tile.shape()
        )));
    }
    // OK because the shape was checked to have five axes.
    let out: Array5<f32> = out.into_dimensionality().expect("five axes");
    let mut out = out.index_axis_move(Axis(0), 0);
    for &a in flip {
        out.invert_axis(Axis(a + 1));
    }
    Ok(out.as_standard_layout().into_owned())
}

fn prefix(what: &str, e: Error) -> Error {
    match e {
        Error::Cancelled => Error::Cancelled,
        Error::Backend(m) => Error::Backend(format!("{what}: {m}")),
        Error::InvalidInput(m) => Error::InvalidInput(format!("{what}: {m}")),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::ArrayViewD;
    use std::path::Path;

    /// A "network" whose logit is the input minus 0.5 at every voxel: flips
    /// and windows must return it unchanged.
    struct Shift;

    impl Network for Shift {
        fn forward(&mut self, input: ArrayViewD<'_, f32>) -> Result<ArrayD<f32>> {
            Ok(input.mapv(|v| v - 0.5))
        }
    }

    /// Logit +1 on the patch's x < half, -1 elsewhere: not flip-invariant.
    struct LeftHalf;

    impl Network for LeftHalf {
        fn forward(&mut self, input: ArrayViewD<'_, f32>) -> Result<ArrayD<f32>> {
            let px = input.shape()[4];
            Ok(ArrayD::from_shape_fn(input.raw_dim(), |i| {
                if i[4] < px / 2 {
                    1.0
                } else {
                    -1.0
                }
            }))
        }
    }

    fn generic(patch: [usize; 3]) -> MonaiPipeline {
        serde_json::from_value(serde_json::json!({
            "orientation": "native",
            "normalisation": {"kind": "none"},
            "patch_size": patch,
        }))
        .unwrap()
    }

    #[test]
    fn the_window_returns_a_pointwise_network_unchanged_under_flips() {
        let data = Array4::from_shape_fn((1, 5, 20, 9), |(_, i, j, l)| (i + 2 * j + 3 * l) as f32);
        let g = generic([4, 8, 8]);
        let w = importance_map(g.patch_size, g.sigma_scale);

        for flip in [vec![], vec![2], vec![1, 2]] {
            let out =
                sliding_window(&mut Shift, &data, &g, &w, &flip, 1, &mut |_, _| true).unwrap();

            let diff = (&out - &data.mapv(|v| v - 0.5)).mapv(f32::abs);
            assert!(
                diff.iter().all(|&d| d < 1e-4),
                "flip {flip:?}: {}",
                diff.sum()
            );
        }
    }

    #[test]
    fn a_flip_reverses_what_the_network_sees() {
        let data = Array4::<f32>::zeros((1, 4, 8, 8));
        let g = generic([4, 8, 8]);
        let w = importance_map(g.patch_size, g.sigma_scale);

        let plain = sliding_window(&mut LeftHalf, &data, &g, &w, &[], 1, &mut |_, _| true).unwrap();
        let flipped =
            sliding_window(&mut LeftHalf, &data, &g, &w, &[2], 1, &mut |_, _| true).unwrap();

        assert_eq!(plain[(0, 0, 0, 0)], 1.0);
        assert_eq!(flipped[(0, 0, 0, 0)], -1.0);
        assert_eq!(flipped[(0, 0, 0, 7)], 1.0);
    }

    #[test]
    fn a_small_input_is_padded_to_the_patch_and_cropped_back() {
        let data = Array4::from_elem((1, 3, 5, 6), 2.0);
        let g = generic([4, 8, 8]);
        let w = importance_map(g.patch_size, g.sigma_scale);

        let out = sliding_window(&mut Shift, &data, &g, &w, &[], 1, &mut |_, _| true).unwrap();

        assert_eq!(out.dim(), (1, 3, 5, 6));
        assert!(out.iter().all(|&v| (v - 1.5).abs() < 1e-6));
    }

    #[test]
    fn cancelling_stops_the_window() {
        let data = Array4::<f32>::zeros((1, 4, 16, 16));
        let g = generic([4, 8, 8]);
        let w = importance_map(g.patch_size, g.sigma_scale);

        let r = sliding_window(&mut Shift, &data, &g, &w, &[], 1, &mut |done, _| done < 2);

        assert!(matches!(r, Err(Error::Cancelled)));
    }

    /// A one-member sigmoid manifest with `preprocessing`, and its
    /// generic description.
    fn manifest(preprocessing: serde_json::Value) -> (Manifest, MonaiPipeline) {
        let m: Manifest = serde_json::from_value(serde_json::json!({
            "format_version": 1, "name": "t", "source": "s", "license": "MIT",
            "input_channels": ["T2"],
            "labels": [{"value": 1, "name": "Prostate"}],
            "activation": "sigmoid",
            "members": [{"file": "net.pt", "sha256": "0".repeat(64)}],
            "preprocessing": preprocessing,
        }))
        .unwrap();
        let Preprocessing::Monai(g) = m.preprocessing.clone() else {
            panic!("monai kind")
        };
        (m, g)
    }

    #[test]
    fn the_flips_of_the_manifest_are_listed_as_members() {
        let (mut m, g) = manifest(serde_json::json!({
            "kind": "monai", "orientation": "ras", "normalisation": {"kind": "none"},
            "patch_size": [8, 16, 16], "threshold": 0.55,
            "test_time_flips": [{"name": "none", "flip": []}, {"name": "x", "flip": [2]}]
        }));

        let e = ensemble_members(&m).unwrap();

        assert_eq!(e["members"].as_array().unwrap().len(), 2);
        assert_eq!(e["members"][1]["test_time_flip"], "x");
        m.activation = Activation::Softmax;
        let err = pipeline(Path::new("/m"), &g, &m).unwrap_err().to_string();
        assert!(err.contains("threshold 0.55"), "{err}");
    }

    #[test]
    fn labels_from_the_unflipped_pass_need_one() {
        let (m, g) = manifest(serde_json::json!({
            "kind": "monai", "orientation": "native", "normalisation": {"kind": "none"},
            "patch_size": [8, 16, 16], "labels_from": "unflipped",
            "test_time_flips": [{"name": "x", "flip": [2]}]
        }));

        let err = pipeline(Path::new("/m"), &g, &m).unwrap_err().to_string();

        assert!(err.contains("unflipped"), "{err}");
    }
}

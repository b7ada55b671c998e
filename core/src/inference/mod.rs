//! Ensemble inference: every member of a model on one image, streaming.
//!
//! [`predict`] runs the steps of nnU-Net v2's predictor (DESIGN.md,
//! "nnU-Net v2 prediction") once per member and feeds each member's
//! probabilities into an [`Accumulator`](crate::uncertainty::Accumulator)
//! before opening the next, so memory does not grow with the member count:
//!
//! 1. [`preprocess::prepare`]: transpose, crop to non-zero, normalise,
//!    resample (once, shared by the members);
//! 2. [`sliding::predict_logits`]: padding, tiles, Gaussian weights,
//!    mirroring, float16 accumulation;
//! 3. [`export::to_cropped_grid`]: logits back to the input grid,
//!    activation;
//! 4. accumulation, then un-cropping (background probability 1 outside
//!    the crop) and `transpose_backward`.

pub mod export;
pub mod generic;
pub mod generic_ops;
pub mod preprocess;
pub mod resample;
pub mod sliding;

use std::thread::ScopedJoinHandle;
use std::time::Instant;

use ndarray::{Array3, Array4, ArrayView3};

use crate::backend::Network;
use crate::model::{Activation, Pipeline};
use crate::uncertainty::{
    activate, foreground_channels, labels_from_probabilities, Accumulator, EnsembleRule, Extras,
};
use crate::{Error, Result};

/// Where the members come from: opened one at a time, in order.
pub trait MemberSource {
    /// Number of members.
    fn len(&self) -> usize;

    /// True when there is no member.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A name for messages (the member's file name).
    fn name(&self, index: usize) -> String;

    /// Opens member `index`.
    ///
    /// # Errors
    ///
    /// Whatever opening fails with (missing file, backend error).
    fn open(&mut self, index: usize) -> Result<Box<dyn Network>>;
}

/// Where a run stands, for progress reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Member being run (0-based).
    pub member: usize,
    /// Number of members.
    pub members: usize,
    /// Tiles of this member done.
    pub tile: usize,
    /// Tiles per member.
    pub tiles: usize,
}

/// Receives progress and, on request, each member's probabilities.
pub trait Observer {
    /// Called after every tile; return `false` to cancel the run.
    fn step(&mut self, _step: Step) -> bool {
        true
    }

    /// True to receive every member's probabilities on the input grid.
    fn wants_member_probabilities(&self) -> bool {
        false
    }

    /// One member's probabilities `[k, z, y, x]` on the input grid.
    ///
    /// # Errors
    ///
    /// Whatever the observer fails with; the run stops.
    fn member_probabilities(&mut self, _member: usize, _probs: &Array4<f32>) -> Result<()> {
        Ok(())
    }
}

/// An observer that only forwards progress to a closure.
pub struct ProgressFn<F: FnMut(Step) -> bool>(pub F);

impl<F: FnMut(Step) -> bool> Observer for ProgressFn<F> {
    fn step(&mut self, step: Step) -> bool {
        (self.0)(step)
    }
}

/// The most worker threads a run accepts: more only thrash a machine
/// (each is a real OS thread, for resampling and for libtorch).
pub const MAX_THREADS: usize = 256;

/// Options of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Delta degrees of freedom of the standard deviation (0 or 1).
    pub ddof: usize,
    /// How the label map is formed.
    pub ensemble: EnsembleRule,
    /// Produce the entropy of the mean.
    pub entropy: bool,
    /// Produce the mutual information.
    pub mutual_information: bool,
    /// Worker threads for resampling (0: all cores); at most
    /// [`MAX_THREADS`].
    pub threads: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            ddof: 0,
            ensemble: EnsembleRule::MeanLogits,
            entropy: false,
            mutual_information: false,
            threads: 0,
        }
    }
}

/// Wall-clock seconds spent in each stage.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timings {
    /// Preprocessing.
    pub preprocess_s: f64,
    /// Each member: open, sliding window, export, accumulation.
    pub members_s: Vec<f64>,
    /// Final statistics and restoring the input grid.
    pub finish_s: f64,
}

/// The result of an ensemble run, on the input's `[z][y][x]` grid.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// Ensemble label map (label values of the manifest).
    pub labels: Array3<u16>,
    /// Mean probability per output channel, `[k, z, y, x]`.
    pub probabilities: Array4<f32>,
    /// Standard deviation per foreground channel, `[f, z, y, x]`.
    pub uncertainty: Array4<f32>,
    /// The output channel of each uncertainty map.
    pub foreground_channels: Vec<usize>,
    /// Entropy of the mean (nats), when asked for.
    pub entropy: Option<Array3<f32>>,
    /// Mutual information (nats), when asked for.
    pub mutual_information: Option<Array3<f32>>,
    /// Members run.
    pub members: usize,
    /// Where the time went.
    pub timings: Timings,
    /// How [`Prediction::structure_mask`] reads it.
    pub masks: MaskRule,
}

impl Prediction {
    /// The mask of foreground structure `i` (an index into
    /// `foreground_channels`) with label `value`, by the rule of the
    /// pipeline that made the prediction (see [`MaskRule`]).
    pub fn structure_mask(&self, i: usize, value: u16) -> Array3<bool> {
        match self.masks {
            MaskRule::LabelMap => self.labels.mapv(|v| v == value),
            MaskRule::Regions => self
                .probabilities
                .index_axis(ndarray::Axis(0), self.foreground_channels[i])
                .mapv(|v| v > 0.5),
        }
    }
}

/// How a structure's mask follows from a prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskRule {
    /// The label map equal to the structure's value: SoftMax models, and
    /// generic pipelines, whose label map already carries their
    /// threshold, largest component and choice of passes.
    LabelMap,
    /// Mean probability of the structure's channel above 0.5: nnU-Net's
    /// region-based (sigmoid) models, whose regions may overlap.
    Regions,
}

/// Runs every member of `members` on `channels` (each `[z][y][x]`, voxel
/// spacing `spacing_zyx` in mm) through `pipeline`.
///
/// `label_values[c]` is the label value of output channel `c`.
///
/// # Errors
///
/// [`Error::Cancelled`] when the observer cancels; the errors of
/// preprocessing, of opening or running a member (prefixed with its
/// name), and of the statistics (for example `ddof` 1 with one member).
pub fn predict(
    channels: &[ArrayView3<'_, f32>],
    spacing_zyx: [f64; 3],
    pipeline: &Pipeline,
    label_values: &[u16],
    members: &mut dyn MemberSource,
    options: &Options,
    observer: &mut dyn Observer,
) -> Result<Prediction> {
    let (pool, extras) = start_run(options, members.len())?;

    let t0 = Instant::now();
    let prep = pool.install(|| preprocess::prepare(channels, spacing_zyx, pipeline))?;
    let mut timings = Timings {
        preprocess_s: t0.elapsed().as_secs_f64(),
        ..Timings::default()
    };
    tracing::debug!(
        shape = ?prep.data.dim(),
        bbox = ?prep.bbox,
        spacing = ?prep.spacing,
        target = ?prep.target_spacing,
        "preprocessed"
    );

    let k = pipeline.output_channels;
    let acc = Accumulator::new(pipeline.activation, k, prep.shape_after_cropping(), extras);
    let n = members.len();
    let tiles = sliding::tile_starts(
        [prep.data.dim().1, prep.data.dim().2, prep.data.dim().3],
        pipeline,
    )
    .len();
    if !observer.step(Step {
        member: 0,
        members: n,
        tile: 0,
        tiles,
    }) {
        return Err(Error::Cancelled);
    }

    // Member m's export (resampling to the image grid, activation, the
    // running statistics) runs on a second thread while member m + 1's
    // forward passes run: the CPU kernels of a forward pass leave cores
    // idle between layers, and the export would otherwise add its whole
    // time to the run. Members are still added in order, so the result is
    // the same as a sequential run's.
    let wants_member = observer.wants_member_probabilities();
    let acc = std::thread::scope(|scope| -> Result<Accumulator> {
        let mut acc = Some(acc);
        let mut pending: Option<ScopedJoinHandle<'_, MemberExport>> = None;
        for m in 0..n {
            let started = Instant::now();
            let name = members.name(m);
            let logits = {
                let mut net = members
                    .open(m)
                    .map_err(|e| prefix(&format!("member {name}"), e))?;
                let mut on_tile = |done: usize, total: usize| {
                    observer.step(Step {
                        member: m,
                        members: n,
                        tile: done,
                        tiles: total,
                    })
                };
                sliding::predict_logits(net.as_mut(), &prep.data, pipeline, &mut on_tile)
                    .map_err(|e| prefix(&format!("member {name}"), e))?
            };
            let forward_s = started.elapsed().as_secs_f64();
            if let Some(handle) = pending.take() {
                acc = Some(collect(handle, observer, &mut timings)?);
            }
            let mut member_acc = acc
                .take()
                .expect("the accumulator is back from the last export");
            let (prep, pool) = (&prep, &pool);
            pending = Some(scope.spawn(move || {
                let export_started = Instant::now();
                let (logits, probs) =
                    pool.install(|| export::to_cropped_grid(&logits, prep, pipeline));
                let full = wants_member.then(|| {
                    export::restore_channels(
                        &probs,
                        |c| background_fill(pipeline, c),
                        prep,
                        pipeline,
                    )
                });
                let added = member_acc.add(&probs, extras.logits.then_some(&logits));
                MemberExport {
                    member: m,
                    seconds: forward_s + export_started.elapsed().as_secs_f64(),
                    full,
                    added: added.map(|()| member_acc),
                }
            }));
        }
        match pending {
            Some(handle) => collect(handle, observer, &mut timings),
            None => Ok(acc.expect("no export pending, so the accumulator is here")),
        }
    })?;

    let t = Instant::now();
    let summary = acc.finish(options.ddof)?;
    let label_probs = match &summary.mean_logits {
        Some(l) => activate(l, pipeline.activation),
        None => summary.mean.clone(),
    };
    let values: Vec<u16> = match pipeline.activation {
        Activation::Softmax => label_values.to_vec(),
        Activation::Sigmoid => pipeline.regions_class_order.clone(),
    };
    let labels_cropped = labels_from_probabilities(&label_probs, pipeline.activation, &values);
    drop(label_probs);

    let labels = export::restore(labels_cropped.view(), 0u16, &prep, pipeline);
    let probabilities = export::restore_channels(
        &summary.mean,
        |c| background_fill(pipeline, c),
        &prep,
        pipeline,
    );
    let uncertainty = export::restore_channels(&summary.std, |_| 0.0, &prep, pipeline);
    let entropy = summary
        .entropy
        .as_ref()
        .map(|h| export::restore(h.view(), 0.0, &prep, pipeline));
    let mutual_information = summary
        .mutual_information
        .as_ref()
        .map(|h| export::restore(h.view(), 0.0, &prep, pipeline));
    timings.finish_s = t.elapsed().as_secs_f64();

    Ok(Prediction {
        labels,
        probabilities,
        uncertainty,
        foreground_channels: foreground_channels(pipeline.activation, k).collect(),
        entropy,
        mutual_information,
        members: summary.members,
        timings,
        masks: match pipeline.activation {
            Activation::Softmax => MaskRule::LabelMap,
            Activation::Sigmoid => MaskRule::Regions,
        },
    })
}

/// Checks a run's options against an ensemble of `n` members and starts
/// its thread pool; returns the pool and the extra statistics to keep.
pub(crate) fn start_run(options: &Options, n: usize) -> Result<(rayon::ThreadPool, Extras)> {
    if n == 0 {
        return Err(Error::InvalidInput("the model has no members".into()));
    }
    if options.ddof >= n {
        return Err(Error::InvalidInput(format!(
            "ddof {} needs more than {} ensemble members, the model has {n}",
            options.ddof, options.ddof
        )));
    }
    if options.threads > MAX_THREADS {
        return Err(Error::InvalidInput(format!(
            "{} threads requested; at most {MAX_THREADS}",
            options.threads
        )));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.threads)
        .build()
        .map_err(|e| {
            Error::InvalidInput(format!("cannot start {} threads: {e}", options.threads))
        })?;
    let extras = Extras {
        logits: options.ensemble == EnsembleRule::MeanLogits,
        entropy: options.entropy,
        mutual_information: options.mutual_information,
    };
    Ok((pool, extras))
}

/// One member's exported result, from the export thread of [`predict`].
struct MemberExport {
    member: usize,
    /// Its forward passes' and its export's time, without waiting.
    seconds: f64,
    /// Its probabilities on the image grid, when the observer asked.
    full: Option<Array4<f32>>,
    /// The accumulator with the member added.
    added: Result<Accumulator>,
}

/// Waits for a member's export, hands its probabilities to the observer
/// and returns the accumulator.
fn collect(
    handle: ScopedJoinHandle<'_, MemberExport>,
    observer: &mut dyn Observer,
    timings: &mut Timings,
) -> Result<Accumulator> {
    let done = match handle.join() {
        Ok(done) => done,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    let acc = done.added?;
    if let Some(full) = &done.full {
        observer.member_probabilities(done.member, full)?;
    }
    timings.members_s.push(done.seconds);
    Ok(acc)
}

/// Probability outside the crop: 1 for the SoftMax background, else 0
/// (nnU-Net's `revert_cropping_on_probabilities`).
fn background_fill(p: &Pipeline, channel: usize) -> f32 {
    if p.activation == Activation::Softmax && channel == 0 {
        1.0
    } else {
        0.0
    }
}

fn prefix(what: &str, e: Error) -> Error {
    match e {
        Error::Cancelled => Error::Cancelled,
        Error::Backend(m) => Error::Backend(format!("{what}: {m}")),
        Error::InvalidInput(m) => Error::InvalidInput(format!("{what}: {m}")),
        other => other,
    }
}

//! How much of a `halo segment` run is spent in the networks' forward
//! passes: the run of `cli/src/segment.rs` (read the image, open the
//! model, predict, write labels, probabilities and uncertainty as NIfTI)
//! with every member's `Network::forward` timed.
//!
//! Used by `tools/bench/bench_inference.py`. Prints one JSON line:
//! `{"total_s", "forward_s", "forwards", "outside_share"}`.
//!
//! ```text
//! cargo run --release --example forward_timing -- MODEL IMAGE.nii.gz OUT_DIR THREADS
//! ```

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use halo_core::backend::{Backend, Network};
use halo_core::inference::{self, MemberSource, Options, ProgressFn};
use halo_core::model::{Model, PluginMembers, Preprocessing};
use halo_core::{Result, Volume};
use ndarray::{ArrayD, ArrayViewD, Axis};
use rayon::prelude::*;

/// Nanoseconds spent in forward passes, and their count.
#[derive(Default)]
struct Clock {
    nanos: AtomicU64,
    calls: AtomicU64,
}

struct TimedNetwork {
    inner: Box<dyn Network>,
    clock: Arc<Clock>,
}

impl Network for TimedNetwork {
    fn forward(&mut self, input: ArrayViewD<'_, f32>) -> Result<ArrayD<f32>> {
        let t = Instant::now();
        let out = self.inner.forward(input);
        let ns = t.elapsed().as_nanos() as u64;
        self.clock.nanos.fetch_add(ns, Ordering::Relaxed);
        self.clock.calls.fetch_add(1, Ordering::Relaxed);
        out
    }
}

struct TimedMembers {
    inner: PluginMembers,
    clock: Arc<Clock>,
}

impl MemberSource for TimedMembers {
    fn len(&self) -> usize {
        self.inner.len()
    }

    fn name(&self, index: usize) -> String {
        self.inner.name(index)
    }

    fn open(&mut self, index: usize) -> Result<Box<dyn Network>> {
        Ok(Box::new(TimedNetwork {
            inner: self.inner.open(index)?,
            clock: self.clock.clone(),
        }))
    }
}

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        return Err("usage: forward_timing MODEL IMAGE.nii.gz OUT_DIR THREADS".into());
    }
    // As `halo` does at start (cli/src/main.rs).
    halo_core::backend::keep_freed_memory();
    let started = Instant::now();
    let (model_dir, image, out) = (
        Path::new(&args[1]),
        Path::new(&args[2]),
        PathBuf::from(&args[3]),
    );
    let threads: usize = args[4].parse()?;

    let model = Model::open(model_dir)?;
    let volume = halo_core::nifti::read(image)?;
    let clock = Arc::new(Clock::default());
    let mut members = TimedMembers {
        inner: PluginMembers::new(&model, Backend::load()?, "cpu", threads),
        clock: clock.clone(),
    };
    let options = Options {
        threads,
        ..Options::default()
    };
    let mut observer = ProgressFn(|_| true);
    let g = &volume.grid;
    let prediction = match &model.manifest.preprocessing {
        Preprocessing::Monai(_) => inference::generic::predict(
            &[volume.data.view()],
            g,
            &model,
            &mut members,
            &options,
            &mut observer,
        )?,
        _ => {
            let values: Vec<u16> = model.manifest.labels.iter().map(|l| l.value).collect();
            inference::predict(
                &[volume.data.view()],
                [g.spacing[2], g.spacing[1], g.spacing[0]],
                &model.pipeline,
                &values,
                &mut members,
                &options,
                &mut observer,
            )?
        }
    };

    // The outputs halo segment writes (labels, then per foreground class
    // the mean probability and the uncertainty).
    std::fs::create_dir_all(&out)?;
    let vol = |data| Volume {
        grid: g.clone(),
        data,
    };
    let labels = Volume {
        grid: g.clone(),
        data: prediction.labels.mapv(|v| v as u8),
    };
    halo_core::nifti::write_u8(&out.join("labels.nii.gz"), &labels)?;
    // As `halo segment` writes them: compressed on every core.
    let mut maps = vec![];
    for (i, &c) in prediction.foreground_channels.iter().enumerate() {
        let p = prediction.probabilities.index_axis(Axis(0), c);
        maps.push((format!("probability_{c}.nii.gz"), p));
        let u = prediction.uncertainty.index_axis(Axis(0), i);
        maps.push((format!("uncertainty_{c}.nii.gz"), u));
    }
    maps.par_iter().try_for_each(|(file, data)| {
        halo_core::nifti::write(&out.join(file), &vol(data.to_owned()))
    })?;

    let total = started.elapsed().as_secs_f64();
    let forward = clock.nanos.load(Ordering::Relaxed) as f64 * 1e-9;
    println!(
        "{{\"total_s\": {total:.4}, \"forward_s\": {forward:.4}, \"forwards\": {}, \
         \"outside_share\": {:.5}}}",
        clock.calls.load(Ordering::Relaxed),
        (total - forward) / total
    );
    Ok(())
}

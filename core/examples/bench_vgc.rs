//! Times VGC analysis at the size of the reference study: 4 readers x 35
//! cases on a five-point scale, 2000 bootstrap replicates and 2000
//! permutations, on one thread. Prints one JSON line with the median,
//! minimum and maximum of several runs in milliseconds.
//!
//! `cargo run --release -p halo-core --example bench_vgc [RUNS]`; used by
//! `tools/bench/bench_vgc.py`, which writes `docs/benchmarks.md`.

use std::time::Instant;

use halo_core::stats::{self, descriptive, rng::Rng, ReaderRatings, VgcOptions};

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(15);

    // Synthetic ratings, the test condition a little higher on average.
    let mut rng = Rng::new(2024, 0);
    let readers: Vec<ReaderRatings> = (0..4)
        .map(|_| {
            let reference: Vec<f64> = (0..35).map(|_| 1.0 + rng.below(5) as f64).collect();
            let test = reference
                .iter()
                .map(|&r| (r + rng.below(3) as f64 - 0.6).round().clamp(1.0, 5.0))
                .collect();
            ReaderRatings { reference, test }
        })
        .collect();
    let options = VgcOptions {
        bootstrap: 2000,
        permutations: 2000,
        ..VgcOptions::default()
    };

    let mut times = Vec::with_capacity(runs);
    let mut pooled_auc = 0.0;
    for _ in 0..runs {
        let start = Instant::now();
        let result = stats::vgc(&readers, &options).expect("synthetic ratings are valid");
        times.push(start.elapsed().as_secs_f64() * 1e3);
        pooled_auc = result.pooled.auc;
    }

    let max = times.iter().copied().fold(f64::MIN, f64::max);
    let min = times.iter().copied().fold(f64::MAX, f64::min);
    println!(
        "{{\"runs\": {runs}, \"readers\": 4, \"cases\": 35, \"bootstrap\": 2000, \
         \"permutations\": 2000, \"median_ms\": {:.3}, \"min_ms\": {min:.3}, \
         \"max_ms\": {max:.3}, \"pooled_auc\": {pooled_auc}}}",
        descriptive::median(&times)
    );
}

//! Sliding-window prediction with Gaussian weighting and test-time
//! mirroring, as nnU-Net v2's `nnUNetPredictor.predict_sliding_window_return_logits`
//! (nnunetv2/inference/predict_from_raw_data.py and sliding_window_prediction.py).

use half::f16;
use ndarray::{s, Array3, Array4, Array5, ArrayD, Axis};

use crate::backend::Network;
use crate::model::{Accumulate, Pipeline};
use crate::{Error, Result};

/// Gaussian sigma as a fraction of the patch size (nnU-Net: 1/8).
const SIGMA_SCALE: f64 = 1.0 / 8.0;

/// Maximum of the Gaussian importance map (nnU-Net's
/// `value_scaling_factor`).
const GAUSSIAN_MAX: f64 = 10.0;

/// SciPy's `gaussian_filter` default truncation, in sigmas.
const TRUNCATE: f64 = 4.0;

/// Rounds to the nearest float16 (ties to even) and back.
pub fn round_f16(v: f32) -> f32 {
    f16::from_f32(v).to_f32()
}

/// Rounds an `f64` straight to float16 (NumPy's `astype(float16)`).
pub fn round_f16_from_f64(v: f64) -> f32 {
    f16::from_f64(v).to_f32()
}

/// Tile start positions along one axis (`compute_steps_for_sliding_window`):
/// `n = ceil((size - patch) / (patch * step)) + 1` tiles, tile `k` at
/// `round(k * (size - patch) / (n - 1))`, rounding half to even.
pub fn steps(size: usize, patch: usize, step: f64) -> Vec<usize> {
    let target = patch as f64 * step;
    let n = ((size - patch) as f64 / target).ceil() as usize + 1;
    if n == 1 {
        return vec![0];
    }
    let actual = (size - patch) as f64 / (n - 1) as f64;
    (0..n)
        .map(|k| (actual * k as f64).round_ties_even() as usize)
        .collect()
}

/// The Gaussian importance map of a patch (`compute_gaussian`): a unit
/// impulse at `patch // 2` filtered with sigma `patch / 8` (SciPy's
/// kernel, truncated at 4 sigma, constant mode), scaled to a maximum of
/// 10, converted to float16 when `half`, zeros replaced by the smallest
/// non-zero value.
pub fn gaussian(patch: [usize; 3], half: bool) -> Array3<f32> {
    let kernels: Vec<Vec<f64>> = patch
        .iter()
        .map(|&p| {
            let sigma = p as f64 * SIGMA_SCALE;
            let radius = (TRUNCATE * sigma + 0.5) as i64;
            let phi: Vec<f64> = (-radius..=radius)
                .map(|x| (-0.5 / (sigma * sigma) * (x * x) as f64).exp())
                .collect();
            let sum: f64 = phi.iter().sum();
            let centre = (p / 2) as i64;
            (0..p as i64)
                .map(|i| {
                    let d = i - centre;
                    if d.abs() <= radius {
                        phi[(d + radius) as usize] / sum
                    } else {
                        0.0
                    }
                })
                .collect()
        })
        .collect();
    let value = |i: usize, j: usize, k: usize| kernels[0][i] * kernels[1][j] * kernels[2][k];
    let max = value(patch[0] / 2, patch[1] / 2, patch[2] / 2);
    let scale = max / GAUSSIAN_MAX;

    let mut g = Array3::from_shape_fn((patch[0], patch[1], patch[2]), |(i, j, k)| {
        let v = value(i, j, k) / scale;
        // torch converts a float64 tensor to half through float.
        if half {
            round_f16(v as f32)
        } else {
            v as f32
        }
    });
    let min_nonzero = g
        .iter()
        .copied()
        .filter(|&v| v != 0.0)
        .fold(f32::INFINITY, f32::min);
    g.mapv_inplace(|v| if v == 0.0 { min_nonzero } else { v });
    g
}

/// The mirror-axis combinations in `itertools.combinations` order: all
/// single axes, then pairs, then the triple.
pub fn mirror_combinations(axes: &[usize]) -> Vec<Vec<usize>> {
    let mut out = vec![];
    for r in 1..=axes.len() {
        let mut idx: Vec<usize> = (0..r).collect();
        loop {
            out.push(idx.iter().map(|&i| axes[i]).collect());
            let Some(i) = (0..r).rev().find(|&i| idx[i] != i + axes.len() - r) else {
                break;
            };
            idx[i] += 1;
            for j in i + 1..r {
                idx[j] = idx[j - 1] + 1;
            }
        }
    }
    out
}

/// The tiles of an image of `shape` (after padding to the patch).
pub fn tile_starts(shape: [usize; 3], pipeline: &Pipeline) -> Vec<[usize; 3]> {
    let p = pipeline.patch_size;
    let padded = [0, 1, 2].map(|i| shape[i].max(p[i]));
    let st: Vec<Vec<usize>> = (0..3)
        .map(|i| steps(padded[i], p[i], pipeline.tile_step_size))
        .collect();
    let mut out = vec![];
    for &a in &st[0] {
        for &b in &st[1] {
            for &c in &st[2] {
                out.push([a, b, c]);
            }
        }
    }
    out
}

/// Predicts the logits of `data` (`[c, d0, d1, d2]`) with one network.
///
/// `on_tile(done, total)` is called after every tile; returning `false`
/// cancels. Returns logits `[k, d0, d1, d2]`, float16-rounded when the
/// pipeline accumulates in float16.
///
/// # Errors
///
/// [`Error::Cancelled`], the network's error, or [`Error::InvalidInput`]
/// when the network's output shape does not match the pipeline.
pub fn predict_logits(
    net: &mut dyn Network,
    data: &Array4<f32>,
    pipeline: &Pipeline,
    on_tile: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<Array4<f32>> {
    let half = pipeline.accumulate == Accumulate::Float16;
    let p = pipeline.patch_size;
    let k = pipeline.output_channels;
    let (c, d0, d1, d2) = data.dim();

    // pad_nd_image: zeros, floor of the difference below, ceil above.
    let shape = [d0, d1, d2];
    let padded_shape = [0, 1, 2].map(|i| shape[i].max(p[i]));
    let below = [0, 1, 2].map(|i| (padded_shape[i] - shape[i]) / 2);
    let padded = if padded_shape == shape {
        None
    } else {
        let mut a = Array4::<f32>::zeros((c, padded_shape[0], padded_shape[1], padded_shape[2]));
        a.slice_mut(s![
            ..,
            below[0]..below[0] + d0,
            below[1]..below[1] + d1,
            below[2]..below[2] + d2
        ])
        .assign(data);
        Some(a)
    };
    let image = padded.as_ref().unwrap_or(data);

    let weights = if pipeline.gaussian {
        gaussian(p, half)
    } else {
        Array3::from_elem((p[0], p[1], p[2]), 1.0)
    };
    let combos = mirror_combinations(&pipeline.mirror_axes);
    let tiles = tile_starts(shape, pipeline);
    let round = |v: f32| if half { round_f16(v) } else { v };

    let mut acc = Array4::<f32>::zeros((k, padded_shape[0], padded_shape[1], padded_shape[2]));
    let mut counts = Array3::<f32>::zeros((padded_shape[0], padded_shape[1], padded_shape[2]));
    for (t, start) in tiles.iter().enumerate() {
        let r = [0, 1, 2].map(|i| start[i]..start[i] + p[i]);
        let tile = image
            .slice(s![.., r[0].clone(), r[1].clone(), r[2].clone()])
            .to_owned();
        let tile = tile.insert_axis(Axis(0));

        let mut pred = forward_checked(net, &tile, k, p)?;
        for axes in &combos {
            let flipped = flip(&tile, axes);
            let out = forward_checked(net, &flipped, k, p)?;
            pred += &flip(&out, axes);
        }
        if !combos.is_empty() {
            pred /= (combos.len() + 1) as f32;
        }

        let mut pred = pred.index_axis_move(Axis(0), 0);
        for mut ch in pred.outer_iter_mut() {
            ch *= &weights;
        }
        let mut a = acc.slice_mut(s![.., r[0].clone(), r[1].clone(), r[2].clone()]);
        a.zip_mut_with(&pred, |x, &y| *x = round(*x + y));
        let mut n = counts.slice_mut(s![r[0].clone(), r[1].clone(), r[2].clone()]);
        n.zip_mut_with(&weights, |x, &y| *x = round(*x + y));

        if !on_tile(t + 1, tiles.len()) {
            return Err(Error::Cancelled);
        }
    }

    for mut ch in acc.outer_iter_mut() {
        ch.zip_mut_with(&counts, |x, &n| *x = round(*x / n));
    }
    if acc.iter().any(|v| !v.is_finite()) {
        return Err(Error::InvalidInput(
            "the network produced non-finite logits (or they overflowed float16)".into(),
        ));
    }
    Ok(acc
        .slice(s![
            ..,
            below[0]..below[0] + d0,
            below[1]..below[1] + d1,
            below[2]..below[2] + d2
        ])
        .to_owned())
}

/// Runs the network on one `[1, c, p0, p1, p2]` tile and checks that the
/// output is `[1, k, p0, p1, p2]`.
fn forward_checked(
    net: &mut dyn Network,
    tile: &Array5<f32>,
    k: usize,
    p: [usize; 3],
) -> Result<Array5<f32>> {
    let out: ArrayD<f32> = net.forward(tile.view().into_dyn())?;
    let want = [1, k, p[0], p[1], p[2]];
    if out.shape() != want {
        return Err(Error::InvalidInput(format!(
            "the network returned shape {:?} for a {:?} patch, expected {want:?} \
             ({k} output channels, one per label of the manifest)",
            out.shape(),
            tile.shape()
        )));
    }
    // OK because the shape was checked to have five axes.
    Ok(out.into_dimensionality().expect("five axes"))
}

/// Flips spatial `axes` (0 to 2) of a `[b, c, d0, d1, d2]` array.
fn flip(a: &Array5<f32>, axes: &[usize]) -> Array5<f32> {
    let mut v = a.view();
    for &ax in axes {
        v.invert_axis(Axis(ax + 2));
    }
    v.as_standard_layout().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_match_nnunet_examples() {
        // nnU-Net's own comment: image 110, patch 64, step 0.5 -> 0, 23, 46.
        assert_eq!(steps(110, 64, 0.5), vec![0, 23, 46]);
        assert_eq!(steps(64, 64, 0.5), vec![0]);
        // 175 with 64: n = ceil(111 / 32) + 1 = 5, step 27.75.
        assert_eq!(steps(175, 64, 0.5), vec![0, 28, 56, 83, 111]);
    }

    #[test]
    fn mirror_combinations_follow_itertools_order() {
        let c = mirror_combinations(&[0, 1, 2]);

        assert_eq!(
            c,
            vec![
                vec![0],
                vec![1],
                vec![2],
                vec![0, 1],
                vec![0, 2],
                vec![1, 2],
                vec![0, 1, 2]
            ]
        );
    }

    #[test]
    fn gaussian_peaks_at_ten_with_no_zeros() {
        let g = gaussian([16, 64, 64], true);

        assert_eq!(g[(8, 32, 32)], 10.0);
        assert!(g.iter().all(|&v| v > 0.0));
        // SciPy: the 1D kernel of patch 16 at index 0 is 6.69162896e-05
        // of a centre of 0.19947...; the corner is its product scaled.
        assert!(g[(0, 32, 32)] > 0.0 && g[(0, 32, 32)] < 0.01);
    }

    #[test]
    fn half_rounding_is_ties_to_even() {
        assert_eq!(round_f16(1.0 + 1.0 / 2048.0), 1.0);
        assert_eq!(round_f16(1.0 + 3.0 / 2048.0), 1.0 + 4.0 / 2048.0);
    }
}

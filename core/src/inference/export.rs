//! From logits on the network's grid back to the image: nnU-Net v2's
//! `convert_predicted_logits_to_segmentation_with_correct_shape`
//! (nnunetv2/inference/export_prediction.py).

use ndarray::{s, Array3, Array4, ArrayView3, Axis};

use super::preprocess::Prepared;
use super::resample::resample;
use super::sliding::round_f16_from_f64;
use crate::model::{Accumulate, Pipeline};
use crate::uncertainty::activate;

/// Resamples one member's logits to the cropped input grid and applies
/// the activation. Returns `(logits, probabilities)` on the cropped grid.
///
/// With float16 accumulation the resampled logits are stored in float16
/// as nnU-Net does (its output array takes the logits' dtype).
pub fn to_cropped_grid(
    logits: &Array4<f32>,
    prep: &Prepared,
    p: &Pipeline,
) -> (Array4<f32>, Array4<f32>) {
    let round: fn(f64) -> f32 = match p.accumulate {
        Accumulate::Float16 => round_f16_from_f64,
        Accumulate::Float32 => |v| v as f32,
    };
    let resampled = resample(
        logits,
        prep.shape_after_cropping(),
        prep.target_spacing,
        prep.spacing,
        &p.logit_resampling,
        round,
    );
    let probs = activate(&resampled, p.activation);
    (resampled, probs)
}

/// Puts a cropped-grid volume back into the full image, `fill` outside
/// the crop, and undoes the transpose: the result is `[z][y][x]` of the
/// input.
pub fn restore<T: Clone>(
    cropped: ArrayView3<'_, T>,
    fill: T,
    prep: &Prepared,
    p: &Pipeline,
) -> Array3<T> {
    let sh = prep.shape_before_cropping;
    let b = prep.bbox;
    let mut full = Array3::from_elem((sh[0], sh[1], sh[2]), fill);
    full.slice_mut(s![b[0][0]..b[0][1], b[1][0]..b[1][1], b[2][0]..b[2][1]])
        .assign(&cropped);
    full.permuted_axes(p.transpose_backward)
        .as_standard_layout()
        .into_owned()
}

/// Restores every channel of a `[k, ...]` cropped array; channel `c` is
/// filled with `fill(c)` outside the crop.
pub fn restore_channels(
    cropped: &Array4<f32>,
    fill: impl Fn(usize) -> f32,
    prep: &Prepared,
    p: &Pipeline,
) -> Array4<f32> {
    let sh = prep.shape_before_cropping;
    let tb = p.transpose_backward;
    let out_shape = tb.map(|a| sh[a]);
    let mut out = Array4::<f32>::zeros((cropped.dim().0, out_shape[0], out_shape[1], out_shape[2]));
    for (c, ch) in cropped.outer_iter().enumerate() {
        out.index_axis_mut(Axis(0), c)
            .assign(&restore(ch, fill(c), prep, p));
    }
    out
}

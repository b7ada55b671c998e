//! Preprocessing as nnU-Net v2's `DefaultPreprocessor.run_case_npy`:
//! transpose, crop to the non-zero bounding box, normalise, resample.

use std::collections::VecDeque;

use ndarray::{s, Array3, Array4, ArrayView3, Axis};

use super::resample::{compute_new_shape, resample};
use crate::model::{Normalisation, Pipeline};
use crate::{Error, Result};

/// nnU-Net's floor on the standard deviation (float32 data).
const STD_FLOOR: f32 = 1e-8;

/// An image ready for the sliding window, and what is needed to map
/// predictions back. Axes are the transposed ones.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Normalised, resampled channels, `[c, d0, d1, d2]`.
    pub data: Array4<f32>,
    /// Shape of the transposed image before cropping.
    pub shape_before_cropping: [usize; 3],
    /// Crop box: `[start, end)` per axis.
    pub bbox: [[usize; 2]; 3],
    /// Spacing (mm) of the transposed input.
    pub spacing: [f64; 3],
    /// Spacing (mm) of `data`.
    pub target_spacing: [f64; 3],
}

impl Prepared {
    /// Shape of the crop, before resampling.
    pub fn shape_after_cropping(&self) -> [usize; 3] {
        [0, 1, 2].map(|i| self.bbox[i][1] - self.bbox[i][0])
    }
}

/// Runs the preprocessing of `pipeline` on `channels` (each `[z][y][x]`,
/// all the same shape) with voxel spacing `spacing_zyx` (mm).
///
/// # Errors
///
/// [`Error::InvalidInput`] when the channel count or shapes disagree, or
/// the image is zero everywhere (nothing to crop to).
pub fn prepare(
    channels: &[ArrayView3<'_, f32>],
    spacing_zyx: [f64; 3],
    pipeline: &Pipeline,
) -> Result<Prepared> {
    if channels.len() != pipeline.input_channels {
        return Err(Error::InvalidInput(format!(
            "the model takes {} input channels, {} given",
            pipeline.input_channels,
            channels.len()
        )));
    }
    let shape0 = channels[0].dim();
    if let Some(c) = channels.iter().position(|c| c.dim() != shape0) {
        return Err(Error::InvalidInput(format!(
            "channel {c} has shape {:?}, channel 0 {shape0:?}",
            channels[c].dim()
        )));
    }

    let tf = pipeline.transpose_forward;
    let spacing = tf.map(|a| spacing_zyx[a]);
    let transposed: Vec<ArrayView3<'_, f32>> = channels
        .iter()
        .map(|c| c.view().permuted_axes(tf))
        .collect();
    let sh = transposed[0].shape();
    let shape_before_cropping = [sh[0], sh[1], sh[2]];

    let (bbox, mask) = if pipeline.crop_nonzero {
        let mask = nonzero_mask(&transposed);
        let bbox = bounding_box(&mask).ok_or_else(|| {
            Error::InvalidInput("the image is zero everywhere; nothing to segment".into())
        })?;
        (bbox, Some(mask))
    } else {
        (shape_before_cropping.map(|n| [0, n]), None)
    };
    let sl = s![
        bbox[0][0]..bbox[0][1],
        bbox[1][0]..bbox[1][1],
        bbox[2][0]..bbox[2][1]
    ];
    let cropped_shape = [0, 1, 2].map(|i| bbox[i][1] - bbox[i][0]);
    let mut data = Array4::<f32>::zeros((
        channels.len(),
        cropped_shape[0],
        cropped_shape[1],
        cropped_shape[2],
    ));
    for (c, t) in transposed.iter().enumerate() {
        data.index_axis_mut(Axis(0), c).assign(&t.slice(sl));
    }
    let mask = mask.map(|m| m.slice(sl).to_owned());

    for (c, norm) in pipeline.normalisation.iter().enumerate() {
        normalise(data.index_axis_mut(Axis(0), c), norm, mask.as_ref());
    }

    let target_spacing = pipeline.target_spacing.unwrap_or(spacing);
    let new_shape = compute_new_shape(cropped_shape, spacing, target_spacing);
    let data = resample(
        &data,
        new_shape,
        spacing,
        target_spacing,
        &pipeline.data_resampling,
        |v| v as f32,
    );

    Ok(Prepared {
        data,
        shape_before_cropping,
        bbox,
        spacing,
        target_spacing,
    })
}

/// Normalises one channel in place, in `f32` arithmetic as nnU-Net's
/// normalisation classes do.
fn normalise(
    mut x: ndarray::ArrayViewMut3<'_, f32>,
    n: &Normalisation,
    mask: Option<&Array3<bool>>,
) {
    match n {
        Normalisation::None => {}
        Normalisation::Zscore { use_mask: true } if mask.is_some() => {
            // OK because of the guard.
            let m = mask.expect("mask present");
            let (mean, std) = mean_std(x.iter().zip(m.iter()).filter(|(_, &k)| k).map(|(v, _)| *v));
            let d = std.max(STD_FLOOR);
            x.zip_mut_with(m, |v, &k| {
                if k {
                    *v = (*v - mean) / d;
                }
            });
        }
        Normalisation::Zscore { .. } => {
            let (mean, std) = mean_std(x.iter().copied());
            let d = std.max(STD_FLOOR);
            x.mapv_inplace(|v| (v - mean) / d);
        }
        Normalisation::Ct {
            mean,
            std,
            lower,
            upper,
        } => {
            let (lo, hi) = (*lower as f32, *upper as f32);
            let (m, d) = (*mean as f32, (*std as f32).max(STD_FLOOR));
            x.mapv_inplace(|v| (v.clamp(lo, hi) - m) / d);
        }
    }
}

/// Mean and population standard deviation, accumulated in `f64` and
/// returned as `f32` (NumPy's float32 `mean`/`std` agree to rounding).
fn mean_std(values: impl Iterator<Item = f32> + Clone) -> (f32, f32) {
    let (n, sum) = values
        .clone()
        .fold((0usize, 0f64), |(n, s), v| (n + 1, s + f64::from(v)));
    if n == 0 {
        return (0.0, 0.0);
    }
    let mean = sum / n as f64;
    let var = values.fold(0f64, |a, v| a + (f64::from(v) - mean).powi(2)) / n as f64;
    (mean as f32, var.sqrt() as f32)
}

/// Voxels non-zero in any channel, holes filled: nnU-Net's
/// `create_nonzero_mask` (SciPy `binary_fill_holes`, whose background
/// flood is 6-connected).
pub fn nonzero_mask(channels: &[ArrayView3<'_, f32>]) -> Array3<bool> {
    let (d0, d1, d2) = channels[0].dim();
    let mut mask = Array3::from_elem((d0, d1, d2), false);
    for c in channels {
        mask.zip_mut_with(c, |m, &v| *m |= v != 0.0);
    }

    // Flood the background from the border; what it cannot reach is a hole.
    let mut outside = Array3::from_elem((d0, d1, d2), false);
    let mut queue = VecDeque::new();
    for ((i, j, k), &m) in mask.indexed_iter() {
        let border = i == 0 || j == 0 || k == 0 || i + 1 == d0 || j + 1 == d1 || k + 1 == d2;
        if border && !m {
            outside[(i, j, k)] = true;
            queue.push_back((i, j, k));
        }
    }
    while let Some((i, j, k)) = queue.pop_front() {
        let neighbours = [
            (i.wrapping_sub(1), j, k),
            (i + 1, j, k),
            (i, j.wrapping_sub(1), k),
            (i, j + 1, k),
            (i, j, k.wrapping_sub(1)),
            (i, j, k + 1),
        ];
        for n in neighbours {
            if n.0 < d0 && n.1 < d1 && n.2 < d2 && !mask[n] && !outside[n] {
                outside[n] = true;
                queue.push_back(n);
            }
        }
    }
    outside.mapv(|o| !o)
}

/// `[start, end)` per axis of the true voxels, `None` when there is none.
pub fn bounding_box(mask: &Array3<bool>) -> Option<[[usize; 2]; 3]> {
    let mut lo = [usize::MAX; 3];
    let mut hi = [0usize; 3];
    let mut any = false;
    for ((i, j, k), &m) in mask.indexed_iter() {
        if m {
            any = true;
            for (a, v) in [i, j, k].into_iter().enumerate() {
                lo[a] = lo[a].min(v);
                hi[a] = hi[a].max(v + 1);
            }
        }
    }
    any.then(|| [[lo[0], hi[0]], [lo[1], hi[1]], [lo[2], hi[2]]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hole_is_filled_and_the_box_is_tight() {
        let mut a = Array3::<f32>::zeros((5, 6, 7));
        a.slice_mut(s![1..4, 1..5, 2..6]).fill(1.0);
        a[(2, 2, 3)] = 0.0;

        let m = nonzero_mask(&[a.view()]);

        assert!(m[(2, 2, 3)], "the enclosed zero is filled");
        assert!(!m[(0, 0, 0)]);
        assert_eq!(bounding_box(&m), Some([[1, 4], [1, 5], [2, 6]]));
    }

    #[test]
    fn zscore_gives_zero_mean_unit_std() {
        let mut a =
            Array3::<f32>::from_shape_fn((2, 3, 4), |(i, j, k)| (i * 12 + j * 4 + k) as f32);

        normalise(
            a.view_mut(),
            &Normalisation::Zscore { use_mask: false },
            None,
        );

        let (m, s) = mean_std(a.iter().copied());
        assert!(m.abs() < 1e-6 && (s - 1.0).abs() < 1e-6, "mean {m} std {s}");
    }
}

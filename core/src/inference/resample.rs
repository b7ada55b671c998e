//! Resampling as nnU-Net v2 does it (`resample_data_or_seg_to_shape` in
//! `nnunetv2/preprocessing/resampling/default_resampling.py`).
//!
//! nnU-Net resizes with scikit-image's `resize(mode="edge",
//! anti_aliasing=False)`, which is SciPy's `ndimage.zoom(grid_mode=True,
//! mode="nearest")` followed by clipping to the input's range. This module
//! reproduces that arithmetic in `f64`:
//!
//! - output index `o` samples input coordinate `(o + 0.5) * n_in / n_out - 0.5`;
//! - order 3: SciPy pads 12 voxels by edge replication, computes cubic
//!   B-spline coefficients with its "reflect" boundary initialisation
//!   (Unser, Aldroubi and Eden 1991), and evaluates the spline;
//! - order 1: linear, indices clamped to the edge;
//! - order 0: index `floor(x + 0.5)`, clamped to the edge.
//!
//! When the spacing anisotropy exceeds 3 the low-resolution axis is
//! handled apart: every slice is resized in 2D (clipped to that slice's
//! range), then the axis is interpolated with `order_z` (`map_coordinates`).
//! The tests pin the result to SciPy within 1e-12 on fixed inputs.

use ndarray::{Array4, ArrayD, ArrayView3, Axis, IxDyn};
use rayon::prelude::*;

use crate::model::ResampleSpec;

/// Padding SciPy adds before spline filtering in mode "nearest"
/// (`scipy.ndimage._interpolation._prepad_for_spline_filter`).
const SPLINE_PAD: usize = 12;

/// The cubic B-spline pole, `sqrt(3) - 2`.
const POLE3: f64 = -0.267_949_192_431_122_7;

/// Target shape for a spacing change: per axis
/// `round(old_spacing / new_spacing * old_shape)`, rounding half to even as
/// Python's `round` (nnU-Net's `compute_new_shape`).
pub fn compute_new_shape(old_shape: [usize; 3], old: [f64; 3], new: [f64; 3]) -> [usize; 3] {
    let mut out = [0; 3];
    for i in 0..3 {
        out[i] = (old[i] / new[i] * old_shape[i] as f64)
            .round_ties_even()
            .max(1.0) as usize;
    }
    out
}

/// The axis resampled apart, or `None` for full 3D resampling
/// (nnU-Net's `determine_do_sep_z_and_axis`).
pub fn separate_axis(spec: &ResampleSpec, current: [f64; 3], new: [f64; 3]) -> Option<usize> {
    let anisotropic = |s: [f64; 3]| {
        let max = s.iter().cloned().fold(f64::MIN, f64::max);
        let min = s.iter().cloned().fold(f64::MAX, f64::min);
        max / min > spec.anisotropy_threshold
    };
    // The low-resolution axes: where max(spacing) / spacing == 1 exactly.
    let lowres = |s: [f64; 3]| {
        let max = s.iter().cloned().fold(f64::MIN, f64::max);
        (0..3).filter(|&i| max / s[i] == 1.0).collect::<Vec<_>>()
    };
    let axes = match spec.force_separate_z {
        Some(false) => return None,
        Some(true) => lowres(current),
        None if anisotropic(current) => lowres(current),
        None if anisotropic(new) => lowres(new),
        None => return None,
    };
    // Two or three equally coarse axes: nnU-Net resamples in 3D.
    (axes.len() == 1).then(|| axes[0])
}

/// Resamples every channel of `data` (`[c, d0, d1, d2]`) to `new_shape`.
///
/// `current` and `new` are the spacings (mm) of the axes, which decide the
/// separate-axis rule. `round` is applied to every output value (for
/// example rounding to float16 as nnU-Net stores half-precision logits).
pub fn resample(
    data: &Array4<f32>,
    new_shape: [usize; 3],
    current: [f64; 3],
    new: [f64; 3],
    spec: &ResampleSpec,
    round: fn(f64) -> f32,
) -> Array4<f32> {
    let (c, d0, d1, d2) = data.dim();
    if [d0, d1, d2] == new_shape {
        return data.clone();
    }
    let axis = separate_axis(spec, current, new);

    let channels: Vec<ArrayD<f64>> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let v = data.index_axis(Axis(0), ch);
            match axis {
                Some(a) => resample_separate(v, new_shape, a, spec),
                None => {
                    let input = v.mapv(f64::from).into_dyn();
                    let mut out = zoom(&input, &new_shape, spec.order);
                    clip_to_range(&input, &mut out);
                    out
                }
            }
        })
        .collect();

    let mut out = Array4::<f32>::zeros((c, new_shape[0], new_shape[1], new_shape[2]));
    for (ch, res) in channels.into_iter().enumerate() {
        let mut dst = out.index_axis_mut(Axis(0), ch);
        for (d, s) in dst.iter_mut().zip(res.iter()) {
            *d = round(*s);
        }
    }
    out
}

/// The separate-axis path: 2D resize of each slice across `axis`, then
/// `map_coordinates` along `axis` with `order_z`.
fn resample_separate(
    v: ArrayView3<'_, f32>,
    new_shape: [usize; 3],
    axis: usize,
    spec: &ResampleSpec,
) -> ArrayD<f64> {
    let old = v.shape().to_vec();
    let shape_2d: Vec<usize> = (0..3)
        .filter(|&i| i != axis)
        .map(|i| new_shape[i])
        .collect();
    let mut mid_shape = new_shape.to_vec();
    mid_shape[axis] = old[axis];

    let slices: Vec<ArrayD<f64>> = (0..old[axis])
        .into_par_iter()
        .map(|s| {
            let input = v.index_axis(Axis(axis), s).mapv(f64::from).into_dyn();
            let mut out = zoom(&input, &shape_2d, spec.order);
            clip_to_range(&input, &mut out);
            out
        })
        .collect();
    let mut mid = ArrayD::<f64>::zeros(IxDyn(&mid_shape));
    for (s, sl) in slices.iter().enumerate() {
        mid.index_axis_mut(Axis(axis), s).assign(sl);
    }

    if old[axis] == new_shape[axis] {
        return mid;
    }
    // nnU-Net maps the other axes with scale 1 ((i + 0.5) - 0.5 == i),
    // so only `axis` moves; map_coordinates does not prefilter for order
    // 0 or 1 and clamps in mode "nearest".
    interp_axis(&mid, axis, old[axis], new_shape[axis], spec.order_z, 0)
}

/// `scipy.ndimage.zoom(input, grid_mode=True, mode="nearest", order)` to
/// `out_shape`, separably per axis (axes whose size does not change are
/// left as they are, which SciPy reproduces to rounding).
pub fn zoom(input: &ArrayD<f64>, out_shape: &[usize], order: usize) -> ArrayD<f64> {
    let changing: Vec<usize> = (0..input.ndim())
        .filter(|&a| input.shape()[a] != out_shape[a])
        .collect();
    if changing.is_empty() {
        return input.clone();
    }

    let (mut work, offset) = if order >= 2 {
        let mut p = pad_edge(input, &changing, SPLINE_PAD);
        for &a in &changing {
            spline_filter_axis(&mut p, a);
        }
        (p, SPLINE_PAD)
    } else {
        (input.clone(), 0)
    };
    for &a in &changing {
        work = interp_axis(&work, a, input.shape()[a], out_shape[a], order, offset);
    }
    work
}

/// Clips `out` to the range of `input` (scikit-image's `clip=True`).
fn clip_to_range(input: &ArrayD<f64>, out: &mut ArrayD<f64>) {
    let (lo, hi) = input
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    out.mapv_inplace(|v| v.clamp(lo, hi));
}

/// Pads `axes` of `a` by `pad` voxels on both sides, repeating the edge.
fn pad_edge(a: &ArrayD<f64>, axes: &[usize], pad: usize) -> ArrayD<f64> {
    let mut cur = a.clone();
    for &ax in axes {
        let n = cur.shape()[ax];
        let mut shape = cur.shape().to_vec();
        shape[ax] = n + 2 * pad;
        let mut next = ArrayD::<f64>::zeros(IxDyn(&shape));
        for i in 0..n + 2 * pad {
            let src = i.saturating_sub(pad).min(n - 1);
            next.index_axis_mut(Axis(ax), i)
                .assign(&cur.index_axis(Axis(ax), src));
        }
        cur = next;
    }
    cur
}

/// Cubic B-spline coefficients along `axis`, SciPy's `spline_filter1d`
/// with the "reflect" initialisation it uses for mode "nearest".
fn spline_filter_axis(a: &mut ArrayD<f64>, axis: usize) {
    let n = a.shape()[axis];
    if n < 2 {
        return;
    }
    let z = POLE3;
    let gain = (1.0 - z) * (1.0 - 1.0 / z);
    let mut buf = vec![0.0; n];
    for mut lane in a.lanes_mut(Axis(axis)) {
        for (b, v) in buf.iter_mut().zip(lane.iter()) {
            *b = *v * gain;
        }

        // Causal initialisation, half-sample symmetric boundary.
        let zn = z.powi(n as i32);
        let c0 = buf[0];
        let mut acc = buf[0] + zn * buf[n - 1];
        let mut zi = z;
        for i in 1..n {
            acc += zi * (buf[i] + zn * buf[n - 1 - i]);
            zi *= z;
        }
        buf[0] = acc * z / (1.0 - zn * zn) + c0;
        for i in 1..n {
            buf[i] += z * buf[i - 1];
        }

        // Anti-causal pass.
        buf[n - 1] *= z / (z - 1.0);
        for i in (0..n - 1).rev() {
            buf[i] = z * (buf[i + 1] - buf[i]);
        }

        for (v, b) in lane.iter_mut().zip(buf.iter()) {
            *v = *b;
        }
    }
}

/// Interpolation weights of SciPy's `get_spline_interpolation_weights`
/// for the `order + 1` knots from `start`.
fn weights(x: f64, order: usize) -> (i64, [f64; 4]) {
    match order {
        0 => ((x + 0.5).floor() as i64, [1.0, 0.0, 0.0, 0.0]),
        1 => {
            let f = x.floor();
            let t = x - f;
            (f as i64, [1.0 - t, t, 0.0, 0.0])
        }
        _ => {
            let f = x.floor();
            let y = x - f;
            let z = 1.0 - y;
            let w0 = z * z * z / 6.0;
            let w1 = (y * y * (y - 2.0) * 3.0 + 4.0) / 6.0;
            let w2 = (z * z * (z - 2.0) * 3.0 + 4.0) / 6.0;
            (f as i64 - 1, [w0, w1, w2, 1.0 - w0 - w1 - w2])
        }
    }
}

/// Samples `a` along `axis` at the zoom coordinates of `n_out` outputs
/// from `n_in` inputs (the data may carry `offset` voxels of padding on
/// both sides of that axis).
fn interp_axis(
    a: &ArrayD<f64>,
    axis: usize,
    n_in: usize,
    n_out: usize,
    order: usize,
    offset: usize,
) -> ArrayD<f64> {
    let len = a.shape()[axis] as i64;
    let scale = n_in as f64 / n_out as f64;
    let taps = if order == 0 { 1 } else { order.min(3) + 1 };
    let plan: Vec<(i64, [f64; 4])> = (0..n_out)
        .map(|o| {
            let mut x = (o as f64 + 0.5) * scale - 0.5;
            if order <= 1 {
                // Mode "nearest" without padding: clamp into the data.
                x = x.clamp(0.0, (n_in - 1) as f64);
            }
            weights(x + offset as f64, order)
        })
        .collect();

    let mut shape = a.shape().to_vec();
    shape[axis] = n_out;
    let mut out = ArrayD::<f64>::zeros(IxDyn(&shape));
    for (o, (start, w)) in plan.iter().enumerate() {
        let mut dst = out.index_axis_mut(Axis(axis), o);
        for (k, wk) in w.iter().enumerate().take(taps) {
            let idx = (start + k as i64).clamp(0, len - 1) as usize;
            let src = a.index_axis(Axis(axis), idx);
            dst.zip_mut_with(&src, |d, s| *d += wk * s);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(order: usize) -> ResampleSpec {
        ResampleSpec {
            order,
            order_z: 0,
            force_separate_z: None,
            anisotropy_threshold: 3.0,
        }
    }

    #[test]
    fn new_shape_rounds_half_to_even() {
        // 5 * 1 / 2 = 2.5 -> 2; 7 * 1 / 2 = 3.5 -> 4.
        let s = compute_new_shape([5, 7, 4], [1.0; 3], [2.0, 2.0, 1.0]);

        assert_eq!(s, [2, 4, 4]);
    }

    #[test]
    fn the_anisotropic_axis_is_treated_apart() {
        let s = spec(3);

        assert_eq!(separate_axis(&s, [3.0, 0.5, 0.5], [1.0, 1.0, 1.0]), Some(0));
        assert_eq!(separate_axis(&s, [1.0, 1.0, 1.0], [4.0, 1.0, 1.0]), Some(0));
        assert_eq!(separate_axis(&s, [2.0, 1.0, 1.0], [1.0, 1.0, 1.0]), None);
        // Two equally coarse axes: 3D.
        assert_eq!(separate_axis(&s, [4.0, 4.0, 1.0], [1.0; 3]), None);
    }

    #[test]
    fn cubic_zoom_matches_scipy_on_a_fixed_signal() {
        // scipy.ndimage.zoom([0, 1, 4, 2, -1, 3, 5], 11 / 7, order=3,
        // mode="nearest", grid_mode=True), SciPy 1.17.
        let input = ArrayD::from_shape_vec(IxDyn(&[7]), vec![0., 1., 4., 2., -1., 3., 5.]).unwrap();
        let want = [
            -0.010_475_531_614_019_18,
            0.139_064_661_836_038_55,
            1.263_989_730_348_948_2,
            3.434_969_522_406_439,
            3.920_861_173_254_561,
            2.000_000_000_000_001,
            -0.565_398_270_209_107_4,
            -0.386_939_575_219_573_3,
            2.597_800_312_349_751_7,
            4.542_468_745_018_357,
            5.062_574_930_956_02,
        ];

        let got = zoom(&input, &[11], 3);

        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() < 1e-12, "output {i}: {g} != {w}");
        }
    }

    #[test]
    fn resample_keeps_a_constant_image_constant() {
        let data = Array4::<f32>::from_elem((1, 3, 5, 6), 2.5);

        let out = resample(&data, [7, 9, 4], [3.0, 0.5, 0.5], [1.0; 3], &spec(3), |v| {
            v as f32
        });

        assert_eq!(out.dim(), (1, 7, 9, 4));
        assert!(out.iter().all(|&v| (v - 2.5).abs() < 1e-6));
    }
}

//! The array operations of the generic (MONAI-style) pipeline, each the
//! counterpart of one MONAI or SciPy function (named in its docs).
//!
//! Arrays are `[z][y][x]` (or `[c][z][y][x]`); "axis" means an array axis.

use ndarray::{s, Array3, Array4, ArrayView3, ArrayViewMut1, Axis, Zip};

use crate::geometry::Grid;

/// How the array axes are permuted and flipped to bring a volume to RAS.
///
/// New axis `a` is old axis `perm[a]`, reversed when `flip[a]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reorientation {
    /// Old axis of each new axis.
    pub perm: [usize; 3],
    /// Whether each new axis runs backwards along its old one.
    pub flip: [bool; 3],
}

impl Reorientation {
    /// No change (native axes).
    pub const IDENTITY: Reorientation = Reorientation {
        perm: [0, 1, 2],
        flip: [false; 3],
    };

    /// The reorientation after which x grows towards the patient's right,
    /// y towards anterior and z towards superior, as MONAI's
    /// `Orientation(axcodes="RAS")` with nibabel's `io_orientation`: each
    /// index axis in turn (x, y, z) takes the world axis its direction
    /// is closest to among those not yet taken.
    pub fn to_ras(grid: &Grid) -> Self {
        // RAS components of the LPS direction columns.
        let ras = |row: usize, col: usize| {
            let v = grid.direction[row][col];
            if row < 2 {
                -v
            } else {
                v
            }
        };
        let mut taken = [false; 3];
        let mut r = Reorientation::IDENTITY;
        for index_axis in 0..3 {
            let world = (0..3)
                .filter(|&w| !taken[w])
                .fold(None, |best: Option<usize>, w| match best {
                    Some(b) if ras(b, index_axis).abs() >= ras(w, index_axis).abs() => Some(b),
                    _ => Some(w),
                })
                // OK because three index axes take three distinct world axes.
                .expect("a world axis is left");
            taken[world] = true;
            // Index axis x, y, z is array axis 2, 1, 0; so are R, A, S.
            r.perm[2 - world] = 2 - index_axis;
            r.flip[2 - world] = ras(world, index_axis) < 0.0;
        }
        r
    }

    /// `v` (one value per old axis) in the new axis order.
    pub fn permute<T: Copy>(&self, v: [T; 3]) -> [T; 3] {
        self.perm.map(|p| v[p])
    }

    /// Brings an array to the new axes.
    pub fn apply<T: Clone>(&self, a: ArrayView3<'_, T>) -> Array3<T> {
        let mut v = a.permuted_axes(self.perm);
        for (axis, &f) in self.flip.iter().enumerate() {
            if f {
                v.invert_axis(Axis(axis));
            }
        }
        v.as_standard_layout().into_owned()
    }

    /// Brings an array on the new axes back to the old ones.
    pub fn invert<T: Clone>(&self, a: ArrayView3<'_, T>) -> Array3<T> {
        let mut v = a;
        for (axis, &f) in self.flip.iter().enumerate() {
            if f {
                v.invert_axis(Axis(axis));
            }
        }
        let mut inverse = [0; 3];
        for (new, &old) in self.perm.iter().enumerate() {
            inverse[old] = new;
        }
        v.permuted_axes(inverse).as_standard_layout().into_owned()
    }
}

/// Interpolation of the resampling steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// Linear (PyTorch `grid_sample` bilinear/trilinear).
    Linear,
    /// Cubic convolution with a = -0.75 (PyTorch `grid_sample` bicubic).
    Cubic,
}

/// Output length of MONAI's `Spacing` along one axis:
/// `round((n - 1) * old / new + 1)`, half to even as NumPy
/// (`monai.data.utils.compute_shape_offset` without `scale_extent`).
pub fn spacing_shape(n: usize, old: f64, new: f64) -> usize {
    let v = (n as f64 - 1.0) * old / new + 1.0;
    (v.round_ties_even() as usize).max(1)
}

/// Resamples `a` along `axis` to `out_len` samples, sample `j` taken at
/// input index `j * step`, positions clamped to the array (PyTorch's
/// `padding_mode="border"`). MONAI's `Spacing` and its inverse are this
/// along each axis: the index-space transform between the two affines is
/// diagonal when only the voxel size changes.
pub fn resample_axis(
    a: &Array3<f32>,
    axis: usize,
    out_len: usize,
    step: f64,
    kernel: Kernel,
) -> Array3<f32> {
    let n = a.len_of(Axis(axis));
    let taps: Vec<Vec<(usize, f32)>> = (0..out_len)
        .map(|j| taps_at(j as f64 * step, n, kernel))
        .collect();
    let mut dims = [a.dim().0, a.dim().1, a.dim().2];
    dims[axis] = out_len;
    let mut out = Array3::<f32>::zeros(dims);
    Zip::from(out.lanes_mut(Axis(axis)))
        .and(a.lanes(Axis(axis)))
        .for_each(|mut o, i| {
            for (j, t) in taps.iter().enumerate() {
                o[j] = t.iter().map(|&(k, w)| w * i[k]).sum();
            }
        });
    out
}

/// Input indices and weights of one output sample at position `x`.
fn taps_at(x: f64, n: usize, kernel: Kernel) -> Vec<(usize, f32)> {
    let last = (n - 1) as f64;
    match kernel {
        Kernel::Linear => {
            let x = x.clamp(0.0, last);
            let i0 = x.floor() as usize;
            let t = (x - i0 as f64) as f32;
            if i0 + 1 < n && t > 0.0 {
                vec![(i0, 1.0 - t), (i0 + 1, t)]
            } else {
                vec![(i0, 1.0)]
            }
        }
        Kernel::Cubic => {
            // grid_sample's bicubic clamps the position, then each of the
            // four taps (border padding), with Keys' kernel at a = -0.75.
            let x = x.clamp(0.0, last);
            let i0 = x.floor();
            let t = x - i0;
            let a = -0.75;
            let near = |d: f64| ((a + 2.0) * d - (a + 3.0)) * d * d + 1.0;
            let far = |d: f64| ((a * d - 5.0 * a) * d + 8.0 * a) * d - 4.0 * a;
            let w = [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)];
            (0..4)
                .map(|k| {
                    let idx = (i0 + k as f64 - 1.0).clamp(0.0, last) as usize;
                    (idx, w[k] as f32)
                })
                .collect()
        }
    }
}

/// Z-score over the voxels that are not zero, which stay zero; a zero
/// standard deviation counts as 1 (MONAI's `NormalizeIntensity(nonzero=
/// True)`, population standard deviation). With `nonzero` false, over all
/// voxels.
pub fn zscore(a: &mut Array3<f32>, nonzero: bool) {
    let selected = |v: f32| !nonzero || v != 0.0;
    let (mut n, mut sum) = (0usize, 0f64);
    for &v in a.iter().filter(|&&v| selected(v)) {
        n += 1;
        sum += f64::from(v);
    }
    if n == 0 {
        return;
    }
    let mean = sum / n as f64;
    let var = a
        .iter()
        .filter(|&&v| selected(v))
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n as f64;
    let std = if var > 0.0 { var.sqrt() } else { 1.0 };
    let (mean, std) = (mean as f32, std as f32);
    a.mapv_inplace(|v| if selected(v) { (v - mean) / std } else { v });
}

/// The region `[start, end)` per axis; it may reach outside the array.
pub type Region = [[isize; 2]; 3];

/// MONAI's `CropForeground(select_fn=is_positive, margin, allow_smaller=
/// False)`: the bounding box of the voxels above zero in any channel,
/// widened by `margin` on every side even beyond the image (the part
/// outside is zero-padded). `None` when no voxel is above zero.
pub fn foreground_region(channels: &Array4<f32>, margin: usize) -> Option<Region> {
    let (_, d0, d1, d2) = channels.dim();
    let mask = Array3::from_shape_fn((d0, d1, d2), |(i, j, k)| {
        channels.outer_iter().any(|c| c[(i, j, k)] > 0.0)
    });
    let b = super::preprocess::bounding_box(&mask)?;
    let m = margin as isize;
    Some(b.map(|[lo, hi]| [lo as isize - m, hi as isize + m]))
}

/// Copies `region` of `a` (each channel), zeros where it leaves `a`.
pub fn crop_pad(a: &Array4<f32>, region: &Region) -> Array4<f32> {
    let (c, d0, d1, d2) = a.dim();
    let size = region.map(|[lo, hi]| (hi - lo) as usize);
    let mut out = Array4::<f32>::zeros((c, size[0], size[1], size[2]));
    if let Some((src, dst)) = overlap(region, [d0, d1, d2]) {
        out.slice_mut(s![.., dst[0].clone(), dst[1].clone(), dst[2].clone()])
            .assign(&a.slice(s![.., src[0].clone(), src[1].clone(), src[2].clone()]));
    }
    out
}

/// Puts `a` (the content of `region`) back into a zero array of `shape`:
/// the inverse of [`crop_pad`] (MONAI inverts the crop with zero padding).
pub fn uncrop(a: &Array4<f32>, region: &Region, shape: [usize; 3]) -> Array4<f32> {
    let c = a.dim().0;
    let mut out = Array4::<f32>::zeros((c, shape[0], shape[1], shape[2]));
    if let Some((src, dst)) = overlap(region, shape) {
        out.slice_mut(s![.., src[0].clone(), src[1].clone(), src[2].clone()])
            .assign(&a.slice(s![.., dst[0].clone(), dst[1].clone(), dst[2].clone()]));
    }
    out
}

type Ranges = [std::ops::Range<usize>; 3];

/// The part of `region` inside an array of `shape`: its ranges in the
/// array and in the region.
fn overlap(region: &Region, shape: [usize; 3]) -> Option<(Ranges, Ranges)> {
    let mut src: Ranges = [0..0, 0..0, 0..0];
    let mut dst: Ranges = [0..0, 0..0, 0..0];
    for a in 0..3 {
        let [lo, hi] = region[a];
        let from = lo.max(0);
        let to = hi.min(shape[a] as isize);
        if from >= to {
            return None;
        }
        src[a] = from as usize..to as usize;
        dst[a] = (from - lo) as usize..(to - lo) as usize;
    }
    Some((src, dst))
}

/// Tile start positions along one axis, as MONAI's
/// `sliding_window_inference`: interval `int(patch * (1 - overlap))` (at
/// least 1; the patch itself when it fills the axis), then
/// `dense_patch_slices`: `i * interval` for as many tiles as reach the end,
/// the last one moved back to end at the border.
pub fn window_starts(size: usize, patch: usize, overlap: f64) -> Vec<usize> {
    let size = size.max(patch);
    let interval = if patch == size {
        patch
    } else {
        ((patch as f64 * (1.0 - overlap)) as usize).max(1)
    };
    let count = (0..size.div_ceil(interval))
        .find(|d| d * interval + patch >= size)
        .map_or(1, |d| d + 1);
    (0..count)
        .map(|i| {
            let start = i * interval;
            start - (start + patch).saturating_sub(size)
        })
        .collect()
}

/// MONAI's Gaussian importance map (`compute_importance_map`): per axis
/// `exp(-x^2 / (2 sigma^2))` at `x = i - (p - 1) / 2` with
/// `sigma = sigma_scale * p`, the product over axes, floored at its
/// minimum or 1e-3, whichever is larger. Not normalised.
pub fn importance_map(patch: [usize; 3], sigma_scale: f64) -> Array3<f32> {
    let axis = |p: usize| -> Vec<f32> {
        let sigma = (sigma_scale * p as f64) as f32;
        (0..p)
            .map(|i| {
                let x = i as f32 - (p as f32 - 1.0) / 2.0;
                (x * x / (-2.0 * sigma * sigma)).exp()
            })
            .collect()
    };
    let (g0, g1, g2) = (axis(patch[0]), axis(patch[1]), axis(patch[2]));
    let mut m = Array3::from_shape_fn((patch[0], patch[1], patch[2]), |(i, j, k)| {
        g0[i] * g1[j] * g2[k]
    });
    let floor = m.iter().copied().fold(f32::INFINITY, f32::min).max(1e-3);
    m.mapv_inplace(|v| v.max(floor));
    m
}

/// SciPy's `ndimage.gaussian_filter(a, sigma, mode="nearest",
/// truncate=4.0)` in voxels, on every axis of a `[z][y][x]` array: a
/// normalised kernel of radius `int(4 sigma + 0.5)`, edges extended, one
/// axis after the other (x, y, z: SciPy's order on the NIfTI's i, j, k),
/// each pass in double precision rounded to `f32`.
pub fn gaussian_filter(a: &mut Array3<f32>, sigma: f64) {
    if sigma <= 0.0 {
        return;
    }
    let radius = (4.0 * sigma + 0.5) as isize;
    let mut w: Vec<f64> = (-radius..=radius)
        .map(|x| (-0.5 / (sigma * sigma) * (x * x) as f64).exp())
        .collect();
    let total: f64 = w.iter().sum();
    w.iter_mut().for_each(|v| *v /= total);

    for axis in [2, 1, 0] {
        a.lanes_mut(Axis(axis))
            .into_iter()
            .for_each(|lane| smooth_lane(lane, &w, radius));
    }
}

fn smooth_lane(mut lane: ArrayViewMut1<'_, f32>, w: &[f64], radius: isize) {
    let n = lane.len() as isize;
    let src: Vec<f64> = lane.iter().map(|&v| f64::from(v)).collect();
    for i in 0..n {
        let mut acc = 0.0;
        for (k, wk) in w.iter().enumerate() {
            let j = (i + k as isize - radius).clamp(0, n - 1);
            acc += wk * src[j as usize];
        }
        lane[i as usize] = acc as f32;
    }
}

/// Keeps the largest 26-connected component of `mask` (SciPy's
/// `ndimage.label` with a 3 x 3 x 3 structure, as TAPS's QC); the first
/// found in raster order wins a tie. An empty mask stays empty.
pub fn largest_component(mask: &mut Array3<bool>) {
    let (d0, d1, d2) = mask.dim();
    let mut label = Array3::<u32>::zeros((d0, d1, d2));
    let mut sizes = vec![0usize];
    let mut stack = vec![];
    for start in ndarray::indices((d0, d1, d2)) {
        if !mask[start] || label[start] != 0 {
            continue;
        }
        let id = sizes.len() as u32;
        sizes.push(0);
        label[start] = id;
        stack.push(start);
        while let Some((i, j, k)) = stack.pop() {
            sizes[id as usize] += 1;
            for di in -1isize..=1 {
                for dj in -1isize..=1 {
                    for dk in -1isize..=1 {
                        let (a, b, c) = (i as isize + di, j as isize + dj, k as isize + dk);
                        if a < 0 || b < 0 || c < 0 {
                            continue;
                        }
                        let n = (a as usize, b as usize, c as usize);
                        if n.0 < d0 && n.1 < d1 && n.2 < d2 && mask[n] && label[n] == 0 {
                            label[n] = id;
                            stack.push(n);
                        }
                    }
                }
            }
        }
    }
    if sizes.len() <= 2 {
        return;
    }
    let keep = (1..sizes.len()).fold(1, |best, i| if sizes[i] > sizes[best] { i } else { best });
    Zip::from(mask)
        .and(&label)
        .for_each(|m, &l| *m = l as usize == keep);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oblique_lps_grid_goes_to_ras_by_flipping_x_and_y() {
        // An axial series tilted about x, like ProstateX-0000's T2: x runs
        // to the patient's left, y posterior and a little inferior.
        let mut g = Grid::axis_aligned([4, 5, 6], [0.5, 0.5, 3.0], [0.0; 3]);
        g.direction = [[1.0, 0.0, 0.0], [0.0, 0.948, 0.317], [0.0, -0.317, 0.948]];

        let r = Reorientation::to_ras(&g);

        assert_eq!(r.perm, [0, 1, 2]);
        assert_eq!(r.flip, [false, true, true]);
    }

    #[test]
    fn a_sagittal_grid_is_permuted() {
        // Sagittal: x along -y LPS (anterior), y along -z (inferior), z along +x (left).
        let mut g = Grid::axis_aligned([4, 5, 6], [1.0; 3], [0.0; 3]);
        g.direction = [[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]];

        let r = Reorientation::to_ras(&g);

        // New x (R) is old z flipped; new y (A) old x; new z (S) old y flipped.
        assert_eq!(r.perm, [1, 2, 0]);
        assert_eq!(r.flip, [true, false, true]);
        let a = Array3::from_shape_fn((6, 5, 4), |(i, j, k)| (i * 100 + j * 10 + k) as f32);
        let b = r.apply(a.view());
        assert_eq!(b.dim(), (5, 4, 6));
        assert_eq!(r.invert(b.view()), a);
    }

    #[test]
    fn spacing_shape_rounds_half_to_even() {
        assert_eq!(spacing_shape(384, 0.5, 0.8), 240);
        // (n - 1) * 0.5 + 1 = 2.5 rounds to 2.
        assert_eq!(spacing_shape(4, 1.0, 2.0), 2);
        assert_eq!(spacing_shape(19, 3.0, 3.0), 19);
    }

    #[test]
    fn linear_resampling_interpolates_and_clamps() {
        let a = Array3::from_shape_fn((1, 1, 4), |(_, _, k)| k as f32 * 2.0);

        let b = resample_axis(&a, 2, 4, 1.5, Kernel::Linear);

        assert_eq!(b.as_slice().unwrap(), &[0.0, 3.0, 6.0, 6.0]);
    }

    #[test]
    fn cubic_resampling_matches_torch_bicubic_with_border_padding() {
        let a = Array3::from_shape_fn((1, 1, 8), |(_, _, k)| k as f32);

        let b = resample_axis(&a, 2, 3, 2.25, Kernel::Cubic);
        let c = resample_axis(&a, 2, 2, 6.9, Kernel::Cubic);

        // torch.nn.functional.grid_sample(mode="bicubic",
        // padding_mode="border", align_corners=False) on arange(8) gives
        // 2.2969 at 2.25 (a = -0.75 does not reproduce a ramp exactly) and
        // 6.9248 at 6.9 (taps beyond the end clamped).
        assert_eq!(b[(0, 0, 0)], 0.0);
        assert!((b[(0, 0, 1)] - 2.296875).abs() < 1e-6, "{}", b[(0, 0, 1)]);
        assert!((c[(0, 0, 1)] - 6.9248).abs() < 1e-4, "{}", c[(0, 0, 1)]);
    }

    #[test]
    fn zscore_ignores_and_keeps_zeros() {
        let mut a = Array3::from_shape_vec((1, 1, 4), vec![0.0, 1.0, 3.0, 0.0]).unwrap();

        zscore(&mut a, true);

        assert_eq!(a.as_slice().unwrap(), &[0.0, -1.0, 1.0, 0.0]);
    }

    #[test]
    fn the_foreground_region_reaches_beyond_the_image() {
        let mut a = Array4::<f32>::zeros((1, 3, 10, 10));
        a[(0, 1, 2, 7)] = 1.0;
        a[(0, 1, 3, 8)] = -1.0;

        let r = foreground_region(&a, 5).unwrap();
        let c = crop_pad(&a, &r);
        let back = uncrop(&c, &r, [3, 10, 10]);

        assert_eq!(r, [[-4, 7], [-3, 8], [2, 13]]);
        assert_eq!(c.dim(), (1, 11, 11, 11));
        assert_eq!(c[(0, 5, 5, 5)], 1.0);
        assert_eq!(back[(0, 1, 2, 7)], 1.0);
        assert_eq!(
            back[(0, 1, 3, 8)],
            -1.0,
            "inside the region the values return"
        );
    }

    #[test]
    fn window_starts_follow_monai() {
        // interval 64: 200 -> 0, 64, 72 (the last one pulled back).
        assert_eq!(window_starts(200, 128, 0.5), vec![0, 64, 72]);
        assert_eq!(window_starts(128, 128, 0.5), vec![0]);
        assert_eq!(window_starts(20, 32, 0.5), vec![0]);
        assert_eq!(window_starts(33, 32, 0.5), vec![0, 1]);
    }

    #[test]
    fn the_importance_map_matches_monai_values() {
        let m = importance_map([4, 4, 4], 0.125);

        // sigma 0.5, x = +-0.5 and +-1.5: exp(-0.5) and exp(-4.5).
        let inner = (-0.5f32).exp().powi(3);
        assert!((m[(1, 1, 1)] - inner).abs() < 1e-6);
        assert_eq!(m[(0, 0, 0)], 1e-3, "floored at 1e-3");
    }

    #[test]
    fn gaussian_filter_preserves_a_constant_and_spreads_a_spike() {
        let mut c = Array3::<f32>::from_elem((3, 4, 5), 2.0);
        gaussian_filter(&mut c, 2.5);
        assert!(c.iter().all(|&v| (v - 2.0).abs() < 1e-6));

        let mut a = Array3::<f32>::zeros((1, 1, 41));
        a[(0, 0, 20)] = 1.0;
        gaussian_filter(&mut a, 2.5);
        // A spike far from the edges returns the kernel; it sums to 1.
        let sum: f32 = a.iter().sum();
        assert!((sum - 1.0).abs() < 1e-6);
        assert!(a[(0, 0, 20)] > a[(0, 0, 22)] && a[(0, 0, 9)] == 0.0);
    }

    #[test]
    fn only_the_largest_26_connected_component_is_kept() {
        let mut m = Array3::from_elem((3, 6, 6), false);
        m[(0, 0, 0)] = true;
        m[(1, 1, 1)] = true; // diagonal neighbour: same component
        m[(2, 4, 4)] = true;
        m[(2, 4, 5)] = true;
        m[(2, 5, 5)] = true;

        largest_component(&mut m);

        assert_eq!(m.iter().filter(|&&v| v).count(), 3);
        assert!(m[(2, 4, 4)] && !m[(0, 0, 0)]);
    }
}

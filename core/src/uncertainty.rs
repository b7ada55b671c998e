//! Ensemble statistics in one streaming pass.
//!
//! Each member's probabilities `p_m` are added to an [`Accumulator`] and
//! then dropped, so memory is a few volumes whatever the member count `M`.
//! Per voxel and channel it keeps Welford's running mean and sum of
//! squared deviations (Welford 1962; Chan, Golub and LeVeque 1983):
//!
//! ```text
//! n += 1;  d = p - mean;  mean += d / n;  m2 += d * (p - mean)
//! ```
//!
//! and finishes with the standard deviation `sqrt(m2 / (M - ddof))`:
//! `ddof = 0` (default) is the population formula, whose range for a
//! binary structure is 0 to 0.5; `ddof = 1` the sample formula. Options
//! add the sum of logits (nnU-Net's ensemble rule: labels from the mean
//! logits), the entropy of the mean, and the mutual information
//! `H(mean p) - mean(H(p_m))` (Gal 2016, "BALD").

use ndarray::{Array3, Array4, Axis, Zip};

use crate::model::Activation;
use crate::{Error, Result};

/// How the ensemble label map is formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EnsembleRule {
    /// Activation of the mean logits, then argmax (nnU-Net's own rule).
    #[default]
    MeanLogits,
    /// Argmax of the mean probabilities.
    MeanProbabilities,
}

/// What the accumulator keeps beyond mean and standard deviation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Extras {
    /// Keep the logit sum (needed for [`EnsembleRule::MeanLogits`]).
    pub logits: bool,
    /// Produce the entropy of the mean probabilities.
    pub entropy: bool,
    /// Produce the mutual information.
    pub mutual_information: bool,
}

/// Running ensemble statistics over `[channel, d0, d1, d2]` arrays.
#[derive(Debug)]
pub struct Accumulator {
    activation: Activation,
    n: usize,
    mean: Array4<f32>,
    m2: Array4<f32>,
    logit_sum: Option<Array4<f32>>,
    member_entropy_sum: Option<Array3<f32>>,
    entropy: bool,
}

/// The finished statistics.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Members accumulated.
    pub members: usize,
    /// Mean probability per output channel.
    pub mean: Array4<f32>,
    /// Standard deviation per foreground channel (see
    /// [`foreground_channels`]).
    pub std: Array4<f32>,
    /// Mean logits per output channel, when kept.
    pub mean_logits: Option<Array4<f32>>,
    /// Entropy of the mean probabilities (nats), when asked for.
    pub entropy: Option<Array3<f32>>,
    /// Mutual information (nats), when asked for.
    pub mutual_information: Option<Array3<f32>>,
}

/// The channels that carry a structure: all but channel 0 for SoftMax,
/// every channel for sigmoid.
pub fn foreground_channels(activation: Activation, channels: usize) -> std::ops::Range<usize> {
    match activation {
        Activation::Softmax => 1..channels,
        Activation::Sigmoid => 0..channels,
    }
}

impl Accumulator {
    /// An empty accumulator for `channels` output channels of `shape`.
    pub fn new(activation: Activation, channels: usize, shape: [usize; 3], extras: Extras) -> Self {
        let dims = (channels, shape[0], shape[1], shape[2]);
        let fg = foreground_channels(activation, channels).len();
        Accumulator {
            activation,
            n: 0,
            mean: Array4::zeros(dims),
            m2: Array4::zeros((fg, shape[0], shape[1], shape[2])),
            logit_sum: extras.logits.then(|| Array4::zeros(dims)),
            member_entropy_sum: extras
                .mutual_information
                .then(|| Array3::zeros((shape[0], shape[1], shape[2]))),
            entropy: extras.entropy || extras.mutual_information,
        }
    }

    /// Members added so far.
    pub fn len(&self) -> usize {
        self.n
    }

    /// True before the first member.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Adds one member's probabilities (and logits, when kept).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when the shapes differ from the
    /// accumulator's, or logits are kept but not given.
    pub fn add(&mut self, probs: &Array4<f32>, logits: Option<&Array4<f32>>) -> Result<()> {
        if probs.dim() != self.mean.dim() {
            return Err(Error::InvalidInput(format!(
                "member probabilities have shape {:?}, expected {:?}",
                probs.dim(),
                self.mean.dim()
            )));
        }
        self.n += 1;
        let n = self.n as f64;

        let fg = foreground_channels(self.activation, probs.dim().0);
        for (c, p) in probs.outer_iter().enumerate() {
            let mut mean = self.mean.index_axis_mut(Axis(0), c);
            if fg.contains(&c) {
                let m2 = self.m2.index_axis_mut(Axis(0), c - fg.start);
                Zip::from(&mut mean).and(m2).and(&p).for_each(|m, s, &x| {
                    let (mf, xf) = (f64::from(*m), f64::from(x));
                    let d = xf - mf;
                    let next = mf + d / n;
                    *m = next as f32;
                    *s = (f64::from(*s) + d * (xf - next)) as f32;
                });
            } else {
                Zip::from(&mut mean).and(&p).for_each(|m, &x| {
                    *m = (f64::from(*m) + (f64::from(x) - f64::from(*m)) / n) as f32;
                });
            }
        }

        match (&mut self.logit_sum, logits) {
            (Some(sum), Some(l)) if l.dim() == sum.dim() => *sum += l,
            (Some(_), _) => {
                return Err(Error::InvalidInput(
                    "logits of matching shape are needed for the mean-logit rule".into(),
                ))
            }
            (None, _) => {}
        }
        if let Some(h) = &mut self.member_entropy_sum {
            *h += &entropy(probs, self.activation);
        }
        Ok(())
    }

    /// Finishes: standard deviation with `ddof`, entropy and mutual
    /// information.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when no member was added or `ddof` leaves
    /// no degree of freedom (`M - ddof < 1`).
    pub fn finish(self, ddof: usize) -> Result<Summary> {
        if self.n == 0 {
            return Err(Error::InvalidInput(
                "no ensemble member was accumulated".into(),
            ));
        }
        if self.n <= ddof {
            return Err(Error::InvalidInput(format!(
                "ddof {ddof} needs more than {ddof} members, the ensemble has {}",
                self.n
            )));
        }
        let denom = (self.n - ddof) as f64;
        let std = self
            .m2
            .mapv(|s| (f64::from(s.max(0.0)) / denom).sqrt() as f32);
        let mean_logits = self.logit_sum.map(|mut s| {
            s /= self.n as f32;
            s
        });
        let h = self.entropy.then(|| entropy(&self.mean, self.activation));
        let mi = match (&h, self.member_entropy_sum) {
            (Some(h), Some(sum)) => {
                let inv = 1.0 / self.n as f32;
                Some(
                    Zip::from(h)
                        .and(&sum)
                        .map_collect(|&a, &b| (a - b * inv).max(0.0)),
                )
            }
            _ => None,
        };
        Ok(Summary {
            members: self.n,
            mean: self.mean,
            std,
            mean_logits,
            entropy: h,
            mutual_information: mi,
        })
    }
}

/// Entropy in nats: over channels for SoftMax, summed per channel
/// (binary) for sigmoid. `0 ln 0` counts as 0.
pub fn entropy(probs: &Array4<f32>, activation: Activation) -> Array3<f32> {
    let (_, d0, d1, d2) = probs.dim();
    let mut h = Array3::<f32>::zeros((d0, d1, d2));
    let xlnx = |p: f32| if p > 0.0 { -p * p.ln() } else { 0.0 };
    for p in probs.outer_iter() {
        match activation {
            Activation::Softmax => h.zip_mut_with(&p, |a, &v| *a += xlnx(v)),
            Activation::Sigmoid => h.zip_mut_with(&p, |a, &v| *a += xlnx(v) + xlnx(1.0 - v)),
        }
    }
    h
}

/// Applies the activation over channels of logits `[k, ...]` in `f32`
/// (SoftMax subtracts the channel maximum first, as torch does).
pub fn activate(logits: &Array4<f32>, activation: Activation) -> Array4<f32> {
    match activation {
        Activation::Sigmoid => logits.mapv(|x| 1.0 / (1.0 + (-x).exp())),
        Activation::Softmax => {
            let mut out = logits.clone();
            let (k, d0, d1, d2) = logits.dim();
            for i in 0..d0 {
                for j in 0..d1 {
                    for l in 0..d2 {
                        let max = (0..k)
                            .map(|c| logits[(c, i, j, l)])
                            .fold(f32::NEG_INFINITY, f32::max);
                        let mut sum = 0.0f32;
                        for c in 0..k {
                            let e = (logits[(c, i, j, l)] - max).exp();
                            out[(c, i, j, l)] = e;
                            sum += e;
                        }
                        for c in 0..k {
                            out[(c, i, j, l)] /= sum;
                        }
                    }
                }
            }
            out
        }
    }
}

/// Label map from probabilities: argmax for SoftMax (first maximum wins,
/// as NumPy and torch); for sigmoid, each region in `regions_class_order`
/// paints its label where its probability exceeds 0.5, later ones on top
/// (nnU-Net's `convert_probabilities_to_segmentation`).
pub fn labels_from_probabilities(
    probs: &Array4<f32>,
    activation: Activation,
    values: &[u16],
) -> Array3<u16> {
    let (k, d0, d1, d2) = probs.dim();
    let mut out = Array3::<u16>::zeros((d0, d1, d2));
    match activation {
        Activation::Softmax => {
            for ((i, j, l), o) in out.indexed_iter_mut() {
                let mut best = 0;
                for c in 1..k {
                    if probs[(c, i, j, l)] > probs[(best, i, j, l)] {
                        best = c;
                    }
                }
                *o = values.get(best).copied().unwrap_or(best as u16);
            }
        }
        Activation::Sigmoid => {
            for (c, p) in probs.outer_iter().enumerate() {
                let v = values.get(c).copied().unwrap_or(c as u16 + 1);
                out.zip_mut_with(&p, |o, &x| {
                    if x > 0.5 {
                        *o = v
                    }
                });
            }
        }
    }
    out
}

/// Per-structure uncertainty summary, for triage: how much of a structure
/// the ensemble was unsure about, and how unsure it was at the border.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StructureSummary {
    /// Volume of the structure's mask, cm3.
    pub volume_cm3: f64,
    /// Volume where this structure's uncertainty is >= `uncertainty_threshold`,
    /// inside or outside its contour (the band the clinician should check), cm3.
    pub uncertain_volume_cm3: f64,
    /// The threshold of `uncertain_volume_cm3` (as the decimal the caller
    /// gave, so 0.1 reads 0.1 rather than its float32 neighbour).
    pub uncertainty_threshold: f64,
    /// Mean uncertainty over the mask; `None` for an empty mask.
    pub mean_uncertainty_inside: Option<f64>,
    /// Mean uncertainty over the mask's surface voxels (6-connected inner
    /// boundary); `None` for an empty mask.
    pub mean_uncertainty_surface: Option<f64>,
    /// Largest uncertainty on the grid; 0 for an empty map.
    pub max_uncertainty: f32,
}

/// Summarises one structure: `mask` and `uncertainty` are `[z][y][x]` on
/// one grid of `voxel_mm3` voxels.
///
/// # Panics
///
/// When the two arrays differ in shape (a bug in the caller).
pub fn summarize(
    mask: &Array3<bool>,
    uncertainty: ndarray::ArrayView3<'_, f32>,
    voxel_mm3: f64,
    threshold: f32,
) -> StructureSummary {
    assert_eq!(
        mask.dim(),
        uncertainty.dim(),
        "mask and uncertainty shapes differ"
    );
    let voxel_cm3 = voxel_mm3 / 1000.0;
    let mean_over = |sel: &Array3<bool>| {
        let (n, sum) = sel
            .iter()
            .zip(uncertainty.iter())
            .filter(|(&m, _)| m)
            .fold((0usize, 0f64), |(n, s), (_, &u)| (n + 1, s + f64::from(u)));
        (n > 0).then(|| sum / n as f64)
    };
    let inside = mask.iter().filter(|&&m| m).count();
    let uncertain = uncertainty.iter().filter(|&&u| u >= threshold).count();

    StructureSummary {
        volume_cm3: inside as f64 * voxel_cm3,
        uncertain_volume_cm3: uncertain as f64 * voxel_cm3,
        uncertainty_threshold: format!("{threshold}")
            .parse()
            .unwrap_or(f64::from(threshold)),
        mean_uncertainty_inside: mean_over(mask),
        mean_uncertainty_surface: mean_over(&surface_voxels(mask)),
        max_uncertainty: uncertainty.iter().copied().fold(0f32, f32::max),
    }
}

/// Voxels of `mask` with a 6-neighbour outside it (or outside the grid).
pub fn surface_voxels(mask: &Array3<bool>) -> Array3<bool> {
    let (d0, d1, d2) = mask.dim();
    Array3::from_shape_fn((d0, d1, d2), |(i, j, k)| {
        if !mask[(i, j, k)] {
            return false;
        }
        let out = |a: Option<usize>, b: Option<usize>, c: Option<usize>| match (a, b, c) {
            (Some(a), Some(b), Some(c)) if a < d0 && b < d1 && c < d2 => !mask[(a, b, c)],
            _ => true,
        };
        out(i.checked_sub(1), Some(j), Some(k))
            || out(Some(i + 1), Some(j), Some(k))
            || out(Some(i), j.checked_sub(1), Some(k))
            || out(Some(i), Some(j + 1), Some(k))
            || out(Some(i), Some(j), k.checked_sub(1))
            || out(Some(i), Some(j), Some(k + 1))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_surface_of_a_cube_leaves_its_core() {
        let mut m = Array3::from_elem((5, 5, 5), false);
        m.slice_mut(ndarray::s![1..4, 1..4, 1..4]).fill(true);

        let s = surface_voxels(&m);

        assert!(!s[(2, 2, 2)]);
        assert_eq!(s.iter().filter(|&&v| v).count(), 26);
    }

    fn member(v: &[f32]) -> Array4<f32> {
        // Two channels (background, structure) over v.len() voxels.
        let n = v.len();
        Array4::from_shape_fn(
            (2, 1, 1, n),
            |(c, _, _, i)| if c == 1 { v[i] } else { 1.0 - v[i] },
        )
    }

    #[test]
    fn welford_matches_the_two_pass_formula() {
        let members = [
            [0.1, 0.9, 0.5],
            [0.3, 0.2, 0.5],
            [0.8, 0.1, 0.5],
            [0.6, 1.0, 0.5],
        ];
        let mut acc = Accumulator::new(Activation::Softmax, 2, [1, 1, 3], Extras::default());

        for m in &members {
            acc.add(&member(m), None).unwrap();
        }
        let s = acc.finish(0).unwrap();

        for i in 0..3 {
            let xs: Vec<f64> = members.iter().map(|m| f64::from(m[i])).collect();
            let mean = xs.iter().sum::<f64>() / 4.0;
            let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 4.0).sqrt();
            let got = f64::from(s.std[(0, 0, 0, i)]);
            assert!((got - sd).abs() < 1e-6, "voxel {i}: {got} != {sd}");
            assert!((f64::from(s.mean[(1, 0, 0, i)]) - mean).abs() < 1e-6);
        }
    }

    #[test]
    fn a_binary_split_ensemble_reaches_one_half_with_ddof_0() {
        let mut acc = Accumulator::new(Activation::Softmax, 2, [1, 1, 1], Extras::default());
        acc.add(&member(&[0.0]), None).unwrap();
        acc.add(&member(&[1.0]), None).unwrap();

        let s = acc.finish(0).unwrap();

        assert!((s.std[(0, 0, 0, 0)] - 0.5).abs() < 1e-7);
    }

    #[test]
    fn ddof_1_uses_the_sample_formula_and_needs_two_members() {
        let mut one = Accumulator::new(Activation::Softmax, 2, [1, 1, 1], Extras::default());
        one.add(&member(&[0.3]), None).unwrap();
        assert!(one.finish(1).is_err());

        let mut acc = Accumulator::new(Activation::Softmax, 2, [1, 1, 1], Extras::default());
        acc.add(&member(&[0.0]), None).unwrap();
        acc.add(&member(&[1.0]), None).unwrap();
        let s = acc.finish(1).unwrap();

        assert!((s.std[(0, 0, 0, 0)] - 0.5f32.sqrt()).abs() < 1e-6);
    }

    #[test]
    fn mutual_information_is_zero_when_members_agree() {
        let extras = Extras {
            logits: false,
            entropy: true,
            mutual_information: true,
        };
        let mut acc = Accumulator::new(Activation::Softmax, 2, [1, 1, 1], extras);
        acc.add(&member(&[0.3]), None).unwrap();
        acc.add(&member(&[0.3]), None).unwrap();

        let s = acc.finish(0).unwrap();

        let h = s.entropy.unwrap()[(0, 0, 0)];
        let want = -(0.3f32 * 0.3f32.ln() + 0.7 * 0.7f32.ln());
        assert!((h - want).abs() < 1e-6, "{h} != {want}");
        assert!(s.mutual_information.unwrap()[(0, 0, 0)].abs() < 1e-6);
    }

    #[test]
    fn softmax_then_argmax_picks_the_largest_logit() {
        let logits =
            Array4::from_shape_vec((3, 1, 1, 2), vec![0.0, 5.0, 2.0, 1.0, 1.0, 0.0]).unwrap();

        let p = activate(&logits, Activation::Softmax);
        let l = labels_from_probabilities(&p, Activation::Softmax, &[0, 1, 2]);

        assert_eq!(l.as_slice().unwrap(), &[1, 0]);
        assert!((p.sum_axis(Axis(0))[(0, 0, 0)] - 1.0).abs() < 1e-6);
    }
}

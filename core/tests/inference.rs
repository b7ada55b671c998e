//! The ensemble pipeline end to end with small pure-Rust networks.

use halo_core::backend::Network;
use halo_core::inference::{predict, MemberSource, Observer, Options, Prediction, Step};
use halo_core::model::{Accumulate, Activation, Normalisation, Pipeline, ResampleSpec};
use halo_core::{Error, Result};
use ndarray::{Array3, Array4, ArrayD, ArrayViewD, Axis, IxDyn};

/// Per-voxel logits `[0, w * x + b, -w * x]`: pointwise, so the sliding
/// window, its Gaussian weights and mirroring must give it back exactly.
struct Pointwise {
    w: f32,
    b: f32,
    classes: usize,
}

impl Network for Pointwise {
    fn forward(&mut self, input: ArrayViewD<'_, f32>) -> Result<ArrayD<f32>> {
        let s = input.shape();
        let mut out = ArrayD::zeros(IxDyn(&[s[0], self.classes, s[2], s[3], s[4]]));
        for b in 0..s[0] {
            let x = input.index_axis(Axis(0), b);
            let x = x.index_axis(Axis(0), 0);
            let mut o = out.index_axis_mut(Axis(0), b);
            o.index_axis_mut(Axis(0), 1)
                .assign(&x.mapv(|v| self.w * v + self.b));
            if self.classes > 2 {
                o.index_axis_mut(Axis(0), 2)
                    .assign(&x.mapv(|v| -self.w * v));
            }
        }
        Ok(out)
    }
}

struct Members(Vec<(f32, f32)>, usize);

impl MemberSource for Members {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn name(&self, i: usize) -> String {
        format!("toy_{i}")
    }
    fn open(&mut self, i: usize) -> Result<Box<dyn Network>> {
        let (w, b) = self.0[i];
        Ok(Box::new(Pointwise {
            w,
            b,
            classes: self.1,
        }))
    }
}

#[derive(Default)]
struct Keep {
    members: Vec<Array4<f32>>,
    steps: usize,
    cancel_at: Option<usize>,
}

impl Observer for Keep {
    fn step(&mut self, _s: Step) -> bool {
        self.steps += 1;
        self.cancel_at.is_none_or(|c| self.steps < c)
    }
    fn wants_member_probabilities(&self) -> bool {
        true
    }
    fn member_probabilities(&mut self, _m: usize, p: &Array4<f32>) -> Result<()> {
        self.members.push(p.clone());
        Ok(())
    }
}

fn pipeline(classes: usize, crop: bool) -> Pipeline {
    let spec = ResampleSpec {
        order: 3,
        order_z: 0,
        force_separate_z: None,
        anisotropy_threshold: 3.0,
    };
    Pipeline {
        transpose_forward: [0, 1, 2],
        transpose_backward: [0, 1, 2],
        crop_nonzero: crop,
        normalisation: vec![Normalisation::None],
        target_spacing: None,
        data_resampling: spec,
        logit_resampling: ResampleSpec { order: 1, ..spec },
        patch_size: [4, 8, 8],
        tile_step_size: 0.5,
        gaussian: true,
        mirror_axes: vec![0, 1, 2],
        accumulate: Accumulate::Float32,
        activation: Activation::Softmax,
        input_channels: 1,
        output_channels: classes,
        regions_class_order: (0..classes as u16).collect(),
    }
}

fn image() -> Array3<f32> {
    Array3::from_shape_fn((6, 13, 11), |(z, y, x)| {
        ((z as f32 * 0.7 + y as f32 * 0.3 - x as f32 * 0.2).sin() + 1.2) * 2.0
    })
}

/// Runs `predict` on `img` (spacing 3 x 1 x 1 mm) with label values 0, 1, ...
fn run_toy(
    img: &Array3<f32>,
    members: &mut Members,
    pipeline: &Pipeline,
    options: &Options,
    keep: &mut Keep,
) -> Result<Prediction> {
    let values: Vec<u16> = (0..pipeline.output_channels as u16).collect();
    predict(
        &[img.view()],
        [3.0, 1.0, 1.0],
        pipeline,
        &values,
        members,
        options,
        keep,
    )
}

fn softmax2(l: f32) -> f32 {
    1.0 / (1.0 + (-l).exp())
}

#[test]
fn a_pointwise_network_comes_back_exactly_through_tiles_and_mirroring() {
    let img = image();
    let mut members = Members(vec![(1.5, -3.0)], 2);

    let p = run_toy(
        &img,
        &mut members,
        &pipeline(2, false),
        &Options::default(),
        &mut Keep::default(),
    )
    .unwrap();

    for ((z, y, x), &v) in img.indexed_iter() {
        let want = softmax2(1.5 * v - 3.0);
        let got = p.probabilities[(1, z, y, x)];
        assert!(
            (got - want).abs() < 1e-5,
            "voxel {z},{y},{x}: {got} != {want}"
        );
        assert_eq!(
            p.labels[(z, y, x)],
            u16::from(want > 0.5),
            "voxel {z},{y},{x}"
        );
    }
    assert_eq!(p.uncertainty.dim(), (1, 6, 13, 11));
    assert!(
        p.uncertainty.iter().all(|&u| u == 0.0),
        "one member has no spread"
    );
}

#[test]
fn streaming_uncertainty_equals_the_std_of_the_members() {
    let img = image();
    let mut members = Members(vec![(1.0, -2.0), (2.0, -4.5), (0.5, -1.0), (1.5, -2.0)], 3);
    let mut keep = Keep::default();
    let options = Options {
        ddof: 1,
        ..Options::default()
    };

    let p = run_toy(&img, &mut members, &pipeline(3, false), &options, &mut keep).unwrap();

    assert_eq!(keep.members.len(), 4);
    for c in 1..3 {
        for ((z, y, x), &u) in p.uncertainty.index_axis(Axis(0), c - 1).indexed_iter() {
            let xs: Vec<f64> = keep
                .members
                .iter()
                .map(|m| f64::from(m[(c, z, y, x)]))
                .collect();
            let mean = xs.iter().sum::<f64>() / 4.0;
            let sd = (xs.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 3.0).sqrt();
            assert!(
                (f64::from(u) - sd).abs() < 1e-5,
                "class {c} voxel {z},{y},{x}: {u} != {sd}"
            );
        }
    }
}

#[test]
fn a_cancelled_run_returns_cancelled() {
    let img = image();
    let mut members = Members(vec![(1.0, 0.0), (1.0, 0.0)], 2);
    let mut keep = Keep {
        cancel_at: Some(5),
        ..Keep::default()
    };

    let err = run_toy(
        &img,
        &mut members,
        &pipeline(2, false),
        &Options::default(),
        &mut keep,
    )
    .unwrap_err();

    assert!(matches!(err, Error::Cancelled), "{err}");
    assert_eq!(keep.steps, 5);
    assert!(keep.members.is_empty());
}

#[test]
fn a_network_with_the_wrong_number_of_outputs_is_named() {
    let img = image();
    let mut members = Members(vec![(1.0, 0.0)], 2);

    let err = run_toy(
        &img,
        &mut members,
        &pipeline(3, false),
        &Options::default(),
        &mut Keep::default(),
    )
    .unwrap_err()
    .to_string();

    assert!(
        err.contains("toy_0") && err.contains("3 output channels"),
        "{err}"
    );
}

#[test]
fn outside_the_crop_the_background_has_probability_one() {
    let mut img = image();
    img.slice_mut(ndarray::s![.., 0..3, ..]).fill(0.0);
    let mut members = Members(vec![(1.0, 5.0), (2.0, 5.0)], 2);
    let options = Options {
        entropy: true,
        mutual_information: true,
        ..Options::default()
    };

    let p = run_toy(
        &img,
        &mut members,
        &pipeline(2, true),
        &options,
        &mut Keep::default(),
    )
    .unwrap();

    for z in 0..6 {
        for x in 0..11 {
            assert_eq!(p.probabilities[(0, z, 1, x)], 1.0, "voxel {z},1,{x}");
            assert_eq!(p.labels[(z, 1, x)], 0);
            assert_eq!(p.uncertainty[(0, z, 1, x)], 0.0);
        }
    }
    assert!(
        p.labels.iter().any(|&l| l == 1),
        "logit bias 5 wins inside the crop"
    );
    let h = p.entropy.unwrap();
    let mi = p.mutual_information.unwrap();
    assert!(mi.iter().zip(h.iter()).all(|(m, h)| *m <= *h + 1e-6));
}

#[test]
fn ddof_1_with_one_member_is_refused_before_running() {
    let img = image();
    let mut members = Members(vec![(1.0, 0.0)], 2);
    let mut keep = Keep::default();
    let options = Options {
        ddof: 1,
        ..Options::default()
    };

    let err = run_toy(&img, &mut members, &pipeline(2, false), &options, &mut keep)
        .unwrap_err()
        .to_string();

    assert!(err.contains("ddof 1"), "{err}");
    assert_eq!(keep.steps, 0);
}

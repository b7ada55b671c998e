//! Model folders: the `halo-model.json` manifest, its members, and the
//! prediction pipeline it describes.
//!
//! A model folder holds `halo-model.json` and the files it names: one
//! network file per ensemble member (TorchScript for the libtorch
//! backend) and, for `"kind": "nnunet"`, nnU-Net v2's `plans.json` and
//! `dataset.json`. [`Model::open`] reads and validates all of it and turns
//! the preprocessing description into one [`Pipeline`], the form the
//! inference engine runs.
//!
//! Manifest (format version 1):
//!
//! ```json
//! {
//!   "format_version": 1,
//!   "name": "pelvis", "source": "nnU-Net v2 Dataset001", "license": "CC-BY-4.0",
//!   "input_channels": ["T2"],
//!   "labels": [
//!     {"value": 0, "name": "background"},
//!     {"value": 1, "name": "Prostate", "colour": [255, 0, 0], "rt_type": "ORGAN"}
//!   ],
//!   "activation": "softmax",
//!   "members": [{"file": "fold_0.pt", "sha256": "…", "fold": 0}],
//!   "preprocessing": {"kind": "nnunet", "plans": "plans.json",
//!                     "dataset": "dataset.json", "configuration": "3d_fullres"}
//! }
//! ```
//!
//! `labels` lists the network's output channels in order: for `softmax`
//! the first is the background (value 0); for `sigmoid` (nnU-Net's
//! region-based training) every channel is a region.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// File name of the manifest inside a model folder.
pub const MANIFEST_FILE: &str = "halo-model.json";

/// The manifest format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// nnU-Net's `ANISO_THRESHOLD` (nnunetv2/configuration.py): spacing
/// anisotropy above which resampling treats the low-resolution axis apart.
pub const NNUNET_ANISOTROPY_THRESHOLD: f64 = 3.0;

/// The parsed `halo-model.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Manifest format version; must be [`FORMAT_VERSION`].
    pub format_version: u32,
    /// Human-readable model name.
    pub name: String,
    /// Where the model comes from (dataset, trainer, paper).
    pub source: String,
    /// Licence of the weights (SPDX identifier where there is one).
    pub license: String,
    /// Input channel names, in the network's channel order.
    pub input_channels: Vec<String>,
    /// Output channels, in order (see the module docs).
    pub labels: Vec<Label>,
    /// Output activation.
    pub activation: Activation,
    /// The ensemble members.
    pub members: Vec<Member>,
    /// How an image becomes network input and logits become probabilities.
    pub preprocessing: Preprocessing,
}

/// One output channel of the network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Label {
    /// The label value written in label maps (0 = background).
    pub value: u16,
    /// Structure name (also the RT ROI name, at most 16 characters there).
    pub name: String,
    /// Display colour, RGB 0 to 255.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub colour: Option<[u8; 3]>,
    /// RT ROI Interpreted Type (3006,00A4), for example ORGAN or CTV.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rt_type: Option<String>,
}

/// Output activation of the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// SoftMax over channels; channel 0 is the background.
    Softmax,
    /// Sigmoid per channel (region-based labels).
    Sigmoid,
}

/// One ensemble member: a network file and its checksum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// File name, relative to the model folder.
    pub file: String,
    /// SHA-256 of the file, lowercase hexadecimal.
    pub sha256: String,
    /// Cross-validation fold it was trained on, when it is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fold: Option<u32>,
}

/// The preprocessing description of a manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Preprocessing {
    /// nnU-Net v2: everything comes from its plans and dataset files.
    Nnunet(NnunetRef),
    /// A network that is not nnU-Net's, described field by field.
    Generic(GenericPipeline),
    /// A MONAI-style pipeline (orientation, spacing, crop to foreground,
    /// sliding window, logit smoothing, test-time flips).
    Monai(crate::inference::generic::MonaiPipeline),
}

/// Where an nnU-Net v2 model's own description lives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NnunetRef {
    /// `plans.json`, relative to the model folder.
    pub plans: String,
    /// `dataset.json`, relative to the model folder.
    pub dataset: String,
    /// The configuration of the plans (for example `3d_fullres`).
    pub configuration: String,
    /// Sliding-window step as a fraction of the patch (nnU-Net: 0.5).
    #[serde(default = "half_step")]
    pub tile_step_size: f64,
    /// Axes mirrored at test time (the checkpoint's
    /// `inference_allowed_mirroring_axes`); empty turns mirroring off.
    #[serde(default = "all_axes")]
    pub mirror_axes: Vec<usize>,
    /// Accumulate tiles in float16 as nnU-Net's predictor does (default),
    /// or in float32.
    #[serde(default = "float16")]
    pub accumulate: Accumulate,
}

/// Precision of the sliding-window accumulators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accumulate {
    /// IEEE half precision, rounding after every addition (nnU-Net v2).
    Float16,
    /// Single precision.
    Float32,
}

fn half_step() -> f64 {
    0.5
}

fn all_axes() -> Vec<usize> {
    vec![0, 1, 2]
}

fn float16() -> Accumulate {
    Accumulate::Float16
}

fn float32() -> Accumulate {
    Accumulate::Float32
}

fn cubic() -> usize {
    3
}

fn linear() -> usize {
    1
}

fn yes() -> bool {
    true
}

/// A generic sliding-window pipeline for networks that are not nnU-Net's.
///
/// Axes are those of the array `[z, y, x]` (slice, row, column).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenericPipeline {
    /// Spacing in mm the network expects, `[z, y, x]`; `None` keeps the
    /// image's own.
    #[serde(default)]
    pub target_spacing: Option<[f64; 3]>,
    /// Intensity normalisation, one per input channel (or one for all).
    pub normalisation: Vec<Normalisation>,
    /// Crop to the bounding box of non-zero voxels first.
    #[serde(default)]
    pub crop_nonzero: bool,
    /// Patch size in voxels, `[z, y, x]`.
    pub patch_size: [usize; 3],
    /// Sliding-window step as a fraction of the patch.
    #[serde(default = "half_step")]
    pub tile_step_size: f64,
    /// Weight tiles with a Gaussian (sigma = patch / 8).
    #[serde(default = "yes")]
    pub gaussian: bool,
    /// Axes mirrored at test time; empty turns mirroring off.
    #[serde(default)]
    pub mirror_axes: Vec<usize>,
    /// Spline order resampling the image (0, 1 or 3).
    #[serde(default = "cubic")]
    pub resample_order: usize,
    /// Spline order resampling logits back (0, 1 or 3).
    #[serde(default = "linear")]
    pub export_order: usize,
    /// Accumulator precision.
    #[serde(default = "float32")]
    pub accumulate: Accumulate,
}

/// Intensity normalisation of one channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Normalisation {
    /// None: values pass unchanged.
    None,
    /// Subtract the mean, divide by the population standard deviation
    /// (floored at 1e-8); over the non-zero mask when `use_mask`.
    Zscore {
        /// Statistics and normalisation inside the cropping mask only.
        #[serde(default)]
        use_mask: bool,
    },
    /// Clip to `[lower, upper]`, then subtract `mean` and divide by `std`
    /// (nnU-Net's `CTNormalization`).
    Ct {
        /// Mean of the foreground intensities.
        mean: f64,
        /// Standard deviation of the foreground intensities.
        std: f64,
        /// Lower clip (nnU-Net: the 0.5 percentile).
        lower: f64,
        /// Upper clip (nnU-Net: the 99.5 percentile).
        upper: f64,
    },
}

/// How resampling treats the low-resolution axis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResampleSpec {
    /// Spline order in plane (or in 3D).
    pub order: usize,
    /// Order through plane when the low-resolution axis is treated apart.
    pub order_z: usize,
    /// `Some(true)`/`Some(false)` forces the choice, `None` decides from
    /// the anisotropy (nnU-Net's `force_separate_z`).
    pub force_separate_z: Option<bool>,
    /// Anisotropy above which the axis is treated apart.
    pub anisotropy_threshold: f64,
}

/// The resolved prediction pipeline of a model; every axis is in the
/// order of the transposed array (nnU-Net's `transpose_forward`).
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    /// Axis permutation applied to the `[z, y, x]` array first.
    pub transpose_forward: [usize; 3],
    /// Its inverse, applied to the outputs last.
    pub transpose_backward: [usize; 3],
    /// Crop to the non-zero bounding box (holes filled).
    pub crop_nonzero: bool,
    /// One normalisation per input channel.
    pub normalisation: Vec<Normalisation>,
    /// Target spacing in mm, transposed axes; `None` keeps the input's.
    pub target_spacing: Option<[f64; 3]>,
    /// Image resampling.
    pub data_resampling: ResampleSpec,
    /// Logit resampling back to the image grid.
    pub logit_resampling: ResampleSpec,
    /// Patch size in voxels, transposed axes.
    pub patch_size: [usize; 3],
    /// Sliding-window step as a fraction of the patch.
    pub tile_step_size: f64,
    /// Gaussian tile weighting.
    pub gaussian: bool,
    /// Mirrored axes at test time (transposed axes).
    pub mirror_axes: Vec<usize>,
    /// Accumulator precision.
    pub accumulate: Accumulate,
    /// Output activation.
    pub activation: Activation,
    /// Number of input channels.
    pub input_channels: usize,
    /// Number of output channels.
    pub output_channels: usize,
    /// For sigmoid outputs, the label value each channel paints, in
    /// painting order (nnU-Net's `regions_class_order`).
    pub regions_class_order: Vec<u16>,
}

/// An opened, validated model folder.
#[derive(Debug, Clone)]
pub struct Model {
    /// The folder.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// The pipeline the manifest describes.
    pub pipeline: Pipeline,
}

fn merr(path: &Path, message: impl std::fmt::Display) -> Error {
    Error::Model {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

impl Model {
    /// Opens the model folder `dir`: reads the manifest, checks every
    /// member's presence and SHA-256, and resolves the pipeline.
    ///
    /// # Errors
    ///
    /// [`Error::Model`] naming the file and what is wrong (missing member,
    /// checksum mismatch, input channels or labels that disagree with the
    /// nnU-Net files, unsupported setting).
    pub fn open(dir: &Path) -> Result<Self> {
        let manifest = Manifest::read(&dir.join(MANIFEST_FILE))?;
        manifest.validate(&dir.join(MANIFEST_FILE))?;
        for m in &manifest.members {
            verify_member(dir, m)?;
        }
        let pipeline = manifest.pipeline(dir)?;
        Ok(Model {
            dir: dir.to_path_buf(),
            manifest,
            pipeline,
        })
    }

    /// Paths of the member files, in manifest order.
    pub fn member_paths(&self) -> Vec<PathBuf> {
        self.manifest
            .members
            .iter()
            .map(|m| self.dir.join(&m.file))
            .collect()
    }
}

/// The members of a model, opened one at a time through a backend
/// plug-in (TorchScript through `halo-torch`).
#[derive(Debug)]
pub struct PluginMembers {
    backend: crate::backend::Backend,
    paths: Vec<PathBuf>,
    device: String,
    threads: usize,
}

impl PluginMembers {
    /// Members of `model` run by `backend` on `device` (`cpu`, `cuda`)
    /// with `threads` intra-op threads (0: the runtime's default).
    pub fn new(
        model: &Model,
        backend: crate::backend::Backend,
        device: &str,
        threads: usize,
    ) -> Self {
        PluginMembers {
            backend,
            paths: model.member_paths(),
            device: device.to_string(),
            threads,
        }
    }
}

impl crate::inference::MemberSource for PluginMembers {
    fn len(&self) -> usize {
        self.paths.len()
    }

    fn name(&self, index: usize) -> String {
        self.paths[index]
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    fn open(&mut self, index: usize) -> Result<Box<dyn crate::backend::Network>> {
        let net = self
            .backend
            .open(&self.paths[index], &self.device, self.threads)?;
        Ok(Box::new(net))
    }
}

impl Manifest {
    /// Reads and parses a manifest file (no validation beyond the format).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when unreadable, [`Error::Model`] when not valid JSON
    /// of this format.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let m: Manifest = serde_json::from_str(&text).map_err(|e| merr(path, e))?;
        Ok(m)
    }

    /// Writes the manifest as pretty JSON.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the file cannot be written.
    pub fn write(&self, path: &Path) -> Result<()> {
        // OK because a Manifest always serialises (no maps with non-string keys).
        let text = serde_json::to_string_pretty(self).expect("manifest serialises");
        std::fs::write(path, text + "\n").map_err(|e| Error::io(path, e))
    }

    /// Checks the manifest on its own: version, members, channels and
    /// labels.
    ///
    /// # Errors
    ///
    /// [`Error::Model`] naming `path` and the offending value.
    pub fn validate(&self, path: &Path) -> Result<()> {
        if self.format_version != FORMAT_VERSION {
            return Err(merr(
                path,
                format!(
                    "format_version {} is not supported (this halo reads {FORMAT_VERSION})",
                    self.format_version
                ),
            ));
        }
        if self.members.is_empty() {
            return Err(merr(path, "no members"));
        }
        if self.input_channels.is_empty() {
            return Err(merr(path, "input_channels is empty"));
        }
        if self.labels.is_empty() {
            return Err(merr(path, "labels is empty"));
        }
        if self.activation == Activation::Softmax && self.labels[0].value != 0 {
            return Err(merr(
                path,
                format!(
                    "softmax models need the background (value 0) first; labels[0] is {} ({})",
                    self.labels[0].value, self.labels[0].name
                ),
            ));
        }
        if self.activation == Activation::Softmax && self.labels.len() < 2 {
            return Err(merr(path, "softmax models need at least two labels"));
        }
        let mut seen = BTreeMap::new();
        for l in &self.labels {
            if let Some(prev) = seen.insert(l.value, &l.name) {
                return Err(merr(
                    path,
                    format!("label value {} is used by {prev} and {}", l.value, l.name),
                ));
            }
        }
        if self.activation == Activation::Sigmoid {
            if let Some(l) = self.labels.iter().find(|l| l.value == 0) {
                return Err(merr(
                    path,
                    format!(
                        "label {} has value 0, the background of the label map; sigmoid \
                         labels start at 1",
                        l.name
                    ),
                ));
            }
        }
        for m in &self.members {
            let inside = Path::new(&m.file).components().all(|c| {
                matches!(
                    c,
                    std::path::Component::Normal(_) | std::path::Component::CurDir
                )
            });
            if !inside || m.file.is_empty() {
                return Err(merr(
                    path,
                    format!(
                        "member file {:?} must be a path inside the model folder",
                        m.file
                    ),
                ));
            }
            let hex = m.sha256.len() == 64 && m.sha256.bytes().all(|b| b.is_ascii_hexdigit());
            if !hex {
                return Err(merr(
                    path,
                    format!(
                        "member {}: sha256 {:?} is not 64 hex digits",
                        m.file, m.sha256
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Resolves the preprocessing description into a [`Pipeline`], reading
    /// nnU-Net's files from `dir` for `"kind": "nnunet"`.
    ///
    /// # Errors
    ///
    /// [`Error::Model`] naming the file and value that disagree or are not
    /// supported.
    pub fn pipeline(&self, dir: &Path) -> Result<Pipeline> {
        let pipeline = match &self.preprocessing {
            Preprocessing::Nnunet(r) => nnunet_pipeline(dir, r, self)?,
            Preprocessing::Generic(g) => generic_pipeline(dir, g, self)?,
            Preprocessing::Monai(g) => crate::inference::generic::pipeline(dir, g, self)?,
        };
        let path = dir.join(MANIFEST_FILE);
        if pipeline.output_channels != self.labels.len() {
            return Err(merr(
                &path,
                format!(
                    "the preprocessing describes {} output channels but the manifest has {} labels",
                    pipeline.output_channels,
                    self.labels.len()
                ),
            ));
        }
        check_pipeline(&path, &pipeline)?;
        Ok(pipeline)
    }
}

/// SHA-256 of a file, lowercase hexadecimal.
///
/// # Errors
///
/// [`Error::Io`] when the file cannot be read.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn verify_member(dir: &Path, m: &Member) -> Result<()> {
    let path = dir.join(&m.file);
    if !path.is_file() {
        return Err(merr(&path, "member file is missing"));
    }
    let got = sha256_file(&path)?;
    if !got.eq_ignore_ascii_case(&m.sha256) {
        return Err(merr(
            &path,
            format!(
                "checksum mismatch: sha256 is {got}, the manifest says {}",
                m.sha256
            ),
        ));
    }
    Ok(())
}

fn check_pipeline(path: &Path, p: &Pipeline) -> Result<()> {
    if p.normalisation.len() != p.input_channels {
        return Err(merr(
            path,
            format!(
                "{} normalisations for {} input channels",
                p.normalisation.len(),
                p.input_channels
            ),
        ));
    }
    if p.patch_size.contains(&0) {
        return Err(merr(
            path,
            format!("patch size {:?} has a zero", p.patch_size),
        ));
    }
    if !(p.tile_step_size > 0.0 && p.tile_step_size <= 1.0) {
        return Err(merr(
            path,
            format!("tile_step_size {} is not in (0, 1]", p.tile_step_size),
        ));
    }
    if let Some(&a) = p.mirror_axes.iter().find(|&&a| a > 2) {
        return Err(merr(path, format!("mirror axis {a} is not 0, 1 or 2")));
    }
    for spec in [p.data_resampling, p.logit_resampling] {
        if ![0, 1, 3].contains(&spec.order) || ![0, 1].contains(&spec.order_z) {
            return Err(merr(
                path,
                format!(
                    "resampling order {} (through plane {}) is not supported; use 0, 1 or 3 \
                     (0 or 1 through plane)",
                    spec.order, spec.order_z
                ),
            ));
        }
    }
    if let Some(s) = p.target_spacing {
        if s.iter().any(|v| !v.is_finite() || *v <= 0.0) {
            return Err(merr(
                path,
                format!("target spacing {s:?} mm is not positive"),
            ));
        }
    }
    let mut perm = p.transpose_forward;
    perm.sort_unstable();
    if perm != [0, 1, 2] {
        return Err(merr(
            path,
            format!(
                "transpose_forward {:?} is not a permutation",
                p.transpose_forward
            ),
        ));
    }
    Ok(())
}

fn generic_pipeline(dir: &Path, g: &GenericPipeline, m: &Manifest) -> Result<Pipeline> {
    let path = dir.join(MANIFEST_FILE);
    let channels = m.input_channels.len();
    let normalisation = match g.normalisation.len() {
        1 => vec![g.normalisation[0].clone(); channels],
        n if n == channels => g.normalisation.clone(),
        n => {
            return Err(merr(
                &path,
                format!("{n} normalisations for {channels} input channels"),
            ))
        }
    };
    let spec = |order| ResampleSpec {
        order,
        order_z: 0,
        force_separate_z: None,
        anisotropy_threshold: NNUNET_ANISOTROPY_THRESHOLD,
    };
    Ok(Pipeline {
        transpose_forward: [0, 1, 2],
        transpose_backward: [0, 1, 2],
        crop_nonzero: g.crop_nonzero,
        normalisation,
        target_spacing: g.target_spacing,
        data_resampling: spec(g.resample_order),
        logit_resampling: spec(g.export_order),
        patch_size: g.patch_size,
        tile_step_size: g.tile_step_size,
        gaussian: g.gaussian,
        mirror_axes: g.mirror_axes.clone(),
        accumulate: g.accumulate,
        activation: m.activation,
        input_channels: channels,
        output_channels: m.labels.len(),
        regions_class_order: m.labels.iter().map(|l| l.value).collect(),
    })
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| merr(path, e))
}

/// The configuration `name` of nnU-Net plans, with `inherits_from`
/// resolved (the child's keys win, as in nnU-Net's `PlansManager`).
fn plans_configuration(path: &Path, plans: &Value, name: &str) -> Result<Value> {
    let configs = plans
        .get("configurations")
        .and_then(Value::as_object)
        .ok_or_else(|| merr(path, "no \"configurations\" object"))?;
    let mut chain = vec![];
    let mut current = name.to_string();
    loop {
        let c = configs.get(&current).ok_or_else(|| {
            merr(
                path,
                format!(
                    "configuration {current:?} not found; the plans have {}",
                    configs.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            )
        })?;
        chain.push(c.clone());
        match c.get("inherits_from").and_then(Value::as_str) {
            Some(parent) if chain.len() < 16 => current = parent.to_string(),
            Some(_) => return Err(merr(path, "inherits_from chain is too long")),
            None => break,
        }
    }
    let mut merged = serde_json::Map::new();
    for c in chain.iter().rev() {
        if let Some(obj) = c.as_object() {
            for (k, v) in obj {
                merged.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(Value::Object(merged))
}

fn f64_list(path: &Path, v: Option<&Value>, key: &str) -> Result<Vec<f64>> {
    v.and_then(Value::as_array)
        .and_then(|a| a.iter().map(Value::as_f64).collect::<Option<Vec<_>>>())
        .ok_or_else(|| merr(path, format!("{key} is missing or not a list of numbers")))
}

fn axes3(path: &Path, v: &[f64], key: &str) -> Result<[usize; 3]> {
    if v.len() != 3 || v.iter().any(|x| *x < 0.0 || x.fract() != 0.0) {
        return Err(merr(
            path,
            format!("{key} {v:?} is not three non-negative integers (only 3D is supported)"),
        ));
    }
    Ok([v[0] as usize, v[1] as usize, v[2] as usize])
}

fn resample_spec(path: &Path, cfg: &Value, fn_key: &str, kw_key: &str) -> Result<ResampleSpec> {
    let fname = cfg.get(fn_key).and_then(Value::as_str).unwrap_or("");
    if fname != "resample_data_or_seg_to_shape" {
        return Err(merr(
            path,
            format!(
                "{fn_key} {fname:?} is not supported (halo reproduces \
                 resample_data_or_seg_to_shape)"
            ),
        ));
    }
    let kw = cfg.get(kw_key).cloned().unwrap_or(Value::Null);
    let order = kw.get("order").and_then(Value::as_u64).unwrap_or(3) as usize;
    let order_z = kw.get("order_z").and_then(Value::as_u64).unwrap_or(0) as usize;
    // nnU-Net's function default is False, but every plans file it writes
    // says null (decide from the spacing); an absent key means False.
    let force_separate_z = match kw.get("force_separate_z") {
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::Null) => None,
        None => Some(false),
        Some(other) => {
            return Err(merr(
                path,
                format!("{kw_key}.force_separate_z {other} is not true, false or null"),
            ))
        }
    };
    Ok(ResampleSpec {
        order,
        order_z,
        force_separate_z,
        anisotropy_threshold: NNUNET_ANISOTROPY_THRESHOLD,
    })
}

/// Resolves an nnU-Net v2 model (plans, configuration, dataset) into a
/// pipeline, reading the keys nnU-Net's `PlansManager`,
/// `ConfigurationManager` and `LabelManager` read.
fn nnunet_pipeline(dir: &Path, r: &NnunetRef, m: &Manifest) -> Result<Pipeline> {
    let plans_path = dir.join(&r.plans);
    let dataset_path = dir.join(&r.dataset);
    let plans = read_json(&plans_path)?;
    let dataset = read_json(&dataset_path)?;
    let cfg = plans_configuration(&plans_path, &plans, &r.configuration)?;

    let tf = f64_list(
        &plans_path,
        plans.get("transpose_forward"),
        "transpose_forward",
    )?;
    let tb = f64_list(
        &plans_path,
        plans.get("transpose_backward"),
        "transpose_backward",
    )?;
    let transpose_forward = axes3(&plans_path, &tf, "transpose_forward")?;
    let transpose_backward = axes3(&plans_path, &tb, "transpose_backward")?;
    let spacing = f64_list(&plans_path, cfg.get("spacing"), "spacing")?;
    let patch = f64_list(&plans_path, cfg.get("patch_size"), "patch_size")?;
    if spacing.len() != 3 || patch.len() != 3 {
        return Err(merr(
            &plans_path,
            format!(
                "configuration {:?} is 2D (patch {patch:?}); halo runs 3D configurations only",
                r.configuration
            ),
        ));
    }
    let patch_size = axes3(&plans_path, &patch, "patch_size")?;

    // Input channels: dataset.json's channel_names must match the manifest.
    let channels = dataset
        .get("channel_names")
        .or_else(|| dataset.get("modality"))
        .and_then(Value::as_object)
        .ok_or_else(|| merr(&dataset_path, "no channel_names"))?;
    if channels.len() != m.input_channels.len() {
        return Err(merr(
            &dir.join(MANIFEST_FILE),
            format!(
                "{} input channels in the manifest, {} in {}",
                m.input_channels.len(),
                channels.len(),
                dataset_path.display()
            ),
        ));
    }
    let normalisation = nnunet_normalisation(&plans_path, &plans, &cfg, channels.len())?;

    // Labels: plain labels give SoftMax heads, regions sigmoid heads.
    let labels = dataset
        .get("labels")
        .and_then(Value::as_object)
        .ok_or_else(|| merr(&dataset_path, "no labels"))?;
    let has_regions = labels.values().any(|v| v.is_array());
    let (activation, heads, regions_class_order) = if has_regions {
        let order: Vec<u16> = dataset
            .get("regions_class_order")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().map(|v| v.as_u64().map(|x| x as u16)).collect())
            .ok_or_else(|| merr(&dataset_path, "regions without regions_class_order"))?;
        let n = labels
            .iter()
            .filter(|(k, _)| k.as_str() != "background")
            .count();
        (Activation::Sigmoid, n, order)
    } else {
        let mut values: Vec<u64> = labels.values().filter_map(Value::as_u64).collect();
        values.sort_unstable();
        let n = values.len();
        (
            Activation::Softmax,
            n,
            values.iter().map(|&v| v as u16).collect(),
        )
    };
    if activation != m.activation {
        return Err(merr(
            &dir.join(MANIFEST_FILE),
            format!(
                "activation {:?} disagrees with {} ({activation:?})",
                m.activation,
                dataset_path.display()
            ),
        ));
    }

    Ok(Pipeline {
        transpose_forward,
        transpose_backward,
        crop_nonzero: true,
        normalisation,
        target_spacing: Some([spacing[0], spacing[1], spacing[2]]),
        data_resampling: resample_spec(
            &plans_path,
            &cfg,
            "resampling_fn_data",
            "resampling_fn_data_kwargs",
        )?,
        logit_resampling: resample_spec(
            &plans_path,
            &cfg,
            "resampling_fn_probabilities",
            "resampling_fn_probabilities_kwargs",
        )?,
        patch_size,
        tile_step_size: r.tile_step_size,
        gaussian: true,
        mirror_axes: r.mirror_axes.clone(),
        accumulate: r.accumulate,
        activation,
        input_channels: channels.len(),
        output_channels: heads,
        regions_class_order,
    })
}

fn nnunet_normalisation(
    path: &Path,
    plans: &Value,
    cfg: &Value,
    channels: usize,
) -> Result<Vec<Normalisation>> {
    let schemes = cfg
        .get("normalization_schemes")
        .and_then(Value::as_array)
        .ok_or_else(|| merr(path, "normalization_schemes is missing"))?;
    let masks = cfg
        .get("use_mask_for_norm")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if schemes.len() != channels {
        return Err(merr(
            path,
            format!(
                "{} normalization_schemes for {channels} channels",
                schemes.len()
            ),
        ));
    }
    let mut out = vec![];
    for (c, s) in schemes.iter().enumerate() {
        let use_mask = masks.get(c).and_then(Value::as_bool).unwrap_or(false);
        let n = match s.as_str().unwrap_or("") {
            "ZScoreNormalization" => Normalisation::Zscore { use_mask },
            "NoNormalization" => Normalisation::None,
            "CTNormalization" => {
                let p = plans
                    .get("foreground_intensity_properties_per_channel")
                    .and_then(|v| v.get(c.to_string()))
                    .ok_or_else(|| {
                        merr(
                            path,
                            format!("no foreground intensity properties for channel {c}"),
                        )
                    })?;
                let get = |k: &str| {
                    p.get(k)
                        .and_then(Value::as_f64)
                        .ok_or_else(|| merr(path, format!("channel {c}: {k} is missing")))
                };
                Normalisation::Ct {
                    mean: get("mean")?,
                    std: get("std")?,
                    lower: get("percentile_00_5")?,
                    upper: get("percentile_99_5")?,
                }
            }
            other => {
                return Err(merr(
                    path,
                    format!("normalisation {other:?} of channel {c} is not supported"),
                ))
            }
        };
        out.push(n);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            format_version: 1,
            name: "t".into(),
            source: "test".into(),
            license: "CC0-1.0".into(),
            input_channels: vec!["T2".into()],
            labels: vec![
                Label {
                    value: 0,
                    name: "background".into(),
                    colour: None,
                    rt_type: None,
                },
                Label {
                    value: 1,
                    name: "Prostate".into(),
                    colour: Some([255, 0, 0]),
                    rt_type: Some("ORGAN".into()),
                },
            ],
            activation: Activation::Softmax,
            members: vec![Member {
                file: "m0.pt".into(),
                sha256: "0".repeat(64),
                fold: Some(0),
            }],
            preprocessing: Preprocessing::Generic(GenericPipeline {
                target_spacing: None,
                normalisation: vec![Normalisation::Zscore { use_mask: false }],
                crop_nonzero: false,
                patch_size: [4, 8, 8],
                tile_step_size: 0.5,
                gaussian: true,
                mirror_axes: vec![],
                resample_order: 3,
                export_order: 1,
                accumulate: Accumulate::Float32,
            }),
        }
    }

    #[test]
    fn a_missing_member_is_named() {
        let dir = tempfile::tempdir().unwrap();
        manifest().write(&dir.path().join(MANIFEST_FILE)).unwrap();

        let err = Model::open(dir.path()).unwrap_err().to_string();

        assert!(err.contains("m0.pt") && err.contains("missing"), "{err}");
    }

    #[test]
    fn a_checksum_mismatch_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        manifest().write(&dir.path().join(MANIFEST_FILE)).unwrap();
        std::fs::write(dir.path().join("m0.pt"), b"not the weights").unwrap();

        let err = Model::open(dir.path()).unwrap_err().to_string();

        assert!(err.contains("checksum mismatch"), "{err}");
    }

    #[test]
    fn a_good_folder_opens_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m0.pt"), b"weights").unwrap();
        let mut m = manifest();
        m.members[0].sha256 = sha256_file(&dir.path().join("m0.pt")).unwrap();
        m.write(&dir.path().join(MANIFEST_FILE)).unwrap();

        let model = Model::open(dir.path()).unwrap();

        assert_eq!(model.manifest, m);
        assert_eq!(model.pipeline.output_channels, 2);
        assert_eq!(model.pipeline.patch_size, [4, 8, 8]);
    }

    #[test]
    fn sha256_matches_a_known_digest() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("abc");
        std::fs::write(&p, b"abc").unwrap();

        assert_eq!(
            sha256_file(&p).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn softmax_without_background_first_is_refused() {
        let mut m = manifest();
        m.labels.swap(0, 1);

        let err = m.validate(Path::new("x.json")).unwrap_err().to_string();

        assert!(err.contains("background"), "{err}");
    }
}

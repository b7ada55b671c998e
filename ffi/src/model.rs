//! Models and runs: open a model folder, run its ensemble on a volume with
//! a progress callback that can cancel, and read the results back.

use std::ffi::{c_char, c_void};
use std::path::Path;
use std::sync::Mutex;

use halo_core::backend::Backend;
use halo_core::dicom::outputs::{self, DicomOutputs, Structure};
use halo_core::dicom::pt::ScaleBlock;
use halo_core::dicom::{scan_folder, ImageReference, SeriesSelector};
use halo_core::inference::{self, Observer, Options, Prediction, Step};
use halo_core::model::{Model, PluginMembers};
use halo_core::uncertainty::summarize;
use halo_core::Volume;
use ndarray::Axis;

use crate::status::{arg, boundary, copy_out, opt_str_arg, out_arg, str_arg, FfiError, FfiResult};
use crate::volume::HaloVolume;
use crate::HaloStatus;

/// Uncertainty at or above which a voxel counts as uncertain in summaries.
const UNCERTAIN_AT: f32 = 0.1;

/// Progress of a run: member `member` (0-based) of `members` has finished
/// `tiles_done` of its `tiles` tiles (1 to `tiles`).
/// Called on the thread that runs the model. Return `false` to cancel:
/// the run then returns `HALO_STATUS_CANCELLED` and produces nothing.
pub type HaloProgress = Option<
    unsafe extern "C" fn(
        user: *mut c_void,
        member: usize,
        members: usize,
        tile: usize,
        tiles: usize,
    ) -> bool,
>;

/// An opened model folder: its manifest, pipeline and backend.
///
/// Released by `halo_model_free`. Runs on one handle are serialised by an
/// internal lock, so a handle may be shared between threads (calls then
/// wait for each other); for parallel runs open one handle per thread.
pub struct HaloModel {
    model: Model,
    backend: Backend,
    device: String,
    threads: usize,
    lock: Mutex<()>,
}

/// The outcome of one run: labels, mean probabilities and uncertainty per
/// foreground structure, on the input volume's grid.
///
/// Released by `halo_result_free`. Immutable; may be read from several
/// threads.
pub struct HaloResult {
    prediction: Prediction,
    grid: halo_core::Grid,
    frame_of_reference_uid: Option<String>,
    /// The foreground structures, with their labels.
    structures: Vec<Structure>,
    model_name: String,
}

/// Per-structure summary of a run, for triage.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct HaloStructureSummary {
    /// The structure's label value.
    pub label_value: u16,
    /// Volume of the structure, cm3.
    pub volume_cm3: f64,
    /// Volume with uncertainty >= 0.1, cm3.
    pub uncertain_volume_cm3: f64,
    /// Mean uncertainty inside the structure; NaN when it is empty.
    pub mean_uncertainty_inside: f64,
    /// Mean uncertainty on its surface voxels; NaN when it is empty.
    pub mean_uncertainty_surface: f64,
    /// Largest uncertainty of the map.
    pub max_uncertainty: f64,
}

/// Opens the model folder `folder` (with `halo-model.json`), checking every
/// member's checksum, and finds the inference backend plug-in (next to the
/// executable or in `HALO_TORCH_PLUGIN`).
///
/// `device` is `"cpu"` (NULL means cpu), `"cuda"` or `"cuda:N"`; `threads`
/// is the number of intra-op threads (0 keeps the backend's default, at
/// most 256).
/// Errors: `HALO_STATUS_MODEL` for a bad folder or manifest,
/// `HALO_STATUS_BACKEND` when the plug-in is missing. `*out` receives a
/// handle to release with `halo_model_free`. Thread-safe.
///
/// # Safety
///
/// `folder` and `device` (when not NULL) must be NUL-terminated UTF-8;
/// `out` valid for one write.
#[no_mangle]
pub unsafe extern "C" fn halo_model_open(
    folder: *const c_char,
    device: *const c_char,
    threads: u32,
    out: *mut *mut HaloModel,
) -> HaloStatus {
    boundary(|| {
        out_arg(out, "out")?;
        // SAFETY: forwarded from the caller.
        let (folder, device) =
            unsafe { (str_arg(folder, "folder")?, opt_str_arg(device, "device")?) };

        if threads as usize > halo_core::inference::MAX_THREADS {
            return Err(FfiError::invalid(format!(
                "{threads} threads requested; at most {}",
                halo_core::inference::MAX_THREADS
            )));
        }
        let model = Model::open(Path::new(folder)).map_err(model_error)?;
        let backend = Backend::load()?;
        let handle = Box::new(HaloModel {
            model,
            backend,
            device: device.unwrap_or("cpu").to_string(),
            threads: threads as usize,
            lock: Mutex::new(()),
        });
        // SAFETY: checked non-NULL above.
        unsafe { *out = Box::into_raw(handle) };
        Ok(())
    })
}

/// Releases a model; NULL is ignored. Must not race with other uses.
///
/// # Safety
///
/// `model` must come from `halo_model_open` and not have been freed.
#[no_mangle]
pub unsafe extern "C" fn halo_model_free(model: *mut HaloModel) -> HaloStatus {
    boundary(|| {
        if !model.is_null() {
            // SAFETY: created by `Box::into_raw` in `halo_model_open`.
            drop(unsafe { Box::from_raw(model) });
        }
        Ok(())
    })
}

/// Writes the number of foreground structures the model segments (its
/// labels other than background). Thread-safe.
///
/// # Safety
///
/// `model` must be a live handle; `out` valid for one write.
#[no_mangle]
pub unsafe extern "C" fn halo_model_structure_count(
    model: *const HaloModel,
    out: *mut usize,
) -> HaloStatus {
    boundary(|| {
        out_arg(out, "out")?;
        // SAFETY: a live handle per the caller.
        let m = unsafe { arg(model, "model") }?;
        let n = m
            .model
            .manifest
            .labels
            .iter()
            .filter(|l| l.value != 0)
            .count();
        // SAFETY: checked non-NULL above.
        unsafe { *out = n };
        Ok(())
    })
}

/// Copies the name of foreground structure `index` (0-based, in label
/// order) into `buf`; `needed` receives the size with the NUL. Thread-safe.
///
/// # Safety
///
/// `model` must be a live handle; `buf` valid for `len` bytes when not
/// NULL; `needed` for one write when not NULL.
#[no_mangle]
pub unsafe extern "C" fn halo_model_structure_name(
    model: *const HaloModel,
    index: usize,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> HaloStatus {
    boundary(|| {
        // SAFETY: a live handle per the caller.
        let m = unsafe { arg(model, "model") }?;
        let labels: Vec<_> = m
            .model
            .manifest
            .labels
            .iter()
            .filter(|l| l.value != 0)
            .collect();
        let label = labels.get(index).ok_or_else(|| {
            FfiError::invalid(format!(
                "structure index {index} is outside 0..{}",
                labels.len()
            ))
        })?;
        // SAFETY: forwarded from the caller.
        unsafe { copy_out(&label.name, buf, len, needed) }
    })
}

/// Runs every member of the model on `image` and returns the ensemble
/// result on the image's grid: labels, mean probabilities and the
/// voxel-wise standard deviation across members (`ddof` 0: population, 0
/// to 0.5 for a binary structure; 1: sample).
///
/// `progress` (may be NULL) is called after every tile with `user`; when it
/// returns `false` the run stops, returns `HALO_STATUS_CANCELLED` and
/// `*out` is left untouched. Runs on one model handle are serialised (see
/// `HaloModel`). `*out` receives a result to release with
/// `halo_result_free`.
///
/// # Safety
///
/// `model` and `image` must be live handles; `out` valid for one write;
/// `progress`, when given, must be safe to call with `user` on this thread.
#[no_mangle]
pub unsafe extern "C" fn halo_model_run(
    model: *const HaloModel,
    image: *const HaloVolume,
    ddof: u32,
    progress: HaloProgress,
    user: *mut c_void,
    out: *mut *mut HaloResult,
) -> HaloStatus {
    boundary(|| {
        out_arg(out, "out")?;
        // SAFETY: live handles per the caller.
        let (m, image) = unsafe { (arg(model, "model")?, arg(image, "image")?) };
        if ddof > 1 {
            return Err(FfiError::invalid(format!("ddof {ddof}: 0 or 1 expected")));
        }

        let result = run(m, image, ddof as usize, progress, user)?;
        // SAFETY: checked non-NULL above.
        unsafe { *out = Box::into_raw(Box::new(result)) };
        Ok(())
    })
}

fn run(
    m: &HaloModel,
    image: &HaloVolume,
    ddof: usize,
    progress: HaloProgress,
    user: *mut c_void,
) -> FfiResult<HaloResult> {
    // A poisoned lock only means an earlier run panicked; the model itself
    // holds no state that a run leaves half-changed.
    let _guard = m.lock.lock().unwrap_or_else(|p| p.into_inner());
    let model = &m.model;
    if model.pipeline.input_channels != 1 {
        return Err(FfiError::new(
            HaloStatus::Model,
            format!(
                "the model takes {} input channels; one image was given",
                model.pipeline.input_channels
            ),
        ));
    }

    let g = &image.inner.grid;
    let mut members = PluginMembers::new(model, m.backend.clone(), &m.device, m.threads);
    let options = Options {
        ddof,
        threads: m.threads,
        ..Options::default()
    };
    let mut observer = Callback { progress, user };
    let prediction = inference::generic::predict_model(
        &[image.inner.data.view()],
        g,
        model,
        &mut members,
        &options,
        &mut observer,
    )?;

    let structures = Structure::of(&prediction, &model.manifest.labels);
    Ok(HaloResult {
        prediction,
        grid: g.clone(),
        frame_of_reference_uid: image.frame_of_reference_uid.clone(),
        structures,
        model_name: model.manifest.name.clone(),
    })
}

struct Callback {
    progress: HaloProgress,
    user: *mut c_void,
}

impl Observer for Callback {
    fn step(&mut self, s: Step) -> bool {
        match self.progress {
            // SAFETY: the caller supplied the function and its `user`.
            Some(f) => unsafe { f(self.user, s.member, s.members, s.tile, s.tiles) },
            None => true,
        }
    }
}

fn model_error(e: halo_core::Error) -> FfiError {
    let mut f = FfiError::from(e);
    if f.status == HaloStatus::InvalidArgument || f.status == HaloStatus::Io {
        f.status = HaloStatus::Model;
    }
    f
}

/// Releases a result; NULL is ignored. Must not race with other uses.
///
/// # Safety
///
/// `result` must come from `halo_model_run` and not have been freed.
#[no_mangle]
pub unsafe extern "C" fn halo_result_free(result: *mut HaloResult) -> HaloStatus {
    boundary(|| {
        if !result.is_null() {
            // SAFETY: created by `Box::into_raw` in `halo_model_run`.
            drop(unsafe { Box::from_raw(result) });
        }
        Ok(())
    })
}

/// Which map of a structure `halo_result_volume` returns.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HaloMap {
    /// The ensemble label map of the whole run (label values); the
    /// structure index is ignored.
    Labels = 0,
    /// The structure's mask (1 inside, 0 outside).
    Mask = 1,
    /// The structure's mean probability across members.
    Probability = 2,
    /// The structure's uncertainty (standard deviation across members).
    Uncertainty = 3,
}

/// Returns one map of foreground structure `index` (0-based, as
/// `halo_model_structure_name`) as a new volume on the input grid. For the
/// per-slice polygons of a structure, pass its `HALO_MAP_MASK` volume to
/// `halo_mask_slice_polygons`. `*out` receives a handle to release with
/// `halo_volume_free`. Thread-safe.
///
/// # Safety
///
/// `result` must be a live handle; `out` valid for one write.
#[no_mangle]
pub unsafe extern "C" fn halo_result_volume(
    result: *const HaloResult,
    map: HaloMap,
    index: usize,
    out: *mut *mut HaloVolume,
) -> HaloStatus {
    boundary(|| {
        out_arg(out, "out")?;
        // SAFETY: a live handle per the caller.
        let r = unsafe { arg(result, "result") }?;
        let p = &r.prediction;
        if map != HaloMap::Labels {
            check_index(r, index)?;
        }

        let data = match map {
            HaloMap::Labels => p.labels.mapv(f32::from),
            HaloMap::Mask => p
                .structure_mask(index, r.structures[index].value)
                .mapv(|b| f32::from(u8::from(b))),
            HaloMap::Probability => p
                .probabilities
                .index_axis(Axis(0), p.foreground_channels[index])
                .to_owned(),
            HaloMap::Uncertainty => p.uncertainty.index_axis(Axis(0), index).to_owned(),
        };
        let volume = Volume::new(r.grid.clone(), data)?;
        // SAFETY: checked non-NULL above.
        unsafe { *out = HaloVolume::boxed_with_frame(volume, r.frame_of_reference_uid.clone()) };
        Ok(())
    })
}

/// Writes the summary of foreground structure `index`: its volume, the
/// volume with uncertainty >= 0.1, mean uncertainty inside and on its
/// surface, and the largest uncertainty. Thread-safe.
///
/// # Safety
///
/// `result` must be a live handle; `out` valid for one write.
#[no_mangle]
pub unsafe extern "C" fn halo_result_summary(
    result: *const HaloResult,
    index: usize,
    out: *mut HaloStructureSummary,
) -> HaloStatus {
    boundary(|| {
        out_arg(out, "out")?;
        // SAFETY: a live handle per the caller.
        let r = unsafe { arg(result, "result") }?;
        check_index(r, index)?;

        let p = &r.prediction;
        let mask = p.structure_mask(index, r.structures[index].value);
        let s = summarize(
            &mask,
            p.uncertainty.index_axis(Axis(0), index),
            r.grid.voxel_volume_mm3(),
            UNCERTAIN_AT,
        );
        let summary = HaloStructureSummary {
            label_value: r.structures[index].value,
            volume_cm3: s.volume_cm3,
            uncertain_volume_cm3: s.uncertain_volume_cm3,
            mean_uncertainty_inside: s.mean_uncertainty_inside.unwrap_or(f64::NAN),
            mean_uncertainty_surface: s.mean_uncertainty_surface.unwrap_or(f64::NAN),
            max_uncertainty: f64::from(s.max_uncertainty),
        };
        // SAFETY: checked non-NULL above.
        unsafe { *out = summary };
        Ok(())
    })
}

/// Writes the result as DICOM a planning system imports, into the folder
/// `out_folder` (which must not exist unless `overwrite`): `rtstruct.dcm`
/// with one ROI per structure (plus `U>=band` structures when `band` > 0)
/// and one PT uncertainty series `uncertainty-<name>/` per structure, on
/// the grid and frame of reference of the MR series in `series_folder`
/// (`selector` as `halo_series_read`; NULL for the folder's only series),
/// which must be the series the run's image came from (same grid). Written
/// to a temporary folder and renamed into place: a failure leaves nothing.
/// Thread-safe.
///
/// # Safety
///
/// `result` must be a live handle; the strings NUL-terminated UTF-8
/// (`selector` may be NULL).
#[no_mangle]
pub unsafe extern "C" fn halo_result_write_dicom(
    result: *const HaloResult,
    series_folder: *const c_char,
    selector: *const c_char,
    out_folder: *const c_char,
    band: f64,
    overwrite: bool,
) -> HaloStatus {
    boundary(|| {
        // SAFETY: forwarded from the caller.
        let (r, folder, selector, out) = unsafe {
            (
                arg(result, "result")?,
                str_arg(series_folder, "series_folder")?,
                opt_str_arg(selector, "selector")?,
                str_arg(out_folder, "out_folder")?,
            )
        };
        if !(band.is_finite() && (0.0..0.5).contains(&band)) {
            return Err(FfiError::invalid(format!(
                "band {band}: 0 (none) up to 0.5 expected"
            )));
        }

        let selector = match selector {
            Some(s) => s.parse()?,
            None => SeriesSelector::Only,
        };
        let scan = scan_folder(Path::new(folder))?;
        let series = scan.select(&selector)?;
        let reference = ImageReference::from_series(series, None)?;
        if !reference.grid.same_as(&r.grid, 1e-3) {
            return Err(FfiError::invalid(format!(
                "series {} is not on the grid the model ran on",
                series.label()
            )));
        }
        let block = ScaleBlock::darkest_corner(&halo_core::dicom::load_series(series, None)?, 4);
        write_dicom(r, &reference, block, band as f32, Path::new(out), overwrite)
    })
}

fn write_dicom(
    r: &HaloResult,
    reference: &ImageReference,
    block: ScaleBlock,
    band: f32,
    out: &Path,
    overwrite: bool,
) -> FfiResult {
    let bands = if band > 0.0 { vec![band] } else { vec![] };
    let dicom = DicomOutputs {
        prediction: &r.prediction,
        grid: &r.grid,
        structures: &r.structures,
        model_name: &r.model_name,
        bands: &bands,
        block,
    };
    halo_core::dicom::write::publish_dir(out, overwrite, |staged| {
        outputs::write(staged, reference, &dicom)
    })?;
    Ok(())
}

fn check_index(r: &HaloResult, index: usize) -> FfiResult {
    if index >= r.structures.len() {
        return Err(FfiError::invalid(format!(
            "structure index {index} is outside 0..{}",
            r.structures.len()
        )));
    }
    Ok(())
}

//! What the planning system imports from one prediction: an RTSTRUCT with
//! a ROI per foreground structure (and, on request, the CONTROL structures
//! of uncertainty bands) and a PT-encoded uncertainty series per structure.
//! The `halo segment` command and the C ABI both write through here.

use std::path::Path;

use ndarray::Axis;

use super::pt::{self, PtOptions, ScaleBlock};
use super::rtstruct::{self, StructureMask, WriteOptions};
use super::ImageReference;
use crate::geometry::Grid;
use crate::inference::Prediction;
use crate::model::Label;
use crate::{Result, Volume};

/// Series number of the first uncertainty series; the next structure's
/// series takes the next number.
pub const FIRST_UNCERTAINTY_SERIES: i64 = 9002;

/// One foreground structure as the planning system shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Structure {
    /// Label value in the prediction's label map.
    pub value: u16,
    /// ROI name (cut to 16 characters in the RTSTRUCT).
    pub name: String,
    /// RT ROI Interpreted Type (3006,00A4).
    pub rt_type: String,
    /// ROI display colour.
    pub colour: [u8; 3],
}

impl Structure {
    /// The foreground structures of `prediction` with their manifest
    /// labels; a label without RT type is an ORGAN, one without colour red.
    pub fn of(prediction: &Prediction, labels: &[Label]) -> Vec<Structure> {
        prediction
            .foreground_channels
            .iter()
            .map(|&c| {
                let l = &labels[c];
                Structure {
                    value: l.value,
                    name: l.name.clone(),
                    rt_type: l.rt_type.clone().unwrap_or_else(|| "ORGAN".to_string()),
                    colour: l.colour.unwrap_or([255, 0, 0]),
                }
            })
            .collect()
    }
}

/// A structure name as a file or folder name part: ASCII letters, digits
/// and `-` kept, everything else `_`.
pub fn file_part(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A prediction and how to present it.
#[derive(Debug, Clone, Copy)]
pub struct DicomOutputs<'a> {
    /// The ensemble's result on the image grid.
    pub prediction: &'a Prediction,
    /// The image grid.
    pub grid: &'a Grid,
    /// The foreground structures, in the prediction's order.
    pub structures: &'a [Structure],
    /// The model's name, for the ROI descriptions.
    pub model_name: &'a str,
    /// Uncertainty thresholds, each giving a CONTROL structure per
    /// structure where the uncertainty is at least the threshold.
    pub bands: &'a [f32],
    /// The fixed-scale block of the PT series.
    pub block: ScaleBlock,
}

/// Writes `rtstruct.dcm` and one `uncertainty-<structure>/` PT series per
/// structure into `dir`, an existing (staging) folder, referencing the
/// image series `reference`.
///
/// # Errors
///
/// Those of building the structures and of writing the files.
pub fn write(dir: &Path, reference: &ImageReference, o: &DicomOutputs<'_>) -> Result<()> {
    let p = o.prediction;
    let mut masks = Vec::with_capacity(o.structures.len());
    let mut maps = Vec::with_capacity(o.structures.len());
    for (i, s) in o.structures.iter().enumerate() {
        let mask = p.structure_mask(i, s.value).mapv(u8::from);
        masks.push(StructureMask {
            name: s.name.chars().take(rtstruct::ROI_NAME_MAX_CHARS).collect(),
            interpreted_type: s.rt_type.clone(),
            colour: s.colour,
            mask: Volume::new(o.grid.clone(), mask)?,
            description: format!("halo ensemble of {} members ({})", p.members, o.model_name),
        });
        let unc = p.uncertainty.index_axis(Axis(0), i).to_owned();
        maps.push((file_part(&s.name), Volume::new(o.grid.clone(), unc)?));
    }
    for &t in o.bands {
        for (name, unc) in &maps {
            masks.push(rtstruct::band_structure(unc, t, name)?);
        }
    }

    let options = WriteOptions {
        overwrite: true,
        ..WriteOptions::default()
    };
    rtstruct::write(&dir.join("rtstruct.dcm"), reference, &masks, &options)?;
    for (k, (name, map)) in maps.iter().enumerate() {
        let options = PtOptions {
            block: o.block,
            series_number: FIRST_UNCERTAINTY_SERIES + k as i64,
            ..PtOptions::default()
        };
        pt::write_uncertainty_series(
            &dir.join(format!("uncertainty-{name}")),
            reference,
            map,
            name,
            &options,
        )?;
    }
    Ok(())
}

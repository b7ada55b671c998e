//! Model folders: the embedded sample opens, and inconsistent ones are
//! refused with the file and value named.

use std::path::{Path, PathBuf};

use halo_core::model::{Accumulate, Activation, Manifest, Model, MANIFEST_FILE};

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/model")
}

/// A copy of the sample model whose manifest `edit` changes.
fn edited(edit: impl FnOnce(&mut Manifest)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(sample()).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
    }
    let path = dir.path().join(MANIFEST_FILE);
    let mut m = Manifest::read(&path).unwrap();
    edit(&mut m);
    m.write(&path).unwrap();
    dir
}

#[test]
fn the_sample_model_resolves_to_its_nnunet_plans() {
    let model = Model::open(&sample()).unwrap();

    let p = &model.pipeline;
    assert_eq!(model.manifest.members.len(), 5);
    assert_eq!(p.target_spacing, Some([3.0, 1.6, 1.6]));
    assert_eq!(p.patch_size, [16, 48, 48]);
    assert_eq!(p.mirror_axes, vec![0, 1, 2]);
    assert_eq!(p.accumulate, Accumulate::Float16);
    assert_eq!(p.activation, Activation::Softmax);
    assert_eq!(p.output_channels, 3);
    assert_eq!((p.data_resampling.order, p.logit_resampling.order), (3, 1));
    assert_eq!(p.data_resampling.force_separate_z, None);
}

#[test]
fn a_second_input_channel_disagrees_with_dataset_json() {
    let dir = edited(|m| m.input_channels.push("ADC".into()));

    let err = Model::open(dir.path()).unwrap_err().to_string();

    assert!(
        err.contains("2 input channels in the manifest, 1 in"),
        "{err}"
    );
}

#[test]
fn labels_that_do_not_match_the_outputs_are_refused() {
    let dir = edited(|m| {
        m.labels.pop();
    });

    let err = Model::open(dir.path()).unwrap_err().to_string();

    assert!(
        err.contains("3 output channels") && err.contains("2 labels"),
        "{err}"
    );
}

#[test]
fn an_unknown_configuration_lists_the_ones_there_are() {
    let dir = edited(|m| {
        if let halo_core::model::Preprocessing::Nnunet(r) = &mut m.preprocessing {
            r.configuration = "2d".into();
        }
    });

    let err = Model::open(dir.path()).unwrap_err().to_string();

    assert!(
        err.contains("\"2d\" not found") && err.contains("3d_fullres"),
        "{err}"
    );
}

#[test]
fn a_newer_format_version_is_refused() {
    let dir = edited(|m| m.format_version = 2);

    let err = Model::open(dir.path()).unwrap_err().to_string();

    assert!(err.contains("format_version 2"), "{err}");
}

//! Checks shared by the subcommands that write outputs.

use std::path::Path;

/// Refuses an output path that is, or lies above, one of the inputs: with
/// `--force` the output is replaced, which would delete the input.
pub fn output_is_not_input(out: &Path, inputs: &[&Path]) -> anyhow::Result<()> {
    let Ok(out_abs) = std::fs::canonicalize(out) else {
        // An output that does not exist yet cannot hold an input.
        return Ok(());
    };
    for input in inputs {
        let Ok(input_abs) = std::fs::canonicalize(input) else {
            continue;
        };
        if input_abs.starts_with(&out_abs) {
            anyhow::bail!(
                "output {} holds the input {}; replacing it would delete the input: choose another output",
                out.display(),
                input.display()
            );
        }
    }
    Ok(())
}

/// Refuses an output path inside an input folder that is scanned
/// recursively (a DICOM series folder): the next run would find the
/// outputs among the input's files.
pub fn output_is_not_inside(out: &Path, folder: &Path) -> anyhow::Result<()> {
    let Ok(folder_abs) = std::fs::canonicalize(folder) else {
        return Ok(());
    };
    // The output may not exist yet: resolve its nearest existing ancestor.
    let absolute = std::path::absolute(out)?;
    let mut existing = absolute.as_path();
    let resolved = loop {
        if let Ok(r) = std::fs::canonicalize(existing) {
            break r;
        }
        match existing.parent() {
            Some(p) => existing = p,
            None => return Ok(()),
        }
    };
    if resolved.starts_with(&folder_abs) {
        anyhow::bail!(
            "output {} lies inside the input folder {}, which is read recursively: choose an \
             output outside it",
            out.display(),
            folder.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_output_folder_holding_the_input_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("series");
        std::fs::create_dir(&input).unwrap();

        let same = output_is_not_input(&input, &[&input]);
        let parent = output_is_not_input(dir.path(), &[&input]);
        let sibling = output_is_not_input(&dir.path().join("out"), &[&input]);

        assert!(same.is_err() && parent.is_err());
        assert!(sibling.is_ok());
    }

    #[test]
    fn an_output_inside_a_scanned_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let series = dir.path().join("series");
        std::fs::create_dir(&series).unwrap();

        let inside = output_is_not_inside(&series.join("out").join("deeper"), &series);
        let beside = output_is_not_inside(&dir.path().join("out"), &series);

        assert!(inside.is_err());
        assert!(beside.is_ok());
    }
}

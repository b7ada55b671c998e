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
}

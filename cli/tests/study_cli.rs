//! `halo study` end to end on the committed sample study
//! (`samples/study/`, written by `tools/make_sample_study.py`).

use std::path::{Path, PathBuf};
use std::process::Command;

fn sample_manifest() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/study/study.toml")
}

fn halo_study(manifest: &Path, out: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_halo"))
        .args([
            "study".as_ref(),
            manifest.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
        ])
        .output()
        .expect("halo runs")
}

#[test]
fn sample_study_writes_report_tables_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");

    let run = halo_study(&sample_manifest(), &out);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");

    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    for section in [
        "## Ratings: VGC analysis",
        "## Agreement",
        "(Wilcoxon signed-rank)",
        "Fligner-Killeen",
        "## Outliers",
    ] {
        assert!(report.contains(section), "report lacks {section}");
    }
    assert!(report.contains("| quality | ") && report.contains("| confidence | "));
    // The generator over-contours case04 for O3 in step 2 (radii x 1.15).
    assert!(
        report.contains("| case04 | O3 | prostate |"),
        "designed outlier missing"
    );

    let vgc = std::fs::read_to_string(out.join("vgc.csv")).unwrap();
    assert_eq!(
        vgc.lines().count(),
        1 + 2 * 5,
        "two questions x (4 observers + all)"
    );
    let cases = std::fs::read_to_string(out.join("cases.csv")).unwrap();
    assert_eq!(
        cases.lines().count(),
        1 + 6 * 4 * 3,
        "6 cases x 4 observers x 3 comparisons"
    );
    for line in cases.lines().skip(1) {
        let dice: f64 = line.split(',').nth(4).unwrap().parse().unwrap();
        assert!((0.5..=1.0).contains(&dice), "implausible Dice in {line}");
    }
    let plots = out.join("plots");
    if plots.join("edits_O1_prostate.svg").exists() {
        assert!(plots.join("edits_O4_prostate.png").exists());
    } else {
        assert!(
            std::env::var_os("CI").is_none(),
            "plots missing under CI: {stderr}"
        );
        assert!(report.contains("Plots skipped"));
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary folder left behind");
}

#[test]
fn bad_manifest_is_refused_without_output() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("study.toml");
    std::fs::write(&manifest, "[study]\nname = \"x\"\n").unwrap();
    let out = dir.path().join("report");

    let run = halo_study(&manifest, &out);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1));
    assert!(
        stderr.contains("study.toml") && stderr.contains("missing field"),
        "{stderr}"
    );
    assert!(!out.exists());

    // An existing output folder is not replaced without --force.
    std::fs::create_dir(&out).unwrap();
    let run = halo_study(&sample_manifest(), &out);
    assert_eq!(run.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&run.stderr).contains("--force"));
}

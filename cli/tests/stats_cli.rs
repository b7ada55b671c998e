//! `halo stats` end to end: the built binary on JSON files shaped like the
//! entries of `shared/reference/stats_vectors.json`. The vectors are
//! inlined (SciPy 1.16.3 outputs copied from that file) so that this test
//! runs without the shared folder.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

fn halo(args: &[&str], file: &Path) -> (i32, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_halo"))
        .arg("stats")
        .arg(args[0])
        .arg(file)
        .args(&args[1..])
        .output()
        .expect("halo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let value = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap_or(-1), value, stderr)
}

fn write(dir: &Path, name: &str, value: &Value) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, value.to_string()).unwrap();
    path
}

fn close(got: &Value, want: f64, rel: f64) -> bool {
    got.as_f64()
        .is_some_and(|g| (g - want).abs() <= rel * want.abs())
}

#[test]
fn wilcoxon_answers_the_corn_vector_under_both_scipy_rules() {
    let dir = tempfile::tempdir().unwrap();
    // W19_ties_nozero_n35: SciPy >= 1.15 goes asymptotic, 1.14 exact.
    let x = [
        1, 2, -1, 3, 2, 1, -2, 4, 1, 1, 2, 3, -1, 2, 5, 1, -3, 2, 2, 1, 4, -1, 1, 3, 2, 1, 2, -2,
        1, 1, 3, 2, 1, -1, 2,
    ];
    let file = write(
        dir.path(),
        "w19.json",
        &json!({"id": "W19", "x": x.to_vec(), "kwargs": {}}),
    );

    let (code, new, err) = halo(&["wilcoxon"], &file);
    assert_eq!(code, 0, "{err}");
    assert_eq!(new["statistic"], json!(105.0));
    assert!(close(&new["pvalue"], 0.0004816847568023443, 1e-12), "{new}");
    assert_eq!(new["method"], json!("asymptotic"));

    let (code, old, err) = halo(&["wilcoxon", "--scipy", "1.14"], &file);
    assert_eq!(code, 0, "{err}");
    assert!(close(&old["pvalue"], 0.0003297168295830488, 1e-15), "{old}");
    assert_eq!(old["method"], json!("exact"));
}

#[test]
// The data hold a rating of 3.14, which is not pi.
#[allow(clippy::approx_constant)]
fn wilcoxon_reads_paired_data_and_kwargs() {
    let dir = tempfile::tempdir().unwrap();
    // W31_R_depression_greater (Hollander and Wolfe p. 29).
    let entry = json!({
        "x": [1.83, 0.5, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.3],
        "y": [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29],
        "kwargs": {"alternative": "greater"}
    });
    let (code, out, err) = halo(&["wilcoxon"], &write(dir.path(), "w31.json", &entry));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out["statistic"], json!(40.0));
    assert_eq!(out["pvalue"], json!(0.01953125));
}

#[test]
fn fligner_answers_the_unequal_groups_vector() {
    let dir = tempfile::tempdir().unwrap();
    // F05_unequal_n.
    let entry = json!({"samples": [
        [1.2, 3.4, 2.2, 5.1, 4.0],
        [2.0, 2.1, 2.2, 2.3, 2.5, 2.4, 2.6],
        [0.5, 7.5, 3.3, 9.9]
    ]});
    let (code, out, err) = halo(&["fligner"], &write(dir.path(), "f05.json", &entry));
    assert_eq!(code, 0, "{err}");
    assert!(close(&out["statistic"], 9.906043988841555, 1e-12), "{out}");
    assert!(close(&out["pvalue"], 0.007062035218671393, 1e-12), "{out}");
    assert_eq!(out["df"], json!(2));
}

#[test]
fn vgc_answers_the_exact_permutation_vector_with_seed_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    // V3_single_reader_n10_exact_permutation.
    let entry = json!({
        "reference": [2, 3, 3, 1, 4, 2, 3, 2, 4, 3],
        "test": [3, 3, 4, 2, 4, 3, 2, 3, 5, 4]
    });
    let file = write(dir.path(), "v3.json", &entry);
    let args = [
        "vgc",
        "--bootstrap",
        "500",
        "--permutations",
        "1024",
        "--seed",
        "9",
    ];
    let (code, out, err) = halo(&args, &file);
    assert_eq!(code, 0, "{err}");

    let reader = &out["readers"][0];
    assert_eq!(reader["auc"], json!(0.66));
    assert_eq!(reader["pvalue"], json!(0.078125));
    assert_eq!(reader["pvalue_greater"], json!(0.0390625));
    assert_eq!(out["pooled"]["auc"], json!(0.66));
    assert_eq!(out["exact_permutation"], json!(true));
    assert_eq!(out["options"]["seed"], json!(9));
    let (lo, hi) = (
        reader["ci_low"].as_f64().unwrap(),
        reader["ci_high"].as_f64().unwrap(),
    );
    assert!(lo < 0.66 && 0.66 < hi, "interval [{lo}, {hi}]");
    assert!(reader["sd"].as_f64().unwrap() > 0.0);

    // Same seed, same numbers.
    let (_, again, _) = halo(&args, &file);
    assert_eq!(out, again);
}

#[test]
fn malformed_files_name_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "wilcoxon",
            json!({"x": [1, "two"]}),
            "key x is not a list of numbers",
        ),
        ("wilcoxon", json!({"y": [1]}), "key x is missing"),
        (
            "wilcoxon",
            json!({"x": [1, 2], "kwargs": {"bogus": 1}}),
            "key kwargs.bogus",
        ),
        (
            "fligner",
            json!({"samples": [1, 2]}),
            "key samples is not a list of lists",
        ),
        (
            "vgc",
            json!({"reference": [1, 2]}),
            "key test_step2 or test is missing",
        ),
        (
            "vgc",
            json!({"reference": [1, 2], "test": [1]}),
            "reference but 1 test",
        ),
        ("wilcoxon", json!([1, 2]), "expected a JSON object"),
    ];
    for (i, (test, entry, want)) in cases.iter().enumerate() {
        let name = format!("bad{i}.json");
        let (code, out, err) = halo(&[test], &write(dir.path(), &name, entry));
        assert_eq!(code, 1, "case {i}: exit code");
        assert_eq!(out, Value::Null, "case {i}: nothing on stdout");
        assert!(err.contains(&name) && err.contains(want), "case {i}: {err}");
    }
}

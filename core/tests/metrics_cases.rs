//! Every case of `shared/reference/metrics_cases.md` as a test.
//!
//! Each expected number is written as the reference writes it and checked
//! to appear in the reference text, so that a test cannot hold a value the
//! reference does not give; the anisotropic table is parsed from the file
//! itself. Tolerance: 1e-5, or half a unit of the last digit the reference
//! prints when it rounds (three decimals or more). The reference lives in
//! `../shared` beside the repository (or `HALO_SHARED`); without it these
//! tests fail in CI and skip loudly elsewhere.

use std::path::PathBuf;
use std::sync::OnceLock;

use halo_core::metrics::{
    added_path_length, overlap, surface_distances, surfel, AplMode, BoundaryModel, Dimensionality,
    SurfaceDistances,
};
use halo_core::{Grid, Volume};
use ndarray::{s, Array3};

const SURFEL: BoundaryModel = BoundaryModel::Surfel;
const VOXEL: BoundaryModel = BoundaryModel::Voxel;
const VOL: Dimensionality = Dimensionality::Volumetric;
const PLANE: Dimensionality = Dimensionality::Planar;

/// The reference text, or `None` (after a loud message) outside CI.
fn reference() -> Option<&'static str> {
    static TEXT: OnceLock<Option<String>> = OnceLock::new();
    TEXT.get_or_init(|| {
        let shared = std::env::var_os("HALO_SHARED")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
        let path = shared.join("reference/metrics_cases.md");
        match std::fs::read_to_string(&path) {
            Ok(t) => Some(t),
            Err(e) if std::env::var_os("CI").is_some() => {
                panic!(
                    "{}: {e}: the metrics reference must be present in CI",
                    path.display()
                )
            }
            Err(e) => {
                eprintln!(
                    "\n*** SKIPPING metrics reference cases: {}: {e} ***",
                    path.display()
                );
                None
            }
        }
    })
    .as_deref()
}

/// Skips the calling test when the reference is absent (outside CI).
macro_rules! need_reference {
    () => {
        if reference().is_none() {
            return;
        }
    };
}

/// Checks `got` against the number `want` as printed in the reference.
#[track_caller]
fn expect(what: &str, got: f64, want: &str) {
    let text = reference().expect("reference loaded");
    assert!(
        text.contains(want),
        "{what}: {want} does not appear in the reference"
    );
    let value: f64 = want.parse().unwrap();
    let decimals = want.split('.').nth(1).map_or(0, str::len) as i32;
    // Numbers of three or more decimals are rounded; shorter ones are exact.
    let tol = if decimals >= 3 {
        (0.5 * 10f64.powi(-decimals)).max(1e-5)
    } else {
        1e-5
    } + 1e-12;
    assert!(
        (got - value).abs() <= tol,
        "{what}: got {got}, reference {want} (tolerance {tol})"
    );
}

/// Checks `got` is the special value the reference names (`inf`, `NaN`).
#[track_caller]
fn expect_special(what: &str, got: f64, want: &str) {
    let text = reference().expect("reference loaded");
    assert!(
        text.contains(want),
        "{what}: {want} does not appear in the reference"
    );
    let ok = match want {
        "inf" => got == f64::INFINITY,
        "NaN" => got.is_nan(),
        _ => unreachable!("special value {want}"),
    };
    assert!(ok, "{what}: got {got}, reference {want}");
}

/// An empty mask of `shape` `[z, y, x]` with spacing per array axis.
fn mask(shape: [usize; 3], spacing: [f64; 3]) -> Volume<u8> {
    let grid = Grid::axis_aligned(
        [shape[2], shape[1], shape[0]],
        [spacing[2], spacing[1], spacing[0]],
        [0.0; 3],
    );
    Volume::new(grid, Array3::zeros((shape[0], shape[1], shape[2]))).unwrap()
}

/// An empty 2D mask `[y, x]` (one slice).
fn plane(shape: [usize; 2], spacing: [f64; 2]) -> Volume<u8> {
    mask([1, shape[0], shape[1]], [1.0, spacing[0], spacing[1]])
}

fn distances(
    r: &Volume<u8>,
    t: &Volume<u8>,
    model: BoundaryModel,
    dim: Dimensionality,
) -> SurfaceDistances {
    surface_distances(r, t, model, dim).unwrap()
}

fn dice(r: &Volume<u8>, t: &Volume<u8>) -> f64 {
    overlap(r, t).unwrap().dice()
}

/// Distances of one direction, rounded to 1e-9 to compare as a multiset.
fn rounded(d: &[f64]) -> Vec<i64> {
    d.iter().map(|v| (v * 1e9).round() as i64).collect()
}

// Surfel model (DeepMind surface-distance)

/// S1 and S4 share their checks: two single voxels two steps apart.
fn two_voxel_case(r: &Volume<u8>, t: &Volume<u8>, dim: Dimensionality, elements: usize) {
    let d = distances(r, t, SURFEL, dim);

    assert_eq!(d.reference_to_test.distances.len(), elements);
    assert_eq!(d.test_to_reference.distances.len(), elements);
    let want = rounded(&[1.0, 1.0, 2.0, 2.0].repeat(elements / 4));
    let mut got = rounded(&d.reference_to_test.distances);
    got.sort();
    let mut want_sorted = want.clone();
    want_sorted.sort();
    assert_eq!(got, want_sorted, "reference to test distances");
    let mut got = rounded(&d.test_to_reference.distances);
    got.sort();
    assert_eq!(got, want_sorted, "test to reference distances");
    expect("ASD reference to test", d.asd_reference_to_test(), "1.5");
    expect("ASD test to reference", d.asd_test_to_reference(), "1.5");
    expect("HD", d.hausdorff(), "2");
    expect("HD95", d.percentile_hausdorff(95.0), "2");
    let (a, b) = d.surface_overlap(1.0);
    expect("overlap reference", a, "0.5");
    expect("overlap test", b, "0.5");
    expect("surface Dice", d.surface_dice(1.0), "0.5");
    expect("Dice", dice(r, t), "0");
}

#[test]
fn s1_two_pixels_in_2d() {
    need_reference!();
    let mut r = plane([128, 128], [2.0, 1.0]);
    let mut t = r.clone();
    r.data[[0, 50, 70]] = 1;
    t.data[[0, 50, 72]] = 1;

    two_voxel_case(&r, &t, PLANE, 4);

    let d = distances(&r, &t, SURFEL, PLANE);
    for w in d
        .reference_to_test
        .weights
        .iter()
        .chain(&d.test_to_reference.weights)
    {
        assert!((w - 5f64.sqrt() / 2.0).abs() < 1e-12, "element length {w}");
    }
}

#[test]
fn s2_one_empty_mask_in_2d_either_way() {
    need_reference!();
    let mut full = plane([16, 16], [3.0, 2.0]);
    full.data[[0, 7, 9]] = 1;
    let empty = plane([16, 16], [3.0, 2.0]);

    let d = distances(&full, &empty, SURFEL, PLANE);
    expect_special("ASD reference to test", d.asd_reference_to_test(), "inf");
    expect_special("ASD test to reference", d.asd_test_to_reference(), "NaN");
    expect_special("HD", d.hausdorff(), "inf");
    expect_special("HD95", d.percentile_hausdorff(95.0), "inf");
    expect("surface Dice", d.surface_dice(1.0), "0");
    expect("Dice", dice(&full, &empty), "0");

    // Mirrored.
    let d = distances(&empty, &full, SURFEL, PLANE);
    expect_special("ASD test to reference", d.asd_test_to_reference(), "inf");
    expect_special("ASD reference to test", d.asd_reference_to_test(), "NaN");
    expect_special("HD", d.hausdorff(), "inf");
    expect_special("HD95", d.percentile_hausdorff(95.0), "inf");
    expect("surface Dice", d.surface_dice(1.0), "0");
    expect("Dice", dice(&empty, &full), "0");
}

/// S3: DeepMind gives HD inf for two empty masks; halo's documented policy
/// is NaN for every distance metric there (nothing is far away).
#[test]
fn s3_both_empty_in_2d_and_3d() {
    need_reference!();
    for (e, dim) in [
        (plane([8, 8], [1.0, 1.0]), PLANE),
        (mask([4, 8, 8], [3.0, 2.0, 1.0]), VOL),
    ] {
        let d = distances(&e, &e, SURFEL, dim);

        expect_special("ASD reference to test", d.asd_reference_to_test(), "NaN");
        expect_special("ASD test to reference", d.asd_test_to_reference(), "NaN");
        expect_special("surface Dice", d.surface_dice(1.0), "NaN");
        expect_special("Dice", dice(&e, &e), "NaN");
        assert!(
            d.hausdorff().is_nan(),
            "halo policy: HD NaN, not DeepMind's inf"
        );
        assert!(d.percentile_hausdorff(95.0).is_nan());
    }
}

#[test]
fn s4_two_voxels_in_3d() {
    need_reference!();
    let mut r = mask([128, 128, 128], [3.0, 2.0, 1.0]);
    let mut t = r.clone();
    r.data[[50, 60, 70]] = 1;
    t.data[[50, 60, 72]] = 1;

    two_voxel_case(&r, &t, VOL, 8);
}

#[test]
fn s5_surface_element_areas() {
    need_reference!();
    let unit = surfel::code_areas_3d([1.0; 3]);
    // One voxel set: the lowest bit; four voxels on the face a = 0.
    expect("one-corner area", unit[0b0000_0001], "0.216506");
    expect("planar code area", unit[0b1111_0000], "1.0");

    let mut one = mask([3, 3, 3], [1.0; 3]);
    one.data[[1, 1, 1]] = 1;
    let d = distances(&one, &one, SURFEL, VOL);
    assert_eq!(
        d.reference_to_test.distances.len(),
        8,
        "eight corner elements, not 6"
    );
    assert!((d.reference_surface() - 3f64.sqrt()).abs() < 1e-12);

    let aniso = surfel::code_areas_3d([2.5, 0.7, 0.6]);
    expect(
        "planar face normal to the first axis",
        aniso[0b1111_0000],
        "0.42",
    );
}

// Voxel model (MONAI defaults)

/// Voxels with `sum((index * spacing - centre)²) <= r²` on a 99³ grid.
fn sphere(radius: f64, centre: [f64; 3]) -> Volume<u8> {
    let mut m = mask([99, 99, 99], [1.0; 3]);
    m.data.indexed_iter_mut().for_each(|((a, b, c), v)| {
        let d2 = (a as f64 - centre[0]).powi(2)
            + (b as f64 - centre[1]).powi(2)
            + (c as f64 - centre[2]).powi(2);
        *v = (d2 <= radius * radius) as u8;
    });
    m
}

#[test]
fn v1_shifted_spheres_hausdorff() {
    need_reference!();
    let r = sphere(20.0, [20.0, 20.0, 20.0]);
    let t = sphere(20.0, [19.0, 19.0, 19.0]);

    let d = distances(&r, &t, VOXEL, VOL);

    let directed = |x: &[f64]| *x.last().unwrap();
    expect(
        "directed HD r->t",
        directed(&d.reference_to_test.distances),
        "1.7320508",
    );
    expect(
        "directed HD t->r",
        directed(&d.test_to_reference.distances),
        "1.7320508",
    );
    expect("HD", d.hausdorff(), "1.7320508");
}

#[test]
fn v2_shifted_spheres_average_distance() {
    need_reference!();
    // MONAI's case: prediction centred (19, 33, 22), ground truth (20, 33, 22).
    let t = sphere(33.0, [19.0, 33.0, 22.0]);
    let r = sphere(33.0, [20.0, 33.0, 22.0]);

    let d = distances(&r, &t, VOXEL, VOL);

    expect("HD", d.hausdorff(), "1");
    expect(
        "ASD directed (prediction to truth)",
        d.asd_test_to_reference(),
        "0.348328",
    );
    expect("ASD symmetric", d.asd_symmetric(), "0.350217");
}

#[test]
fn v3_empty_masks_in_the_voxel_model() {
    need_reference!();
    let full = sphere(5.0, [50.0, 50.0, 50.0]);
    let empty = mask([99, 99, 99], [1.0; 3]);

    for (r, t) in [(&full, &empty), (&empty, &full)] {
        let d = distances(r, t, VOXEL, VOL);
        expect_special("HD", d.hausdorff(), "inf");
        expect_special("ASD reference to test", d.asd_reference_to_test(), "inf");
        expect_special("ASD test to reference", d.asd_test_to_reference(), "inf");
        expect_special("ASD symmetric", d.asd_symmetric(), "inf");
    }
    let d = distances(&empty, &empty, VOXEL, VOL);
    expect_special("HD", d.hausdorff(), "NaN");
    expect_special("ASD", d.asd_symmetric(), "NaN");
    expect_special("ASD", d.asd_reference_to_test(), "NaN");
}

#[test]
fn v4_surface_dice_at_two_tolerances() {
    need_reference!();
    let mut t = plane([10, 10], [1.0, 1.0]);
    let mut r = t.clone();
    t.data.slice_mut(s![0, 1..=3, 1]).fill(1);
    r.data.slice_mut(s![0, 5..=7, 6]).fill(1);

    let d = distances(&r, &t, VOXEL, PLANE);

    assert!(reference()
        .unwrap()
        .contains("tau = 5.5 gives 1/3, tau = 6\n    gives 2/3"));
    assert!((d.surface_dice(5.5) - 1.0 / 3.0).abs() < 1e-12);
    assert!((d.surface_dice(6.0) - 2.0 / 3.0).abs() < 1e-12);
}

// 2D cases from MetricsReloaded

#[test]
fn m1_square_with_a_cross() {
    need_reference!();
    let mut r = plane([11, 11], [1.0, 1.0]);
    r.data.slice_mut(s![0, 3..8, 3..8]).fill(1);
    let mut t = r.clone();
    t.data.slice_mut(s![0, 5, 1..=9]).fill(1);
    t.data.slice_mut(s![0, 1..=9, 5]).fill(1);

    let v = distances(&r, &t, VOXEL, PLANE);
    let f = distances(&r, &t, SURFEL, PLANE);

    expect("Dice", dice(&r, &t), "0.862");
    expect("pooled ASD", v.asd_pooled(), "0.444");
    expect("mean of directed means", v.asd_mean_of_directed(), "0.425");
    expect("surface Dice at 1", v.surface_dice(1.0), "0.889");
    expect("surface Dice at 2", v.surface_dice(2.0), "1.0");
    expect("HD", v.hausdorff(), "2");
    expect("surfel surface Dice at 1", f.surface_dice(1.0), "0.884");
}

#[test]
fn m2_smaller_and_larger_squares() {
    need_reference!();
    let mut r = plane([14, 14], [1.0, 1.0]);
    r.data.slice_mut(s![0, 5..9, 5..9]).fill(1);
    let mut small = plane([14, 14], [1.0, 1.0]);
    small.data.slice_mut(s![0, 6..8, 6..8]).fill(1);
    let mut large = plane([14, 14], [1.0, 1.0]);
    large.data.slice_mut(s![0, 4..10, 4..10]).fill(1);

    let cases = [
        (&small, "1.069", "1.104", "0.75", "0.869"),
        (&large, "1.041", "1.052", "0.875", "0.925"),
    ];
    for (t, mean_directed, pooled, sdice, sdice_surfel) in cases {
        let v = distances(&r, t, VOXEL, PLANE);
        let f = distances(&r, t, SURFEL, PLANE);

        expect("HD", v.hausdorff(), "1.414");
        expect(
            "mean of directed means",
            v.asd_mean_of_directed(),
            mean_directed,
        );
        expect("pooled ASD", v.asd_pooled(), pooled);
        expect("surface Dice at 1", v.surface_dice(1.0), sdice);
        expect(
            "surfel surface Dice at 1",
            f.surface_dice(1.0),
            sdice_surfel,
        );
    }
}

// Anisotropic 3D cases, parsed from the reference's table

/// `[a:b, c:d, e:f]` as three ranges.
fn parse_box(text: &str) -> [[usize; 2]; 3] {
    let inner = text.trim().trim_start_matches('[').trim_end_matches(']');
    let v: Vec<[usize; 2]> = inner
        .split(',')
        .map(|r| {
            let (a, b) = r.trim().split_once(':').expect("a:b range");
            [a.parse().unwrap(), b.parse().unwrap()]
        })
        .collect();
    [v[0], v[1], v[2]]
}

fn fill_box(m: &mut Volume<u8>, b: [[usize; 2]; 3]) {
    m.data
        .slice_mut(s![b[0][0]..b[0][1], b[1][0]..b[1][1], b[2][0]..b[2][1]])
        .fill(1);
}

const ANISO_SHAPE: [usize; 3] = [12, 30, 30];
const ANISO_SPACING: [f64; 3] = [2.5, 0.7, 0.6];

fn aniso_reference() -> Volume<u8> {
    let text = reference().unwrap();
    assert!(text.contains("shape 12x30x30, spacing (2.5, 0.7, 0.6), tau 1 mm"));
    let line = text
        .lines()
        .find(|l| l.starts_with("Reference: box"))
        .unwrap();
    let b = parse_box(
        line.trim_start_matches("Reference: box")
            .trim_end_matches('.'),
    );
    let mut m = mask(ANISO_SHAPE, ANISO_SPACING);
    fill_box(&mut m, b);
    m
}

#[test]
fn anisotropic_table_rows() {
    need_reference!();
    let r = aniso_reference();
    let rows: Vec<&str> = reference()
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("| I ") || l.starts_with("| A ") || l.starts_with("| B "))
        .collect();
    assert_eq!(rows.len(), 3, "rows I, A, B");

    for row in rows {
        let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
        let mut t = mask(ANISO_SHAPE, ANISO_SPACING);
        if cells[1] == "identical" {
            t = r.clone();
        } else {
            let spec = cells[1].split(" (").next().unwrap();
            fill_box(&mut t, parse_box(spec));
        }
        let (sd_surfel, sd_voxel) = cells[3].split_once(" / ").unwrap();
        let (asd_surfel, asd_voxel) = cells[6].split_once(" / ").unwrap();
        let f = distances(&r, &t, SURFEL, VOL);
        let v = distances(&r, &t, VOXEL, VOL);
        let case = format!("case {}", cells[0]);

        expect(&format!("{case} Dice"), dice(&r, &t), cells[2]);
        expect(
            &format!("{case} surface Dice surfel"),
            f.surface_dice(1.0),
            sd_surfel,
        );
        expect(
            &format!("{case} surface Dice voxel"),
            v.surface_dice(1.0),
            sd_voxel,
        );
        expect(&format!("{case} HD surfel"), f.hausdorff(), cells[4]);
        expect(&format!("{case} HD voxel"), v.hausdorff(), cells[4]);
        expect(
            &format!("{case} HD95 surfel"),
            f.percentile_hausdorff(95.0),
            cells[5],
        );
        expect(
            &format!("{case} HD95 voxel"),
            v.percentile_hausdorff(95.0),
            cells[5],
        );
        expect(
            &format!("{case} ASD surfel"),
            f.asd_mean_of_directed(),
            asd_surfel,
        );
        expect(
            &format!("{case} ASD voxel pooled"),
            v.asd_pooled(),
            asd_voxel,
        );
    }
}

#[test]
fn anisotropic_single_voxels() {
    need_reference!();
    let mut r = mask(ANISO_SHAPE, ANISO_SPACING);
    let mut t = r.clone();
    r.data[[6, 15, 15]] = 1;
    t.data[[6, 15, 17]] = 1;
    assert!(reference()
        .unwrap()
        .contains("D. Single voxel [6, 15, 15] vs single voxel [6, 15, 17]"));

    let f = distances(&r, &t, SURFEL, VOL);
    let v = distances(&r, &t, VOXEL, VOL);

    expect("Dice", dice(&r, &t), "0");
    expect("surface Dice surfel", f.surface_dice(1.0), "0.5");
    expect("surface Dice voxel", v.surface_dice(1.0), "0");
    for d in [&f, &v] {
        expect("HD", d.hausdorff(), "1.2");
        expect("HD95", d.percentile_hausdorff(95.0), "1.2");
    }
    expect("ASD surfel", f.asd_mean_of_directed(), "0.9");
    expect("ASD voxel", v.asd_pooled(), "1.2");
}

#[test]
fn anisotropic_reference_box_surface_area() {
    need_reference!();
    let r = aniso_reference();

    let f = distances(&r, &r, SURFEL, VOL);

    expect("surfel area of the box", f.reference_surface(), "320.1451");
}

// Added path length

fn apl_pair() -> (Volume<u8>, Volume<u8>) {
    let text = reference().unwrap();
    assert!(text.contains(
        "Grid 5x40x40, spacing (2.5, 0.7, 0.6). Automatic contour: box [1:4, 10:30,\n10:30]."
    ));
    assert!(text.contains("on slice 2 its right edge\nis moved out by 4 pixels (2.4 mm)"));
    let mut automatic = mask([5, 40, 40], [2.5, 0.7, 0.6]);
    fill_box(&mut automatic, [[1, 4], [10, 30], [10, 30]]);
    let mut edited = automatic.clone();
    edited.data.slice_mut(s![2, 10..30, 30..34]).fill(1);
    (edited, automatic)
}

#[test]
fn apl_platipy_mode_at_three_tolerances() {
    need_reference!();
    let (edited, automatic) = apl_pair();

    for (tau, mm, pixels) in [
        (0.0, "16.9", "(26 pixels)"),
        (1.0, "14.3", "(22 pixels)"),
        (3.0, "0", ""),
    ] {
        let apl = added_path_length(&edited, &automatic, tau, AplMode::Platipy).unwrap();

        expect(&format!("APL at {tau} mm"), apl.total_mm, mm);
        let counted: u64 = apl.per_slice.iter().map(|s| s.pixels).sum();
        if !pixels.is_empty() {
            assert!(reference().unwrap().contains(pixels));
            assert_eq!(format!("({counted} pixels)"), pixels, "tau {tau}");
        }
    }
}

#[test]
fn apl_identical_contours_give_zero() {
    need_reference!();
    let (_, automatic) = apl_pair();
    assert!(reference()
        .unwrap()
        .contains("Identical contours give 0 at every"));

    for mode in [AplMode::Platipy, AplMode::Exact] {
        for tau in [0.0, 1.0, 3.0] {
            let apl = added_path_length(&automatic, &automatic, tau, mode).unwrap();
            assert_eq!(apl.total_mm, 0.0, "{mode:?} at {tau} mm");
        }
    }
}

#[test]
fn apl_exact_mode_at_one_millimetre() {
    need_reference!();
    let (edited, automatic) = apl_pair();

    let apl = added_path_length(&edited, &automatic, 1.0, AplMode::Exact).unwrap();

    expect("exact APL at 1 mm", apl.total_mm, "15.6");
    let counted: u64 = apl.per_slice.iter().map(|s| s.pixels).sum();
    assert!(reference().unwrap().contains("gives 15.6, 24 pixels"));
    assert_eq!(counted, 24);
}

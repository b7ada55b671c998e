//! DICOM outputs: contours, RTSTRUCT and PT series, written and read back.
//!
//! Synthetic cases run everywhere; the real-data cases use the ProstateX T2
//! series in `../shared` (oblique, 18.6 degrees) and the dicom3tools
//! validators, and fail in CI when either is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use halo_core::contour::{mask_to_polygons, polygons_to_mask, SlicePolygons};
use halo_core::dicom::pt::{self, Corner, PtOptions, ScaleBlock};
use halo_core::dicom::rtstruct::{self, ReadOptions, RoiSelector, StructureMask, WriteOptions};
use halo_core::dicom::write::format_ds;
use halo_core::dicom::{scan_folder, ImageReference, SeriesSelector};
use halo_core::{Grid, Volume};
use ndarray::Array3;

/// A small seeded generator (SplitMix64), so that the cases are the same on
/// every run without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A grid rotated by `tilt_deg` about L and `yaw_deg` about S.
fn oblique_grid(dims: [usize; 3], spacing: [f64; 3], tilt_deg: f64, yaw_deg: f64) -> Grid {
    let (t, y) = (tilt_deg.to_radians(), yaw_deg.to_radians());
    let rx = [
        [1.0, 0.0, 0.0],
        [0.0, t.cos(), -t.sin()],
        [0.0, t.sin(), t.cos()],
    ];
    let rz = [
        [y.cos(), -y.sin(), 0.0],
        [y.sin(), y.cos(), 0.0],
        [0.0, 0.0, 1.0],
    ];
    let mut d = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            d[i][j] = (0..3).map(|k| rz[i][k] * rx[k][j]).sum();
        }
    }
    Grid {
        dims,
        spacing,
        origin: [-123.456_789, 87.654_321, -45.678_9],
        direction: d,
    }
}

/// A random mask: noise of the given density, plus blobs with holes.
fn random_mask(grid: &Grid, rng: &mut Rng, density: f64) -> Volume<u8> {
    let (nz, ny, nx) = grid.shape_zyx();
    let mut data = Array3::<u8>::zeros((nz, ny, nx));
    for v in data.iter_mut() {
        *v = u8::from(rng.unit() < density);
    }
    for _ in 0..3 {
        let (cz, cy, cx) = (rng.below(nz), rng.below(ny), rng.below(nx));
        let r = 1 + rng.below(nx.min(ny) / 3);
        for ((z, y, x), v) in data.indexed_iter_mut() {
            let d2 = (y as i64 - cy as i64).pow(2) + (x as i64 - cx as i64).pow(2);
            if z.abs_diff(cz) <= 1 && d2 <= (r * r) as i64 {
                *v = u8::from(d2 > (r * r / 4) as i64 || rng.unit() < 0.2);
            }
        }
    }
    Volume::new(grid.clone(), data).unwrap()
}

/// Rounds every coordinate through its DS text, as a file would.
fn through_ds(slices: &[SlicePolygons]) -> Vec<SlicePolygons> {
    slices
        .iter()
        .map(|s| SlicePolygons {
            slice: s.slice,
            polygons: s
                .polygons
                .iter()
                .map(|p| {
                    p.iter()
                        .map(|q| q.map(|c| format_ds(c).unwrap().parse().unwrap()))
                        .collect()
                })
                .collect(),
        })
        .collect()
}

fn first_difference(a: &Volume<u8>, b: &Volume<u8>) -> Option<((usize, usize, usize), u8, u8)> {
    a.data
        .indexed_iter()
        .find(|(i, v)| (**v != 0) != (b.data[*i] != 0))
        .map(|(i, v)| (i, *v, b.data[i]))
}

#[test]
fn random_masks_round_trip_exactly_through_polygons_on_oblique_grids() {
    let mut rng = Rng(20_240_601);
    let grids = [
        Grid::axis_aligned([17, 13, 4], [0.7, 0.9, 2.5], [1.0, -2.0, 3.0]),
        oblique_grid([23, 19, 5], [0.5, 0.5, 3.0], 18.6, 0.0),
        oblique_grid([16, 21, 3], [1.3, 0.6, 1.1], 33.0, -71.0),
    ];

    for (g, grid) in grids.iter().enumerate() {
        for case in 0..40 {
            let density = [0.05, 0.3, 0.5, 0.8][case % 4];
            let mask = random_mask(grid, &mut rng, density);

            let polygons = through_ds(&mask_to_polygons(&mask));
            let back = polygons_to_mask(grid, &polygons).unwrap();

            if let Some((i, want, got)) = first_difference(&mask, &back) {
                panic!("grid {g} case {case}: voxel [z,y,x] {i:?} was {want}, came back {got}");
            }
        }
    }
}

#[test]
fn a_full_mask_and_an_empty_mask_round_trip() {
    let grid = oblique_grid([6, 5, 2], [1.0, 1.0, 2.0], 10.0, 20.0);
    for fill in [0u8, 1] {
        let mask = Volume::new(grid.clone(), Array3::from_elem((2, 5, 6), fill)).unwrap();

        let back = polygons_to_mask(&grid, &mask_to_polygons(&mask)).unwrap();

        assert_eq!(back.data, mask.data, "fill {fill}");
    }
}

fn structure(name: &str, mask: Volume<u8>) -> StructureMask {
    StructureMask {
        name: name.to_string(),
        interpreted_type: "ORGAN".to_string(),
        colour: [255, 128, 0],
        mask,
        description: String::new(),
    }
}

#[test]
fn a_written_rtstruct_reads_back_to_exactly_the_masks() {
    let mut rng = Rng(7);
    let grid = oblique_grid([24, 20, 6], [0.55, 0.6, 3.0], 18.6, 4.0);
    let reference = ImageReference::synthetic(grid.clone());
    let masks: Vec<Volume<u8>> = (0..3)
        .map(|k| random_mask(&grid, &mut rng, 0.1 * k as f64))
        .collect();
    let structures: Vec<StructureMask> = masks
        .iter()
        .enumerate()
        .map(|(k, m)| structure(&format!("roi{k}"), m.clone()))
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("rtstruct.dcm");

    rtstruct::write(&path, &reference, &structures, &WriteOptions::default()).unwrap();
    let rs = rtstruct::read(&path).unwrap();

    assert_eq!(rs.rois.len(), 3);
    for (k, m) in masks.iter().enumerate() {
        let roi = rs.find(&RoiSelector::Name(format!("roi{k}"))).unwrap();
        assert_eq!(roi.interpreted_type, "ORGAN");
        assert_eq!(roi.colour, Some([255, 128, 0]));
        let back = rs
            .mask(
                roi,
                &grid,
                Some(&reference.frame_of_reference_uid),
                &ReadOptions::default(),
            )
            .unwrap();
        if let Some((i, want, got)) = first_difference(m, &back) {
            panic!("roi{k}: voxel [z,y,x] {i:?} was {want}, came back {got}");
        }
    }
    assert_eq!(rs.select("2").unwrap().name, "roi1");
}

#[test]
fn the_reader_refuses_another_frame_of_reference() {
    let grid = Grid::axis_aligned([5, 5, 2], [1.0; 3], [0.0; 3]);
    let reference = ImageReference::synthetic(grid.clone());
    let mask = Volume::new(grid.clone(), Array3::from_elem((2, 5, 5), 1u8)).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("rs.dcm");
    rtstruct::write(
        &path,
        &reference,
        &[structure("a", mask)],
        &WriteOptions::default(),
    )
    .unwrap();
    let rs = rtstruct::read(&path).unwrap();

    let err = rs
        .mask(&rs.rois[0], &grid, Some("1.2.3.4"), &ReadOptions::default())
        .unwrap_err()
        .to_string();

    assert!(
        err.contains("frame of reference") && err.contains("1.2.3.4"),
        "{err}"
    );
}

#[test]
fn the_reader_refuses_a_contour_off_the_slice_planes_naming_roi_slice_and_distance() {
    let grid = Grid::axis_aligned([8, 8, 3], [1.0, 1.0, 2.0], [0.0; 3]);
    let reference = ImageReference::synthetic(grid.clone());
    let mut data = Array3::<u8>::zeros((3, 8, 8));
    data[[1, 3, 3]] = 1;
    let mask = Volume::new(grid.clone(), data).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("rs.dcm");
    rtstruct::write(
        &path,
        &reference,
        &[structure("bladder", mask)],
        &WriteOptions::default(),
    )
    .unwrap();
    let mut rs = rtstruct::read(&path).unwrap();

    // Lift the contour by 0.5 mm along the normal (a quarter of a slice).
    for p in &mut rs.rois[0].contours[0].points {
        p[2] += 0.5;
    }
    let err = rs
        .mask(&rs.rois[0], &grid, None, &ReadOptions::default())
        .unwrap_err()
        .to_string();

    assert!(
        err.contains("bladder") && err.contains("slice 1") && err.contains("0.5000 mm"),
        "{err}"
    );
}

#[test]
fn an_roi_without_contours_gives_an_empty_mask() {
    let grid = Grid::axis_aligned([4, 4, 2], [1.0; 3], [0.0; 3]);
    let reference = ImageReference::synthetic(grid.clone());
    let empty = Volume::new(grid.clone(), Array3::<u8>::zeros((2, 4, 4))).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("rs.dcm");
    rtstruct::write(
        &path,
        &reference,
        &[structure("none", empty)],
        &WriteOptions::default(),
    )
    .unwrap();

    let rs = rtstruct::read(&path).unwrap();
    let mask = rs
        .mask(&rs.rois[0], &grid, None, &ReadOptions::default())
        .unwrap();

    assert!(rs.rois[0].contours.is_empty());
    assert!(mask.data.iter().all(|&v| v == 0));
}

#[test]
fn roi_names_over_16_characters_and_existing_outputs_are_refused() {
    let grid = Grid::axis_aligned([4, 4, 2], [1.0; 3], [0.0; 3]);
    let reference = ImageReference::synthetic(grid.clone());
    let mask = Volume::new(grid.clone(), Array3::<u8>::ones((2, 4, 4))).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("rs.dcm");

    let long = rtstruct::write(
        &path,
        &reference,
        &[structure("seventeen-chars-x", mask.clone())],
        &WriteOptions::default(),
    );
    std::fs::write(&path, b"keep").unwrap();
    let existing = rtstruct::write(
        &path,
        &reference,
        &[structure("ok", mask)],
        &WriteOptions::default(),
    );

    assert!(long.unwrap_err().to_string().contains("17 characters"));
    assert!(existing.unwrap_err().to_string().contains("exists"));
    assert_eq!(std::fs::read(&path).unwrap(), b"keep");
}

#[test]
fn band_structures_are_named_as_uncertainty_not_anatomy() {
    let grid = Grid::axis_aligned([3, 1, 1], [1.0; 3], [0.0; 3]);
    let u = Volume::new(
        grid,
        Array3::from_shape_vec((1, 1, 3), vec![0.0f32, 0.1, 0.3]).unwrap(),
    )
    .unwrap();

    let band = rtstruct::band_structure(&u, 0.1, "prostate").unwrap();

    assert_eq!(band.name, "U>=0.1 prostate");
    assert!(band.name.len() <= 16);
    assert_eq!(band.interpreted_type, "CONTROL");
    assert_eq!(
        band.mask.data.iter().copied().collect::<Vec<_>>(),
        vec![0, 1, 1]
    );
}

#[test]
fn a_pt_series_reads_back_within_one_quantisation_step() {
    let mut rng = Rng(99);
    let grid = oblique_grid([20, 18, 4], [0.5, 0.5, 3.0], 18.6, 0.0);
    let reference = ImageReference::synthetic(grid.clone());
    let data = Array3::from_shape_fn((4, 18, 20), |_| (rng.unit() * 0.5) as f32);
    let map = Volume::new(grid.clone(), data).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("uncertainty-prostate");
    let block = ScaleBlock {
        corner: Corner::BottomRight,
        size: 3,
    };
    let options = PtOptions {
        block,
        ..PtOptions::default()
    };

    let info = pt::write_uncertainty_series(&dir, &reference, &map, "prostate", &options).unwrap();
    let back = pt::read_series(&dir, &SeriesSelector::Only).unwrap();

    assert_eq!(info.files, 4);
    assert_eq!(back.units, "NONE");
    assert!(
        back.volume.grid.same_as(&grid, 1e-4),
        "{:?} vs {grid:?}",
        back.volume.grid
    );
    for ((z, y, x), &v) in back.volume.data.indexed_iter() {
        let want = if block.contains(18, 20, y, x) {
            0.5
        } else {
            map.data[[z, y, x]]
        };
        assert!(
            (f64::from(v) - f64::from(want)).abs() <= info.rescale_slope,
            "voxel [{z},{y},{x}]: wrote {want}, read {v}, step {}",
            info.rescale_slope
        );
    }
}

#[test]
fn the_pt_writer_refuses_negative_values_and_leaves_no_folder() {
    let grid = Grid::axis_aligned([5, 5, 2], [1.0; 3], [0.0; 3]);
    let reference = ImageReference::synthetic(grid.clone());
    let mut data = Array3::<f32>::zeros((2, 5, 5));
    data[[1, 2, 2]] = -0.1;
    let map = Volume::new(grid, data).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("u");

    let err = pt::write_uncertainty_series(&dir, &reference, &map, "x", &PtOptions::default())
        .unwrap_err()
        .to_string();

    assert!(err.contains("-0.1"), "{err}");
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

// ------------------------------------------------------------ real data

fn shared() -> PathBuf {
    std::env::var_os("HALO_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"))
}

/// `path` when it exists; otherwise a failure in CI and `None` (with a loud
/// message) elsewhere.
fn require(path: PathBuf, what: &str) -> Option<PathBuf> {
    if path.exists() {
        return Some(path);
    }
    let msg = format!("{what} not found at {}", path.display());
    assert!(
        std::env::var_os("CI").is_none(),
        "{msg}: it must be present in CI"
    );
    eprintln!("*** SKIPPING: {msg} ***");
    None
}

fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    require(found.unwrap_or_else(|| PathBuf::from(name)), name)
}

/// Lines of a dicom3tools validator that report an error.
fn errors_of(tool: &Path, args: &[&Path]) -> Vec<String> {
    let out = Command::new(tool)
        .args(args)
        .output()
        .expect("validator runs");
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    let mut errors: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("Error") || l.starts_with("Abort"))
        .map(str::to_string)
        .collect();
    if !out.status.success() && errors.is_empty() {
        errors.push(format!("{} exited with {}", tool.display(), out.status));
    }
    errors
}

/// An ellipsoid (semi-axes in mm) around a centre given in voxels.
fn ellipsoid(grid: &Grid, centre: [f64; 3], semi_mm: [f64; 3]) -> Volume<u8> {
    let (nz, ny, nx) = grid.shape_zyx();
    let data = Array3::from_shape_fn((nz, ny, nx), |(z, y, x)| {
        let d: f64 = [x, y, z]
            .iter()
            .enumerate()
            .map(|(a, &i)| ((i as f64 - centre[a]) * grid.spacing[a] / semi_mm[a]).powi(2))
            .sum();
        u8::from(d <= 1.0)
    });
    Volume::new(grid.clone(), data).unwrap()
}

#[test]
fn prostatex_outputs_pass_dciodvfy_and_read_back_onto_the_mr_grid() {
    let Some(mr) = require(
        shared().join("data/prostatex/ProstateX-0000/4.000000-t2tsetra-00702"),
        "ProstateX-0000 T2 series",
    ) else {
        return;
    };
    let (Some(dciodvfy), Some(dcentvfy)) = (tool("dciodvfy"), tool("dcentvfy")) else {
        return;
    };
    let scan = scan_folder(&mr).unwrap();
    let reference =
        ImageReference::from_series(scan.select(&SeriesSelector::Only).unwrap(), None).unwrap();
    let grid = reference.grid.clone();
    let prostate = ellipsoid(&grid, [190.0, 200.0, 9.0], [22.0, 17.0, 15.0]);
    let mut hollow = ellipsoid(&grid, [150.0, 170.0, 7.0], [30.0, 20.0, 10.0]);
    let inner = ellipsoid(&grid, [150.0, 170.0, 7.0], [12.0, 8.0, 5.0]);
    hollow.data.zip_mut_with(&inner.data, |a, &b| *a &= 1 - b);
    let uncertainty = prostate.map(|&v| if v == 1 { 0.05f32 } else { 0.0 });
    let mut u = uncertainty.clone();
    u.data.indexed_iter_mut().for_each(|((z, y, x), v)| {
        *v += (0.4 * ((x + 2 * y + 3 * z) % 97) as f64 / 97.0) as f32
            * f32::from(prostate.data[[z, y, x]]);
    });
    let band = rtstruct::band_structure(&u, 0.2, "prostate").unwrap();
    let structures = vec![
        structure("prostate", prostate.clone()),
        StructureMask {
            interpreted_type: "CTV".into(),
            ..structure("hollow", hollow.clone())
        },
        band.clone(),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let rs_path = tmp.path().join("rtstruct.dcm");
    let pt_dir = tmp.path().join("uncertainty-prostate");

    rtstruct::write(&rs_path, &reference, &structures, &WriteOptions::default()).unwrap();
    let info =
        pt::write_uncertainty_series(&pt_dir, &reference, &u, "prostate", &PtOptions::default())
            .unwrap();

    if let Some(keep) = std::env::var_os("HALO_TEST_KEEP") {
        // For looking at the files by hand: `HALO_TEST_KEEP=/tmp/x cargo test ...`.
        let keep = PathBuf::from(keep);
        std::fs::create_dir_all(keep.join("uncertainty-prostate")).unwrap();
        std::fs::copy(&rs_path, keep.join("rtstruct.dcm")).unwrap();
        for e in std::fs::read_dir(&pt_dir).unwrap() {
            let p = e.unwrap().path();
            std::fs::copy(
                &p,
                keep.join("uncertainty-prostate")
                    .join(p.file_name().unwrap()),
            )
            .unwrap();
        }
    }
    let mut files = vec![rs_path.clone()];
    files.extend(
        std::fs::read_dir(&pt_dir)
            .unwrap()
            .map(|e| e.unwrap().path()),
    );
    for f in &files {
        let errors = errors_of(&dciodvfy, &[f]);
        assert!(
            errors.is_empty(),
            "dciodvfy {}:\n{}",
            f.display(),
            errors.join("\n")
        );
    }
    let pt_files: Vec<&Path> = files[1..].iter().map(PathBuf::as_path).collect();
    let errors = errors_of(&dcentvfy, &pt_files);
    assert!(errors.is_empty(), "dcentvfy:\n{}", errors.join("\n"));

    let rs = rtstruct::read(&rs_path).unwrap();
    for s in &structures {
        let roi = rs.find(&RoiSelector::Name(s.name.clone())).unwrap();
        let back = rs
            .mask(
                roi,
                &grid,
                Some(&reference.frame_of_reference_uid),
                &ReadOptions::default(),
            )
            .unwrap();
        if let Some((i, want, got)) = first_difference(&s.mask, &back) {
            panic!(
                "{}: voxel [z,y,x] {i:?} was {want}, came back {got}",
                s.name
            );
        }
    }
    let back = pt::read_series(&pt_dir, &SeriesSelector::Only).unwrap();
    assert!(
        back.volume.grid.same_as(&grid, 1e-4),
        "{:?} vs {grid:?}",
        back.volume.grid
    );
    assert_eq!(
        back.frame_of_reference_uid.as_deref(),
        Some(reference.frame_of_reference_uid.as_str())
    );
    let block = PtOptions::default().block;
    for ((z, y, x), &v) in back.volume.data.indexed_iter() {
        let want = if block.contains(grid.dims[1], grid.dims[0], y, x) {
            0.5
        } else {
            u.data[[z, y, x]]
        };
        assert!(
            (f64::from(v) - f64::from(want)).abs() <= info.rescale_slope,
            "[{z},{y},{x}] {want} {v}"
        );
    }
}

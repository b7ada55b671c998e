//! NIfTI-1 files (`.nii`, `.nii.gz`) through the `nifti` crate.
//!
//! NIfTI stores RAS+ coordinates; halo works in LPS. The conversion
//! (negating the first two rows of the affine) happens here and nowhere
//! else. Both the sform and the qform are written, code 1 (scanner), so
//! that SimpleITK, nibabel and ITK-SNAP read the same geometry.

use std::path::Path;

use ndarray::Array3;
use nifti::{IntoNdArray, NiftiHeader, NiftiObject, NiftiType, ReaderOptions};

use crate::geometry::norm;
use crate::{Error, Grid, Result, Volume};

/// An error of the `nifti` crate, whose I/O errors would otherwise print as
/// Rust debug text.
fn crate_err(path: &Path, e: nifti::NiftiError) -> Error {
    match e {
        nifti::NiftiError::Io(io) => nerr(path, io),
        other => nerr(path, other),
    }
}

fn nerr(path: &Path, m: impl std::fmt::Display) -> Error {
    Error::Nifti {
        path: path.to_path_buf(),
        message: m.to_string(),
    }
}

/// Reads a 3D NIfTI volume as `f32`, scaling by `scl_slope`/`scl_inter`.
///
/// Geometry comes from the sform when its code is non-zero, else from the
/// qform, else from pixdim alone.
///
/// # Errors
///
/// [`Error::Nifti`] naming the file when it cannot be read, is not 3D (a
/// fourth dimension of 1 is accepted), or has a degenerate affine.
pub fn read(path: &Path) -> Result<Volume> {
    let obj = ReaderOptions::new()
        .read_file(path)
        .map_err(|e| crate_err(path, e))?;
    let h = obj.header().clone();
    let ndim = h.dim[0] as usize;
    if !(3..=7).contains(&ndim) && ndim != 2 {
        return Err(nerr(path, format!("dim[0] = {ndim}: not an image")));
    }
    if h.dim[4..=ndim.max(3)].iter().any(|&d| d > 1) {
        return Err(nerr(
            path,
            format!("is not a 3D volume: dims {:?}", &h.dim[1..=ndim]),
        ));
    }
    let dims = [
        h.dim[1].max(1) as usize,
        h.dim[2].max(1) as usize,
        h.dim[3].max(1) as usize,
    ];

    let arr = obj
        .into_volume()
        .into_ndarray::<f32>()
        .map_err(|e| crate_err(path, e))?;
    let mut arr = arr;
    while arr.ndim() > 3 {
        let last = ndarray::Axis(arr.ndim() - 1);
        arr = arr.index_axis_move(last, 0);
    }
    if arr.ndim() == 2 {
        arr = arr.insert_axis(ndarray::Axis(2));
    }
    let arr = arr
        .into_dimensionality::<ndarray::Ix3>()
        .map_err(|e| nerr(path, format!("data shape: {e}")))?;
    // [x][y][z] to [z][y][x], x fastest.
    let data: Array3<f32> = arr.permuted_axes([2, 1, 0]).as_standard_layout().to_owned();

    let grid = grid_from_header(&h, dims).map_err(|m| nerr(path, m))?;
    Volume::new(grid, data)
}

fn grid_from_header(h: &NiftiHeader, dims: [usize; 3]) -> std::result::Result<Grid, String> {
    let ras: [[f64; 4]; 3] = if h.sform_code > 0 {
        [
            h.srow_x.map(f64::from),
            h.srow_y.map(f64::from),
            h.srow_z.map(f64::from),
        ]
    } else if h.qform_code > 0 {
        qform_affine(h)
    } else {
        let p = [h.pixdim[1] as f64, h.pixdim[2] as f64, h.pixdim[3] as f64];
        [
            [p[0], 0.0, 0.0, 0.0],
            [0.0, p[1], 0.0, 0.0],
            [0.0, 0.0, p[2], 0.0],
        ]
    };
    // RAS to LPS: negate the first two rows.
    let lps = [ras[0].map(|v| -v), ras[1].map(|v| -v), ras[2]];

    let mut spacing = [0.0; 3];
    let mut direction = [[0.0; 3]; 3];
    for j in 0..3 {
        let col = [lps[0][j], lps[1][j], lps[2][j]];
        let n = norm(&col);
        if n <= 0.0 || !n.is_finite() {
            return Err(format!("affine column {j} is degenerate"));
        }
        // The affine is stored in float32, so its column norms carry
        // rounding (0.5 reads back as 0.50000001); pixdim holds the declared
        // spacing and is preferred when the two agree to 1e-5.
        let declared = h.pixdim[j + 1].abs() as f64;
        spacing[j] = if (n - declared).abs() <= 1e-5 * declared {
            declared
        } else {
            n
        };
        for i in 0..3 {
            direction[i][j] = col[i] / n;
        }
    }
    let grid = Grid {
        dims,
        spacing,
        origin: [lps[0][3], lps[1][3], lps[2][3]],
        direction,
    };
    grid.validate().map_err(|e| e.to_string())?;
    Ok(grid)
}

fn qform_affine(h: &NiftiHeader) -> [[f64; 4]; 3] {
    let (b, c, d) = (h.quatern_b as f64, h.quatern_c as f64, h.quatern_d as f64);
    let a = (1.0 - (b * b + c * c + d * d)).max(0.0).sqrt();
    let r = [
        [
            a * a + b * b - c * c - d * d,
            2.0 * (b * c - a * d),
            2.0 * (b * d + a * c),
        ],
        [
            2.0 * (b * c + a * d),
            a * a + c * c - b * b - d * d,
            2.0 * (c * d - a * b),
        ],
        [
            2.0 * (b * d - a * c),
            2.0 * (c * d + a * b),
            a * a + d * d - c * c - b * b,
        ],
    ];
    let qfac = if h.pixdim[0] < 0.0 { -1.0 } else { 1.0 };
    let p = [
        h.pixdim[1] as f64,
        h.pixdim[2] as f64,
        h.pixdim[3] as f64 * qfac,
    ];
    let off = [h.quatern_x as f64, h.quatern_y as f64, h.quatern_z as f64];
    let mut m = [[0.0; 4]; 3];
    for i in 0..3 {
        for j in 0..3 {
            m[i][j] = r[i][j] * p[j];
        }
        m[i][3] = off[i];
    }
    m
}

macro_rules! write_as {
    ($path:expr, $grid:expr, $data:expr, $ty:expr) => {{
        let header = header_for($grid, $ty);
        // [z][y][x] to [x][y][z]; the writer stores the first axis fastest.
        let xyz = $data.view().permuted_axes([2, 1, 0]);
        nifti::writer::WriterOptions::new($path)
            .reference_header(&header)
            .write_nifti(&xyz)
            .map_err(|e| crate_err($path, e))
    }};
}

/// Writes a volume as NIfTI-1 (gzip-compressed when the name ends in
/// `.gz`), as `f32`.
///
/// # Errors
///
/// [`Error::Nifti`] naming the file when it cannot be written.
pub fn write(path: &Path, volume: &Volume) -> Result<()> {
    write_as!(path, &volume.grid, volume.data, NiftiType::Float32)
}

/// Writes a label or mask volume as NIfTI-1 `uint8`.
///
/// # Errors
///
/// [`Error::Nifti`] naming the file when it cannot be written.
pub fn write_u8(path: &Path, volume: &Volume<u8>) -> Result<()> {
    write_as!(path, &volume.grid, volume.data, NiftiType::Uint8)
}

fn header_for(grid: &Grid, ty: NiftiType) -> NiftiHeader {
    let mut h = NiftiHeader {
        datatype: ty as i16,
        ..NiftiHeader::default()
    };
    h.dim = [
        3,
        grid.dims[0] as u16,
        grid.dims[1] as u16,
        grid.dims[2] as u16,
        1,
        1,
        1,
        1,
    ];
    h.xyzt_units = 2 | 8; // mm, s

    // LPS to RAS.
    let flip = [-1.0, -1.0, 1.0];
    let mut rot = [[0.0f64; 3]; 3];
    let mut srow = [[0.0f32; 4]; 3];
    for i in 0..3 {
        for j in 0..3 {
            rot[i][j] = flip[i] * grid.direction[i][j];
            srow[i][j] = (rot[i][j] * grid.spacing[j]) as f32;
        }
        srow[i][3] = (flip[i] * grid.origin[i]) as f32;
    }
    h.srow_x = srow[0];
    h.srow_y = srow[1];
    h.srow_z = srow[2];
    h.sform_code = 1;

    let det = rot[0][0] * (rot[1][1] * rot[2][2] - rot[1][2] * rot[2][1])
        - rot[0][1] * (rot[1][0] * rot[2][2] - rot[1][2] * rot[2][0])
        + rot[0][2] * (rot[1][0] * rot[2][1] - rot[1][1] * rot[2][0]);
    let qfac = if det < 0.0 { -1.0 } else { 1.0 };
    if qfac < 0.0 {
        for row in rot.iter_mut() {
            row[2] = -row[2];
        }
    }
    let (b, c, d) = quaternion(&rot);
    h.quatern_b = b as f32;
    h.quatern_c = c as f32;
    h.quatern_d = d as f32;
    h.quatern_x = srow[0][3];
    h.quatern_y = srow[1][3];
    h.quatern_z = srow[2][3];
    h.qform_code = 1;
    h.pixdim = [
        qfac as f32,
        grid.spacing[0] as f32,
        grid.spacing[1] as f32,
        grid.spacing[2] as f32,
        1.0,
        1.0,
        1.0,
        1.0,
    ];
    h
}

/// Quaternion (b, c, d) of a proper rotation, with a >= 0.
fn quaternion(r: &[[f64; 3]; 3]) -> (f64, f64, f64) {
    let trace = r[0][0] + r[1][1] + r[2][2];
    let (a, b, c, d);
    if trace > 0.0 {
        let s = (trace + 1.0).sqrt() * 2.0;
        a = 0.25 * s;
        b = (r[2][1] - r[1][2]) / s;
        c = (r[0][2] - r[2][0]) / s;
        d = (r[1][0] - r[0][1]) / s;
    } else if r[0][0] > r[1][1] && r[0][0] > r[2][2] {
        let s = (1.0 + r[0][0] - r[1][1] - r[2][2]).sqrt() * 2.0;
        a = (r[2][1] - r[1][2]) / s;
        b = 0.25 * s;
        c = (r[0][1] + r[1][0]) / s;
        d = (r[0][2] + r[2][0]) / s;
    } else if r[1][1] > r[2][2] {
        let s = (1.0 + r[1][1] - r[0][0] - r[2][2]).sqrt() * 2.0;
        a = (r[0][2] - r[2][0]) / s;
        b = (r[0][1] + r[1][0]) / s;
        c = 0.25 * s;
        d = (r[1][2] + r[2][1]) / s;
    } else {
        let s = (1.0 + r[2][2] - r[0][0] - r[1][1]).sqrt() * 2.0;
        a = (r[1][0] - r[0][1]) / s;
        b = (r[0][2] + r[2][0]) / s;
        c = (r[1][2] + r[2][1]) / s;
        d = 0.25 * s;
    }
    if a < 0.0 {
        (-b, -c, -d)
    } else {
        (b, c, d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oblique_volume_round_trips_through_nifti() {
        let t = 18.6_f64.to_radians();
        let grid = Grid {
            dims: [5, 4, 3],
            spacing: [0.5, 0.6, 3.0],
            origin: [-10.0, 20.5, 5.25],
            direction: [
                [1.0, 0.0, 0.0],
                [0.0, t.cos(), t.sin()],
                [0.0, -t.sin(), t.cos()],
            ],
        };
        let data = Array3::from_shape_fn((3, 4, 5), |(z, y, x)| (z * 100 + y * 10 + x) as f32);
        let vol = Volume::new(grid.clone(), data).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.nii.gz");

        write(&path, &vol).unwrap();
        let back = read(&path).unwrap();

        assert_eq!(back.data, vol.data);
        assert!(
            back.grid.same_as(&grid, 1e-4),
            "{:?} != {:?}",
            back.grid,
            grid
        );
    }
}

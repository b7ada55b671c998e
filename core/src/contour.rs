//! Masks to planar polygons and back.
//!
//! [`mask_to_polygons`] traces, on every slice, the boundary between
//! foreground and background voxels along voxel edges: the vertices sit on
//! voxel corners (half-integer indices). Each closed loop becomes one
//! polygon; holes are loops of their own. [`polygons_to_mask`] fills
//! polygons at voxel centres with the even-odd rule, which is the XOR of the
//! polygons of one slice (the rule of DICOM PS3.3 C.8.8.6.3 for an ROI with
//! several contours on one plane, and of `dcmrtstruct2nii`).
//!
//! Because a voxel centre lies half a voxel away from every traced edge, the
//! round trip mask -> polygons -> mask is exact, on oblique grids too; the
//! only rounding is that of the coordinates written to a file, which must
//! stay far below half a voxel.
//!
//! Where two foreground voxels touch only at a corner, the tracer keeps them
//! in separate loops (foreground is 4-connected within a slice), so that no
//! polygon crosses itself.

use std::collections::HashMap;

use ndarray::{Array2, ArrayView2};

use crate::{Error, Grid, Result, Volume};

/// A closed planar polygon in index coordinates of one slice: `[x, y]`
/// (column, row), vertices in order, the closing edge implied.
pub type IndexPolygon = Vec<[f64; 2]>;

/// A closed planar polygon in patient coordinates (LPS, mm), vertices in
/// order, the closing edge implied (DICOM CLOSED_PLANAR).
pub type LpsPolygon = Vec<[f64; 3]>;

/// The polygons of one slice.
#[derive(Debug, Clone, PartialEq)]
pub struct SlicePolygons {
    /// Slice index `z` on the grid.
    pub slice: usize,
    /// Closed polygons in patient coordinates (LPS, mm).
    pub polygons: Vec<LpsPolygon>,
}

/// Traces the foreground of one slice (`[y][x]`, non-zero = inside) into
/// closed polygons on voxel edges, in index coordinates.
///
/// Vertices are voxel corners, `[x - 0.5, y - 0.5]` for corner `(x, y)`;
/// collinear vertices are dropped. Outer boundaries run one way round and
/// holes the other; filling with [`fill_slice`] gives back `mask`.
pub fn trace_slice(mask: ArrayView2<'_, u8>) -> Vec<IndexPolygon> {
    let (ny, nx) = mask.dim();
    let inside = |x: isize, y: isize| {
        x >= 0
            && y >= 0
            && (x as usize) < nx
            && (y as usize) < ny
            && mask[[y as usize, x as usize]] != 0
    };

    // Directed boundary edges between corners, foreground on one side. Per
    // voxel the loop runs top-left, bottom-left, bottom-right, top-right.
    let mut out: HashMap<(isize, isize), Vec<(isize, isize)>> = HashMap::new();
    let mut starts = Vec::new();
    for y in 0..ny as isize {
        for x in 0..nx as isize {
            if !inside(x, y) {
                continue;
            }
            let (tl, tr, br, bl) = ((x, y), (x + 1, y), (x + 1, y + 1), (x, y + 1));
            for (open, from, to) in [
                (!inside(x - 1, y), tl, bl),
                (!inside(x, y + 1), bl, br),
                (!inside(x + 1, y), br, tr),
                (!inside(x, y - 1), tr, tl),
            ] {
                if open {
                    out.entry(from).or_default().push(to);
                    starts.push(from);
                }
            }
        }
    }

    // Start at corners with one outgoing edge first: a loop closed at a
    // shared corner could otherwise leave by the other voxel's edge.
    let single: Vec<_> = starts
        .iter()
        .copied()
        .filter(|c| out.get(c).is_some_and(|v| v.len() == 1))
        .collect();
    let mut loops = Vec::new();
    for start in single.into_iter().chain(starts) {
        let Some(first) = out.get_mut(&start).and_then(Vec::pop) else {
            continue;
        };
        let mut corners = vec![start];
        let (mut prev, mut at) = (start, first);
        while at != start {
            corners.push(at);
            let next = take_next(&mut out, prev, at);
            prev = at;
            at = next;
        }
        loops.push(simplify(&corners));
    }
    loops
}

/// Takes the outgoing edge at `at` that continues the loop arriving from
/// `prev`. At a corner shared by two diagonal voxels there are two; the one
/// turning towards the voxel the loop is going round keeps the voxels apart.
fn take_next(
    out: &mut HashMap<(isize, isize), Vec<(isize, isize)>>,
    prev: (isize, isize),
    at: (isize, isize),
) -> (isize, isize) {
    // OK to index: every corner reached by an edge has an outgoing edge left,
    // since in- and out-degree agree at every corner of a closed boundary.
    let cands = out.get_mut(&at).expect("boundary edges form closed loops");
    let pick = if cands.len() == 1 {
        0
    } else {
        let din = (at.0 - prev.0, at.1 - prev.1);
        cands
            .iter()
            .position(|c| {
                let dout = (c.0 - at.0, c.1 - at.1);
                din.0 * dout.1 - din.1 * dout.0 < 0
            })
            .unwrap_or(0)
    };
    cands.swap_remove(pick)
}

/// Corners to index coordinates, without vertices in the middle of a
/// straight run.
fn simplify(corners: &[(isize, isize)]) -> IndexPolygon {
    let n = corners.len();
    let mut poly = Vec::with_capacity(n);
    for i in 0..n {
        let a = corners[(i + n - 1) % n];
        let b = corners[i];
        let c = corners[(i + 1) % n];
        let collinear = (b.0 - a.0) * (c.1 - b.1) - (b.1 - a.1) * (c.0 - b.0) == 0;
        if !collinear {
            poly.push([b.0 as f64 - 0.5, b.1 as f64 - 0.5]);
        }
    }
    poly
}

/// Fills polygons given in index coordinates onto a `ny x nx` slice at
/// voxel centres, with the even-odd rule (XOR of the polygons).
///
/// A voxel centre exactly on an edge counts as inside when the edge is its
/// left boundary along the row (a half-open rule, so that two polygons
/// sharing an edge never both claim a voxel).
pub fn fill_slice(polygons: &[IndexPolygon], ny: usize, nx: usize) -> Array2<u8> {
    let mut mask = Array2::<u8>::zeros((ny, nx));
    let mut crossings = Vec::new();
    for y in 0..ny {
        let yc = y as f64;
        crossings.clear();
        for poly in polygons {
            let n = poly.len();
            for i in 0..n {
                let [x0, y0] = poly[i];
                let [x1, y1] = poly[(i + 1) % n];
                if (y0 > yc) != (y1 > yc) {
                    crossings.push(x0 + (yc - y0) * (x1 - x0) / (y1 - y0));
                }
            }
        }
        crossings.sort_by(f64::total_cmp);
        for pair in crossings.chunks_exact(2) {
            let from = pair[0].ceil().max(0.0);
            let to = pair[1].ceil().min(nx as f64);
            let mut x = from;
            while x < to {
                mask[[y, x as usize]] ^= 1;
                x += 1.0;
            }
        }
    }
    mask
}

/// Traces every slice of a mask into polygons in patient coordinates (LPS,
/// mm) on the mask's grid; slices without foreground are left out.
pub fn mask_to_polygons(mask: &Volume<u8>) -> Vec<SlicePolygons> {
    let mut out = Vec::new();
    for (z, slice) in mask.data.outer_iter().enumerate() {
        let loops = trace_slice(slice);
        if loops.is_empty() {
            continue;
        }
        let polygons = loops
            .iter()
            .map(|poly| {
                poly.iter()
                    .map(|&[x, y]| mask.grid.index_to_lps([x, y, z as f64]))
                    .collect()
            })
            .collect();
        out.push(SlicePolygons { slice: z, polygons });
    }
    out
}

/// Projects a polygon in patient coordinates onto slice index coordinates.
pub fn lps_to_index_polygon(grid: &Grid, polygon: &[[f64; 3]]) -> IndexPolygon {
    polygon
        .iter()
        .map(|&p| {
            let i = grid.lps_to_index(p);
            [i[0], i[1]]
        })
        .collect()
}

/// Fills polygons in patient coordinates (LPS, mm) onto `grid`, XOR-ing
/// those of one slice, and returns the mask (1 inside, 0 outside).
///
/// Each [`SlicePolygons::slice`] names the slice; the points are projected
/// into that slice's plane (the caller has checked that they lie on it).
///
/// # Errors
///
/// [`Error::InvalidInput`] when a slice index lies outside the grid.
pub fn polygons_to_mask(grid: &Grid, slices: &[SlicePolygons]) -> Result<Volume<u8>> {
    let (nz, ny, nx) = grid.shape_zyx();
    let mut data = ndarray::Array3::<u8>::zeros((nz, ny, nx));

    let mut by_slice: HashMap<usize, Vec<IndexPolygon>> = HashMap::new();
    for s in slices {
        if s.slice >= nz {
            return Err(Error::InvalidInput(format!(
                "polygons on slice {} but the grid has {nz} slices",
                s.slice
            )));
        }
        let entry = by_slice.entry(s.slice).or_default();
        entry.extend(s.polygons.iter().map(|p| lps_to_index_polygon(grid, p)));
    }

    for (z, polys) in by_slice {
        let filled = fill_slice(&polys, ny, nx);
        data.index_axis_mut(ndarray::Axis(0), z).assign(&filled);
    }
    Volume::new(grid.clone(), data)
}

/// Signed area (mm2) of a planar polygon in patient coordinates, positive
/// when it runs counter-clockwise seen from the tip of `normal`.
pub fn polygon_area_mm2(polygon: &[[f64; 3]], normal: &[f64; 3]) -> f64 {
    let n = polygon.len();
    let mut twice = [0.0; 3];
    for i in 0..n {
        let c = crate::geometry::cross(&polygon[i], &polygon[(i + 1) % n]);
        for k in 0..3 {
            twice[k] += c[k];
        }
    }
    crate::geometry::dot(&twice, normal) / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn a_single_voxel_traces_to_its_four_corners() {
        let m = array![[0u8, 0, 0], [0, 1, 0], [0, 0, 0]];

        let loops = trace_slice(m.view());

        assert_eq!(loops.len(), 1);
        let mut pts = loops[0].clone();
        pts.sort_by(|a, b| a.partial_cmp(b).unwrap());
        assert_eq!(pts, vec![[0.5, 0.5], [0.5, 1.5], [1.5, 0.5], [1.5, 1.5]]);
    }

    #[test]
    fn a_ring_gives_an_outer_loop_and_a_hole() {
        let mut m = Array2::<u8>::ones((5, 5));
        m[[2, 2]] = 0;

        let loops = trace_slice(m.view());

        assert_eq!(loops.len(), 2);
        assert_eq!(fill_slice(&loops, 5, 5), m);
    }

    #[test]
    fn diagonal_voxels_stay_in_separate_loops() {
        let m = array![[1u8, 0], [0, 1]];

        let loops = trace_slice(m.view());

        assert_eq!(loops.len(), 2, "{loops:?}");
        assert!(loops.iter().all(|l| l.len() == 4));
        assert_eq!(fill_slice(&loops, 2, 2), m);
    }

    #[test]
    fn polygon_area_of_a_unit_square_is_one() {
        let sq = vec![
            [0.0, 0.0, 5.0],
            [1.0, 0.0, 5.0],
            [1.0, 1.0, 5.0],
            [0.0, 1.0, 5.0],
        ];

        assert!((polygon_area_mm2(&sq, &[0.0, 0.0, 1.0]) - 1.0).abs() < 1e-12);
    }
}

//! Edited-voxel histograms: step 1 against step 2, per observer and
//! structure, as SVG and PNG (`plotters`).
//!
//! plotters lays text out (both formats) and rasterises it (PNG) with a
//! TrueType font read at run time: `HALO_FONT`, else DejaVu Sans from
//! Debian's `fonts-dejavu-core`. Without one the plots are skipped, with a
//! warning and a note in the report, rather than drawn without labels or
//! failing the whole study.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::prelude::*;

use super::analysis::{BINS, BIN_WIDTH};
use crate::{Error, Result};

/// Where a font is looked for when `HALO_FONT` is unset.
const FONT_CANDIDATES: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// Registers a font for bitmap text once; whether one was found.
fn font_ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        let candidates = std::env::var_os("HALO_FONT")
            .map(PathBuf::from)
            .into_iter()
            .chain(FONT_CANDIDATES.iter().map(PathBuf::from));
        for path in candidates {
            if let Ok(bytes) = std::fs::read(&path) {
                // Leaked once per process: plotters keeps fonts for 'static.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    tracing::debug!(font = %path.display(), "registered font for PNG plots");
                    return true;
                }
            }
        }
        tracing::warn!("no TrueType font found (set HALO_FONT): plots are skipped");
        false
    })
}

/// Draws one histogram as `stem.svg` and `stem.png` when a font is
/// available (see the module docs); returns the files written, none
/// without a font.
///
/// # Errors
///
/// [`Error::InvalidInput`] naming the file when drawing or writing fails.
pub fn edit_histogram_plot(
    stem: &Path,
    title: &str,
    step1: &[u64; BINS],
    step2: &[u64; BINS],
) -> Result<Vec<PathBuf>> {
    if !font_ready() {
        return Ok(Vec::new());
    }

    let svg = stem.with_extension("svg");
    {
        let root = SVGBackend::new(&svg, (640, 400)).into_drawing_area();
        draw(&root, title, step1, step2).map_err(|e| plot_error(&svg, e))?;
        root.present().map_err(|e| plot_error(&svg, e))?;
    }
    let png = stem.with_extension("png");
    {
        let root = BitMapBackend::new(&png, (640, 400)).into_drawing_area();
        draw(&root, title, step1, step2).map_err(|e| plot_error(&png, e))?;
        root.present().map_err(|e| plot_error(&png, e))?;
    }
    Ok(vec![svg, png])
}

/// Whether plots can be drawn (a font was found).
pub fn plots_available() -> bool {
    font_ready()
}

fn plot_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::InvalidInput(format!("{}: cannot draw plot: {e}", path.display()))
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    step1: &[u64; BINS],
    step2: &[u64; BINS],
) -> std::result::Result<(), Box<dyn std::error::Error + 'static>>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let top = step1.iter().chain(step2).copied().max().unwrap_or(0).max(1) as f64 * 1.1;
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..BINS as f64 * BIN_WIDTH, 0.0..top)?;
    chart
        .configure_mesh()
        .x_desc("uncertainty (ensemble SD)")
        .y_desc("edited voxels")
        .x_labels(BINS + 1)
        .disable_x_mesh()
        .draw()?;

    // Two bars per bin: step 1 on the left half, step 2 on the right.
    let steps = [
        (step1, RGBColor(120, 120, 120), "step 1 (without map)"),
        (step2, RGBColor(31, 119, 180), "step 2 (with map)"),
    ];
    for (k, (counts, colour, label)) in steps.into_iter().enumerate() {
        let bars = counts.iter().enumerate().map(move |(b, &c)| {
            let x0 = b as f64 * BIN_WIDTH + BIN_WIDTH * (0.1 + 0.4 * k as f64);
            Rectangle::new(
                [(x0, 0.0), (x0 + BIN_WIDTH * 0.4, c as f64)],
                colour.filled(),
            )
        });
        chart
            .draw_series(bars)?
            .label(label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], colour.filled()));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE)
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_and_png_are_written_with_their_labels() {
        if !plots_available() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI needs a font: fonts-dejavu-core"
            );
            eprintln!("SKIP: no TrueType font for plots (set HALO_FONT)");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let files = edit_histogram_plot(
            &dir.path().join("h"),
            "O1 prostate",
            &[5, 3, 2, 1, 0],
            &[1, 2, 4, 3, 1],
        )
        .unwrap();
        let svg = std::fs::read_to_string(&files[0]).unwrap();
        assert!(svg.contains("O1 prostate") && svg.contains("edited voxels"));
        let png = std::fs::read(&files[1]).unwrap();
        assert_eq!(&png[1..4], b"PNG");
    }
}

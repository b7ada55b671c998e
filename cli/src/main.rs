//! `halo`: uncertainty-aware auto-segmentation for radiotherapy planning.
//!
//! Each subcommand lives in its own module with an `Args` struct and a
//! `run` function; this file only dispatches. Progress and errors go to
//! stderr, results to stdout; the exit code is 0 on success and 1 on any
//! refusal.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod compare;
mod convert;
mod export_dicom;
mod guard;
mod inspect;
mod progress;
mod rasterize;
mod segment;
mod send;
mod stats;
mod study;

/// Uncertainty-aware auto-segmentation for radiotherapy planning.
#[derive(Debug, Parser)]
#[command(name = "halo", version, about, long_about = None)]
struct Cli {
    /// More log output on stderr (-v debug, -vv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the DICOM series of a folder with their geometry.
    Inspect(inspect::Args),
    /// Write one DICOM series as a NIfTI volume.
    Convert(convert::Args),
    /// Write NIfTI masks and uncertainty maps as an RTSTRUCT and PT series.
    ExportDicom(export_dicom::Args),
    /// Write the ROIs of an RTSTRUCT as NIfTI masks on an image grid.
    Rasterize(rasterize::Args),
    /// Send DICOM files to a storage SCP (C-ECHO, C-STORE) with a report.
    Send(send::Args),
    /// Run an observer-study test (wilcoxon, fligner, vgc) on a JSON file.
    Stats(stats::Args),
    /// Analyse an observer study (manifest TOML) into a report folder.
    Study(study::Args),
    /// Edit analytics of a reference and a test mask (or a batch of pairs).
    Compare(compare::Args),
    /// Segment a series with a model's ensemble and map its uncertainty.
    Segment(segment::Args),
}

fn main() -> ExitCode {
    reset_sigpipe();
    // Before any thread starts; see the function for the measured effect.
    halo_core::backend::keep_freed_memory();
    let cli = Cli::parse();
    init_logging(cli.verbose);

    let result = match cli.command {
        Command::Inspect(a) => inspect::run(a),
        Command::Convert(a) => convert::run(a),
        Command::ExportDicom(a) => export_dicom::run(a),
        Command::Rasterize(a) => rasterize::run(a),
        Command::Send(a) => send::run(a),
        Command::Stats(a) => stats::run(a),
        Command::Study(a) => study::run(a),
        Command::Compare(a) => compare::run(a),
        Command::Segment(a) => segment::run(a),
    };

    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("halo: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("HALO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Restores the default SIGPIPE action, so that `halo ... | head` ends
/// quietly when the reader closes the pipe instead of panicking in
/// `println!` (Rust ignores SIGPIPE by default).
fn reset_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any thread starts;
    // SIG_DFL is a valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

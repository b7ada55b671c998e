//! `halo send`: deliver DICOM files to a storage SCP (C-ECHO, then C-STORE)
//! and report what became of every instance.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use halo_core::dicom::send::{
    send_paths_with_progress, Destination, Outcome, SendOptions, SendReport,
};

use crate::progress::Progress;

/// Arguments of `halo send`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files or folders (searched recursively) to send.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// The storage SCP, as AE@HOST:PORT (for example PLANNING@10.0.0.5:104).
    #[arg(long, value_name = "AE@HOST:PORT", value_parser = parse_destination)]
    pub to: Destination,
    /// Calling AE title (this end).
    #[arg(long, value_name = "AE", default_value = "HALO")]
    pub calling_ae: String,
    /// Seconds to wait for each answer of the peer (and for the connection,
    /// unless --connect-timeout is given).
    #[arg(long, value_name = "S", default_value_t = 30.0, value_parser = parse_timeout)]
    pub timeout: f64,
    /// Seconds to wait for the TCP connection.
    #[arg(long, value_name = "S", value_parser = parse_timeout)]
    pub connect_timeout: Option<f64>,
    /// Times halo connects again after a failed connection or association;
    /// then the instances not stored are reported failed.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub retries: u32,
    /// Seconds before the first retry, doubled for each further one.
    #[arg(long, value_name = "S", default_value_t = 1.0, value_parser = parse_seconds)]
    pub backoff: f64,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Parses `--to`; `halo segment --send` can use it as its value parser.
pub(crate) fn parse_destination(text: &str) -> Result<Destination, String> {
    text.parse().map_err(|e: halo_core::Error| e.to_string())
}

fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if (0.0..=86_400.0).contains(&s) => Ok(s),
        _ => Err(format!(
            "`{text}` is not a number of seconds from 0 to 86400"
        )),
    }
}

fn parse_timeout(text: &str) -> Result<f64, String> {
    match parse_seconds(text)? {
        s if s >= 0.001 => Ok(s),
        _ => Err(format!("timeout `{text}` must be at least 0.001 s")),
    }
}

/// Runs `halo send`: exit code 0 when every instance was stored, 1 when
/// any was not (the report says which).
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let options = SendOptions {
        calling_ae_title: args.calling_ae.clone(),
        connect_timeout: Duration::from_secs_f64(args.connect_timeout.unwrap_or(args.timeout)),
        response_timeout: Duration::from_secs_f64(args.timeout),
        retries: args.retries,
        backoff: Duration::from_secs_f64(args.backoff),
        ..SendOptions::default()
    };

    let mut progress: Option<Progress> = None;
    let report = send_paths_with_progress(&args.to, &args.paths, &options, &mut |p| {
        progress
            .get_or_insert_with(|| Progress::new("sending", p.total as u64))
            .set(p.done as u64);
        true
    })?;
    if let Some(p) = progress {
        p.finish();
    }

    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    print_summary(&report);
    Ok(if report.all_stored() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One line per instance on stdout, with the message of those not stored
/// cleanly.
pub(crate) fn print_table(report: &SendReport) {
    println!(
        "{:<7} {:>6}  {:<40} file / message",
        "outcome", "status", "SOPInstanceUID"
    );
    for i in &report.instances {
        let outcome = match i.outcome {
            Outcome::Stored => "stored",
            Outcome::Warning => "warning",
            Outcome::Failed => "FAILED",
        };
        let status = i
            .status
            .map(|s| format!("{s:04X}"))
            .unwrap_or_else(|| "-".into());
        let uid = i.sop_instance_uid.as_deref().unwrap_or("-");
        println!("{outcome:<7} {status:>6}  {uid:<40} {}", i.file.display());
        if i.outcome != Outcome::Stored {
            println!("{:<16}{}", "", i.message);
        }
    }
}

/// One line on stderr; the failures by name when there are any.
pub(crate) fn print_summary(report: &SendReport) {
    if let Some(echo) = &report.echo {
        if !echo.ok {
            eprintln!("halo: C-ECHO to {}: {}", report.destination, echo.message);
        }
    }
    if !report.skipped.is_empty() {
        eprintln!(
            "halo: skipped {} file(s) that are not DICOM Part 10",
            report.skipped.len()
        );
    }
    eprintln!(
        "halo: {} of {} instance(s) stored at {}",
        report.stored,
        report.instances.len(),
        report.destination
    );
    if report.failed > 0 {
        eprintln!("halo: error: {} instance(s) NOT stored:", report.failed);
        for i in report.not_stored() {
            eprintln!(
                "halo:   {} ({}): {}",
                i.file.display(),
                i.sop_instance_uid.as_deref().unwrap_or("no SOPInstanceUID"),
                i.message
            );
        }
    }
}

//! Progress on stderr: a bar on a terminal, plain lines otherwise.

// Used by the long-running subcommands (segment, study) as they land.
#![allow(dead_code)]

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// A progress reporter for one long step.
pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    total: u64,
    last_percent: u64,
}

impl Progress {
    /// Starts reporting `label` over `total` units.
    pub fn new(label: &str, total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::new(total);
            // OK because the template is a constant known to parse.
            b.set_style(
                ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} {elapsed}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            b.set_message(label.to_string());
            b
        });
        if bar.is_none() {
            eprintln!("halo: {label}: 0/{total}");
        }
        Progress {
            bar,
            label: label.to_string(),
            total,
            last_percent: 0,
        }
    }

    /// Reports `done` units finished.
    pub fn set(&mut self, done: u64) {
        match &self.bar {
            Some(b) => b.set_position(done),
            None => {
                let pct = (done * 100).checked_div(self.total).unwrap_or(100);
                if pct >= self.last_percent + 25 || done == self.total {
                    self.last_percent = pct;
                    eprintln!("halo: {}: {done}/{}", self.label, self.total);
                }
            }
        }
    }

    /// Ends the report.
    pub fn finish(self) {
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}

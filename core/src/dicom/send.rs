//! Sending DICOM files to a storage SCP, such as a planning system's DICOM
//! import: one association per batch, C-ECHO first, then C-STORE of every
//! instance, and a report that names every instance and what became of it.
//!
//! Presentation contexts come from the files: for each SOP class, one
//! context per transfer syntax found in the files of that class (so that an
//! accepted one carries the file's bytes unchanged), and a fallback context
//! proposing Explicit and Implicit VR Little Endian (PS3.7 annex D.3.3.2).
//! A file whose own transfer syntax was not accepted is converted to the
//! accepted little-endian one when its pixel data is not encapsulated.
//!
//! Failures of the connection or the association (refused connection,
//! rejection, A-ABORT, a peer that stops answering) are retried a bounded
//! number of times with exponential back-off; a DIMSE failure status for
//! one instance is final. Whatever happens, every instance found in the
//! input is in [`SendReport::instances`], with its status code when the
//! peer gave one.
//!
//! ```no_run
//! use halo_core::dicom::send::{send_paths, Destination, SendOptions};
//!
//! let to: Destination = "PLANNING@10.0.0.5:104".parse()?;
//! let report = send_paths(&to, &["out/rtstruct.dcm"], &SendOptions::default())?;
//! assert!(report.all_stored(), "{} instance(s) not stored", report.failed);
//! # Ok::<(), halo_core::Error>(())
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use dicom_dictionary_std::uids;
use dicom_object::FileMetaTable;
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};
use dicom_ul::association::Error as UlError;
use dicom_ul::pdu::{
    AbortRQSource, AssociationRJResult, PDataValue, PDataValueType, PresentationContextNegotiated,
};
use dicom_ul::{ClientAssociation, ClientAssociationOptions, Pdu};
use serde::Serialize;

use super::dimse::{self, StatusClass};
use crate::{Error, Result};

/// Presentation context IDs are odd numbers from 1 to 255 (PS3.8 section
/// 9.3.2.2), so one association carries at most 128 contexts; one of them
/// is Verification.
const MAX_STORAGE_CONTEXTS: usize = 127;

/// MediaStorageSOPClassUID of a DICOMDIR (PS3.10 section 8.6): a media
/// directory, not an instance to store.
const MEDIA_STORAGE_DIRECTORY: &str = "1.2.840.10008.1.3.10";

/// The longest back-off between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Where to send: the called AE title and the TCP address of the SCP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// Called AE title, 1 to 16 characters.
    pub ae_title: String,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl FromStr for Destination {
    type Err = Error;

    /// Parses `AE@HOST:PORT`, for example `PLANNING@10.0.0.5:104` or
    /// `PLANNING@[::1]:104`.
    fn from_str(text: &str) -> Result<Self> {
        let usage = || {
            Error::InvalidInput(format!(
                "destination `{text}` is not AE@HOST:PORT (for example PLANNING@10.0.0.5:104)"
            ))
        };
        let (ae, address) = text.rsplit_once('@').ok_or_else(usage)?;
        let (host, port) = address.rsplit_once(':').ok_or_else(usage)?;

        validate_ae_title(ae, "called AE title")?;
        let bracketed = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
        // A bare colon in the host means a stray port or an IPv6 address
        // without brackets: either way the split above is ambiguous.
        if bracketed.is_none() && host.contains(':') {
            return Err(Error::InvalidInput(format!(
                "destination `{text}` has a colon in its host `{host}`; write IPv6 addresses as [addr]"
            )));
        }
        let host = bracketed.unwrap_or(host);
        if host.is_empty() {
            return Err(Error::InvalidInput(format!(
                "destination `{text}` has an empty host"
            )));
        }
        let port = match port.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => {
                return Err(Error::InvalidInput(format!(
                    "port `{port}` of destination `{text}` is not a number from 1 to 65535"
                )))
            }
        };

        Ok(Destination {
            ae_title: ae.trim().to_string(),
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}@[{}]:{}", self.ae_title, self.host, self.port)
        } else {
            write!(f, "{}@{}:{}", self.ae_title, self.host, self.port)
        }
    }
}

/// Checks an AE title: 1 to 16 characters of the default repertoire, no
/// backslash, not only spaces (PS3.5 table 6.2-1, VR AE).
///
/// # Errors
///
/// [`Error::InvalidInput`] naming `what` and the value.
pub fn validate_ae_title(ae: &str, what: &str) -> Result<()> {
    let problem = if ae.trim().is_empty() {
        Some("is empty")
    } else if ae.len() > 16 {
        Some("is longer than 16 characters")
    } else if !ae
        .chars()
        .all(|c| c.is_ascii() && !c.is_ascii_control() && c != '\\')
    {
        Some("holds a character other than printable ASCII without backslash")
    } else {
        None
    };
    match problem {
        Some(p) => Err(Error::InvalidInput(format!("{what} `{ae}` {p}"))),
        None => Ok(()),
    }
}

/// How to send.
#[derive(Debug, Clone)]
pub struct SendOptions {
    /// Calling AE title (this end), 1 to 16 characters.
    pub calling_ae_title: String,
    /// Longest wait for the TCP connection.
    pub connect_timeout: Duration,
    /// Longest wait for any one read or write once connected: the
    /// association answer, a C-ECHO or C-STORE response.
    pub response_timeout: Duration,
    /// How many times halo connects again after a failed connection or
    /// association, over the whole batch; then the instances not stored are
    /// reported failed. At most `1 + retries` associations per batch.
    pub retries: u32,
    /// Wait before the first retry; doubled for each further one, at most
    /// 60 s.
    pub backoff: Duration,
    /// Largest PDU this end accepts, in bytes.
    pub max_pdu_length: u32,
}

impl Default for SendOptions {
    fn default() -> Self {
        SendOptions {
            calling_ae_title: "HALO".to_string(),
            connect_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(30),
            retries: 2,
            backoff: Duration::from_secs(1),
            max_pdu_length: dicom_ul::pdu::DEFAULT_MAX_PDU,
        }
    }
}

/// What became of one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The peer answered success (0000).
    Stored,
    /// The peer stored it with a warning status (Bxxx, 0001, 0107, 0116),
    /// for example after coercing attributes.
    Warning,
    /// Not stored: refused, never sent, or no response confirmed it.
    Failed,
}

/// The report of one instance (one file).
#[derive(Debug, Clone, Serialize)]
pub struct InstanceReport {
    /// The file.
    pub file: PathBuf,
    /// SOPInstanceUID, from MediaStorageSOPInstanceUID (0002,0003).
    pub sop_instance_uid: Option<String>,
    /// SOPClassUID, from MediaStorageSOPClassUID (0002,0002).
    pub sop_class_uid: Option<String>,
    /// The file's TransferSyntaxUID (0002,0010).
    pub transfer_syntax: Option<String>,
    /// The transfer syntax it was sent in, once sent.
    pub sent_transfer_syntax: Option<String>,
    /// Status (0000,0900) of the C-STORE response, when one came.
    pub status: Option<u16>,
    /// What became of it.
    pub outcome: Outcome,
    /// Whether the peer stored it ([`Outcome::Stored`] or
    /// [`Outcome::Warning`]).
    pub stored: bool,
    /// How many times it was sent.
    pub attempts: u32,
    /// What happened, in words.
    pub message: String,
}

/// The C-ECHO done on the last association.
#[derive(Debug, Clone, Serialize)]
pub struct EchoReport {
    /// Whether the peer answered success.
    pub ok: bool,
    /// Status (0000,0900) of the C-ECHO response, when one came.
    pub status: Option<u16>,
    /// What happened, in words.
    pub message: String,
}

/// A file left out because it is not an instance to send.
#[derive(Debug, Clone, Serialize)]
pub struct SkippedFile {
    /// The file.
    pub file: PathBuf,
    /// Why it was left out.
    pub reason: String,
}

/// The report of [`send_paths`].
#[derive(Debug, Clone, Serialize)]
pub struct SendReport {
    /// Where to, as `AE@HOST:PORT`.
    pub destination: String,
    /// The calling AE title used.
    pub calling_ae_title: String,
    /// The C-ECHO of the last association, if one was established.
    pub echo: Option<EchoReport>,
    /// How many associations were established.
    pub associations: u32,
    /// How many instances the peer stored (warnings included).
    pub stored: usize,
    /// How many instances were not stored.
    pub failed: usize,
    /// Every instance found, in file order.
    pub instances: Vec<InstanceReport>,
    /// Files inside the given folders that are not DICOM Part 10 instances.
    pub skipped: Vec<SkippedFile>,
    /// The last connection or association error, if any.
    pub error: Option<String>,
}

impl SendReport {
    /// Whether every instance was stored.
    pub fn all_stored(&self) -> bool {
        self.instances.iter().all(|i| i.stored)
    }

    /// The instances that were not stored.
    pub fn not_stored(&self) -> impl Iterator<Item = &InstanceReport> {
        self.instances.iter().filter(|i| !i.stored)
    }
}

/// Progress after each instance: `done` of `total` have their outcome.
#[derive(Debug)]
pub struct SendProgress<'a> {
    /// Instances with a final outcome so far.
    pub done: usize,
    /// Instances in all.
    pub total: usize,
    /// The instance just finished.
    pub instance: &'a InstanceReport,
}

/// Sends every DICOM file in `paths` (files, or folders searched
/// recursively) to `destination`; see the module documentation.
///
/// # Errors
///
/// [`Error::InvalidInput`] for an invalid AE title, a zero timeout, or when
/// no instance is found; [`Error::Io`] when a path cannot be read. Network
/// problems are not errors: they are in the report, instance by instance.
pub fn send_paths<P: AsRef<Path>>(
    destination: &Destination,
    paths: &[P],
    options: &SendOptions,
) -> Result<SendReport> {
    send_paths_with_progress(destination, paths, options, &mut |_| true)
}

/// [`send_paths`] calling `progress` after each instance; when it returns
/// `false`, sending stops and the instances not yet sent are reported as
/// failed ("cancelled").
///
/// # Errors
///
/// As [`send_paths`].
pub fn send_paths_with_progress<P: AsRef<Path>>(
    destination: &Destination,
    paths: &[P],
    options: &SendOptions,
    progress: &mut dyn FnMut(&SendProgress) -> bool,
) -> Result<SendReport> {
    validate_ae_title(&options.calling_ae_title, "calling AE title")?;
    validate_ae_title(&destination.ae_title, "called AE title")?;
    if options.connect_timeout.is_zero() || options.response_timeout.is_zero() {
        return Err(Error::InvalidInput(
            "connect and response timeouts must be longer than zero".to_string(),
        ));
    }
    let (items, mut report) = gather(destination, paths, options)?;

    // Files that could not be read are final already.
    let mut finished = vec![true; report.instances.len()];
    for item in &items {
        finished[item.index] = false;
    }
    let mut sender = Sender {
        destination,
        options,
        done: finished.iter().filter(|f| **f).count(),
        finished,
        report: &mut report,
        progress,
        cancelled: false,
    };
    for batch in batches(&items) {
        sender.send_batch(&items, &batch);
    }

    report.stored = report.instances.iter().filter(|i| i.stored).count();
    report.failed = report.instances.len() - report.stored;
    Ok(report)
}

/// One instance to send; `index` is its place in the report.
#[derive(Debug)]
struct Item {
    index: usize,
    path: PathBuf,
    sop_class_uid: String,
    sop_instance_uid: String,
    transfer_syntax: String,
    dataset_offset: u64,
}

/// A presentation context to propose.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Proposal {
    abstract_syntax: String,
    transfer_syntaxes: Vec<String>,
}

/// Lists the files, reads their file meta groups, and starts the report
/// with every instance marked "not sent".
fn gather<P: AsRef<Path>>(
    destination: &Destination,
    paths: &[P],
    options: &SendOptions,
) -> Result<(Vec<Item>, SendReport)> {
    let mut files: Vec<(PathBuf, bool)> = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.is_dir() {
            let mut found = Vec::new();
            super::scan::collect_files(path, &mut found)?;
            found.sort();
            files.extend(found.into_iter().map(|f| (f, false)));
        } else {
            files.push((path.to_path_buf(), true));
        }
    }
    let mut seen = BTreeSet::new();
    files.retain(|(f, _)| seen.insert(f.clone()));

    let mut report = SendReport {
        destination: destination.to_string(),
        calling_ae_title: options.calling_ae_title.clone(),
        echo: None,
        associations: 0,
        stored: 0,
        failed: 0,
        instances: Vec::new(),
        skipped: Vec::new(),
        error: None,
    };
    let mut items = Vec::new();
    for (file, named) in files {
        match read_meta(&file) {
            Ok((meta, _)) if meta.media_storage_sop_class_uid() == MEDIA_STORAGE_DIRECTORY => {
                report.skipped.push(SkippedFile {
                    file,
                    reason: "a DICOMDIR (media directory), not an instance".to_string(),
                });
            }
            Ok((meta, offset)) => {
                let item = Item {
                    index: report.instances.len(),
                    path: file.clone(),
                    sop_class_uid: meta.media_storage_sop_class_uid().to_string(),
                    sop_instance_uid: meta.media_storage_sop_instance_uid().to_string(),
                    transfer_syntax: meta.transfer_syntax().to_string(),
                    dataset_offset: offset,
                };
                report.instances.push(InstanceReport {
                    file,
                    sop_instance_uid: Some(item.sop_instance_uid.clone()),
                    sop_class_uid: Some(item.sop_class_uid.clone()),
                    transfer_syntax: Some(item.transfer_syntax.clone()),
                    sent_transfer_syntax: None,
                    status: None,
                    outcome: Outcome::Failed,
                    stored: false,
                    attempts: 0,
                    message: "not sent".to_string(),
                });
                items.push(item);
            }
            // A file named on the command line is meant to be sent: it is
            // reported failed. One met inside a folder may be anything.
            Err(MetaProblem::NotPart10(reason)) if !named => {
                tracing::debug!(file = %file.display(), %reason, "skipping file");
                report.skipped.push(SkippedFile { file, reason });
            }
            Err(MetaProblem::NotPart10(reason)) | Err(MetaProblem::Broken(reason)) => {
                report.instances.push(InstanceReport {
                    file,
                    sop_instance_uid: None,
                    sop_class_uid: None,
                    transfer_syntax: None,
                    sent_transfer_syntax: None,
                    status: None,
                    outcome: Outcome::Failed,
                    stored: false,
                    attempts: 0,
                    message: format!("not sent: {reason}"),
                });
            }
        }
    }

    if report.instances.is_empty() {
        let names: Vec<String> = paths
            .iter()
            .map(|p| p.as_ref().display().to_string())
            .collect();
        return Err(Error::InvalidInput(format!(
            "no DICOM instance to send in {} ({} file(s) skipped as not DICOM Part 10)",
            names.join(", "),
            report.skipped.len()
        )));
    }
    Ok((items, report))
}

enum MetaProblem {
    /// No `DICM` prefix: not a Part 10 file at all.
    NotPart10(String),
    /// A Part 10 file whose meta group cannot be used.
    Broken(String),
}

/// Reads the file meta group (PS3.10 section 7.1) and returns it with the
/// byte offset where the data set starts.
fn read_meta(path: &Path) -> std::result::Result<(FileMetaTable, u64), MetaProblem> {
    let file = std::fs::File::open(path).map_err(|e| MetaProblem::Broken(e.to_string()))?;
    let mut reader = Counting {
        inner: std::io::BufReader::new(file),
        count: 0,
    };

    let mut head = [0u8; 132];
    if reader.read_exact(&mut head).is_err() || &head[128..] != b"DICM" {
        return Err(MetaProblem::NotPart10(
            "no DICM prefix at byte 128: not a DICOM Part 10 file".to_string(),
        ));
    }
    let meta = FileMetaTable::from_reader(std::io::Cursor::new(*b"DICM").chain(&mut reader))
        .map_err(|e| MetaProblem::Broken(format!("unreadable file meta group: {e}")))?;
    let offset = reader.count;

    if meta.media_storage_sop_class_uid().is_empty()
        || meta.media_storage_sop_instance_uid().is_empty()
        || meta.transfer_syntax().is_empty()
    {
        return Err(MetaProblem::Broken(
            "file meta group lacks MediaStorageSOPClassUID (0002,0002), \
             MediaStorageSOPInstanceUID (0002,0003) or TransferSyntaxUID (0002,0010)"
                .to_string(),
        ));
    }
    Ok((meta, offset))
}

/// A reader that counts the bytes it hands out.
struct Counting<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

/// Groups the items into batches whose presentation contexts fit one
/// association; returns, per batch, its proposals and item positions.
fn batches(items: &[Item]) -> Vec<(Vec<Proposal>, Vec<usize>)> {
    let mut by_class: BTreeMap<&str, (BTreeSet<&str>, Vec<usize>)> = BTreeMap::new();
    for (pos, item) in items.iter().enumerate() {
        let entry = by_class.entry(&item.sop_class_uid).or_default();
        entry.0.insert(&item.transfer_syntax);
        entry.1.push(pos);
    }

    let mut out: Vec<(Vec<Proposal>, Vec<usize>)> = Vec::new();
    for (class, (syntaxes, positions)) in by_class {
        let mut proposals = proposals_for(class, &syntaxes);
        proposals.truncate(MAX_STORAGE_CONTEXTS);
        match out.last_mut() {
            Some((p, pos)) if p.len() + proposals.len() <= MAX_STORAGE_CONTEXTS => {
                p.extend(proposals);
                pos.extend(positions);
            }
            _ => out.push((proposals, positions)),
        }
    }
    for (_, positions) in &mut out {
        positions.sort_unstable();
    }
    out
}

/// One context per transfer syntax of the class's files, then the
/// little-endian fallback unless both of its syntaxes are already there.
fn proposals_for(class: &str, syntaxes: &BTreeSet<&str>) -> Vec<Proposal> {
    let mut out: Vec<Proposal> = syntaxes
        .iter()
        .map(|ts| Proposal {
            abstract_syntax: class.to_string(),
            transfer_syntaxes: vec![ts.to_string()],
        })
        .collect();
    let little_endian = [
        uids::EXPLICIT_VR_LITTLE_ENDIAN,
        uids::IMPLICIT_VR_LITTLE_ENDIAN,
    ];
    if !little_endian.iter().all(|ts| syntaxes.contains(ts)) {
        out.push(Proposal {
            abstract_syntax: class.to_string(),
            transfer_syntaxes: little_endian.iter().map(|s| s.to_string()).collect(),
        });
    }
    out
}

/// A failure of the connection or association, as the report words it.
#[derive(Debug, Clone)]
struct Failure {
    message: String,
    retryable: bool,
}

impl Failure {
    fn new(message: impl Into<String>, retryable: bool) -> Self {
        Failure {
            message: message.into(),
            retryable,
        }
    }
}

/// The sending state shared by the batches.
struct Sender<'a> {
    destination: &'a Destination,
    options: &'a SendOptions,
    report: &'a mut SendReport,
    progress: &'a mut dyn FnMut(&SendProgress) -> bool,
    /// Per report entry: whether its outcome is final.
    finished: Vec<bool>,
    /// How many entries are final.
    done: usize,
    cancelled: bool,
}

impl Sender<'_> {
    /// Sends one batch, retrying failed associations; marks every item of
    /// the batch final.
    fn send_batch(&mut self, items: &[Item], (proposals, positions): &(Vec<Proposal>, Vec<usize>)) {
        let mut tries = 0u32;
        loop {
            let pending: Vec<&Item> = positions
                .iter()
                .map(|&p| &items[p])
                .filter(|i| !self.finished[i.index])
                .collect();
            if pending.is_empty() {
                return;
            }
            if self.cancelled {
                for item in pending {
                    self.finish(
                        item.index,
                        Outcome::Failed,
                        None,
                        "cancelled before sending".into(),
                    );
                }
                return;
            }

            tries += 1;
            let failure = match self.associate_and_send(proposals, &pending) {
                Ok(()) => continue,
                Err(f) => f,
            };
            tracing::debug!(error = %failure.message, "association failed");
            self.report.error = Some(failure.message.clone());
            if !failure.retryable || tries > self.options.retries {
                let tries = match tries {
                    1 => "1 association attempt".to_string(),
                    n => format!("{n} association attempts"),
                };
                self.give_up(&pending, &format!("{} ({tries})", failure.message));
                return;
            }
            let wait = self
                .options
                .backoff
                .saturating_mul(1 << (tries - 1).min(16))
                .min(MAX_BACKOFF);
            tracing::debug!(?wait, retry = tries, "retrying after back-off");
            std::thread::sleep(wait);
        }
    }

    /// Marks every item still pending failed with the association's error.
    fn give_up(&mut self, pending: &[&Item], error: &str) {
        for item in pending {
            if self.finished[item.index] {
                continue;
            }
            let message = match self.report.instances[item.index].attempts {
                0 => format!("not sent: {error}"),
                n => format!("not stored, sent {n} time(s) without a response: {error}"),
            };
            self.finish(item.index, Outcome::Failed, None, message);
        }
    }

    /// Records a final outcome and reports progress.
    fn finish(&mut self, index: usize, outcome: Outcome, status: Option<u16>, message: String) {
        let r = &mut self.report.instances[index];
        r.outcome = outcome;
        r.stored = outcome != Outcome::Failed;
        r.status = status;
        r.message = message;
        self.finished[index] = true;
        self.done += 1;

        let total = self.report.instances.len();
        let keep_going = (self.progress)(&SendProgress {
            done: self.done,
            total,
            instance: &self.report.instances[index],
        });
        if !keep_going {
            self.cancelled = true;
        }
    }

    /// One association: establish, C-ECHO, C-STORE each pending item,
    /// release. Returns the failure that ended it early, if any.
    fn associate_and_send(
        &mut self,
        proposals: &[Proposal],
        pending: &[&Item],
    ) -> std::result::Result<(), Failure> {
        let mut assoc = self.establish(proposals)?;
        self.report.associations += 1;
        let mut message_id: u16 = 1;

        match echo(&mut assoc, message_id, self.destination, self.options) {
            Ok(e) => self.report.echo = Some(e),
            Err(f) => {
                let _ = assoc.abort();
                return Err(f);
            }
        }

        for item in pending {
            if self.cancelled {
                break;
            }
            message_id = message_id.wrapping_add(1).max(1);
            match self.store(&mut assoc, item, message_id) {
                Ok(()) => {}
                Err(f) => {
                    // Not final: the next association sends it again.
                    self.report.instances[item.index].message = f.message.clone();
                    let _ = assoc.abort();
                    return Err(f);
                }
            }
        }

        if let Err(e) = assoc.release() {
            // Every instance already has its response; a failed release
            // loses nothing.
            tracing::debug!(error = %error_chain(&e), "release failed");
        }
        Ok(())
    }

    fn establish(
        &self,
        proposals: &[Proposal],
    ) -> std::result::Result<ClientAssociation<TcpStream>, Failure> {
        let little_endian = vec![
            uids::EXPLICIT_VR_LITTLE_ENDIAN,
            uids::IMPLICIT_VR_LITTLE_ENDIAN,
        ];
        let mut options = ClientAssociationOptions::new()
            .calling_ae_title(self.options.calling_ae_title.as_str())
            .called_ae_title(self.destination.ae_title.as_str())
            .max_pdu_length(self.options.max_pdu_length)
            .connection_timeout(self.options.connect_timeout)
            .read_timeout(self.options.response_timeout)
            .write_timeout(self.options.response_timeout)
            .with_presentation_context(uids::VERIFICATION, little_endian);
        for p in proposals {
            let syntaxes = p.transfer_syntaxes.iter().map(String::as_str).collect();
            options = options.with_presentation_context(p.abstract_syntax.as_str(), syntaxes);
        }

        tracing::debug!(to = %self.destination, contexts = proposals.len() + 1, "associating");
        options
            .establish((self.destination.host.as_str(), self.destination.port))
            .map_err(|e| describe_ul_error(&e, self.destination, self.options, proposals))
    }

    /// Sends one instance and waits for its response. An `Err` is a
    /// failure of the association; problems of the instance itself are
    /// recorded as its final outcome.
    fn store(
        &mut self,
        assoc: &mut ClientAssociation<TcpStream>,
        item: &Item,
        message_id: u16,
    ) -> std::result::Result<(), Failure> {
        let (context, transcode) = match choose_context(assoc.presentation_contexts(), item) {
            Ok(c) => c,
            Err(message) => {
                self.finish(item.index, Outcome::Failed, None, message);
                return Ok(());
            }
        };
        let context_id = context.id;
        let syntax = trim_uid(&context.transfer_syntax).to_string();
        let data = match dataset_bytes(item, transcode.then_some(syntax.as_str())) {
            Ok(d) => d,
            Err(message) => {
                self.finish(
                    item.index,
                    Outcome::Failed,
                    None,
                    format!("not sent: {message}"),
                );
                return Ok(());
            }
        };

        let r = &mut self.report.instances[item.index];
        r.attempts += 1;
        r.sent_transfer_syntax = Some(syntax);
        let command = dimse::c_store_rq(message_id, &item.sop_class_uid, &item.sop_instance_uid);
        let response = exchange(assoc, context_id, command, Some(&data), self.options)?;
        check_response(&response, dimse::C_STORE_RSP, message_id)?;

        // A response without Status is a protocol error of the peer.
        let status = response
            .status
            .ok_or_else(|| Failure::new("C-STORE response without Status (0000,0900)", true))?;
        let mut message = format!("{} (0x{status:04X})", dimse::status_meaning(status));
        if let Some(comment) = response.error_comment.filter(|c| !c.is_empty()) {
            message.push_str(&format!(": {comment}"));
        }
        let outcome = match dimse::classify(status) {
            StatusClass::Success => Outcome::Stored,
            StatusClass::Warning => Outcome::Warning,
            StatusClass::Failure => Outcome::Failed,
        };
        tracing::debug!(uid = %item.sop_instance_uid, status, "C-STORE response");
        self.finish(item.index, outcome, Some(status), message);
        Ok(())
    }
}

/// Finds the accepted context to send `item` in: one with its own transfer
/// syntax, else a little-endian one it can be converted to. Returns the
/// context and whether conversion is needed, or why there is none.
fn choose_context<'c>(
    accepted: &'c [PresentationContextNegotiated],
    item: &Item,
) -> std::result::Result<(&'c PresentationContextNegotiated, bool), String> {
    let of_class: Vec<&PresentationContextNegotiated> = accepted
        .iter()
        .filter(|pc| trim_uid(&pc.abstract_syntax) == item.sop_class_uid)
        .collect();
    if of_class.is_empty() {
        return Err(format!(
            "not sent: the peer rejected the presentation context for {}",
            uid_name(&item.sop_class_uid)
        ));
    }

    if let Some(pc) = of_class
        .iter()
        .find(|pc| trim_uid(&pc.transfer_syntax) == item.transfer_syntax)
    {
        return Ok((pc, false));
    }
    let convertible = TransferSyntaxRegistry
        .get(&item.transfer_syntax)
        .is_some_and(|ts| !ts.is_encapsulated_pixel_data() && ts.is_codec_free());
    let little_endian = [
        uids::EXPLICIT_VR_LITTLE_ENDIAN,
        uids::IMPLICIT_VR_LITTLE_ENDIAN,
    ];
    if let Some(pc) = of_class
        .iter()
        .find(|pc| little_endian.contains(&trim_uid(&pc.transfer_syntax)))
        .filter(|_| convertible)
    {
        return Ok((pc, true));
    }
    Err(format!(
        "not sent: the peer accepts {} only in {}, and halo cannot convert {} to it",
        uid_name(&item.sop_class_uid),
        uid_name(trim_uid(&of_class[0].transfer_syntax)),
        uid_name(&item.transfer_syntax)
    ))
}

/// The data set of `item`: the file's own bytes after the meta group, or
/// the data set re-encoded in `convert_to`.
fn dataset_bytes(item: &Item, convert_to: Option<&str>) -> std::result::Result<Vec<u8>, String> {
    let Some(target) = convert_to else {
        let bytes = std::fs::read(&item.path).map_err(|e| e.to_string())?;
        return bytes
            .get(item.dataset_offset as usize..)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| "file ends inside its meta group".to_string());
    };

    let ts = TransferSyntaxRegistry
        .get(target)
        .ok_or_else(|| format!("unknown transfer syntax {target}"))?;
    let object = dicom_object::open_file(&item.path).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    object
        .write_dataset_with_ts(&mut out, ts)
        .map_err(|e| format!("cannot convert to {}: {e}", ts.name()))?;
    tracing::debug!(file = %item.path.display(), to = ts.name(), "converted transfer syntax");
    Ok(out)
}

/// Sends a command (and its data set) on `context_id`; returns the
/// response command set.
fn exchange(
    assoc: &mut ClientAssociation<TcpStream>,
    context_id: u8,
    command: Vec<u8>,
    data: Option<&[u8]>,
    options: &SendOptions,
) -> std::result::Result<dimse::Response, Failure> {
    let pdu = Pdu::PData {
        data: vec![PDataValue {
            presentation_context_id: context_id,
            value_type: PDataValueType::Command,
            is_last: true,
            data: command,
        }],
    };
    assoc
        .send(&pdu)
        .map_err(|e| describe_transfer_error(&e, options, "sending a command"))?;
    if let Some(data) = data {
        let mut writer = assoc.send_pdata(context_id);
        writer
            .write_all(data)
            .and_then(|_| writer.finish())
            .map_err(|e| describe_io(&e, options, "sending a data set"))?;
    }

    let mut command = Vec::new();
    loop {
        let pdu = assoc
            .receive()
            .map_err(|e| describe_transfer_error(&e, options, "awaiting a response"))?;
        match pdu {
            Pdu::PData { data } => {
                for pdv in data {
                    if pdv.value_type == PDataValueType::Command {
                        command.extend_from_slice(&pdv.data);
                        if pdv.is_last {
                            return dimse::parse_response(&command)
                                .map_err(|m| Failure::new(format!("bad response: {m}"), true));
                        }
                    }
                }
            }
            Pdu::AbortRQ { source } => {
                return Err(Failure::new(
                    format!(
                        "the peer aborted the association ({})",
                        abort_source(&source)
                    ),
                    true,
                ))
            }
            Pdu::ReleaseRQ => {
                return Err(Failure::new(
                    "the peer asked to release the association before answering",
                    true,
                ))
            }
            other => {
                return Err(Failure::new(
                    format!("unexpected {} from the peer", other.short_description()),
                    true,
                ))
            }
        }
    }
}

/// The C-ECHO at the start of each association (PS3.7 section 9.1.5).
fn echo(
    assoc: &mut ClientAssociation<TcpStream>,
    message_id: u16,
    destination: &Destination,
    options: &SendOptions,
) -> std::result::Result<EchoReport, Failure> {
    let Some(context_id) = assoc
        .presentation_contexts()
        .iter()
        .find(|pc| trim_uid(&pc.abstract_syntax) == uids::VERIFICATION)
        .map(|pc| pc.id)
    else {
        tracing::warn!(to = %destination, "peer does not accept Verification; no C-ECHO");
        return Ok(EchoReport {
            ok: false,
            status: None,
            message: "the peer did not accept the Verification SOP class; no C-ECHO".into(),
        });
    };

    let response = exchange(
        assoc,
        context_id,
        dimse::c_echo_rq(message_id),
        None,
        options,
    )
    .map_err(|f| Failure::new(format!("C-ECHO: {}", f.message), f.retryable))?;
    check_response(&response, dimse::C_ECHO_RSP, message_id)?;
    match response.status {
        Some(0) => Ok(EchoReport {
            ok: true,
            status: Some(0),
            message: "success".into(),
        }),
        Some(s) => Err(Failure::new(
            format!("C-ECHO answered {} (0x{s:04X})", dimse::status_meaning(s)),
            true,
        )),
        None => Err(Failure::new(
            "C-ECHO response without Status (0000,0900)",
            true,
        )),
    }
}

fn check_response(
    response: &dimse::Response,
    command_field: u16,
    message_id: u16,
) -> std::result::Result<(), Failure> {
    if response.command_field != command_field {
        return Err(Failure::new(
            format!(
                "expected CommandField 0x{command_field:04X}, the peer sent 0x{:04X}",
                response.command_field
            ),
            true,
        ));
    }
    if response.message_id_being_responded_to != Some(message_id) {
        return Err(Failure::new(
            format!(
                "response to message {:?}, expected {message_id}",
                response.message_id_being_responded_to
            ),
            true,
        ));
    }
    Ok(())
}

/// Words an error of association establishment.
fn describe_ul_error(
    error: &UlError,
    destination: &Destination,
    options: &SendOptions,
    proposals: &[Proposal],
) -> Failure {
    let address = format!("{}:{}", destination.host, destination.port);
    match error {
        UlError::Connect { source, .. } => match source.kind() {
            std::io::ErrorKind::ConnectionRefused => Failure::new(
                format!("connection refused by {address}: nothing listens there"),
                true,
            ),
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => Failure::new(
                format!(
                    "no connection to {address} within {} s",
                    options.connect_timeout.as_secs_f64()
                ),
                true,
            ),
            _ => Failure::new(format!("cannot connect to {address}: {source}"), true),
        },
        UlError::ToAddress { source, .. } => Failure::new(
            format!("cannot resolve host `{}`: {source}", destination.host),
            false,
        ),
        UlError::Rejected { association_rj, .. } => {
            let transient = association_rj.result == AssociationRJResult::Transient;
            Failure::new(
                format!(
                    "{} rejected the association ({}, {})",
                    destination.ae_title,
                    if transient { "transient" } else { "permanent" },
                    association_rj.source
                ),
                transient,
            )
        }
        UlError::NoAcceptedPresentationContexts { .. } => {
            let classes: BTreeSet<String> = proposals
                .iter()
                .map(|p| uid_name(&p.abstract_syntax))
                .collect();
            let classes: Vec<String> = classes.into_iter().collect();
            Failure::new(
                format!(
                    "the peer rejected every presentation context (Verification, {})",
                    classes.join(", ")
                ),
                false,
            )
        }
        UlError::UnexpectedPdu { pdu, .. } => match pdu.as_ref() {
            Pdu::AbortRQ { source } => Failure::new(
                format!(
                    "the peer aborted the association request ({})",
                    abort_source(source)
                ),
                true,
            ),
            other => Failure::new(
                format!(
                    "unexpected {} in answer to the association request",
                    other.short_description()
                ),
                true,
            ),
        },
        other => describe_transfer_error(other, options, "awaiting the association answer"),
    }
}

/// Words an error while sending or receiving on an established
/// association: timeouts and closed connections by name, the rest as the
/// error chain.
fn describe_transfer_error(error: &UlError, options: &SendOptions, doing: &str) -> Failure {
    if let Some(io) = find_io_error(error) {
        return describe_io(io, options, doing);
    }
    if matches!(error, UlError::ConnectionClosed { .. }) {
        return Failure::new(format!("the peer closed the connection ({doing})"), true);
    }
    Failure::new(format!("{doing}: {}", error_chain(error)), true)
}

fn describe_io(error: &std::io::Error, options: &SendOptions, doing: &str) -> Failure {
    use std::io::ErrorKind::*;
    let message = match error.kind() {
        TimedOut | WouldBlock => format!(
            "no response from the peer within {} s ({doing})",
            options.response_timeout.as_secs_f64()
        ),
        ConnectionReset | BrokenPipe | UnexpectedEof | ConnectionAborted => {
            format!("the peer closed the connection ({doing}): {error}")
        }
        _ => format!("{doing}: {error}"),
    };
    Failure::new(message, true)
}

/// The first I/O error in an error's source chain.
fn find_io_error<'e>(error: &'e (dyn std::error::Error + 'static)) -> Option<&'e std::io::Error> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        current = e.source();
    }
    None
}

/// An error and its sources, joined by ": ".
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    let mut current = error.source();
    while let Some(e) = current {
        parts.push(e.to_string());
        current = e.source();
    }
    parts.join(": ")
}

fn abort_source(source: &AbortRQSource) -> String {
    match source {
        AbortRQSource::ServiceUser => "A-ABORT from the service user".to_string(),
        AbortRQSource::ServiceProvider(reason) => {
            format!("A-ABORT from the service provider: {reason}")
        }
        AbortRQSource::Reserved => "A-ABORT, reserved source".to_string(),
    }
}

/// UIDs arrive padded with NUL or space (PS3.5 section 9.1).
fn trim_uid(uid: &str) -> &str {
    uid.trim_end_matches(['\0', ' '])
}

/// `MR Image Storage (1.2.840.10008.5.1.4.1.1.4)`, or the bare UID when it
/// is neither a storage class halo names nor a known transfer syntax.
fn uid_name(uid: &str) -> String {
    // The SOP classes halo reads and writes; dicom-dictionary-std's full
    // registry sits behind a feature that would rebuild every DICOM crate.
    let classes = [
        (uids::VERIFICATION, "Verification"),
        (uids::MR_IMAGE_STORAGE, "MR Image Storage"),
        (uids::ENHANCED_MR_IMAGE_STORAGE, "Enhanced MR Image Storage"),
        (uids::CT_IMAGE_STORAGE, "CT Image Storage"),
        (
            uids::POSITRON_EMISSION_TOMOGRAPHY_IMAGE_STORAGE,
            "Positron Emission Tomography Image Storage",
        ),
        (uids::RT_STRUCTURE_SET_STORAGE, "RT Structure Set Storage"),
        (uids::RT_DOSE_STORAGE, "RT Dose Storage"),
        (uids::RT_PLAN_STORAGE, "RT Plan Storage"),
        (uids::SEGMENTATION_STORAGE, "Segmentation Storage"),
        (
            uids::SECONDARY_CAPTURE_IMAGE_STORAGE,
            "Secondary Capture Image Storage",
        ),
    ];
    if let Some((_, name)) = classes.iter().find(|(u, _)| *u == uid) {
        return format!("{name} ({uid})");
    }
    match TransferSyntaxRegistry.get(uid) {
        Some(ts) => format!("{} ({uid})", ts.name()),
        None => uid.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destination_parses_ae_host_port() {
        let d: Destination = "PLANNING@10.0.0.5:104".parse().unwrap();

        assert_eq!(d.ae_title, "PLANNING");
        assert_eq!(d.host, "10.0.0.5");
        assert_eq!(d.port, 104);
        assert_eq!(d.to_string(), "PLANNING@10.0.0.5:104");
    }

    #[test]
    fn destination_parses_bracketed_ipv6() {
        let d: Destination = "PACS@[::1]:11112".parse().unwrap();

        assert_eq!(d.host, "::1");
        assert_eq!(d.to_string(), "PACS@[::1]:11112");
    }

    #[test]
    fn destination_errors_name_the_problem() {
        let cases = [
            ("10.0.0.5:104", "not AE@HOST:PORT"),
            ("PLAN@10.0.0.5", "not AE@HOST:PORT"),
            ("PLAN@10.0.0.5:x", "port `x`"),
            ("PLAN@10.0.0.5:0", "port `0`"),
            ("PLAN@10.0.0.5:70000", "port `70000`"),
            ("PLAN@:104", "empty host"),
            ("@host:104", "called AE title `` is empty"),
            ("ABCDEFGHIJKLMNOPQ@host:104", "longer than 16"),
            ("A\\B@host:104", "backslash"),
        ];

        for (text, expected) in cases {
            let err = text.parse::<Destination>().unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn proposals_carry_native_syntaxes_then_the_fallback() {
        let syntaxes: BTreeSet<&str> = ["1.2.840.10008.1.2.4.70"].into_iter().collect();

        let p = proposals_for("1.2.3", &syntaxes);

        assert_eq!(p.len(), 2);
        assert_eq!(p[0].transfer_syntaxes, vec!["1.2.840.10008.1.2.4.70"]);
        assert_eq!(
            p[1].transfer_syntaxes,
            vec![
                uids::EXPLICIT_VR_LITTLE_ENDIAN,
                uids::IMPLICIT_VR_LITTLE_ENDIAN
            ]
        );
    }

    #[test]
    fn proposals_skip_the_fallback_when_both_syntaxes_are_native() {
        let syntaxes: BTreeSet<&str> = [
            uids::EXPLICIT_VR_LITTLE_ENDIAN,
            uids::IMPLICIT_VR_LITTLE_ENDIAN,
        ]
        .into_iter()
        .collect();

        assert_eq!(proposals_for("1.2.3", &syntaxes).len(), 2);
    }

    #[test]
    fn batches_keep_within_128_contexts() {
        let items: Vec<Item> = (0..300)
            .map(|i| Item {
                index: i,
                path: PathBuf::from(format!("f{i}")),
                sop_class_uid: format!("1.2.{i}"),
                sop_instance_uid: format!("9.{i}"),
                transfer_syntax: uids::EXPLICIT_VR_LITTLE_ENDIAN.to_string(),
                dataset_offset: 0,
            })
            .collect();

        let b = batches(&items);

        assert!(b.iter().all(|(p, _)| p.len() <= MAX_STORAGE_CONTEXTS));
        let total: usize = b.iter().map(|(_, pos)| pos.len()).sum();
        assert_eq!(total, 300);
    }

    fn negotiated(id: u8, class: &str, ts: &str) -> PresentationContextNegotiated {
        PresentationContextNegotiated {
            id,
            reason: dicom_ul::pdu::PresentationContextResultReason::Acceptance,
            transfer_syntax: ts.to_string(),
            abstract_syntax: class.to_string(),
        }
    }

    fn item(class: &str, ts: &str) -> Item {
        Item {
            index: 0,
            path: PathBuf::from("x.dcm"),
            sop_class_uid: class.to_string(),
            sop_instance_uid: "1.2.3.4".to_string(),
            transfer_syntax: ts.to_string(),
            dataset_offset: 0,
        }
    }

    #[test]
    fn choose_context_prefers_the_native_syntax() {
        let mr = uids::MR_IMAGE_STORAGE;
        let accepted = [
            negotiated(3, mr, uids::IMPLICIT_VR_LITTLE_ENDIAN),
            negotiated(5, mr, uids::EXPLICIT_VR_LITTLE_ENDIAN),
        ];

        let (pc, convert) =
            choose_context(&accepted, &item(mr, uids::EXPLICIT_VR_LITTLE_ENDIAN)).unwrap();

        assert_eq!((pc.id, convert), (5, false));
    }

    #[test]
    fn choose_context_converts_between_little_endian_syntaxes() {
        let mr = uids::MR_IMAGE_STORAGE;
        let accepted = [negotiated(3, mr, uids::IMPLICIT_VR_LITTLE_ENDIAN)];

        let (pc, convert) =
            choose_context(&accepted, &item(mr, uids::EXPLICIT_VR_LITTLE_ENDIAN)).unwrap();

        assert_eq!((pc.id, convert), (3, true));
    }

    #[test]
    fn choose_context_refuses_to_decompress() {
        let mr = uids::MR_IMAGE_STORAGE;
        let accepted = [negotiated(3, mr, uids::EXPLICIT_VR_LITTLE_ENDIAN)];

        let err = choose_context(&accepted, &item(mr, uids::JPEG_BASELINE8_BIT)).unwrap_err();

        assert!(err.contains("cannot convert"), "{err}");
    }

    #[test]
    fn choose_context_names_the_rejected_class() {
        let accepted = [negotiated(
            3,
            uids::MR_IMAGE_STORAGE,
            uids::EXPLICIT_VR_LITTLE_ENDIAN,
        )];

        let err = choose_context(
            &accepted,
            &item(
                uids::RT_STRUCTURE_SET_STORAGE,
                uids::EXPLICIT_VR_LITTLE_ENDIAN,
            ),
        )
        .unwrap_err();

        assert!(err.contains("rejected the presentation context"), "{err}");
        assert!(err.contains("RT Structure Set Storage"), "{err}");
    }
}

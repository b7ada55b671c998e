//! `dicom::send` against peers started by the test on 127.0.0.1: a small
//! storage SCP built on dicom-ul's acceptor (so that no outside tool is
//! needed), a port where nothing listens, and a socket that never answers.
//! The dcmtk round trip and the other faults are in
//! `tests/python/test_send.py`.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use dicom_ul::association::server::ServerAssociationOptions;
use dicom_ul::pdu::{PDataValue, PDataValueType};
use dicom_ul::Pdu;
use halo_core::dicom::send::{send_paths, Destination, Outcome, SendOptions};

fn fast_options() -> SendOptions {
    SendOptions {
        connect_timeout: Duration::from_secs(1),
        response_timeout: Duration::from_secs(1),
        retries: 0,
        backoff: Duration::from_millis(50),
        ..SendOptions::default()
    }
}

fn destination(port: u16) -> Destination {
    format!("STORE@127.0.0.1:{port}").parse().unwrap()
}

/// Writes a small Part 10 file of `class` in `ts`.
fn write_instance(dir: &Path, name: &str, class: &str, uid: &str, ts: &str) -> PathBuf {
    let mut obj = InMemDicomObject::new_empty();
    let text = |tag, vr, v: &str| DataElement::new(tag, vr, PrimitiveValue::from(v));
    obj.put(text(tags::SOP_CLASS_UID, VR::UI, class));
    obj.put(text(tags::SOP_INSTANCE_UID, VR::UI, uid));
    obj.put(text(tags::MODALITY, VR::CS, "MR"));
    obj.put(text(tags::PATIENT_ID, VR::LO, "SEND-TEST"));
    obj.put(text(tags::SERIES_DESCRIPTION, VR::LO, "odd length!"));
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(class)
        .media_storage_sop_instance_uid(uid)
        .transfer_syntax(ts);
    let file = obj.with_meta(meta).unwrap();
    let path = dir.join(name);
    file.write_to_file(&path).unwrap();
    path
}

/// The data set bytes of a Part 10 file: what follows the meta group,
/// whose length is the value of (0002,0000) at bytes 140..144.
fn dataset_of(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    let group_length = u32::from_le_bytes(bytes[140..144].try_into().unwrap()) as usize;
    bytes[144 + group_length..].to_vec()
}

/// What the test SCP does with each C-STORE.
#[derive(Clone, Copy)]
enum Peer {
    /// Answers success to every C-STORE.
    Store,
    /// Stores the first one, then sends A-ABORT on the next.
    AbortAfterOne,
}

/// What the test SCP received: (SOPInstanceUID, data set bytes).
type Received = Vec<(String, Vec<u8>)>;

/// Serves one association on a free loopback port.
fn spawn_scp(peer: Peer) -> (u16, JoinHandle<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        serve(stream, peer)
    });
    (port, handle)
}

fn serve(stream: TcpStream, peer: Peer) -> Received {
    let options = ServerAssociationOptions::new()
        .accept_any()
        .with_abstract_syntax(uids::VERIFICATION)
        .with_abstract_syntax(uids::MR_IMAGE_STORAGE)
        .with_abstract_syntax(uids::RT_STRUCTURE_SET_STORAGE)
        .with_transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
        .with_transfer_syntax(uids::IMPLICIT_VR_LITTLE_ENDIAN)
        .read_timeout(Duration::from_secs(5));
    let mut assoc = options.establish(stream).unwrap();
    let mut received = Vec::new();

    let mut command = Vec::new();
    let mut data = Vec::new();
    loop {
        let pdu = match assoc.receive() {
            Ok(p) => p,
            Err(_) => return received,
        };
        let values = match pdu {
            Pdu::PData { data } => data,
            Pdu::ReleaseRQ => {
                assoc.send(&Pdu::ReleaseRP).unwrap();
                return received;
            }
            _ => return received,
        };
        for pdv in values {
            let context = pdv.presentation_context_id;
            match pdv.value_type {
                PDataValueType::Command => command.extend_from_slice(&pdv.data),
                PDataValueType::Data => data.extend_from_slice(&pdv.data),
            }
            let field = read_us(&command, 0x0100);
            let complete = pdv.is_last
                && match field {
                    // C-ECHO-RQ has no data set; C-STORE-RQ's ends here.
                    Some(0x0030) => true,
                    Some(0x0001) => pdv.value_type == PDataValueType::Data,
                    _ => false,
                };
            if !complete {
                continue;
            }

            let message_id = read_us(&command, 0x0110).unwrap();
            if field == Some(0x0001) {
                if matches!(peer, Peer::AbortAfterOne) && !received.is_empty() {
                    let _ = assoc.abort();
                    return received;
                }
                let uid = read_uid(&command, 0x1000);
                received.push((uid, std::mem::take(&mut data)));
            }
            let response = response_command(field.unwrap() | 0x8000, message_id);
            assoc
                .send(&Pdu::PData {
                    data: vec![PDataValue {
                        presentation_context_id: context,
                        value_type: PDataValueType::Command,
                        is_last: true,
                        data: response,
                    }],
                })
                .unwrap();
            command.clear();
        }
    }
}

/// Finds element (0000,`element`) in an Implicit VR Little Endian command.
fn find(command: &[u8], element: u16) -> Option<&[u8]> {
    let mut pos = 0;
    while pos + 8 <= command.len() {
        let e = u16::from_le_bytes([command[pos + 2], command[pos + 3]]);
        let len = u32::from_le_bytes(command[pos + 4..pos + 8].try_into().unwrap()) as usize;
        if e == element {
            return command.get(pos + 8..pos + 8 + len);
        }
        pos += 8 + len;
    }
    None
}

fn read_us(command: &[u8], element: u16) -> Option<u16> {
    find(command, element).map(|v| u16::from_le_bytes([v[0], v[1]]))
}

fn read_uid(command: &[u8], element: u16) -> String {
    let v = find(command, element).unwrap();
    String::from_utf8_lossy(v)
        .trim_end_matches('\0')
        .to_string()
}

/// A success response: CommandField, MessageIDBeingRespondedTo, no data
/// set, Status 0000 (PS3.7 section 9.3).
fn response_command(field: u16, message_id: u16) -> Vec<u8> {
    let mut body = Vec::new();
    for (element, value) in [
        (0x0100u16, field),
        (0x0120, message_id),
        (0x0800, 0x0101),
        (0x0900, 0),
    ] {
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&element.to_le_bytes());
        body.extend_from_slice(&2u32.to_le_bytes());
        body.extend_from_slice(&value.to_le_bytes());
    }
    let mut out = vec![0, 0, 0, 0, 4, 0, 0, 0];
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

#[test]
fn every_instance_arrives_with_its_data_set_bytes_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        write_instance(
            dir.path(),
            "a.dcm",
            uids::MR_IMAGE_STORAGE,
            "1.2.3.1",
            uids::EXPLICIT_VR_LITTLE_ENDIAN,
        ),
        write_instance(
            dir.path(),
            "b.dcm",
            uids::MR_IMAGE_STORAGE,
            "1.2.3.2",
            uids::IMPLICIT_VR_LITTLE_ENDIAN,
        ),
        write_instance(
            dir.path(),
            "c.dcm",
            uids::RT_STRUCTURE_SET_STORAGE,
            "1.2.3.3",
            uids::EXPLICIT_VR_LITTLE_ENDIAN,
        ),
    ];
    let (port, scp) = spawn_scp(Peer::Store);

    let report = send_paths(&destination(port), &[dir.path()], &fast_options()).unwrap();
    let received = scp.join().unwrap();

    assert!(report.all_stored(), "{report:#?}");
    assert_eq!(
        (report.stored, report.failed, report.associations),
        (3, 0, 1)
    );
    assert!(report.echo.as_ref().is_some_and(|e| e.ok));
    assert_eq!(received.len(), 3);
    for (file, (uid, data)) in files.iter().zip(&received) {
        let sent = report.instances.iter().find(|i| &i.file == file).unwrap();
        assert_eq!(sent.sop_instance_uid.as_deref(), Some(uid.as_str()));
        assert_eq!(sent.status, Some(0));
        assert_eq!(
            data,
            &dataset_of(file),
            "data set of {} changed",
            file.display()
        );
    }
}

#[test]
fn nobody_listening_reports_every_instance_not_sent() {
    let dir = tempfile::tempdir().unwrap();
    let a = write_instance(
        dir.path(),
        "a.dcm",
        uids::MR_IMAGE_STORAGE,
        "1.2.4.1",
        uids::EXPLICIT_VR_LITTLE_ENDIAN,
    );
    let b = write_instance(
        dir.path(),
        "b.dcm",
        uids::MR_IMAGE_STORAGE,
        "1.2.4.2",
        uids::EXPLICIT_VR_LITTLE_ENDIAN,
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();

    let report = send_paths(&destination(port), &[&a, &b], &fast_options()).unwrap();

    assert_eq!(
        (report.stored, report.failed, report.associations),
        (0, 2, 0)
    );
    for i in &report.instances {
        assert_eq!(i.outcome, Outcome::Failed);
        assert!(i.message.contains("connection refused"), "{}", i.message);
    }
}

#[test]
fn silent_peer_times_out_and_reports_every_instance() {
    let dir = tempfile::tempdir().unwrap();
    let a = write_instance(
        dir.path(),
        "a.dcm",
        uids::MR_IMAGE_STORAGE,
        "1.2.5.1",
        uids::EXPLICIT_VR_LITTLE_ENDIAN,
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let holder = std::thread::spawn(move || listener.accept().map(|(s, _)| s));

    let started = std::time::Instant::now();
    let report = send_paths(&destination(port), &[&a], &fast_options()).unwrap();
    let _held = holder.join().unwrap();

    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(report.failed, 1);
    let message = &report.instances[0].message;
    assert!(
        message.contains("no response from the peer within 1 s"),
        "{message}"
    );
}

#[test]
fn abort_after_one_store_reports_what_was_stored() {
    let dir = tempfile::tempdir().unwrap();
    for k in 1..=3 {
        write_instance(
            dir.path(),
            &format!("{k}.dcm"),
            uids::MR_IMAGE_STORAGE,
            &format!("1.2.6.{k}"),
            uids::EXPLICIT_VR_LITTLE_ENDIAN,
        );
    }
    let (port, scp) = spawn_scp(Peer::AbortAfterOne);

    let report = send_paths(&destination(port), &[dir.path()], &fast_options()).unwrap();
    let received = scp.join().unwrap();

    assert_eq!(received.len(), 1);
    let stored: Vec<bool> = report.instances.iter().map(|i| i.stored).collect();
    assert_eq!(stored, [true, false, false]);
    assert!(
        report.instances[1].message.contains("aborted"),
        "{}",
        report.instances[1].message
    );
    assert!(
        report.instances[2].message.starts_with("not sent"),
        "{}",
        report.instances[2].message
    );
}

#[test]
fn a_named_file_that_is_not_dicom_is_reported_not_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not DICOM").unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();

    let report = send_paths(&destination(port), &[&text], &fast_options()).unwrap();

    assert_eq!(report.instances.len(), 1);
    assert!(!report.instances[0].stored);
    assert!(
        report.instances[0].message.contains("no DICM prefix"),
        "{}",
        report.instances[0].message
    );
}

#[test]
fn a_folder_without_dicom_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not DICOM").unwrap();

    let err = send_paths(&destination(104), &[dir.path()], &fast_options()).unwrap_err();

    assert!(
        err.to_string().contains("no DICOM instance to send"),
        "{err}"
    );
}

//! DIMSE command sets for verification (C-ECHO) and storage (C-STORE).
//!
//! A command set is always encoded in Implicit VR Little Endian, whatever
//! transfer syntax the presentation context carries (PS3.7 section 6.3.1),
//! and starts with CommandGroupLength (0000,0000). The fields used here are
//! those of PS3.7 sections 9.3.1 (C-STORE) and 9.3.5 (C-ECHO).

/// CommandField (0000,0100) of a C-STORE-RQ.
pub(crate) const C_STORE_RQ: u16 = 0x0001;
/// CommandField (0000,0100) of a C-STORE-RSP.
pub(crate) const C_STORE_RSP: u16 = 0x8001;
/// CommandField (0000,0100) of a C-ECHO-RQ.
pub(crate) const C_ECHO_RQ: u16 = 0x0030;
/// CommandField (0000,0100) of a C-ECHO-RSP.
pub(crate) const C_ECHO_RSP: u16 = 0x8030;

/// CommandDataSetType (0000,0800) meaning "no data set follows"; any other
/// value means one does (PS3.7 section E.1).
const NO_DATA_SET: u16 = 0x0101;
/// The value halo writes when a data set follows.
const DATA_SET_PRESENT: u16 = 0x0000;
/// Priority (0000,0700) MEDIUM.
const PRIORITY_MEDIUM: u16 = 0x0000;

const AFFECTED_SOP_CLASS_UID: u16 = 0x0002;
const COMMAND_FIELD: u16 = 0x0100;
const MESSAGE_ID: u16 = 0x0110;
const MESSAGE_ID_BEING_RESPONDED_TO: u16 = 0x0120;
const PRIORITY: u16 = 0x0700;
const COMMAND_DATA_SET_TYPE: u16 = 0x0800;
const STATUS: u16 = 0x0900;
const ERROR_COMMENT: u16 = 0x0902;
const AFFECTED_SOP_INSTANCE_UID: u16 = 0x1000;

/// The command set of a C-ECHO-RQ (PS3.7 table 9.3-12).
pub(crate) fn c_echo_rq(message_id: u16) -> Vec<u8> {
    let mut body = Vec::new();
    put_uid(
        &mut body,
        AFFECTED_SOP_CLASS_UID,
        dicom_dictionary_std::uids::VERIFICATION,
    );
    put_us(&mut body, COMMAND_FIELD, C_ECHO_RQ);
    put_us(&mut body, MESSAGE_ID, message_id);
    put_us(&mut body, COMMAND_DATA_SET_TYPE, NO_DATA_SET);
    with_group_length(body)
}

/// The command set of a C-STORE-RQ (PS3.7 table 9.3-1), announcing a data
/// set.
pub(crate) fn c_store_rq(message_id: u16, sop_class_uid: &str, sop_instance_uid: &str) -> Vec<u8> {
    let mut body = Vec::new();
    put_uid(&mut body, AFFECTED_SOP_CLASS_UID, sop_class_uid);
    put_us(&mut body, COMMAND_FIELD, C_STORE_RQ);
    put_us(&mut body, MESSAGE_ID, message_id);
    put_us(&mut body, PRIORITY, PRIORITY_MEDIUM);
    put_us(&mut body, COMMAND_DATA_SET_TYPE, DATA_SET_PRESENT);
    put_uid(&mut body, AFFECTED_SOP_INSTANCE_UID, sop_instance_uid);
    with_group_length(body)
}

/// What halo reads from a response command set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Response {
    /// CommandField (0000,0100).
    pub command_field: u16,
    /// MessageIDBeingRespondedTo (0000,0120).
    pub message_id_being_responded_to: Option<u16>,
    /// Status (0000,0900).
    pub status: Option<u16>,
    /// ErrorComment (0000,0902), if the peer sent one.
    pub error_comment: Option<String>,
    /// Whether CommandDataSetType (0000,0800) announces a data set.
    pub has_data_set: bool,
}

/// Parses a command set (Implicit VR Little Endian, group 0000 only).
///
/// # Errors
///
/// A message naming the offset when an element runs past the end, or when
/// CommandField is missing.
pub(crate) fn parse_response(bytes: &[u8]) -> Result<Response, String> {
    let mut command_field = None;
    let mut response = Response {
        command_field: 0,
        message_id_being_responded_to: None,
        status: None,
        error_comment: None,
        has_data_set: false,
    };

    let mut pos = 0;
    while pos < bytes.len() {
        let header = bytes
            .get(pos..pos + 8)
            .ok_or_else(|| format!("command set truncated at byte {pos}"))?;
        let group = u16::from_le_bytes([header[0], header[1]]);
        let element = u16::from_le_bytes([header[2], header[3]]);
        let length = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let value = bytes.get(pos + 8..pos + 8 + length).ok_or_else(|| {
            format!(
                "element ({group:04X},{element:04X}) of length {length} runs past the command set"
            )
        })?;
        pos += 8 + length;
        if group != 0x0000 {
            return Err(format!(
                "element ({group:04X},{element:04X}) outside group 0000 in a command set"
            ));
        }

        match element {
            COMMAND_FIELD => command_field = us(value),
            MESSAGE_ID_BEING_RESPONDED_TO => response.message_id_being_responded_to = us(value),
            STATUS => response.status = us(value),
            COMMAND_DATA_SET_TYPE => response.has_data_set = us(value) != Some(NO_DATA_SET),
            ERROR_COMMENT => {
                let text = String::from_utf8_lossy(value);
                response.error_comment = Some(text.trim_end_matches(['\0', ' ']).to_string());
            }
            _ => {}
        }
    }

    response.command_field =
        command_field.ok_or_else(|| "command set without CommandField (0000,0100)".to_string())?;
    Ok(response)
}

/// How a DIMSE status ends an operation (PS3.7 annex C, PS3.4 B.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusClass {
    /// 0000.
    Success,
    /// 0001, 0107, 0116 and Bxxx: done, with a remark.
    Warning,
    /// Everything else, cancel (FE00) included.
    Failure,
}

/// Classifies a status code.
pub(crate) fn classify(status: u16) -> StatusClass {
    match status {
        0x0000 => StatusClass::Success,
        0x0001 | 0x0107 | 0x0116 | 0xB000..=0xBFFF => StatusClass::Warning,
        _ => StatusClass::Failure,
    }
}

/// The meaning of a status code, as PS3.4 B.2.3 and PS3.7 annex C word it.
pub(crate) fn status_meaning(status: u16) -> &'static str {
    match status {
        0x0000 => "success",
        0x0001 => "warning: requested optional attributes are not supported",
        0x0107 => "warning: attribute list error",
        0x0116 => "warning: attribute value out of range",
        0xB000 => "warning: coercion of data elements",
        0xB006 => "warning: elements discarded",
        0xB007 => "warning: data set does not match SOP class",
        0x0110 => "failure: processing failure",
        0x0111 => "failure: duplicate SOP instance",
        0x0117 => "failure: invalid SOP instance",
        0x0122 => "failure: SOP class not supported",
        0x0124 => "failure: not authorized",
        0x0210 => "failure: duplicate invocation",
        0x0211 => "failure: unrecognized operation",
        0x0212 => "failure: mistyped argument",
        0xFE00 => "cancelled",
        0xA700..=0xA7FF => "refused: out of resources",
        0xA900..=0xA9FF => "error: data set does not match SOP class",
        0xC000..=0xCFFF => "error: cannot understand",
        0xB001..=0xBFFF => "warning",
        0xA000..=0xAFFF => "failure",
        _ => "unknown status",
    }
}

fn us(value: &[u8]) -> Option<u16> {
    (value.len() == 2).then(|| u16::from_le_bytes([value[0], value[1]]))
}

fn put_header(out: &mut Vec<u8>, element: u16, length: usize) {
    out.extend_from_slice(&0x0000u16.to_le_bytes());
    out.extend_from_slice(&element.to_le_bytes());
    // OK because command values are a UID (at most 64 bytes) or a number.
    out.extend_from_slice(&(length as u32).to_le_bytes());
}

fn put_us(out: &mut Vec<u8>, element: u16, value: u16) {
    put_header(out, element, 2);
    out.extend_from_slice(&value.to_le_bytes());
}

/// A UI value is padded to even length with a NUL (PS3.5 section 6.2).
fn put_uid(out: &mut Vec<u8>, element: u16, uid: &str) {
    let padded = uid.len() + uid.len() % 2;
    put_header(out, element, padded);
    out.extend_from_slice(uid.as_bytes());
    if uid.len() % 2 == 1 {
        out.push(0);
    }
}

/// Prefixes CommandGroupLength (0000,0000): the byte count of what follows.
fn with_group_length(body: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 12);
    put_header(&mut out, 0x0000, 4);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_store_rq_has_group_length_and_even_uids() {
        let cmd = c_store_rq(7, "1.2.840.10008.5.1.4.1.1.4", "1.2.3");

        let length = u32::from_le_bytes([cmd[8], cmd[9], cmd[10], cmd[11]]) as usize;
        assert_eq!(length, cmd.len() - 12);
        assert_eq!(cmd.len() % 2, 0);
        let parsed = parse_response(&cmd).unwrap();
        assert_eq!(parsed.command_field, C_STORE_RQ);
        assert!(parsed.has_data_set);
    }

    #[test]
    fn c_echo_rq_announces_no_data_set() {
        let parsed = parse_response(&c_echo_rq(1)).unwrap();

        assert_eq!(parsed.command_field, C_ECHO_RQ);
        assert!(!parsed.has_data_set);
    }

    #[test]
    fn parse_response_reads_status_and_comment() {
        let mut body = Vec::new();
        put_us(&mut body, COMMAND_FIELD, C_STORE_RSP);
        put_us(&mut body, MESSAGE_ID_BEING_RESPONDED_TO, 3);
        put_us(&mut body, COMMAND_DATA_SET_TYPE, NO_DATA_SET);
        put_us(&mut body, STATUS, 0xA700);
        put_uid(&mut body, ERROR_COMMENT, "disk full");
        let cmd = with_group_length(body);

        let r = parse_response(&cmd).unwrap();

        assert_eq!(r.message_id_being_responded_to, Some(3));
        assert_eq!(r.status, Some(0xA700));
        assert_eq!(r.error_comment.as_deref(), Some("disk full"));
        assert_eq!(classify(0xA700), StatusClass::Failure);
        assert_eq!(status_meaning(0xA7F0), "refused: out of resources");
    }

    #[test]
    fn parse_response_refuses_truncated_element() {
        let mut cmd = c_echo_rq(1);
        cmd.truncate(cmd.len() - 1);

        let err = parse_response(&cmd).unwrap_err();

        assert!(err.contains("runs past"), "{err}");
    }

    #[test]
    fn warnings_count_as_done() {
        assert_eq!(classify(0x0000), StatusClass::Success);
        assert_eq!(classify(0xB000), StatusClass::Warning);
        assert_eq!(classify(0xB007), StatusClass::Warning);
        assert_eq!(classify(0xFE00), StatusClass::Failure);
        assert_eq!(classify(0xC000), StatusClass::Failure);
        assert_eq!(classify(0x0122), StatusClass::Failure);
    }
}

//! Unique identifiers for the objects halo writes.
//!
//! DICOM PS3.5 B.2: a UID may be formed from the root `2.25` followed by
//! the decimal value of a UUID (ITU-T X.667), which needs no registered
//! organisation root and is at most 44 characters, within the 64 allowed.

/// ImplementationClassUID (0002,0012) of files written by halo: one fixed
/// `2.25.` UID drawn once for this project.
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.182444310721088976382359912303874979683";

/// ImplementationVersionName (0002,0013): at most 16 characters.
pub const IMPLEMENTATION_VERSION_NAME: &str = concat!("HALO_", env!("CARGO_PKG_VERSION"));

/// A new UID: `2.25.` followed by the decimal value of a random (version 4)
/// 128-bit UUID.
pub fn new_uid() -> String {
    format!("2.25.{}", uuid::Uuid::new_v4().as_u128())
}

/// True when `uid` is a syntactically valid UID (PS3.5 9.1): at most 64
/// characters, components of digits separated by dots, no leading zero in a
/// component of more than one digit.
pub fn is_valid(uid: &str) -> bool {
    !uid.is_empty()
        && uid.len() <= 64
        && uid.split('.').all(|c| {
            !c.is_empty()
                && c.bytes().all(|b| b.is_ascii_digit())
                && (c == "0" || !c.starts_with('0'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_uids_are_valid_distinct_and_under_the_root_2_25() {
        let a = new_uid();
        let b = new_uid();

        assert!(a.starts_with("2.25."), "{a}");
        assert!(is_valid(&a), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn the_implementation_uid_and_version_name_are_valid() {
        assert!(is_valid(IMPLEMENTATION_CLASS_UID));
        assert!(IMPLEMENTATION_VERSION_NAME.len() <= 16);
    }

    #[test]
    fn a_component_with_a_leading_zero_is_invalid() {
        assert!(!is_valid("1.2.03"));
        assert!(!is_valid("1..2"));
        assert!(is_valid("1.2.0.3"));
    }
}

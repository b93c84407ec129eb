//! JSON strings inside payloads assembled by hand (a host call's request,
//! the Binding splice, the response): the quoting is serde_json's, the
//! assembly around it is ours, where building a `Value` to serialise would
//! cost more than the text.

/// Appends `s` as a quoted, escaped JSON string.
pub fn push_str(out: &mut Vec<u8>, s: &str) {
    // Writing a str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn every_ascii_character_and_more() -> String {
        let mut all: String = (0u8..0x80).map(char::from).collect();
        all.push_str("ünï \u{2028}\u{10ffff}");
        all
    }

    #[rstest]
    #[case::empty("")]
    #[case::plain("plain")]
    #[case::quote("q\"uote")]
    #[case::backslash("back\\slash")]
    #[case::tab("tab\t")]
    #[case::delete("\u{7f}")]
    #[case::every_ascii_character_and_more(&every_ascii_character_and_more())]
    fn a_string_appended_reads_back_as_itself(#[case] s: &str) {
        // After other text, as the hand-assembled payloads use it: the
        // appended bytes alone are one JSON string that decodes to `s`.
        let mut out = b"{\"k\":".to_vec();
        push_str(&mut out, s);
        let appended = &out[5..];
        assert_eq!(appended.first(), Some(&b'"'));
        let back: String = serde_json::from_slice(appended).unwrap();
        assert_eq!(back, s);
    }
}

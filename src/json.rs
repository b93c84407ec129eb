//! Writing JSON by hand where a serialiser would cost more than the text.

/// Appends `s` as a JSON string, quoted and escaped exactly as serde_json
/// writes it.
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
    fn strings_are_written_as_serde_json_writes_them(#[case] s: &str) {
        let mut out = Vec::new();
        push_str(&mut out, s);
        assert_eq!(out, serde_json::to_vec(s).unwrap());
    }
}

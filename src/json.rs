//! Writing JSON by hand where a serialiser would cost more than the text.

/// Appends `s` as a JSON string, quoted and escaped exactly as serde_json
/// writes it.
pub fn push_str(out: &mut Vec<u8>, s: &str) {
    // Writing a str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

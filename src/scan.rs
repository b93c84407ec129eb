//! Reads the request envelope of a `validate` call and the cluster's answers
//! (a Node, a Pod, a PodList) into the views of `objects`, touching only the
//! fields the policy uses. The Binding itself is read by serde (`binding`).
//!
//! Where this reader pays: a general JSON deserialiser spends most of a
//! sibling listing decoding strings the policy never looks at (a thousand
//! pods are ~660 KB of JSON of which a few hundred bytes per pod matter).
//! The envelope and the Node go through the same reader because serde
//! views of them, with errors that name the field (serde_path_to_error),
//! add 7 KB and 4 KB to the module, past its size budget
//! (docs/performance.md). This reader skips strings
//! eight bytes at a time, borrows every string without an escape from the
//! answer, and only checks the structure of the fields it reads (what it
//! skips is delimited, not validated: the answers are objects policy-server
//! serialised). Errors name the path of the field, e.g.
//! `items[3].metadata.labels.app: expected a string, found a number`.

use crate::objects::{COST_ANNOTATION, RANK_ANNOTATION, ZONE_ANNOTATION};
use crate::objects::{Controller, IgnoredAnyEq, LabelSet, Node, OwnerReference, Pod, Text};
use std::fmt;

/// What the policy reads of a waPC `validate` payload: the
/// AdmissionRequest's kind, sub-resource, operation and namespace, and the
/// raw text of its object and of the settings (the settings parsed next,
/// the object only when the request is a Binding).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Envelope<'a> {
    pub kind: Text<'a>,
    pub sub_resource: Text<'a>,
    pub operation: Text<'a>,
    pub namespace: Text<'a>,
    pub object: Option<&'a str>,
    pub settings: Option<&'a str>,
}

pub fn envelope(text: &str) -> Result<Envelope<'_>, String> {
    let mut r = Reader::new(text);
    r.whole = "the request";
    let mut env = Envelope::default();
    let mut has_request = false;
    r.members_cold(Path::Root, &mut |r, key, here| match key.as_str() {
        "request" => {
            has_request = true;
            r.members(here, |r, key, here| match key.as_str() {
                "kind" => r.members_cold(here, &mut |r, key, here| match key.as_str() {
                    "kind" => env.kind = r.opt_string(here).unwrap_or_default(),
                    _ => r.skip(here),
                }),
                "subResource" | "sub_resource" => {
                    env.sub_resource = r.opt_string(here).unwrap_or_default()
                }
                "operation" => env.operation = r.opt_string(here).unwrap_or_default(),
                "namespace" => env.namespace = r.opt_string(here).unwrap_or_default(),
                "object" => env.object = r.raw(here),
                _ => r.skip(here),
            })
        }
        "settings" => env.settings = r.raw(here),
        _ => r.skip(here),
    });
    let env = r.finish(env)?;
    if !has_request {
        return Err("missing field `request`".into());
    }
    Ok(env)
}

/// A Node answer: only `metadata.labels` is read.
pub fn node(text: &str) -> Result<Node<'_>, String> {
    let mut r = Reader::new(text);
    let mut node = Node::default();
    r.members_cold(Path::Root, &mut |r, key, here| match key.as_str() {
        "metadata" => r.members_cold(here, &mut |r, key, here| match key.as_str() {
            "labels" => node.metadata.labels = r.labels(here),
            _ => r.skip(here),
        }),
        _ => r.skip(here),
    });
    r.finish(node)
}

/// A Pod answer.
pub fn pod(text: &str) -> Result<Pod<'_>, String> {
    let mut r = Reader::new(text);
    let mut pod = Pod::default();
    r.pod_into(Path::Root, &mut pod);
    r.finish(pod)
}

/// A PodList answer: each item is handed to `f` as soon as it is read,
/// in one view reused from item to item (`f` takes what it keeps).
/// Without `labels`, the pods' labels are skipped (left empty).
pub fn each_pod<'a>(
    text: &'a str,
    labels: bool,
    mut f: impl FnMut(&mut Pod<'a>),
) -> Result<(), String> {
    let mut r = Reader::new(text);
    r.pod_labels = labels;
    let mut pod = Pod::default();
    r.members(Path::Root, |r, key, here| match key.as_str() {
        "items" => r.elements(here, |r, here| {
            pod = Pod::default();
            r.pod_into(here, &mut pod);
            if r.err.is_none() {
                f(&mut pod);
            }
        }),
        _ => r.skip(here),
    });
    r.finish(())
}

/// Where a value is, built only when an error needs it.
#[derive(Clone, Copy)]
enum Path<'p> {
    Root,
    Key(&'p Path<'p>, &'p str),
    Index(&'p Path<'p>, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Path::Root => Ok(()),
            // Label and annotation keys hold dots and slashes of their own.
            Path::Key(parent, k)
                if !k
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
            {
                write!(f, "{parent}[{k:?}]")
            }
            Path::Key(Path::Root, k) => write!(f, "{k}"),
            Path::Key(parent, k) => write!(f, "{parent}.{k}"),
            Path::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
    /// Whether pod labels are read (rather than skipped).
    pod_labels: bool,
    /// What the text is, for messages: "the answer" or "the request".
    whole: &'static str,
    /// The first error; once set, `at` sits at the end of the text, so
    /// every loop stops at its next check.
    err: Option<String>,
}

impl<'a> Reader<'a> {
    fn new(text: &'a str) -> Self {
        Reader {
            text,
            bytes: text.as_bytes(),
            at: 0,
            pod_labels: true,
            whole: "the answer",
            err: None,
        }
    }

    /// The outcome: the first error met, else `value` when nothing but
    /// blanks follows it.
    fn finish<T>(mut self, value: T) -> Result<T, String> {
        if self.err.is_none() && self.peek().is_some() {
            return Err(format!(
                "trailing characters after {} at byte {}",
                self.whole, self.at
            ));
        }
        match self.err {
            Some(e) => Err(e),
            None => Ok(value),
        }
    }

    #[cold]
    #[inline(never)]
    fn fail(&mut self, message: String) {
        if self.err.is_none() {
            self.err = Some(message);
        }
        self.at = self.bytes.len();
    }

    #[inline]
    fn peek(&mut self) -> Option<u8> {
        // Blanks are all below b'!' and every JSON token starts above it:
        // compact JSON costs one comparison here.
        match self.bytes.get(self.at) {
            Some(&c) if c > b' ' => Some(c),
            _ => self.peek_past_blanks(),
        }
    }

    #[cold]
    fn peek_past_blanks(&mut self) -> Option<u8> {
        while let Some(&c) = self.bytes.get(self.at) {
            if matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
                self.at += 1;
            } else {
                return Some(c);
            }
        }
        None
    }

    #[inline]
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn found(&mut self) -> String {
        let what = match self.peek() {
            Some(b'"') => "a string",
            Some(b'{') => "a map",
            Some(b'[') => "a list",
            Some(b't') if self.looking_at(b"true") => "a boolean",
            Some(b'f') if self.looking_at(b"false") => "a boolean",
            Some(b'n') if self.looking_at(b"null") => "null",
            Some(b'-' | b'0'..=b'9') => "a number",
            None => return format!("the end of {}", self.whole),
            Some(_) => "text that is not JSON",
        };
        what.to_string()
    }

    fn looking_at(&self, word: &[u8]) -> bool {
        self.bytes
            .get(self.at..)
            .is_some_and(|rest| rest.starts_with(word))
    }

    #[cold]
    #[inline(never)]
    fn expected(&mut self, path: Path, what: &str) {
        if self.err.is_some() {
            return;
        }
        let found = self.found();
        self.fail(match path {
            Path::Root => format!("expected {what}, found {found}"),
            _ => format!("{path}: expected {what}, found {found}"),
        })
    }

    fn literal(&mut self, word: &[u8], path: Path) {
        match self.bytes.get(self.at..self.at + word.len()) {
            Some(w) if w == word => self.at += word.len(),
            _ => self.expected(path, "a JSON value"),
        }
    }

    /// Consumes a `null`; false (nothing consumed) for anything else.
    #[inline]
    fn null(&mut self, path: Path) -> bool {
        if self.peek() == Some(b'n') {
            self.literal(b"null", path);
            true
        } else {
            false
        }
    }

    /// The members of a map (`null` counts as empty); `f` must consume
    /// each value.
    #[inline]
    fn members(&mut self, path: Path, mut f: impl FnMut(&mut Self, &Text<'a>, Path)) {
        if self.null(path) {
            return;
        }
        if !self.eat(b'{') {
            return self.expected(path, "a map");
        }
        if self.eat(b'}') {
            return;
        }
        loop {
            if self.peek() != Some(b'"') {
                return self.expected(path, "a key");
            }
            let key = self.string(path);
            if !self.eat(b':') {
                return self.expected(path, "':' after a key");
            }
            f(self, &key, Path::Key(&path, key.as_str()));
            if self.eat(b',') {
                continue;
            }
            if self.eat(b'}') {
                return;
            }
            return self.expected(path, "',' or '}'");
        }
    }

    /// `members` compiled once for every caller, for maps read once per
    /// request, where size matters more than an indirect call.
    #[inline(never)]
    fn members_cold(&mut self, path: Path, f: &mut dyn FnMut(&mut Self, &Text<'a>, Path)) {
        self.members(path, f)
    }

    /// The elements of a list (`null` counts as empty).
    fn elements(&mut self, path: Path, mut f: impl FnMut(&mut Self, Path)) {
        if self.null(path) {
            return;
        }
        if !self.eat(b'[') {
            return self.expected(path, "a list");
        }
        if self.eat(b']') {
            return;
        }
        let mut index = 0;
        loop {
            f(self, Path::Index(&path, index));
            index += 1;
            if self.eat(b',') {
                continue;
            }
            if self.eat(b']') {
                return;
            }
            return self.expected(path, "',' or ']'");
        }
    }

    /// A string right here without escapes, consumed; `None` (nothing
    /// consumed) for anything else.
    #[inline(always)]
    fn borrowed_string(&mut self) -> Option<&'a str> {
        if self.bytes.get(self.at) != Some(&b'"') {
            return None;
        }
        let start = self.at + 1;
        let stop = quote_or_backslash(self.bytes, start);
        if self.bytes.get(stop) != Some(&b'"') {
            return None;
        }
        // Both ends sit next to ASCII quotes: char boundaries.
        let s = self.text.get(start..stop)?;
        self.at = stop + 1;
        Some(s)
    }

    #[inline(always)]
    fn string(&mut self, path: Path) -> Text<'a> {
        match self.borrowed_string() {
            Some(s) => Text::from(s),
            None => self.string_slow(path),
        }
    }

    #[inline(never)]
    fn string_slow(&mut self, path: Path) -> Text<'a> {
        if !self.eat(b'"') {
            self.expected(path, "a string");
            return Text::default();
        }
        let start = self.at;
        let stop = quote_or_backslash(self.bytes, start);
        match self.bytes.get(stop) {
            Some(b'"') => {
                self.at = stop + 1;
                match self.text.get(start..stop) {
                    Some(s) => Text::from(s),
                    None => {
                        self.fail(format!("{path}: invalid string"));
                        Text::default()
                    }
                }
            }
            Some(_) => match self.unescape(start, stop, path) {
                Ok(t) => t,
                Err(e) => {
                    self.fail(e);
                    Text::default()
                }
            },
            None => {
                self.fail(format!("{path}: unterminated string"));
                Text::default()
            }
        }
    }

    /// A string with escapes, from its first backslash on.
    fn unescape(&mut self, start: usize, first: usize, path: Path) -> Result<Text<'a>, String> {
        let bad = |what: &str| format!("{path}: {what} in a string");
        let mut out = String::from(self.text.get(start..first).ok_or_else(|| bad("bad text"))?);
        let mut at = first;
        loop {
            match self.bytes.get(at) {
                Some(b'"') => {
                    self.at = at + 1;
                    return Ok(Text::from(out));
                }
                Some(b'\\') => {
                    let escape = self.bytes.get(at + 1).copied();
                    at += 2;
                    let c = match escape {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            let hi = self.hex4(at).ok_or_else(|| bad("a bad \\u escape"))?;
                            at += 4;
                            let code = if (0xD800..0xDC00).contains(&hi) {
                                let lo = match self.bytes.get(at..at + 2) {
                                    Some(b"\\u") => self.hex4(at + 2),
                                    _ => None,
                                }
                                .filter(|lo| (0xDC00..0xE000).contains(lo))
                                .ok_or_else(|| bad("an unpaired surrogate"))?;
                                at += 6;
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else {
                                hi
                            };
                            char::from_u32(code).ok_or_else(|| bad("an unpaired surrogate"))?
                        }
                        _ => return Err(bad("an invalid escape")),
                    };
                    out.push(c);
                }
                Some(_) => {
                    let next = quote_or_backslash(self.bytes, at);
                    out.push_str(self.text.get(at..next).ok_or_else(|| bad("bad text"))?);
                    at = next;
                }
                None => return Err(format!("{path}: unterminated string")),
            }
        }
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        let digits = self.text.get(at..at + 4)?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(digits, 16).ok()
    }

    /// The text of one value, unparsed; `None` for `null`.
    fn raw(&mut self, path: Path) -> Option<&'a str> {
        if self.null(path) {
            return None;
        }
        let start = self.at;
        self.skip(path);
        let raw = self.text.get(start..self.at);
        if raw.is_none() {
            self.fail(format!("{path}: invalid text"));
        }
        raw
    }

    /// A JSON integer that fits an int32 (`null`: none). A fraction, an
    /// exponent or a value out of range is an error, as serde's `i32`
    /// makes it, not a number rounded or wrapped into range.
    fn opt_i32(&mut self, path: Path) -> Option<i32> {
        if self.null(path) {
            return None;
        }
        if !matches!(self.peek(), Some(b'-' | b'0'..=b'9')) {
            self.expected(path, "an int32");
            return None;
        }
        let start = self.at;
        while matches!(
            self.bytes.get(self.at),
            Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
        ) {
            self.at += 1;
        }
        let token = self.text.get(start..self.at).unwrap_or_default();
        let digits = token.strip_prefix('-').unwrap_or(token);
        // JSON's integer grammar: no sign but a leading '-', no leading
        // zero; and "-0", which serde_json reads as a float, as the serde
        // views this reader is tested against do.
        let integer = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'))
            && token != "-0";
        match token.parse::<i32>() {
            Ok(v) if integer => Some(v),
            _ => {
                self.fail(format!("{path}: {token} is not an int32"));
                None
            }
        }
    }

    #[inline]
    fn opt_string(&mut self, path: Path) -> Option<Text<'a>> {
        if self.null(path) {
            None
        } else {
            Some(self.string(path))
        }
    }

    fn opt_bool(&mut self, path: Path) -> Option<bool> {
        match self.peek() {
            Some(b'n') => {
                self.literal(b"null", path);
                None
            }
            Some(b't') => {
                self.literal(b"true", path);
                Some(true)
            }
            Some(b'f') => {
                self.literal(b"false", path);
                Some(false)
            }
            _ => {
                self.expected(path, "true or false");
                None
            }
        }
    }

    /// Skips one value of any kind; a string without escapes inline.
    #[inline(always)]
    fn skip(&mut self, path: Path) {
        if self.borrowed_string().is_none() {
            self.skip_slow(path)
        }
    }

    #[inline(never)]
    fn skip_slow(&mut self, path: Path) {
        match self.peek() {
            Some(b'"') => {
                self.at += 1;
                self.skip_string_body(path)
            }
            Some(b'{' | b'[') => self.skip_nested(path),
            Some(b't') => self.literal(b"true", path),
            Some(b'f') => self.literal(b"false", path),
            Some(b'n') => self.literal(b"null", path),
            Some(b'-' | b'0'..=b'9') => {
                while matches!(
                    self.bytes.get(self.at),
                    Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
                ) {
                    self.at += 1;
                }
            }
            _ => self.expected(path, "a JSON value"),
        }
    }

    #[inline]
    fn skip_string_body(&mut self, path: Path) {
        loop {
            let stop = quote_or_backslash(self.bytes, self.at);
            match self.bytes.get(stop) {
                Some(b'"') => {
                    self.at = stop + 1;
                    return;
                }
                Some(_) => self.at = stop + 2,
                None => return self.fail(format!("{path}: unterminated string")),
            }
        }
    }

    /// Skips a map or list by counting brackets outside strings.
    fn skip_nested(&mut self, path: Path) {
        let mut depth = 0usize;
        loop {
            match self.bytes.get(self.at) {
                Some(b'"') => {
                    self.at += 1;
                    self.skip_string_body(path);
                }
                Some(b'{' | b'[') => {
                    depth += 1;
                    self.at += 1;
                }
                Some(b'}' | b']') => {
                    self.at += 1;
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return;
                    }
                }
                Some(_) => self.at += 1,
                None => {
                    if self.err.is_none() {
                        self.fail(format!("{path}: unterminated map or list"));
                    }
                    return;
                }
            }
        }
    }

    fn labels(&mut self, path: Path) -> LabelSet<'a> {
        let mut out = Vec::new();
        self.members(path, |r, key, here| {
            let value = r.string(here);
            out.push((key.clone(), value));
        });
        LabelSet(out)
    }

    fn pod_into(&mut self, path: Path, pod: &mut Pod<'a>) {
        self.members(path, |r, key, here| match key.as_str() {
            "metadata" => r.pod_metadata(here, pod),
            "spec" => r.members(here, |r, key, here| match key.as_str() {
                "nodeName" => pod.spec.node_name = r.opt_string(here),
                "priorityClassName" => pod.spec.priority_class_name = r.opt_string(here),
                "priority" => pod.spec.priority = r.opt_i32(here),
                _ => r.skip(here),
            }),
            "status" => r.members(here, |r, key, here| match key.as_str() {
                "phase" => pod.status.phase = r.opt_string(here),
                _ => r.skip(here),
            }),
            _ => r.skip(here),
        })
    }

    fn pod_metadata(&mut self, path: Path, pod: &mut Pod<'a>) {
        let meta = &mut pod.metadata;
        self.members(path, |r, key, here| match key.as_str() {
            "name" => meta.name = r.opt_string(here).unwrap_or_default(),
            "uid" => meta.uid = r.opt_string(here).unwrap_or_default(),
            "labels" if r.pod_labels => meta.labels = r.labels(here),
            "annotations" => r.members(here, |r, key, here| {
                let slot = match key.as_str() {
                    COST_ANNOTATION => &mut meta.annotations.cost,
                    ZONE_ANNOTATION => &mut meta.annotations.zone,
                    RANK_ANNOTATION => &mut meta.annotations.rank,
                    _ => return r.skip(here),
                };
                *slot = Some(r.string(here));
            }),
            "ownerReferences" => {
                let mut controller = None;
                r.elements(here, |r, here| {
                    let owner = r.owner(here);
                    if controller.is_none() && owner.controller == Some(true) {
                        controller = Some(owner);
                    }
                });
                meta.controller = Controller(controller);
            }
            "creationTimestamp" => meta.creation_timestamp = r.opt_string(here),
            "resourceVersion" => meta.resource_version = r.opt_string(here),
            "deletionTimestamp" => {
                meta.deletion_timestamp = if r.null(here) {
                    None
                } else {
                    r.skip(here);
                    Some(IgnoredAnyEq)
                }
            }
            _ => r.skip(here),
        })
    }

    fn owner(&mut self, path: Path) -> OwnerReference<'a> {
        let mut owner = OwnerReference::default();
        if self.peek() != Some(b'{') {
            self.expected(path, "a map");
            return owner;
        }
        self.members(path, |r, key, here| match key.as_str() {
            "kind" => owner.kind = r.opt_string(here).unwrap_or_default(),
            "uid" => owner.uid = r.opt_string(here).unwrap_or_default(),
            "controller" => owner.controller = r.opt_bool(here),
            _ => r.skip(here),
        });
        owner
    }
}

/// Index of the first `"` or `\` at or after `from` (`bytes.len()` when
/// none), eight bytes at a time.
#[inline]
fn quote_or_backslash(bytes: &[u8], from: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has = |word: u64, byte: u8| {
        let x = word ^ (ONES * u64::from(byte));
        x.wrapping_sub(ONES) & !x & HIGHS
    };
    let mut at = from;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        let hits = has(word, b'"') | has(word, b'\\');
        if hits != 0 {
            // The lowest flagged byte is always a real match: false
            // positives only appear above a real one.
            return at + (hits.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    while let Some(&b) = bytes.get(at) {
        if b == b'"' || b == b'\\' {
            return at;
        }
        at += 1;
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::json;

    #[test]
    fn finds_quotes_and_backslashes_in_any_position() {
        for len in 0..20 {
            for pos in 0..len {
                for c in [b'"', b'\\'] {
                    let mut v = vec![b'a'; len];
                    v[pos] = c;
                    assert_eq!(quote_or_backslash(&v, 0), pos);
                    if pos > 0 {
                        assert_eq!(quote_or_backslash(&v, pos - 1), pos);
                    }
                }
            }
            assert_eq!(quote_or_backslash(&vec![b'a'; len], 0), len);
        }
        // Bytes just around '"' (0x22) and '\\' (0x5c), and high bytes.
        let v = [0x21, 0x23, 0x5b, 0x5d, 0xa2, 0xdc, 0xff, 0x00, 0x22];
        assert_eq!(quote_or_backslash(&v, 0), 8);
    }

    /// The reader and serde's derived views agree on every pod.
    #[test]
    fn agrees_with_the_serde_views() {
        let pods = [
            json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-1","namespace":"shop","uid":"u1",
                "labels":{"app":"web","a\"b":"x\\y\u{e9}\u{1F600}"},
                "annotations":{"other":"x","controller.kubernetes.io/pod-deletion-cost":"5",
                    "pod-deletion-cost.kubewarden.io/zone":"i","pod-deletion-cost.kubewarden.io/rank":"2"},
                "ownerReferences":[{"apiVersion":"v1","kind":"Node","name":"n","uid":"not-me"},
                    {"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-abc","uid":"rs1","controller":true,"blockOwnerDeletion":true}],
                "managedFields":[{"manager":"kube-controller-manager","fieldsV1":{"f:metadata":{"f:labels":{".":{}}}}}],
                "deletionTimestamp":"2026-01-01T00:00:00Z"},
                "spec":{"nodeName":"n1","priority":-1,"priorityClassName":"low","containers":[{"name":"c","args":["[","{","\"]"]}]},
                "status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}),
            json!({"metadata":{"name":null,"labels":null,"annotations":null,"ownerReferences":null,"deletionTimestamp":null},
                   "spec":null,"status":null}),
            json!({}),
            json!({"metadata":{"ownerReferences":[{"kind":"ReplicaSet","uid":"a","controller":false},{"kind":"ReplicaSet","uid":"b","controller":true},{"uid":"c","controller":true}]}}),
        ];
        for p in &pods {
            let text = p.to_string();
            let ours = pod(&text).unwrap();
            let theirs: Pod = serde_json::from_str(&text).unwrap();
            assert_eq!(ours, theirs, "{text}");
            let pretty = serde_json::to_string_pretty(p).unwrap();
            assert_eq!(pod(&pretty).unwrap(), theirs);
        }
        let list = json!({"apiVersion":"v1","kind":"PodList","metadata":{"resourceVersion":"7"},"items": pods}).to_string();
        let mut seen = Vec::new();
        each_pod(&list, true, |p| seen.push(p.clone())).unwrap();
        assert_eq!(seen.len(), 4);
        assert_eq!(
            seen[0].metadata.labels.get("a\"b"),
            Some("x\\y\u{e9}\u{1F600}")
        );
        assert!(matches!(
            seen[0].metadata.name.0,
            std::borrow::Cow::Borrowed(_)
        ));
        let mut unlabelled = Vec::new();
        each_pod(&list, false, |p| unlabelled.push(p.clone())).unwrap();
        assert!(unlabelled[0].metadata.labels.is_empty());
        assert_eq!(unlabelled[0].metadata.uid, seen[0].metadata.uid);
    }

    #[rstest]
    #[case::negative("-1", Some(-1))]
    #[case::zero("0", Some(0))]
    #[case::int32_min("-2147483648", Some(i32::MIN))]
    #[case::int32_max("2147483647", Some(i32::MAX))]
    #[case::null("null", None)]
    fn priorities_are_read(#[case] written: &str, #[case] priority: Option<i32>) {
        let text = format!(r#"{{"spec":{{"priority": {written} ,"nodeName":"n"}}}}"#);
        let p = pod(&text).unwrap();
        assert_eq!((p.spec.priority, p.node_name()), (priority, "n"));
        let theirs: Pod = serde_json::from_str(&text).unwrap();
        assert_eq!(p, theirs);
    }

    #[test]
    fn unicode_escapes_are_decoded() {
        let p = pod(r#"{"metadata":{"labels":{"a\u0062":"\ud83d\ude00\u00e9\n"}}}"#).unwrap();
        assert_eq!(p.metadata.labels.get("ab"), Some("\u{1F600}\u{e9}\n"));
    }

    #[test]
    fn envelope_keeps_object_and_settings_raw() {
        let text = r#"{"request":{"uid":"1","kind":{"group":"","version":"v1","kind":"Binding"},
            "subResource":"binding","operation":"CREATE","namespace":"shop",
            "userInfo":{"username":"system:kube-scheduler","groups":["a"]},
            "object":{"metadata":{"name":"p"}, "target":{"name":"n"}},"oldObject":null},
            "settings": {"rules": []}}"#;
        let env = envelope(text).unwrap();
        assert_eq!(env.kind.as_str(), "Binding");
        assert_eq!(env.sub_resource.as_str(), "binding");
        assert_eq!(env.operation.as_str(), "CREATE");
        assert_eq!(env.namespace.as_str(), "shop");
        assert_eq!(
            env.object,
            Some(r#"{"metadata":{"name":"p"}, "target":{"name":"n"}}"#)
        );
        assert_eq!(env.settings, Some(r#"{"rules": []}"#));
        let bare =
            envelope(r#"{"request":{"sub_resource":"binding","object":null},"settings":null}"#)
                .unwrap();
        assert_eq!(bare.sub_resource.as_str(), "binding");
        assert_eq!((bare.object, bare.settings), (None, None));
        assert_eq!(
            envelope(r#"{"settings":{}}"#).unwrap_err(),
            "missing field `request`"
        );
        assert_eq!(
            envelope(r#"{"request":{"kind":"Binding"}}"#).unwrap_err(),
            "request.kind: expected a map, found a string"
        );
    }

    #[rstest]
    #[case::trailing_text(
        r#"{"request":{}} x"#,
        "trailing characters after the request at byte 15"
    )]
    #[case::empty("", "expected a map, found the end of the request")]
    #[case::cut_short(
        r#"{"request":{"kind":"#,
        "request.kind: expected a map, found the end of the request"
    )]
    fn envelope_errors_speak_of_the_request(#[case] text: &str, #[case] want: &str) {
        assert_eq!(envelope(text).unwrap_err(), want);
    }

    #[test]
    fn node_labels() {
        let n = node(r#"{"apiVersion":"v1","kind":"Node","metadata":{"name":"n","annotations":{"x":"{"},"labels":{"zone":"a"}},"status":{}}"#).unwrap();
        assert_eq!(n.metadata.labels.get("zone"), Some("a"));
        assert!(
            node(r#"{"metadata":null}"#)
                .unwrap()
                .metadata
                .labels
                .is_empty()
        );
    }

    #[rstest]
    #[case::not_a_map(r#"[]"#, "expected a map, found a list")]
    #[case::label_not_a_string(
        r#"{"metadata":{"labels":{"app":3}}}"#,
        "metadata.labels.app: expected a string, found a number"
    )]
    #[case::controller_not_a_boolean(
        r#"{"metadata":{"ownerReferences":[{"controller":"yes"}]}}"#,
        "metadata.ownerReferences[0].controller: expected true or false, found a string"
    )]
    #[case::owner_references_not_a_list(
        r#"{"metadata":{"ownerReferences":{}}}"#,
        "metadata.ownerReferences: expected a list, found a map"
    )]
    #[case::node_name_not_a_string(
        r#"{"spec":{"nodeName":["n"]}}"#,
        "spec.nodeName: expected a string, found a list"
    )]
    #[case::priority_a_string(
        r#"{"spec":{"priority":"-1"}}"#,
        "spec.priority: expected an int32, found a string"
    )]
    #[case::priority_beyond_int32(
        r#"{"spec":{"priority":2147483648}}"#,
        "spec.priority: 2147483648 is not an int32"
    )]
    #[case::priority_a_fraction(
        r#"{"spec":{"priority":-1.0}}"#,
        "spec.priority: -1.0 is not an int32"
    )]
    #[case::priority_an_exponent(
        r#"{"spec":{"priority":1e3}}"#,
        "spec.priority: 1e3 is not an int32"
    )]
    #[case::priority_minus_zero(r#"{"spec":{"priority":-0}}"#, "spec.priority: -0 is not an int32")]
    #[case::priority_leading_zero(
        r#"{"spec":{"priority":01}}"#,
        "spec.priority: 01 is not an int32"
    )]
    #[case::priority_plus_sign(
        r#"{"spec":{"priority":+1}}"#,
        "spec.priority: expected an int32, found text that is not JSON"
    )]
    #[case::unclosed_map(
        r#"{"metadata":{"name":"a"}"#,
        "expected ',' or '}', found the end of the answer"
    )]
    #[case::annotation_key_with_dots(
        r#"{"metadata":{"annotations":{"a.b/c":1,"pod-deletion-cost.kubewarden.io/rank":2}}}"#,
        "metadata.annotations[\"pod-deletion-cost.kubewarden.io/rank\"]: expected a string, found a number"
    )]
    #[case::invalid_escape(
        r#"{"metadata":{"name":"a\q"}}"#,
        "metadata.name: an invalid escape in a string"
    )]
    #[case::unpaired_surrogate(
        r#"{"metadata":{"name":"\ud800"}}"#,
        "metadata.name: an unpaired surrogate in a string"
    )]
    #[case::trailing_characters(
        r#"{"metadata":{"name":"a"}} x"#,
        "trailing characters after the answer at byte 26"
    )]
    #[case::unterminated_skipped_list(
        r#"{"metadata":{"managedFields":[{"a":"b"}"#,
        "metadata.managedFields: unterminated map or list"
    )]
    #[case::unterminated_string(r#"{"metadata":{"name":"a"#, "metadata.name: unterminated string")]
    #[case::bad_literal(
        r#"{"spec":{"x":tru}}"#,
        "spec.x: expected a JSON value, found text that is not JSON"
    )]
    #[case::not_json(r#"{not json"#, "expected a key, found text that is not JSON")]
    #[case::empty("", "expected a map, found the end of the answer")]
    fn pod_errors_name_the_field(#[case] text: &str, #[case] want: &str) {
        assert_eq!(pod(text).err().as_deref(), Some(want));
    }

    #[rstest]
    #[case::items_not_a_list(r#"{"items":{}}"#, "items: expected a list, found a map")]
    #[case::item_not_a_map(r#"{"items":[{},3]}"#, "items[1]: expected a map, found a number")]
    fn list_errors_name_the_item(#[case] text: &str, #[case] want: &str) {
        assert_eq!(each_pod(text, true, |_| {}).unwrap_err(), want);
    }

    #[test]
    fn never_panics_on_truncations() {
        let text = json!({"metadata":{"name":"p","labels":{"a":"\u{e9}\"x"},"ownerReferences":[{"uid":"u","controller":true}]},
                          "spec":{"nodeName":"n"},"status":{"phase":"Running"}}).to_string();
        for cut in 0..text.len() {
            if let Some(prefix) = text.get(..cut) {
                assert!(pod(prefix).is_err(), "{prefix}");
            }
        }
    }
}

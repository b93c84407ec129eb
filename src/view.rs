//! One serde pass over a JSON document that keeps only the values the
//! policy reads, borrowed and unparsed (`&RawValue`), with where they are.
//! It reads the Binding (`binding`); every value is checked by serde_json's
//! rules on the way, the rules policy-server reads a returned object with.
//!
//! One visitor serves every map it descends into (a `Level` says which),
//! so that serde_json's parser is compiled into the module once for all of
//! them: a visitor per map made the module 6 KB larger, past its size
//! budget (docs/performance.md).

use crate::objects::{COST_ANNOTATION, RANK_ANNOTATION, Text, ZONE_ANNOTATION};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// The annotations the policy sets, in the order of `Found::own`.
pub const OWN_ANNOTATIONS: [&str; 3] = [COST_ANNOTATION, ZONE_ANNOTATION, RANK_ANNOTATION];

/// What a value was, when only a map of it is read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    #[default]
    Absent,
    Null,
    Map,
    Other,
}

/// Which map a pass is in.
#[derive(Clone, Copy)]
pub enum Level {
    /// A Binding.
    Binding,
    Metadata,
    Target,
    Annotations,
    /// A string, kept in `Found::text`.
    Text,
    /// Anything, checked and dropped.
    Skip,
}

/// What a pass found; a repeated key's last value counts, as it does for
/// the API server.
#[derive(Default)]
pub struct Found<'a> {
    pub kind: Option<&'a RawValue>,
    pub namespace: Option<&'a RawValue>,
    pub name: Option<&'a RawValue>,
    pub annotations: Option<&'a RawValue>,
    pub target: Shape,
    pub node: Option<&'a RawValue>,
    pub annotation_count: usize,
    /// The values under the policy's own keys, in `OWN_ANNOTATIONS` order.
    pub own: [Option<&'a RawValue>; 3],
    /// What a `Level::Text` pass read.
    pub text: Option<Text<'a>>,
}

/// Reads `text` at `level` into `found`.
#[inline(never)]
pub fn pass<'a>(
    text: &'a str,
    level: Level,
    found: &mut Found<'a>,
) -> Result<Shape, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let shape = Pass { level, found }.deserialize(&mut de)?;
    de.end()?;
    Ok(shape)
}

/// A value's text decoded when it is a string; `None` for any other value.
#[inline(never)]
pub fn string(raw: Option<&RawValue>) -> Result<Option<Text<'_>>, serde_json::Error> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let mut found = Found::default();
    pass(raw.get(), Level::Text, &mut found)?;
    Ok(found.text)
}

/// Where `raw`, a piece of `text`, starts.
pub fn start_of(text: &str, raw: &RawValue) -> usize {
    (raw.get().as_ptr() as usize).saturating_sub(text.as_ptr() as usize)
}

pub fn end_of(text: &str, raw: &RawValue) -> usize {
    start_of(text, raw) + raw.get().len()
}

struct Pass<'f, 'a> {
    level: Level,
    found: &'f mut Found<'a>,
}

impl<'f, 'de> Pass<'f, 'de> {
    fn skip(found: &'f mut Found<'de>) -> Self {
        Pass {
            level: Level::Skip,
            found,
        }
    }

    fn member<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        let found = &mut *self.found;
        let raw = match (self.level, key) {
            (Level::Binding, "metadata") => {
                (found.name, found.namespace, found.annotations) = (None, None, None);
                let level = Level::Metadata;
                map.next_value_seed(Pass { level, found })?;
                return Ok(());
            }
            (Level::Binding, "target") => {
                (found.kind, found.node) = (None, None);
                let level = Level::Target;
                found.target = map.next_value_seed(Pass { level, found })?;
                return Ok(());
            }
            (Level::Metadata, "namespace") => &mut found.namespace,
            (Level::Target, "kind") => &mut found.kind,
            (Level::Metadata, "name") => &mut found.name,
            (Level::Metadata, "annotations") => &mut found.annotations,
            (Level::Target, "name") => &mut found.node,
            (Level::Annotations, key) => {
                found.annotation_count += 1;
                let slot = OWN_ANNOTATIONS
                    .iter()
                    .position(|k| *k == key)
                    .and_then(|i| found.own.get_mut(i));
                match slot {
                    Some(slot) => {
                        let raw: &RawValue = map.next_value()?;
                        // A value left in place must parse on policy-server's side.
                        string(Some(raw)).map_err(de::Error::custom)?;
                        *slot = Some(raw);
                        return Ok(());
                    }
                    None => return map.next_value_seed(Pass::skip(found)).map(drop),
                }
            }
            _ => return map.next_value_seed(Pass::skip(found)).map(drop),
        };
        *raw = Some(map.next_value()?);
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Pass<'_, 'de> {
    type Value = Shape;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Shape, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Pass<'_, 'de> {
    type Value = Shape;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Shape, A::Error> {
        while let Some(key) = map.next_key::<Text<'de>>()? {
            self.member(key.as_str(), &mut map)?;
        }
        Ok(Shape::Map)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Shape, E> {
        Ok(Shape::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
        while seq.next_element_seed(Pass::skip(self.found))?.is_some() {}
        Ok(Shape::Other)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Shape, E> {
        Ok(Shape::Other)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Shape, E> {
        Ok(Shape::Other)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Shape, E> {
        Ok(Shape::Other)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Shape, E> {
        Ok(Shape::Other)
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Shape, E> {
        if let Level::Text = self.level {
            self.found.text = Some(Text::from(v));
        }
        Ok(Shape::Other)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Shape, E> {
        if let Level::Text = self.level {
            self.found.text = Some(Text::from(v.to_string()));
        }
        Ok(Shape::Other)
    }
}

//! Lenient serde views of BigPanda's webhook JSON: the typed shapes the parser reads, and
//! nothing else.
//!
//! Each view keeps only the keys the parser needs and deserializes straight from the body, with
//! no intermediate `serde_json::Value` tree (that costs about twice as much on the hot path).
//! Every view is *total*: a value of the wrong JSON type is consumed and treated as absent, never
//! an error, because BigPanda's objects differ between API versions and a webhook must not be
//! refused for a field we only display. The only errors that escape are the JSON syntax errors
//! of `serde_json` itself (including its recursion limit).

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::lifecycle::Millis;

/// The visit methods every lenient visitor needs for the JSON scalars it does not want: they
/// map to `$value` instead of serde's default "invalid type" error.
macro_rules! ignore_scalars {
    ($value:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($value)
        }
    };
}

/// The visit methods for a JSON string kept as a `Cow`: borrowed from the body when it has no
/// escapes (the common case), owned otherwise; `$wrap` makes the visitor's value of it.
macro_rules! cow_strings {
    ($wrap:expr) => {
        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok($wrap(Cow::Borrowed(v)))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok($wrap(Cow::Owned(v.to_owned())))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok($wrap(Cow::Owned(v)))
        }
    };
}

/// Consumes the rest of an array we do not read, without building anything.
fn drain_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

/// Consumes the rest of an object we do not read, without building anything.
fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

/// An object key, borrowed from the body when it has no escapes (the common case).
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            cow_strings!(Key);
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// Any JSON value, reduced to what a leaf field can mean. Containers keep only whether they
/// are empty (all `maintenance` needs).
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) enum Any<'de> {
    #[default]
    Absent,
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(Cow<'de, str>),
    Container {
        empty: bool,
    },
}

impl<'de> Deserialize<'de> for Any<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct AnyVisitor;
        impl<'de> Visitor<'de> for AnyVisitor {
            type Value = Any<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Any<'de>, E> {
                Ok(Any::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Any<'de>, E> {
                Ok(Any::I64(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Any<'de>, E> {
                Ok(Any::U64(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Any<'de>, E> {
                Ok(Any::F64(v))
            }
            cow_strings!(Any::Str);
            fn visit_unit<E: de::Error>(self) -> Result<Any<'de>, E> {
                Ok(Any::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Any<'de>, E> {
                Ok(Any::Null)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Any<'de>, A::Error> {
                let empty = seq.next_element::<IgnoredAny>()?.is_none();
                drain_seq(seq)?;
                Ok(Any::Container { empty })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Any<'de>, A::Error> {
                let empty = map.next_entry::<IgnoredAny, IgnoredAny>()?.is_none();
                drain_map(map)?;
                Ok(Any::Container { empty })
            }
        }
        d.deserialize_any(AnyVisitor)
    }
}

impl<'de> Any<'de> {
    /// A JSON string, as is.
    pub(super) fn into_string(self) -> Option<Cow<'de, str>> {
        match self {
            Any::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A JSON boolean.
    pub(super) fn as_bool(&self) -> Option<bool> {
        match self {
            Any::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// An identifier: a string, or a number written as its decimal text (BigPanda's older
    /// APIs and hand-written integrations send numeric ids).
    pub(super) fn into_id_text(self) -> Option<Cow<'de, str>> {
        match self {
            Any::Str(s) => Some(s),
            Any::U64(n) => Some(Cow::Owned(n.to_string())),
            Any::I64(n) => Some(Cow::Owned(n.to_string())),
            // Display of an f64 never uses exponent notation, so this is decimal text too.
            Any::F64(n) if n.is_finite() => Some(Cow::Owned(n.to_string())),
            _ => None,
        }
    }

    /// A timestamp in milliseconds: a number or numeric string in Unix seconds or milliseconds,
    /// or an RFC 3339 string. Anything else, and any value that is not a positive time
    /// representable in `Millis`, is absent: a version of zero or a negative time means "not
    /// set" in practice, and an absurd one must not win the "largest version" contest.
    pub(super) fn millis(&self) -> Option<Millis> {
        match self {
            Any::U64(n) => millis_from_int(*n),
            Any::I64(n) => u64::try_from(*n).ok().and_then(millis_from_int),
            Any::F64(n) => millis_from_float(*n),
            Any::Str(s) => {
                let s = s.trim();
                if let Ok(n) = s.parse::<u64>() {
                    millis_from_int(n)
                } else if let Ok(n) = s.parse::<f64>() {
                    millis_from_float(n)
                } else {
                    let t = humantime::parse_rfc3339_weak(s).ok()?;
                    let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
                    Millis::try_from(d.as_millis()).ok().filter(|&ms| ms > 0)
                }
            }
            _ => None,
        }
    }
}

/// Values below this are Unix seconds, at or above it milliseconds: 10^11 seconds is the year
/// 5138, 10^11 milliseconds is March 1973, so no real timestamp is ambiguous.
const SECONDS_BELOW: u64 = 100_000_000_000;

fn millis_from_int(n: u64) -> Option<Millis> {
    let ms = if n < SECONDS_BELOW { n * 1000 } else { n };
    Millis::try_from(ms).ok().filter(|&ms| ms > 0)
}

fn millis_from_float(n: f64) -> Option<Millis> {
    if !n.is_finite() || n <= 0.0 {
        return None;
    }
    let ms = if n < SECONDS_BELOW as f64 {
        n * 1000.0
    } else {
        n
    };
    // `as` saturates; the bound keeps a saturated i64::MAX from passing as a real time.
    (ms < 9.0e18).then(|| ms.round() as Millis)
}

/// A JSON object read key by key into a view. Implementors must consume exactly one value for
/// every key they are given (`IgnoredAny` for keys they do not read).
pub(super) trait Fields<'de>: Default {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error>;
}

/// An object view, or `None` when the JSON value there was not an object.
pub(super) struct Obj<T>(pub Option<T>);

impl<'de, T: Fields<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ObjVisitor(PhantomData))
    }
}

struct ObjVisitor<T>(PhantomData<T>);

impl<'de, T: Fields<'de>> Visitor<'de> for ObjVisitor<T> {
    type Value = Obj<T>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    ignore_scalars!(Obj(None));
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Obj<T>, A::Error> {
        drain_seq(seq)?;
        Ok(Obj(None))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Obj<T>, A::Error> {
        let mut view = T::default();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            view.field(&key, &mut map)?;
        }
        Ok(Obj(Some(view)))
    }
}

/// An array of object views; elements that are not objects are skipped.
pub(super) struct List<T>(pub Vec<T>);

impl<T> Default for List<T> {
    fn default() -> Self {
        List(Vec::new())
    }
}

impl<'de, T: Fields<'de>> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ListVisitor<T>(PhantomData<T>);
        impl<'de, T: Fields<'de>> Visitor<'de> for ListVisitor<T> {
            type Value = List<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON array of objects")
            }
            ignore_scalars!(List(Vec::new()));
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<List<T>, A::Error> {
                drain_map(map)?;
                Ok(List(Vec::new()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<List<T>, A::Error> {
                // The size hint is untrusted input: cap the pre-allocation.
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
                while let Some(Obj(item)) = seq.next_element::<Obj<T>>()? {
                    items.extend(item);
                }
                Ok(List(items))
            }
        }
        d.deserialize_any(ListVisitor(PhantomData))
    }
}

/// Name/value pairs, from either a list of `{"name"|"id", "value"}` objects or an object map
/// `{"host": "db-1"}`. Values that are not strings keep their JSON text (BigPanda tag values
/// can be lists).
#[derive(Debug, Default)]
pub(super) struct Tags<'de>(pub Vec<(Cow<'de, str>, Cow<'de, str>)>);

/// A tag value as text: a string as is, anything else as its JSON text. Strings, nearly every
/// tag, are taken without building a `serde_json::Value` first (that was a tenth of a webhook's
/// CPU in the load profile).
struct TagValue<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for TagValue<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TagValueVisitor;
        fn json<'de, E>(v: impl Into<Value>) -> Result<TagValue<'de>, E> {
            Ok(TagValue(Cow::Owned(v.into().to_string())))
        }
        impl<'de> Visitor<'de> for TagValueVisitor {
            type Value = TagValue<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a tag value")
            }
            cow_strings!(TagValue);
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<TagValue<'de>, E> {
                json(v)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<TagValue<'de>, E> {
                json(v)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<TagValue<'de>, E> {
                json(v)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<TagValue<'de>, E> {
                json(v)
            }
            fn visit_unit<E: de::Error>(self) -> Result<TagValue<'de>, E> {
                json(Value::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<TagValue<'de>, E> {
                json(Value::Null)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<TagValue<'de>, A::Error> {
                json(Value::deserialize(de::value::SeqAccessDeserializer::new(
                    seq,
                ))?)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<TagValue<'de>, A::Error> {
                json(Value::deserialize(de::value::MapAccessDeserializer::new(
                    map,
                ))?)
            }
        }
        d.deserialize_any(TagValueVisitor)
    }
}

#[derive(Default)]
struct TagPair<'de> {
    name: Any<'de>,
    id: Any<'de>,
    value: Option<TagValue<'de>>,
}

impl<'de> Fields<'de> for TagPair<'de> {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "name" => self.name = map.next_value()?,
            "id" => self.id = map.next_value()?,
            "value" => self.value = Some(map.next_value()?),
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for Tags<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TagsVisitor;
        impl<'de> Visitor<'de> for TagsVisitor {
            type Value = Tags<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("tags as a list of name/value objects or an object")
            }
            ignore_scalars!(Tags(Vec::new()));
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tags<'de>, A::Error> {
                let mut tags = Vec::new();
                while let Some(Obj(pair)) = seq.next_element::<Obj<TagPair<'de>>>()? {
                    let Some(pair) = pair else { continue };
                    let name = pair.name.into_id_text().or_else(|| pair.id.into_id_text());
                    if let (Some(name), Some(value)) = (name, pair.value) {
                        tags.push((name, value.0));
                    }
                }
                Ok(Tags(tags))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tags<'de>, A::Error> {
                let mut tags = Vec::new();
                while let Some((Key(name), value)) = map.next_entry::<Key<'de>, TagValue<'de>>()? {
                    tags.push((name, value.0));
                }
                Ok(Tags(tags))
            }
        }
        d.deserialize_any(TagsVisitor)
    }
}

/// `metadata` of the webhook envelope.
#[derive(Default)]
pub(super) struct Metadata<'de> {
    pub event_type: Any<'de>,
    pub environment_id: Any<'de>,
}

impl<'de> Fields<'de> for Metadata<'de> {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "event_type" => self.event_type = map.next_value()?,
            "environment_id" => self.environment_id = map.next_value()?,
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// An object of which only `id` matters (an environment in `incident.environments`).
#[derive(Default)]
struct IdOnly<'de> {
    id: Any<'de>,
}

impl<'de> Fields<'de> for IdOnly<'de> {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "id" => self.id = map.next_value()?,
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// `incident.environments`: only the first element is used, as an id string or an environment
/// object with an `id`.
#[derive(Debug, Default)]
pub(super) struct FirstEnvironment(pub Option<String>);

impl<'de> Deserialize<'de> for FirstEnvironment {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EnvRef(Option<String>);
        impl<'de> Deserialize<'de> for EnvRef {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct EnvRefVisitor;
                impl<'de> Visitor<'de> for EnvRefVisitor {
                    type Value = EnvRef;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str("an environment id or object")
                    }
                    fn visit_bool<E: de::Error>(self, _: bool) -> Result<EnvRef, E> {
                        Ok(EnvRef(None))
                    }
                    fn visit_i64<E: de::Error>(self, v: i64) -> Result<EnvRef, E> {
                        Ok(EnvRef(Some(v.to_string())))
                    }
                    fn visit_u64<E: de::Error>(self, v: u64) -> Result<EnvRef, E> {
                        Ok(EnvRef(Some(v.to_string())))
                    }
                    fn visit_f64<E: de::Error>(self, _: f64) -> Result<EnvRef, E> {
                        Ok(EnvRef(None))
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<EnvRef, E> {
                        Ok(EnvRef(Some(v.to_owned())))
                    }
                    fn visit_unit<E: de::Error>(self) -> Result<EnvRef, E> {
                        Ok(EnvRef(None))
                    }
                    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<EnvRef, A::Error> {
                        drain_seq(seq)?;
                        Ok(EnvRef(None))
                    }
                    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<EnvRef, A::Error> {
                        let Obj(env) = ObjVisitor::<IdOnly<'de>>(PhantomData).visit_map(map)?;
                        Ok(EnvRef(
                            env.and_then(|e| e.id.into_id_text()).map(Cow::into_owned),
                        ))
                    }
                }
                d.deserialize_any(EnvRefVisitor)
            }
        }

        struct EnvsVisitor;
        impl<'de> Visitor<'de> for EnvsVisitor {
            type Value = FirstEnvironment;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of environments")
            }
            ignore_scalars!(FirstEnvironment(None));
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<FirstEnvironment, A::Error> {
                drain_map(map)?;
                Ok(FirstEnvironment(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<FirstEnvironment, A::Error> {
                let first = seq.next_element::<EnvRef>()?.and_then(|e| e.0);
                drain_seq(seq)?;
                Ok(FirstEnvironment(first))
            }
        }
        d.deserialize_any(EnvsVisitor)
    }
}

/// `incident.snooze`: an object with `snoozed`, or (leniently) a bare boolean.
#[derive(Debug, Default)]
pub(super) struct Snooze(pub Option<bool>);

#[derive(Default)]
struct SnoozeFields<'de> {
    snoozed: Any<'de>,
}

impl<'de> Fields<'de> for SnoozeFields<'de> {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "snoozed" => self.snoozed = map.next_value()?,
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for Snooze {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SnoozeVisitor;
        impl<'de> Visitor<'de> for SnoozeVisitor {
            type Value = Snooze;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a snooze object")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Snooze, E> {
                Ok(Snooze(Some(v)))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Snooze, E> {
                Ok(Snooze(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Snooze, E> {
                Ok(Snooze(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Snooze, E> {
                Ok(Snooze(None))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Snooze, E> {
                Ok(Snooze(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Snooze, E> {
                Ok(Snooze(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Snooze, A::Error> {
                drain_seq(seq)?;
                Ok(Snooze(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Snooze, A::Error> {
                let Obj(fields) = ObjVisitor::<SnoozeFields<'de>>(PhantomData).visit_map(map)?;
                Ok(Snooze(fields.and_then(|f| f.snoozed.as_bool())))
            }
        }
        d.deserialize_any(SnoozeVisitor)
    }
}

/// One element of `incident.alerts` (v2 `id` or v1 `alert_id`).
#[derive(Default)]
pub(super) struct Alert<'de> {
    pub id: Any<'de>,
    pub alert_id: Any<'de>,
    pub status: Any<'de>,
    pub source_system: Any<'de>,
    pub description: Any<'de>,
    pub primary_property: Any<'de>,
    pub secondary_property: Any<'de>,
    pub tags: Tags<'de>,
}

impl<'de> Fields<'de> for Alert<'de> {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "id" => self.id = map.next_value()?,
            "alert_id" => self.alert_id = map.next_value()?,
            "status" => self.status = map.next_value()?,
            "source_system" => self.source_system = map.next_value()?,
            "description" => self.description = map.next_value()?,
            "primary_property" => self.primary_property = map.next_value()?,
            "secondary_property" => self.secondary_property = map.next_value()?,
            "tags" => self.tags = map.next_value()?,
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// The incident object: `body.incident`, or the body itself when it is a bare incident.
#[derive(Default)]
pub(super) struct Incident<'de> {
    pub id: Any<'de>,
    pub active: Any<'de>,
    pub resolved: Any<'de>,
    pub status: Any<'de>,
    pub severity: Any<'de>,
    /// The largest of the update timestamps seen so far.
    pub version: Option<Millis>,
    pub environment: FirstEnvironment,
    pub alerts: List<Alert<'de>>,
    pub incident_tags: Tags<'de>,
    pub flapping: Any<'de>,
    pub snooze: Snooze,
    pub is_snoozed: Any<'de>,
    pub maintenance: Any<'de>,
    pub start: Option<Millis>,
    pub started_on: Option<Millis>,
}

impl<'de> Fields<'de> for Incident<'de> {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "id" => self.id = map.next_value()?,
            "active" => self.active = map.next_value()?,
            "resolved" => self.resolved = map.next_value()?,
            "status" => self.status = map.next_value()?,
            "severity" => self.severity = map.next_value()?,
            // v2 names first, then the v1 (Alert-object style) names; all compete for the max.
            "updated_at" | "changed_at" | "end" | "updatedOn" | "changedOn" | "endedOn" => {
                let at = map.next_value::<Any>()?.millis();
                self.version = self.version.max(at);
            }
            "environments" => self.environment = map.next_value()?,
            "alerts" => self.alerts = map.next_value()?,
            "incident_tags" => self.incident_tags = map.next_value()?,
            "flapping" => self.flapping = map.next_value()?,
            "snooze" => self.snooze = map.next_value()?,
            "is_snoozed" => self.is_snoozed = map.next_value()?,
            "maintenance" => self.maintenance = map.next_value()?,
            "start" => self.start = map.next_value::<Any>()?.millis(),
            "started_on" | "startedOn" => self.started_on = map.next_value::<Any>()?.millis(),
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// The whole webhook body: the envelope keys, plus the incident keys read as a bare incident in
/// case there is no `incident` object.
#[derive(Default)]
pub(super) struct Body<'de> {
    pub incident: Option<Incident<'de>>,
    pub bare: Incident<'de>,
    pub incident_id: Any<'de>,
    pub event_type: Any<'de>,
    pub event: Any<'de>,
    pub r#type: Any<'de>,
    pub metadata: Option<Metadata<'de>>,
}

impl<'de> Fields<'de> for Body<'de> {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "incident" => {
                // A non-object `incident` is absent; a later object one still counts.
                if let Obj(Some(incident)) = map.next_value()? {
                    self.incident = Some(incident);
                }
            }
            "incident_id" => self.incident_id = map.next_value()?,
            "event_type" => self.event_type = map.next_value()?,
            "event" => self.event = map.next_value()?,
            "type" => self.r#type = map.next_value()?,
            "metadata" => {
                if let Obj(Some(metadata)) = map.next_value()? {
                    self.metadata = Some(metadata);
                }
            }
            _ => self.bare.field(key, map)?,
        }
        Ok(())
    }
}

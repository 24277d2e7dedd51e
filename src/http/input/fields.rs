//! The fields of a request (a JSON or form body, or a query string) and how they
//! are read into a typed request.
//!
//! A request is a struct deriving `Deserialize` (and `ToSchema` or `IntoParams`
//! for the OpenAPI document): its field names and `#[serde(alias)]`es are the
//! names accepted, `#[serde(deny_unknown_fields)]` refuses any other, and its
//! field types parse the values (`super::values`). What serde does not do is done
//! here, once for every request: names match whatever their case, a key carrier
//! is not a field, a value given twice under any of its names must agree, and
//! every error is one sentence naming the field as the contract wants.

use std::cell::RefCell;
use std::fmt;

use percent_encoding::percent_decode;
use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::{media_type, RawBody};
use crate::auth::ApiKey;
use crate::error::{Error, Result};

/// Where a set of fields came from; it decides what a message calls them and
/// where a key may hide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Json,
    Form,
    Query,
}

/// The top-level fields of a JSON or form body, or the parameters of a query
/// string, as they arrived. Form and query values are strings; JSON values keep
/// their type so that a number where text belongs is named in the error.
#[derive(Debug)]
pub struct Fields {
    source: Source,
    entries: Vec<(String, Value)>,
    /// Put before field names in messages: `packages[3].` for a batch's items.
    prefix: String,
}

impl Fields {
    pub fn parse(body: &RawBody) -> Result<Fields> {
        match media_type(body.content_type.as_deref()).as_deref() {
            Some("application/json") => Self::parse_json(&body.bytes),
            Some("application/x-www-form-urlencoded") => {
                // curl's -d labels JSON as a form; say so instead of reporting
                // every field missing.
                if matches!(body.bytes.trim_ascii_start().first(), Some(b'{' | b'[')) {
                    return Err(Error::invalid(
                        "The request body looks like JSON but was sent as a form; JSON needs the header Content-Type: application/json.",
                    ));
                }
                Self::parse_pairs(Source::Form, &body.bytes)
            }
            _ => Err(Error::UnsupportedMediaType),
        }
    }

    /// The parameters of a query string (absent means none).
    pub fn from_query(query: Option<&str>) -> Result<Fields> {
        Self::parse_pairs(Source::Query, query.unwrap_or_default().as_bytes())
    }

    /// The members of one JSON object inside a body (a batch's item), named in
    /// messages after `prefix`.
    pub fn object(object: serde_json::Map<String, Value>, prefix: String) -> Fields {
        Fields {
            source: Source::Json,
            entries: object.into_iter().collect(),
            prefix,
        }
    }

    /// The prefix that names the members of this set's field `name`, at `index`.
    pub fn item_prefix(&self, name: &str, index: usize) -> String {
        format!("{}{name}[{index}].", self.prefix)
    }

    fn parse_json(bytes: &[u8]) -> Result<Fields> {
        // Some Windows tools start UTF-8 with a byte-order mark; JSON does not allow it.
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| Error::invalid(format!("The request body is not valid JSON: {e}.")))?;
        let Value::Object(object) = value else {
            return Err(Error::invalid("The request body must be a JSON object."));
        };
        Ok(Fields::object(object, String::new()))
    }

    fn parse_pairs(source: Source, bytes: &[u8]) -> Result<Fields> {
        // serde_urlencoded replaces bytes that are not UTF-8 with U+FFFD, which
        // would turn a garbled value into a different, valid-looking one.
        for part in bytes.split(|&b| b == b'&') {
            let part = part
                .iter()
                .map(|&b| if b == b'+' { b' ' } else { b })
                .collect::<Vec<u8>>();
            let decoded: Vec<u8> = percent_decode(&part).collect();
            if std::str::from_utf8(&decoded).is_err() {
                let name = part.split(|&b| b == b'=').next().unwrap_or_default();
                let name: Vec<u8> = percent_decode(name).collect();
                let noun = if source == Source::Query {
                    "Parameter"
                } else {
                    "Field"
                };
                return Err(Error::invalid(format!(
                    "{noun} \"{}\" is not valid percent-encoded UTF-8.",
                    String::from_utf8_lossy(&name)
                )));
            }
        }
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(bytes).map_err(|e| {
            Error::invalid(match source {
                Source::Query => format!("The query string is not valid: {e}."),
                _ => format!("The request body is not valid form encoding: {e}."),
            })
        })?;
        Ok(Fields {
            source,
            prefix: String::new(),
            entries: pairs
                .into_iter()
                .map(|(name, value)| (name, Value::String(value)))
                .collect(),
        })
    }

    /// "Field" in bodies, "Parameter" in query strings.
    fn noun(&self) -> &'static str {
        match self.source {
            Source::Query => "Parameter",
            _ => "Field",
        }
    }

    /// The error for `name` breaking `rule`: `Field "name" <rule>.`
    pub fn error(&self, name: &str, rule: impl fmt::Display) -> Error {
        Error::invalid(format!("{} \"{}{name}\" {rule}.", self.noun(), self.prefix))
    }

    /// The key carried in the body: JSON property `API_Key`, or form field `key`.
    /// (A key in the query string is read with the headers.)
    pub fn api_key(&self) -> Option<ApiKey> {
        let carrier = match self.source {
            Source::Json => "API_Key",
            Source::Form => "key",
            Source::Query => return None,
        };
        self.entries.iter().find_map(|(name, value)| match value {
            Value::String(text) if name.eq_ignore_ascii_case(carrier) => {
                Some(ApiKey::from_presented(text))
            }
            _ => None,
        })
    }

    /// Whether `name` may carry the caller's key rather than be a field: `key`
    /// anywhere and `API_Key` in a body, unless the request declares it.
    fn is_carrier(&self, name: &str) -> bool {
        name.eq_ignore_ascii_case("key")
            || (self.source != Source::Query && name.eq_ignore_ascii_case("API_Key"))
    }

    /// The request `T` these fields make, or the one-sentence error of the first
    /// field (in `T`'s order) that breaks its rule.
    ///
    /// A name repeated under one spelling is settled while the fields are
    /// gathered (one pass). serde reports a field given under two spellings (a
    /// name and its alias) without saying which entries; each such report
    /// drops one entry or ends the read, so there are at most as many passes
    /// as the request has names, whatever the client sends.
    pub fn read<T: DeserializeOwned>(&self) -> Result<T> {
        // Entries left out because an earlier one gave the same field the same
        // value under another spelling.
        let mut dropped = vec![false; self.entries.len()];
        loop {
            let delivered = RefCell::new(Vec::new());
            let error = match T::deserialize(self.reader(None, &dropped, &delivered)) {
                Ok(request) => return Ok(request),
                Err(error) => error,
            };
            let ReadError::Duplicate = error else {
                return Err(self.sentence(error));
            };
            // serde says which field, not which two entries: the earlier one is
            // the entry that, read alone with the later, is a duplicate too.
            let delivered = delivered.into_inner();
            let Some((&later, before)) = delivered.split_last() else {
                return Err(Error::invalid("The request gives a field twice."));
            };
            let earlier = before.iter().copied().find(|&index| {
                let pair = [index, later];
                let probe = T::deserialize(self.reader(Some(&pair), &dropped, &RefCell::default()));
                matches!(probe, Err(ReadError::Duplicate))
            });
            let Some(earlier) = earlier else {
                return Err(self.twice(later, later));
            };
            if same_value(&self.entries[earlier].1, &self.entries[later].1) {
                // Every entry of the later spelling goes: gathering the fields
                // has already refused any of them with another value.
                let spelling = &self.entries[later].0;
                for (index, (name, _)) in self.entries.iter().enumerate() {
                    dropped[index] |= name.eq_ignore_ascii_case(spelling);
                }
                continue;
            }
            return Err(self.twice(earlier, later));
        }
    }

    /// The error for two entries of one field with different values, named in
    /// the order the client gave them.
    fn twice(&self, one: usize, other: usize) -> Error {
        let (first, second) = (
            &self.entries[one.min(other)].0,
            &self.entries[one.max(other)].0,
        );
        let (noun, prefix) = (self.noun(), &self.prefix);
        Error::invalid(if first.eq_ignore_ascii_case(second) {
            format!("{noun} \"{prefix}{first}\" is given twice with different values.")
        } else {
            format!(
                "{noun}s \"{prefix}{first}\" and \"{prefix}{second}\" are the same {} but have different values.",
                noun.to_lowercase()
            )
        })
    }

    fn reader<'a>(
        &'a self,
        pick: Option<&'a [usize]>,
        dropped: &'a [bool],
        delivered: &'a RefCell<Vec<usize>>,
    ) -> Reader<'a> {
        Reader {
            fields: self,
            pick,
            dropped,
            delivered,
        }
    }

    /// A reading error as the one sentence the client sees.
    fn sentence(&self, error: ReadError) -> Error {
        match error {
            ReadError::Named(error) => error,
            ReadError::Missing(name) => self.error(name, "is required"),
            ReadError::Unknown { given, expected } => {
                let mut names = expected.to_vec();
                if self.source == Source::Json {
                    names.push("API_Key");
                }
                names.push("key");
                let (last, rest) = names.split_last().expect("key is always accepted");
                let accepted = if rest.is_empty() {
                    format!("the only accepted one is {last}")
                } else {
                    format!("the accepted ones are {} and {last}", rest.join(", "))
                };
                Error::invalid(format!(
                    "{} \"{}{given}\" is not known here; {accepted}.",
                    self.noun(),
                    self.prefix
                ))
            }
            // A rule of the request as a whole rather than of one field.
            ReadError::Rule(rule) => Error::invalid(format!("The request {rule}.")),
            ReadError::Twice(one, other) => self.twice(one, other),
            ReadError::Duplicate => unreachable!("read handles duplicates"),
        }
    }
}

/// Two values of one field that mean the same (text compares trimmed).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(a), Value::String(b)) => a.trim() == b.trim(),
        _ => a == b,
    }
}

/// How an error message names the type of a JSON value ("a number").
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "true or false",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Why fields could not be read: serde's errors, kept apart until `Fields`
/// can word them.
#[derive(Debug)]
enum ReadError {
    /// A rule a value broke, phrased to follow the field's name.
    Rule(String),
    /// A whole sentence that already names its field.
    Named(Error),
    Missing(&'static str),
    Unknown {
        given: String,
        expected: &'static [&'static str],
    },
    /// A field given twice under two spellings; `Fields::read` finds which
    /// entries.
    Duplicate,
    /// These two entries give one spelling different values.
    Twice(usize, usize),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Rule(rule) => f.write_str(rule),
            ReadError::Named(error) => error.fmt(f),
            ReadError::Missing(name) => write!(f, "{name} is required"),
            ReadError::Unknown { given, .. } => write!(f, "{given} is not known"),
            ReadError::Duplicate | ReadError::Twice(..) => f.write_str("a field is given twice"),
        }
    }
}

impl std::error::Error for ReadError {}

impl de::Error for ReadError {
    fn custom<T: fmt::Display>(rule: T) -> Self {
        ReadError::Rule(rule.to_string())
    }

    fn invalid_type(unexpected: de::Unexpected, expected: &dyn de::Expected) -> Self {
        let kind = match unexpected {
            de::Unexpected::Bool(_) => "true or false",
            de::Unexpected::Unsigned(_) | de::Unexpected::Signed(_) | de::Unexpected::Float(_) => {
                "a number"
            }
            de::Unexpected::Char(_) | de::Unexpected::Str(_) => "a string",
            de::Unexpected::Unit => "null",
            de::Unexpected::Seq => "an array",
            de::Unexpected::Map => "an object",
            _ => "something else",
        };
        ReadError::Rule(format!("must be {expected}, not {kind}"))
    }

    fn invalid_value(_: de::Unexpected, expected: &dyn de::Expected) -> Self {
        ReadError::Rule(format!("must be {expected}"))
    }

    fn missing_field(field: &'static str) -> Self {
        ReadError::Missing(field)
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        ReadError::Unknown {
            given: field.to_owned(),
            expected,
        }
    }

    fn duplicate_field(_: &'static str) -> Self {
        ReadError::Duplicate
    }
}

/// The fields as a serde map: each entry under the request's own spelling of
/// its name, declared fields in the request's order after any undeclared ones
/// (so that a refused unknown name is reported first), nulls as absent.
struct Reader<'a> {
    fields: &'a Fields,
    /// Only these entries (to find the two halves of a duplicate).
    pick: Option<&'a [usize]>,
    /// By entry: left out.
    dropped: &'a [bool],
    /// The entries whose keys were read, in order.
    delivered: &'a RefCell<Vec<usize>>,
}

impl<'de> de::Deserializer<'de> for Reader<'de> {
    type Error = ReadError;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        declared: &'static [&'static str],
        visitor: V,
    ) -> std::result::Result<V::Value, ReadError> {
        let all = self.fields.entries.iter().enumerate();
        let picked: Box<dyn Iterator<Item = (usize, &(String, Value))>> = match self.pick {
            Some(pick) => Box::new(
                pick.iter()
                    .map(|&index| (index, &self.fields.entries[index])),
            ),
            None => Box::new(all),
        };
        let mut entries: Vec<(usize, usize, &'de str, &'de Value)> = Vec::new();
        // By declared name: where its first entry is in `entries`.
        let mut first: Vec<Option<usize>> = vec![None; declared.len()];
        for (index, (given, value)) in picked {
            if value.is_null() || self.dropped[index] {
                continue;
            }
            let position = declared
                .iter()
                .position(|name| name.eq_ignore_ascii_case(given));
            match position {
                Some(position) => match first[position] {
                    // The same spelling again: one value, or a refusal.
                    Some(at) if same_value(entries[at].3, value) => {}
                    Some(at) => return Err(ReadError::Twice(entries[at].1, index)),
                    None => {
                        first[position] = Some(entries.len());
                        entries.push((position + 1, index, declared[position], value));
                    }
                },
                None if self.fields.is_carrier(given) => {}
                None => entries.push((0, index, given, value)),
            }
        }
        entries.sort_by_key(|(order, ..)| *order);
        visitor.visit_map(Entries {
            fields: self.fields,
            entries: entries.into_iter(),
            value: None,
            delivered: self.delivered,
        })
    }

    fn deserialize_any<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, ReadError> {
        self.deserialize_struct("", &[], visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

struct Entries<'a> {
    fields: &'a Fields,
    entries: std::vec::IntoIter<(usize, usize, &'a str, &'a Value)>,
    value: Option<(&'a str, &'a Value)>,
    delivered: &'a RefCell<Vec<usize>>,
}

impl<'a> MapAccess<'a> for Entries<'a> {
    type Error = ReadError;

    fn next_key_seed<K: DeserializeSeed<'a>>(
        &mut self,
        seed: K,
    ) -> std::result::Result<Option<K::Value>, ReadError> {
        let Some((_, index, name, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.delivered.borrow_mut().push(index);
        self.value = Some((name, value));
        seed.deserialize(BorrowedStrDeserializer::new(name))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'a>>(
        &mut self,
        seed: V,
    ) -> std::result::Result<V::Value, ReadError> {
        let (name, value) = self
            .value
            .take()
            .expect("serde reads a value after its key");
        seed.deserialize(ValueReader(value))
            .map_err(|error| match error {
                ReadError::Rule(rule) => ReadError::Named(self.fields.error(name, rule)),
                // From inside the value (an object's member twice): not one of
                // this request's fields.
                ReadError::Duplicate | ReadError::Twice(..) => {
                    ReadError::Named(self.fields.error(name, "has a member given twice"))
                }
                other => other,
            })
    }
}

/// One field's value. Form and query values are all text, so text also reads as
/// true or false (`deserialize_bool`); anything else is JSON's own type.
struct ValueReader<'a>(&'a Value);

impl<'de> de::Deserializer<'de> for ValueReader<'de> {
    type Error = ReadError;

    fn deserialize_any<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, ReadError> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(value) => visitor.visit_bool(*value),
            Value::Number(number) => match (number.as_u64(), number.as_i64()) {
                (Some(value), _) => visitor.visit_u64(value),
                (None, Some(value)) => visitor.visit_i64(value),
                _ => visitor.visit_f64(number.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(text) => visitor.visit_borrowed_str(text),
            Value::Array(items) => visitor.visit_seq(Items(items.iter())),
            Value::Object(members) => visitor.visit_map(Members {
                members: members.iter(),
                value: None,
            }),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, ReadError> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, ReadError> {
        match self.0 {
            Value::Bool(value) => visitor.visit_bool(*value),
            Value::String(text) if text.eq_ignore_ascii_case("true") => visitor.visit_bool(true),
            Value::String(text) if text.eq_ignore_ascii_case("false") => visitor.visit_bool(false),
            _ => Err(ReadError::Rule("must be true or false".to_owned())),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> std::result::Result<V::Value, ReadError> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

struct Items<'a>(std::slice::Iter<'a, Value>);

impl<'a> SeqAccess<'a> for Items<'a> {
    type Error = ReadError;

    fn next_element_seed<T: DeserializeSeed<'a>>(
        &mut self,
        seed: T,
    ) -> std::result::Result<Option<T::Value>, ReadError> {
        self.0
            .next()
            .map(|item| seed.deserialize(ValueReader(item)))
            .transpose()
    }
}

struct Members<'a> {
    members: serde_json::map::Iter<'a>,
    value: Option<&'a Value>,
}

impl<'a> MapAccess<'a> for Members<'a> {
    type Error = ReadError;

    fn next_key_seed<K: DeserializeSeed<'a>>(
        &mut self,
        seed: K,
    ) -> std::result::Result<Option<K::Value>, ReadError> {
        let Some((name, value)) = self.members.next() else {
            return Ok(None);
        };
        self.value = Some(value);
        seed.deserialize(BorrowedStrDeserializer::new(name))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'a>>(
        &mut self,
        seed: V,
    ) -> std::result::Result<V::Value, ReadError> {
        let value = self
            .value
            .take()
            .expect("serde reads a value after its key");
        seed.deserialize(ValueReader(value))
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::super::{TextList, Whole, WholeRule};
    use super::*;

    fn body(content_type: &str, text: &str) -> RawBody {
        RawBody::new(Some(content_type), text.as_bytes())
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Item {
        #[serde(alias = "packageName")]
        name: Option<String>,
        #[serde(alias = "groupName")]
        group: Option<String>,
        version: Option<String>,
    }

    #[test]
    fn json_and_form_fields_match_case_insensitively_with_aliases() {
        let json = body(
            "Application/JSON; charset=utf-8",
            r#"{"PACKAGENAME":"a","group":null,"API_Key":"k"}"#,
        );
        let fields = Fields::parse(&json).unwrap();
        let item: Item = fields.read().unwrap();
        assert_eq!(item.name.as_deref(), Some("a"));
        assert_eq!(item.group, None);
        assert_eq!(item.version, None);
        assert_eq!(fields.api_key().unwrap().expose(), "k");
        let with_bom = body("application/json", "\u{feff}{\"name\":\"b\"}");
        let item: Item = Fields::parse(&with_bom).unwrap().read().unwrap();
        assert_eq!(item.name.as_deref(), Some("b"));

        let form = Fields::parse(&body(
            "application/x-www-form-urlencoded",
            "Name=%40x&key=k2",
        ))
        .unwrap();
        assert_eq!(form.read::<Item>().unwrap().name.as_deref(), Some("@x"));
        assert_eq!(form.api_key().unwrap().expose(), "k2");
    }

    #[test]
    fn a_field_given_twice_must_agree() {
        let read = |text: &str| {
            Fields::parse(&body("application/json", text))
                .unwrap()
                .read::<Item>()
                .map(|item| item.name)
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            read(r#"{"name":"a","packageName":"b"}"#).unwrap_err(),
            "Fields \"name\" and \"packageName\" are the same field but have different values."
        );
        // The same value under two spellings (white space aside) is one value.
        let same = read(r#"{"packageName":"a","version":"1","NAME":" a "}"#).unwrap();
        assert_eq!(same.as_deref().map(str::trim), Some("a"));
        let form = Fields::parse(&body("application/x-www-form-urlencoded", "name=a&name=b"));
        assert_eq!(
            form.unwrap().read::<Item>().unwrap_err().to_string(),
            "Field \"name\" is given twice with different values."
        );
    }

    /// Any number of repeats is one pass (plus one per name given under two
    /// spellings): a body of 64 KiB or a head of 400 KB cannot hold a worker.
    #[test]
    fn repeated_fields_are_settled_in_one_pass() {
        let repeats = |pairs: &str, times: usize| {
            Fields::from_query(Some(&vec![pairs; times].join("&")))
                .unwrap()
                .read::<Item>()
        };
        let same = repeats("name=a&packageName=a&version=1&groupName=g&group=g", 20_000).unwrap();
        assert_eq!(same.name.as_deref(), Some("a"));
        assert_eq!(same.group.as_deref(), Some("g"));
        let unknown = repeats("other=x", 80_000).unwrap();
        assert_eq!(unknown.name, None);
        let mut differing = vec!["name=a"; 40_000];
        differing.push("NAME=b");
        let error = Fields::from_query(Some(&differing.join("&")))
            .unwrap()
            .read::<Item>()
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "Parameter \"name\" is given twice with different values."
        );
    }

    #[test]
    fn a_value_of_the_wrong_type_is_named() {
        let fields = Fields::parse(&body("application/json", r#"{"version":1}"#)).unwrap();
        assert_eq!(
            fields.read::<Item>().unwrap_err().to_string(),
            "Field \"version\" must be a string, not a number."
        );
        let prefixed = Fields::object(
            serde_json::json!({"name": ["x"]})
                .as_object()
                .unwrap()
                .clone(),
            "packages[2].".to_owned(),
        );
        assert_eq!(
            prefixed.read::<Item>().unwrap_err().to_string(),
            "Field \"packages[2].name\" must be a string, not an array."
        );
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Flags {
        active: Option<bool>,
        perms: Option<TextList>,
        limit: Option<Whole<Ten>>,
        #[allow(dead_code)] // only its presence is tested
        required: String,
    }

    struct Ten;

    impl WholeRule for Ten {
        const MIN: i64 = 1;
        const MAX: i64 = 10;
    }

    #[test]
    fn booleans_numbers_and_lists_accept_json_and_text() {
        let json = Fields::parse(&body(
            "application/json",
            r#"{"active":false,"perms":["view"," add"],"limit":3,"required":""}"#,
        ))
        .unwrap()
        .read::<Flags>()
        .unwrap();
        assert_eq!(json.active, Some(false));
        assert_eq!(json.perms.unwrap().0, ["view", "add"]);
        assert_eq!(json.limit.unwrap().0, 3);
        let query =
            Fields::from_query(Some("active=TRUE&perms=view,,promote&limit=+10+&required="))
                .unwrap()
                .read::<Flags>()
                .unwrap();
        assert_eq!(query.active, Some(true));
        assert_eq!(query.perms.unwrap().0, ["view", "promote"]);
        assert_eq!(query.limit.unwrap().0, 10);
        let refused = |query: &str| {
            Fields::from_query(Some(query))
                .unwrap()
                .read::<Flags>()
                .err()
                .unwrap()
                .to_string()
        };
        assert_eq!(
            refused("active=yes&required="),
            "Parameter \"active\" must be true or false."
        );
        assert_eq!(
            refused("limit=11&required="),
            "Parameter \"limit\" must be a whole number from 1 to 10."
        );
        assert_eq!(refused("limit=1"), "Parameter \"required\" is required.");
    }

    #[test]
    fn unknown_parameters_are_named_before_anything_else() {
        let error = Fields::from_query(Some("Limit=x&Feed=a&KEY=k"))
            .unwrap()
            .read::<Flags>()
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            error,
            "Parameter \"Feed\" is not known here; the accepted ones are active, perms, limit, required and key."
        );
        let fine = Fields::from_query(Some("REQUIRED=1&key=k")).unwrap();
        assert!(fine.read::<Flags>().is_ok());
    }

    #[test]
    fn json_sent_as_a_form_is_recognised() {
        for text in ["{\"fromFeed\":\"a\"}", "  [1]"] {
            let error = Fields::parse(&body("application/x-www-form-urlencoded", text))
                .unwrap_err()
                .to_string();
            assert!(error.contains("Content-Type: application/json"), "{error}");
        }
    }

    #[test]
    fn other_media_types_and_bad_bodies_are_refused() {
        assert!(matches!(
            Fields::parse(&body("text/plain", "{}")),
            Err(Error::UnsupportedMediaType)
        ));
        let not_object = Fields::parse(&body("application/json", "[1]")).unwrap_err();
        assert_eq!(
            not_object.to_string(),
            "The request body must be a JSON object."
        );
        let malformed = Fields::parse(&body("application/json", "{")).unwrap_err();
        assert!(malformed
            .to_string()
            .starts_with("The request body is not valid JSON"));
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Six {
            from_feed: Option<String>,
            to_feed: Option<String>,
            name: Option<String>,
            version: Option<String>,
            comments: Option<String>,
            group: Option<String>,
        }

        proptest! {
            /// Whatever arrives, reading answers Ok or a 400/415: it never panics.
            #[test]
            fn any_body_is_read_or_refused(bytes in prop::collection::vec(any::<u8>(), 0..300), json in any::<bool>()) {
                let content_type = if json { "application/json" } else { "application/x-www-form-urlencoded" };
                let raw = RawBody::new(Some(content_type), &bytes);
                let read = Fields::parse(&raw).and_then(|fields| {
                    let _ = fields.api_key();
                    fields.read::<Item>()
                });
                if let Err(error) = read {
                    prop_assert!(matches!(error, Error::Invalid(_)));
                }
            }

            /// Every value a client encodes is the value we read, in either encoding.
            #[test]
            fn encoded_values_are_read_back(values in prop::collection::vec("\\PC{0,40}", 1..=6)) {
                let names = ["fromFeed", "toFeed", "name", "version", "comments", "group"];
                let pairs: Vec<(&str, &str)> = names.iter().copied().zip(values.iter().map(String::as_str)).collect();
                let form = serde_urlencoded::to_string(&pairs).unwrap();
                let json = serde_json::Value::Object(
                    pairs.iter().map(|(n, v)| (n.to_string(), serde_json::Value::String(v.to_string()))).collect(),
                );
                for (content_type, text) in [("application/x-www-form-urlencoded", form), ("application/json", json.to_string())] {
                    if content_type.ends_with("urlencoded") && matches!(text.trim_start().chars().next(), Some('{' | '[')) {
                        continue; // refused as JSON sent as a form, by design
                    }
                    let six: Six = Fields::parse(&body(content_type, &text)).unwrap().read().unwrap();
                    let read = [six.from_feed, six.to_feed, six.name, six.version, six.comments, six.group];
                    for (at, read) in read.iter().enumerate() {
                        prop_assert_eq!(read.as_deref(), values.get(at).map(String::as_str));
                    }
                }
            }

            /// Names match whatever their case.
            #[test]
            fn field_names_ignore_case(flips in prop::collection::vec(any::<bool>(), 8)) {
                let name: String = "fromFeed".chars().zip(&flips).map(|(c, &up)| if up { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() }).collect();
                let six: Six = Fields::from_query(Some(&format!("{name}=a"))).unwrap().read().unwrap();
                prop_assert_eq!(six.from_feed.as_deref(), Some("a"));
            }
        }
    }
}

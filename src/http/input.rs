//! Reading request input: bodies (JSON or form-encoded, at most 64 KiB) and query
//! strings, with names matched case-insensitively and legacy aliases.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::request::Parts;
use futures_util::StreamExt;
use percent_encoding::percent_decode;

use super::ApiContext;
use crate::auth::ApiKey;
use crate::domain::{is_free_text, FeedName, Identifier, FREE_TEXT_RULE};
use crate::error::{Error, Result};

/// The `{name}` or `{feed}` segment of a path, decoded; a segment that is not
/// valid percent-encoded UTF-8 gets our one-sentence 400 rather than axum's.
pub struct PathName(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathName {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(name)) => Ok(PathName(name)),
            Err(_) => Err(Error::invalid(
                "The feed name in the path is not valid percent-encoded UTF-8.",
            )),
        }
    }
}

/// How much beyond its limit a body is still read (and dropped) so that the
/// client can finish writing and read the 413.
const DRAIN_BYTES: usize = 1024 * 1024;

/// The body's length as its `Content-Length` declares it, when it does.
pub fn declared_length(headers: &axum::http::HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|len| len.parse::<u64>().ok())
}

/// How long a refused request's body is still read (and dropped) at most.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads and drops what a refused client is still sending, up to a mebibyte
/// and for a few seconds, so that it reads the answer rather than a
/// connection reset under it (a declared length over that is not waited for).
pub async fn discard_body(request: Request) {
    if declared_length(request.headers()).is_some_and(|len| len > DRAIN_BYTES as u64) {
        return;
    }
    let deadline = tokio::time::Instant::now() + DRAIN_TIME;
    let mut body = request.into_body().into_data_stream();
    let mut seen = 0;
    while let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(deadline, body.next()).await {
        seen += chunk.len();
        if seen > DRAIN_BYTES {
            return;
        }
    }
}

/// A request body, read whole (it is small: anything over `--body-limit-kib`,
/// 64 KiB by default, is a 413).
pub struct RawBody {
    content_type: Option<String>,
    bytes: Bytes,
}

/// A batch's body: the same, with room for 1,000 package versions
/// (`--batch-body-limit-kib`, 1 MiB by default).
pub struct BatchBody(pub RawBody);

impl RawBody {
    pub fn new(content_type: Option<&str>, bytes: &[u8]) -> RawBody {
        RawBody {
            content_type: content_type.map(str::to_owned),
            bytes: Bytes::copy_from_slice(bytes),
        }
    }

    /// True when the body was sent as JSON (any charset).
    pub fn is_json(&self) -> bool {
        media_type(self.content_type.as_deref()).as_deref() == Some("application/json")
    }

    async fn read(request: Request, limit: usize) -> Result<Self> {
        let too_large = Error::PayloadTooLarge {
            limit_kib: limit / 1024,
        };
        let headers = request.headers();
        let content_type = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // A declared length far over the limit is refused without reading.
        if declared_length(headers).is_some_and(|len| len > (limit + DRAIN_BYTES) as u64) {
            return Err(too_large);
        }
        // A body a little over the limit is read to its end and dropped before
        // the 413, so that the client, still writing, sees the answer instead of
        // a connection closed under it.
        let mut body = request.into_body().into_data_stream();
        let mut bytes = Vec::new();
        let mut seen = 0usize;
        while let Some(chunk) = body.next().await {
            let chunk = chunk
                .map_err(|_| Error::invalid("The request body could not be read to its end."))?;
            seen += chunk.len();
            if seen > limit + DRAIN_BYTES {
                return Err(too_large);
            }
            if seen <= limit {
                bytes.extend_from_slice(&chunk);
            }
        }
        if seen > limit {
            return Err(too_large);
        }
        Ok(RawBody {
            content_type,
            bytes: Bytes::from(bytes),
        })
    }
}

impl FromRequest<ApiContext> for RawBody {
    type Rejection = Error;

    async fn from_request(request: Request, ctx: &ApiContext) -> Result<Self> {
        RawBody::read(request, ctx.body_limits.body).await
    }
}

impl FromRequest<ApiContext> for BatchBody {
    type Rejection = Error;

    async fn from_request(request: Request, ctx: &ApiContext) -> Result<Self> {
        RawBody::read(request, ctx.body_limits.batch)
            .await
            .map(BatchBody)
    }
}

/// The media type of a Content-Type value, lower-cased, without parameters.
fn media_type(content_type: Option<&str>) -> Option<String> {
    content_type
        .and_then(|ct| ct.split(';').next())
        .map(|mt| mt.trim().to_ascii_lowercase())
}

/// Where a set of fields came from; it decides what a message calls them and
/// where a key may hide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Json,
    Form,
    Query,
}

/// The top-level fields of a JSON or form body, or the parameters of a query
/// string, with names matched case-insensitively. Form and query values are
/// strings; JSON values keep their type so that a number where text belongs is
/// named in the error.
#[derive(Debug)]
pub struct Fields {
    source: Source,
    entries: Vec<(String, serde_json::Value)>,
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

    fn parse_json(bytes: &[u8]) -> Result<Fields> {
        // Some Windows tools start UTF-8 with a byte-order mark; JSON does not allow it.
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let value: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| Error::invalid(format!("The request body is not valid JSON: {e}.")))?;
        let serde_json::Value::Object(object) = value else {
            return Err(Error::invalid("The request body must be a JSON object."));
        };
        Ok(Fields {
            source: Source::Json,
            entries: object.into_iter().collect(),
            prefix: String::new(),
        })
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
                .map(|(name, value)| (name, serde_json::Value::String(value)))
                .collect(),
        })
    }

    /// Refuses any parameter other than `accepted` (or the key carrier `key`),
    /// so that a misspelt filter is an error rather than silently ignored.
    pub fn only(&self, accepted: &[&str]) -> Result<()> {
        let unknown = self.entries.iter().map(|(name, _)| name).find(|name| {
            !name.eq_ignore_ascii_case("key")
                && !accepted
                    .iter()
                    .any(|known| name.eq_ignore_ascii_case(known))
        });
        match unknown {
            None => Ok(()),
            Some(name) => {
                let mut names = accepted.to_vec();
                names.push("key");
                let (last, rest) = names.split_last().expect("key is always accepted");
                let accepted = if rest.is_empty() {
                    format!("the only accepted one is {last}")
                } else {
                    format!("the accepted ones are {} and {last}", rest.join(", "))
                };
                Err(Error::invalid(format!(
                    "{} \"{name}\" is not known here; {accepted}.",
                    self.noun()
                )))
            }
        }
    }

    /// "Field" in bodies, "Parameter" in query strings.
    fn noun(&self) -> &'static str {
        match self.source {
            Source::Query => "Parameter",
            _ => "Field",
        }
    }

    /// The error for `name` breaking `rule`: `Field "name" <rule>.`
    pub fn error(&self, name: &str, rule: impl std::fmt::Display) -> Error {
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
            serde_json::Value::String(text) if name.eq_ignore_ascii_case(carrier) => {
                Some(ApiKey::from_presented(text))
            }
            _ => None,
        })
    }

    /// The one value given for field `name` under any of its spellings (`aliases`
    /// are legacy names). Absent and null are `None`; two different values are an
    /// error naming both spellings.
    fn value(
        &self,
        name: &'static str,
        aliases: &[&'static str],
    ) -> Result<Option<&serde_json::Value>> {
        let mut found: Option<(&'static str, &serde_json::Value)> = None;
        for (given, value) in &self.entries {
            let Some(spelled) = std::iter::once(&name)
                .chain(aliases)
                .find(|candidate| given.eq_ignore_ascii_case(candidate))
            else {
                continue;
            };
            if value.is_null() {
                continue;
            }
            match found {
                Some((first, earlier)) if !same_value(earlier, value) => {
                    let noun = self.noun();
                    return Err(Error::invalid(if first == *spelled {
                        format!("{noun} \"{first}\" is given twice with different values.")
                    } else {
                        format!(
                            "{noun}s \"{first}\" and \"{spelled}\" are the same {} but have different values.",
                            noun.to_lowercase()
                        )
                    }));
                }
                Some(_) => {}
                None => found = Some((spelled, value)),
            }
        }
        Ok(found.map(|(_, value)| value))
    }

    /// The text of field `name` (see `value`); a value of another JSON type is an
    /// error naming the field.
    pub fn text(&self, name: &'static str, aliases: &[&'static str]) -> Result<Option<String>> {
        match self.value(name, aliases)? {
            None => Ok(None),
            Some(serde_json::Value::String(text)) => Ok(Some(text.clone())),
            Some(other) => {
                Err(self.error(name, format!("must be a string, not {}", json_kind(other))))
            }
        }
    }

    /// The text of field `name`, or a JSON number as its digits (for ids).
    pub fn text_or_number(&self, name: &'static str) -> Result<Option<String>> {
        match self.value(name, &[])? {
            Some(serde_json::Value::Number(number)) => Ok(Some(number.to_string())),
            _ => self.text(name, &[]),
        }
    }

    /// Like `text`, but absent is an error.
    pub fn required(&self, name: &'static str, aliases: &[&'static str]) -> Result<String> {
        self.text(name, aliases)?
            .ok_or_else(|| self.error(name, "is required"))
    }

    /// A feed name (absent is `None`).
    pub fn feed(&self, name: &'static str) -> Result<Option<FeedName>> {
        self.text(name, &[])?
            .map(|raw| FeedName::parse(&raw).map_err(|rule| self.error(name, rule)))
            .transpose()
    }

    /// A package group, name or version (absent is `None`, blank is an error).
    pub fn identifier(
        &self,
        name: &'static str,
        aliases: &[&'static str],
    ) -> Result<Option<Identifier>> {
        self.text(name, aliases)?
            .map(|raw| Identifier::parse(&raw).map_err(|rule| self.error(name, rule)))
            .transpose()
    }

    /// Free text such as comments or a description: at most `max_chars`
    /// characters, and no control characters but tabs and line breaks. Blank is
    /// `None`.
    pub fn free_text(
        &self,
        name: &'static str,
        aliases: &[&'static str],
        max_chars: usize,
    ) -> Result<Option<String>> {
        let Some(text) = self.text(name, aliases)?.filter(|t| !t.trim().is_empty()) else {
            return Ok(None);
        };
        if text.chars().count() > max_chars {
            return Err(self.error(name, format!("must be at most {max_chars} characters long")));
        }
        if !is_free_text(&text) {
            return Err(self.error(name, FREE_TEXT_RULE));
        }
        Ok(Some(text))
    }

    /// A true/false field; form and query values may spell it as text.
    pub fn boolean(&self, name: &'static str) -> Result<Option<bool>> {
        match self.value(name, &[])? {
            None => Ok(None),
            Some(serde_json::Value::Bool(value)) => Ok(Some(*value)),
            Some(serde_json::Value::String(text)) if text.eq_ignore_ascii_case("true") => {
                Ok(Some(true))
            }
            Some(serde_json::Value::String(text)) if text.eq_ignore_ascii_case("false") => {
                Ok(Some(false))
            }
            Some(_) => Err(self.error(name, "must be true or false")),
        }
    }

    /// A whole number within `range` (absent is `None`).
    pub fn number_in(
        &self,
        name: &'static str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<Option<i64>> {
        self.text(name, &[])?
            .map(|raw| {
                raw.trim()
                    .parse::<i64>()
                    .ok()
                    .filter(|n| range.contains(n))
                    .ok_or_else(|| {
                        self.error(
                            name,
                            format!(
                                "must be a whole number from {} to {}",
                                range.start(),
                                range.end()
                            ),
                        )
                    })
            })
            .transpose()
    }

    /// A JSON array of objects, each as its own `Fields` (absent is `None`).
    pub fn objects(&self, name: &'static str) -> Result<Option<Vec<Fields>>> {
        match self.value(name, &[])? {
            None => Ok(None),
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(index, item)| match item {
                    serde_json::Value::Object(object) => Ok(Fields {
                        source: Source::Json,
                        entries: object.clone().into_iter().collect(),
                        prefix: format!("{}{name}[{index}].", self.prefix),
                    }),
                    other => Err(self.error(
                        name,
                        format!("must be an array of objects, not of {}", json_kind(other)),
                    )),
                })
                .collect::<Result<_>>()
                .map(Some),
            Some(other) => Err(self.error(
                name,
                format!("must be an array of objects, not {}", json_kind(other)),
            )),
        }
    }

    /// A list of strings: a JSON array, or comma-separated text.
    pub fn list(&self, name: &'static str) -> Result<Option<Vec<String>>> {
        match self.value(name, &[])? {
            None => Ok(None),
            Some(serde_json::Value::String(text)) => Ok(Some(
                text.split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(str::to_owned)
                    .collect(),
            )),
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    serde_json::Value::String(text) => Ok(text.trim().to_owned()),
                    _ => Err(self.error(name, "must be a list of strings")),
                })
                .collect::<Result<_>>()
                .map(Some),
            Some(_) => Err(self.error(name, "must be a list of strings")),
        }
    }
}

fn same_value(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    match (a, b) {
        (serde_json::Value::String(a), serde_json::Value::String(b)) => a.trim() == b.trim(),
        _ => a == b,
    }
}

/// How an error message names the type of a JSON value ("a number").
fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "true or false",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(content_type: &str, text: &str) -> RawBody {
        RawBody::new(Some(content_type), text.as_bytes())
    }

    #[test]
    fn json_and_form_fields_match_case_insensitively_with_aliases() {
        let json = body(
            "Application/JSON; charset=utf-8",
            r#"{"PACKAGENAME":"a","group":null,"API_Key":"k"}"#,
        );
        let fields = Fields::parse(&json).unwrap();
        assert_eq!(
            fields.text("name", &["packageName"]).unwrap().as_deref(),
            Some("a")
        );
        let with_bom = body("application/json", "\u{feff}{\"name\":\"b\"}");
        let fields_bom = Fields::parse(&with_bom).unwrap();
        assert_eq!(fields_bom.text("name", &[]).unwrap().as_deref(), Some("b"));
        assert_eq!(fields.text("group", &["groupName"]).unwrap(), None);
        assert_eq!(fields.api_key().unwrap().expose(), "k");

        let form = Fields::parse(&body(
            "application/x-www-form-urlencoded",
            "Name=%40x&key=k2",
        ))
        .unwrap();
        assert_eq!(form.text("name", &[]).unwrap().as_deref(), Some("@x"));
        assert_eq!(form.api_key().unwrap().expose(), "k2");
    }

    #[test]
    fn conflicting_and_mistyped_fields_are_named() {
        let fields = Fields::parse(&body(
            "application/json",
            r#"{"name":"a","packageName":"b","version":1}"#,
        ))
        .unwrap();
        let conflict = fields
            .text("name", &["packageName"])
            .unwrap_err()
            .to_string();
        assert!(
            conflict.contains("\"name\"") && conflict.contains("\"packageName\""),
            "{conflict}"
        );
        let typed = fields.text("version", &[]).unwrap_err().to_string();
        assert_eq!(typed, "Field \"version\" must be a string, not a number.");

        let form =
            Fields::parse(&body("application/x-www-form-urlencoded", "name=a&name=b")).unwrap();
        assert!(form
            .text("name", &[])
            .unwrap_err()
            .to_string()
            .contains("twice"));
    }

    #[test]
    fn booleans_and_lists_accept_json_and_text() {
        let json = Fields::parse(&body(
            "application/json",
            r#"{"active":false,"perms":["view"," add"],"bad":3}"#,
        ))
        .unwrap();
        assert_eq!(json.boolean("active").unwrap(), Some(false));
        assert_eq!(json.list("perms").unwrap().unwrap(), ["view", "add"]);
        assert!(json.boolean("bad").is_err() && json.list("bad").is_err());
        let query = Fields::from_query(Some("active=TRUE&perms=view,,promote")).unwrap();
        assert_eq!(query.boolean("active").unwrap(), Some(true));
        assert_eq!(query.list("perms").unwrap().unwrap(), ["view", "promote"]);
    }

    #[test]
    fn unknown_query_parameters_are_named_with_the_accepted_ones() {
        let query = Fields::from_query(Some("Feed=a&KEY=k&version=1")).unwrap();
        let error = query
            .only(&["fromFeed", "version"])
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "Parameter \"Feed\" is not known here; the accepted ones are fromFeed, version and key."
        );
        let fine = Fields::from_query(Some("VERSION=1&key=k")).unwrap();
        assert!(fine.only(&["fromFeed", "version"]).is_ok());
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

        proptest! {
            /// Whatever arrives, parsing answers Ok or a 400/415: it never panics.
            #[test]
            fn any_body_is_parsed_or_refused(bytes in prop::collection::vec(any::<u8>(), 0..300), json in any::<bool>()) {
                let content_type = if json { "application/json" } else { "application/x-www-form-urlencoded" };
                let raw = RawBody::new(Some(content_type), &bytes);
                match Fields::parse(&raw) {
                    Ok(fields) => {
                        let _ = fields.text("name", &["packageName"]);
                        let _ = fields.api_key();
                    }
                    Err(error) => prop_assert!(matches!(error, Error::Invalid(_))),
                }
            }

            /// Every value a client encodes is the value we read, in either encoding.
            #[test]
            fn encoded_values_are_read_back(values in prop::collection::vec("\\PC{0,40}", 1..6)) {
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
                    let fields = Fields::parse(&body(content_type, &text)).unwrap();
                    for (name, value) in &pairs {
                        let read = fields.text(name, &[]).unwrap();
                        prop_assert_eq!(read.as_deref(), Some(*value));
                    }
                }
            }

            /// Names match whatever their case.
            #[test]
            fn field_names_ignore_case(flips in prop::collection::vec(any::<bool>(), 8)) {
                let name: String = "fromFeed".chars().zip(&flips).map(|(c, &up)| if up { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() }).collect();
                let fields = Fields::from_query(Some(&format!("{name}=a"))).unwrap();
                let read = fields.text("fromFeed", &[]).unwrap();
                prop_assert_eq!(read.as_deref(), Some("a"));
                prop_assert!(fields.only(&["fromFeed"]).is_ok());
            }
        }
    }
}

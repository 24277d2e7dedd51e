//! Reading request bodies: JSON or form-encoded, field names matched
//! case-insensitively, legacy aliases, and the 64 KiB limit.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::auth::ApiKey;
use crate::error::{Error, Result, BODY_LIMIT_BYTES};

/// A request body, read whole (it is small: anything over the limit is a 413).
pub struct RawBody {
    content_type: Option<String>,
    bytes: Bytes,
}

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = Error;

    async fn from_request(request: Request, _state: &S) -> Result<Self> {
        let headers = request.headers();
        let content_type = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // A declared length over the limit is refused without reading anything.
        if headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|len| len.parse::<u64>().ok())
            .is_some_and(|len| len > BODY_LIMIT_BYTES as u64)
        {
            return Err(Error::PayloadTooLarge);
        }
        let limited = Limited::new(request.into_body(), BODY_LIMIT_BYTES);
        let bytes = match limited.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(error) if is_length_limit(error.as_ref()) => return Err(Error::PayloadTooLarge),
            Err(_) => {
                return Err(Error::invalid(
                    "The request body could not be read to its end.",
                ))
            }
        };
        Ok(RawBody {
            content_type,
            bytes,
        })
    }
}

fn is_length_limit(mut error: &(dyn std::error::Error + 'static)) -> bool {
    loop {
        if error.is::<LengthLimitError>() {
            return true;
        }
        match error.source() {
            Some(source) => error = source,
            None => return false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Form,
}

#[derive(Debug)]
enum Value {
    Text(String),
    Null,
    /// A JSON value of another type, named for the error message ("a number").
    Other(&'static str),
}

/// The top-level fields of a body, whichever encoding it came in.
#[derive(Debug)]
pub struct Fields {
    format: Format,
    entries: Vec<(String, Value)>,
}

impl Fields {
    pub fn parse(body: &RawBody) -> Result<Fields> {
        let media_type = body
            .content_type
            .as_deref()
            .and_then(|ct| ct.split(';').next())
            .map(|mt| mt.trim().to_ascii_lowercase());
        match media_type.as_deref() {
            Some("application/json") => Self::parse_json(&body.bytes),
            Some("application/x-www-form-urlencoded") => Self::parse_form(&body.bytes),
            _ => Err(Error::UnsupportedMediaType),
        }
    }

    fn parse_json(bytes: &[u8]) -> Result<Fields> {
        let value: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| Error::invalid(format!("The request body is not valid JSON: {e}.")))?;
        let serde_json::Value::Object(object) = value else {
            return Err(Error::invalid("The request body must be a JSON object."));
        };
        let entries = object
            .into_iter()
            .map(|(name, value)| {
                let value = match value {
                    serde_json::Value::String(text) => Value::Text(text),
                    serde_json::Value::Null => Value::Null,
                    serde_json::Value::Bool(_) => Value::Other("true or false"),
                    serde_json::Value::Number(_) => Value::Other("a number"),
                    serde_json::Value::Array(_) => Value::Other("an array"),
                    serde_json::Value::Object(_) => Value::Other("an object"),
                };
                (name, value)
            })
            .collect();
        Ok(Fields {
            format: Format::Json,
            entries,
        })
    }

    fn parse_form(bytes: &[u8]) -> Result<Fields> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(bytes).map_err(|e| {
            Error::invalid(format!("The request body is not valid form encoding: {e}."))
        })?;
        Ok(Fields {
            format: Format::Form,
            entries: pairs
                .into_iter()
                .map(|(name, value)| (name, Value::Text(value)))
                .collect(),
        })
    }

    /// The key carried in the body: JSON property `API_Key`, or form field `key`.
    pub fn api_key(&self) -> Option<ApiKey> {
        let carrier = match self.format {
            Format::Json => "API_Key",
            Format::Form => "key",
        };
        self.entries.iter().find_map(|(name, value)| match value {
            Value::Text(text) if name.eq_ignore_ascii_case(carrier) => {
                Some(ApiKey::from_presented(text))
            }
            _ => None,
        })
    }

    /// The text of field `name`, which may also arrive under any of `aliases`.
    /// Absent and null are `None`; a non-string, or two different values under the
    /// field's names, is an error naming the field.
    pub fn text(&self, name: &'static str, aliases: &[&'static str]) -> Result<Option<String>> {
        let mut found: Option<(&'static str, &str)> = None;
        for (given, value) in &self.entries {
            let Some(spelled) = std::iter::once(&name)
                .chain(aliases)
                .find(|candidate| given.eq_ignore_ascii_case(candidate))
            else {
                continue;
            };
            let text = match value {
                Value::Null => continue,
                Value::Other(kind) => {
                    return Err(Error::invalid(format!(
                        "Field \"{spelled}\" must be a string, not {kind}."
                    )))
                }
                Value::Text(text) => text.as_str(),
            };
            match found {
                Some((first, earlier)) if earlier.trim() != text.trim() => {
                    return Err(Error::invalid(if first == *spelled {
                        format!("Field \"{first}\" is given twice with different values.")
                    } else {
                        format!(
                            "Fields \"{first}\" and \"{spelled}\" are the same field but have different values."
                        )
                    }));
                }
                Some(_) => {}
                None => found = Some((spelled, text)),
            }
        }
        Ok(found.map(|(_, text)| text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(content_type: &str, text: &str) -> RawBody {
        RawBody {
            content_type: Some(content_type.to_owned()),
            bytes: Bytes::from(text.to_owned()),
        }
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
}

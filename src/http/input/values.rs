//! The types of request fields: each reads one value and, when it cannot, says
//! which rule it broke in words that follow the field's name ("must not be
//! empty"); `fields::Fields::read` puts the name in front.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
use serde_json::Value;

use super::fields::json_kind;
use crate::auth::ApiKey;
use crate::domain::{
    is_free_text, parse_qualifier, Description, FeedName, FeedType, Identifier, KeyName,
    OnConflict, Purl, WebhookSecret, WebhookUrl, FREE_TEXT_RULE,
};

/// A type read from a field's text by the domain's own parser, whose error is
/// the broken rule.
pub trait FromText: Sized {
    fn from_text(text: &str) -> Result<Self, String>;
}

macro_rules! from_text {
    ($($type:ty => $parse:expr;)*) => {$(
        impl FromText for $type {
            fn from_text(text: &str) -> Result<Self, String> {
                $parse(text).map_err(|rule| rule.to_string())
            }
        }

        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                <$type>::from_text(&text).map_err(de::Error::custom)
            }
        }
    )*};
}

from_text! {
    FeedName => FeedName::parse;
    Identifier => Identifier::parse;
    FeedType => str::parse::<FeedType>;
    WebhookUrl => WebhookUrl::parse;
    Purl => Purl::parse;
    OnConflict => str::parse::<OnConflict>;
    BatchId => BatchId::parse;
    Qualifier => Qualifier::parse;
    KeyName => KeyName::parse;
    Description => described;
    ApiKey => ApiKey::chosen;
    WebhookSecret => WebhookSecret::chosen;
}

/// A description that says something (blank is no description: `OrBlank`).
fn described(text: &str) -> Result<Description, String> {
    Description::parse(text)?.ok_or_else(|| "must not be blank".to_owned())
}

/// A file's qualifier (`type=tgz`); empty means the version's only file.
#[derive(Debug, Clone)]
pub struct Qualifier(pub String);

impl Qualifier {
    fn parse(text: &str) -> Result<Qualifier, &'static str> {
        parse_qualifier(text).map(Qualifier)
    }
}

/// A batch's id: a UUID.
#[derive(Debug, Clone, Copy)]
pub struct BatchId(pub uuid::Uuid);

impl BatchId {
    fn parse(text: &str) -> Result<BatchId, &'static str> {
        uuid::Uuid::parse_str(text.trim())
            .map(BatchId)
            .map_err(|_| "must be a batch id, a UUID")
    }
}

/// A value where blank text means "none": an optional group, or a feed
/// reference that blank clears.
#[derive(Debug)]
pub struct OrBlank<T>(pub Option<T>);

impl<'de, T: FromText> Deserialize<'de> for OrBlank<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.trim().is_empty() {
            return Ok(OrBlank(None));
        }
        T::from_text(&text)
            .map(|value| OrBlank(Some(value)))
            .map_err(de::Error::custom)
    }
}

/// Free text such as comments or a description: at most `MAX` characters, and
/// no control characters but tabs and line breaks.
#[derive(Debug)]
pub struct FreeText<const MAX: usize>(String);

impl<const MAX: usize> FreeText<MAX> {
    /// The text, or `None` when it is blank (which says nothing).
    pub fn into_text(self) -> Option<String> {
        Some(self.0).filter(|text| !text.trim().is_empty())
    }
}

impl<'de, const MAX: usize> Deserialize<'de> for FreeText<MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.trim().is_empty() {
            Ok(FreeText(text))
        } else if text.chars().count() > MAX {
            Err(de::Error::custom(format!(
                "must be at most {MAX} characters long"
            )))
        } else if !is_free_text(&text) {
            Err(de::Error::custom(FREE_TEXT_RULE))
        } else {
            Ok(FreeText(text))
        }
    }
}

/// The bounds of a whole-number field and how a message names what it wants.
pub trait WholeRule {
    const MIN: i64;
    const MAX: i64;

    /// What the field must be, after "must be".
    fn expected() -> String {
        format!("a whole number from {} to {}", Self::MIN, Self::MAX)
    }
}

/// A whole number within `R`'s bounds, as a JSON number or as text.
pub struct Whole<R>(pub i64, PhantomData<R>);

impl<'de, R: WholeRule> Deserialize<'de> for Whole<R> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Expecting<R>(PhantomData<R>);

        impl<R: WholeRule> Expecting<R> {
            fn check<E: de::Error>(number: Option<i64>) -> Result<Whole<R>, E> {
                number
                    .filter(|n| (R::MIN..=R::MAX).contains(n))
                    .map(|n| Whole(n, PhantomData))
                    .ok_or_else(|| E::custom(format!("must be {}", R::expected())))
            }
        }

        impl<R: WholeRule> Visitor<'_> for Expecting<R> {
            type Value = Whole<R>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(&R::expected())
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Whole<R>, E> {
                Self::check(Some(value))
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Whole<R>, E> {
                Self::check(i64::try_from(value).ok())
            }

            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Whole<R>, E> {
                Self::check(None)
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Whole<R>, E> {
                Self::check(text.trim().parse().ok())
            }
        }

        deserializer.deserialize_any(Expecting(PhantomData))
    }
}

/// A list of text: a JSON array of strings, or comma-separated text (forms and
/// query strings), each item trimmed.
pub struct TextList(pub Vec<String>);

impl<'de> Deserialize<'de> for TextList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Expecting;

        impl<'de> Visitor<'de> for Expecting {
            type Value = TextList;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of strings")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<TextList, E> {
                Ok(TextList(
                    text.split(',')
                        .map(str::trim)
                        .filter(|item| !item.is_empty())
                        .map(str::to_owned)
                        .collect(),
                ))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<TextList, A::Error> {
                let mut list = Vec::new();
                while let Some(item) = items.next_element::<Value>()? {
                    let Value::String(text) = item else {
                        return Err(de::Error::custom("must be a list of strings"));
                    };
                    list.push(text.trim().to_owned());
                }
                Ok(TextList(list))
            }
        }

        deserializer.deserialize_any(Expecting)
    }
}

/// A JSON array of objects, each read later as its own `Fields` (a batch's
/// package versions) so that a message names the item.
pub struct Objects(pub Vec<serde_json::Map<String, Value>>);

impl<'de> Deserialize<'de> for Objects {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Expecting;

        impl<'de> Visitor<'de> for Expecting {
            type Value = Objects;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of objects")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Objects, A::Error> {
                let mut objects = Vec::new();
                while let Some(item) = items.next_element::<Value>()? {
                    match item {
                        Value::Object(object) => objects.push(object),
                        other => {
                            return Err(de::Error::custom(format!(
                                "must be an array of objects, not of {}",
                                json_kind(&other)
                            )))
                        }
                    }
                }
                Ok(Objects(objects))
            }
        }

        deserializer.deserialize_any(Expecting)
    }
}

//! The OpenAPI 3.1 document, served at `GET /api/openapi.json`. It is generated
//! from the handlers' `#[utoipa::path]` attributes, and each route is added to
//! the router and to the document by one `routes!` call, so the two cannot drift
//! apart. This module holds what every operation shares: the ways to present a
//! key and the refusals, which are one `text/plain` sentence each.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{RefOr, ResponseBuilder};
use utoipa::{IntoResponses, Modify, OpenApi, PartialSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ApiContext;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Promoter",
        description = "Promotes packages between the feeds of a package repository, speaking ProGet's Promote Package API. Every refusal is one `text/plain` sentence naming the field and the problem (batches and reverts: `application/problem+json`)."
    ),
    modifiers(&KeySchemes),
    tags(
        (name = "promotions", description = "Promote, batch, revert, and the history."),
        (name = "feeds", description = "ProGet's feed management API, as pgutil uses it."),
        (name = "api-keys", description = "ProGet's API key management, as pgutil uses it."),
        (name = "packages", description = "ProGet's package API, as pgutil uses it."),
        (name = "webhooks", description = "Webhooks called after each promotion."),
        (name = "operations", description = "Health, metrics and this document."),
        (name = "history page", description = "The history in a browser (HTML).")
    )
)]
pub struct ApiDoc;

/// How a key may be presented: `X-ApiKey`, or HTTP Basic with the user `api`
/// and the key as the password (pgutil uses both). The query string and the
/// body's `key` field work too, as ProGet's do, but are not offered here:
/// they leave keys in logs.
struct KeySchemes;

impl Modify for KeySchemes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "apiKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-ApiKey",
                "An API key.",
            ))),
        );
        components.add_security_scheme(
            "metricsToken",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The server's `--metrics-token`, when it has one."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some("User `api`, the API key as the password."))
                    .build(),
            ),
        );
    }
}

type ResponseDoc = RefOr<utoipa::openapi::Response>;

/// A `text/plain` answer of one sentence.
fn sentence(description: &str) -> ResponseDoc {
    ResponseBuilder::new()
        .description(description)
        .content(
            "text/plain",
            ContentBuilder::new().schema(Some(String::schema())).build(),
        )
        .build()
        .into()
}

/// A sentence with `Retry-After`, in seconds.
fn retry_later(description: &str) -> ResponseDoc {
    let RefOr::T(mut response) = sentence(description) else {
        unreachable!("sentence builds a response")
    };
    response.headers.insert(
        "Retry-After".to_owned(),
        RefOr::T(
            HeaderBuilder::new()
                .schema(Some(u64::schema()))
                .description(Some("Seconds to wait before trying again."))
                .build(),
        ),
    );
    response.into()
}

fn responses<const N: usize>(list: [(&str, ResponseDoc); N]) -> BTreeMap<String, ResponseDoc> {
    list.into_iter()
        .map(|(status, response)| (status.to_owned(), response))
        .collect()
}

/// What any request may be answered: too slow, or too many.
pub struct Always;

impl IntoResponses for Always {
    fn responses() -> BTreeMap<String, ResponseDoc> {
        responses([
            (
                "408",
                sentence("The request took longer than the request timeout and was abandoned."),
            ),
            (
                "429",
                retry_later(
                    "Too many requests from this address or key, or too many failed authentications.",
                ),
            ),
        ])
    }
}

/// What an API endpoint may answer whatever it is asked: a key that may not,
/// a database that does not answer, besides [`Always`].
pub struct Denials;

impl IntoResponses for Denials {
    fn responses() -> BTreeMap<String, ResponseDoc> {
        let mut denials = responses([
            (
                "403",
                sentence("The key is missing, unknown, expired, revoked, or lacks the permission (always the same sentence)."),
            ),
            (
                "503",
                retry_later("The database is unavailable or busy; nothing changed."),
            ),
        ]);
        denials.append(&mut Always::responses());
        denials
    }
}

/// [`Denials`], and a request that is wrong: what most API endpoints answer
/// besides their success.
pub struct Refusals;

impl IntoResponses for Refusals {
    fn responses() -> BTreeMap<String, ResponseDoc> {
        let mut refusals = responses([(
            "400",
            sentence("The request is wrong; the sentence names the field and the problem. Nothing changed."),
        )]);
        refusals.append(&mut Denials::responses());
        refusals
    }
}

/// What an endpoint that reads a body may also be refused.
pub struct BodyRefusals;

impl IntoResponses for BodyRefusals {
    fn responses() -> BTreeMap<String, ResponseDoc> {
        responses([
            ("413", sentence("The body is larger than the body limit.")),
            (
                "415",
                sentence(
                    "The body is neither application/json nor application/x-www-form-urlencoded.",
                ),
            ),
        ])
    }
}

/// The router's own document, served as it is.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "operations",
    responses(
        (status = 200, description = "This OpenAPI 3.1 document.", content_type = "application/json", body = Object),
        Always
    )
)]
async fn document(State(ctx): State<ApiContext>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        ctx.openapi.to_string(),
    )
        .into_response()
}

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new().routes(routes!(document))
}

/// The document as served: JSON text, made once.
pub fn render(mut doc: utoipa::openapi::OpenApi) -> Arc<str> {
    name_operations(&mut doc);
    Arc::from(doc.to_json().expect("an OpenAPI document serialises"))
}

/// Gives every operation an id of its own, as OpenAPI requires and client
/// generators rely on: utoipa names an operation after its handler, handlers
/// of different resources share names (`list`, `remove`), and one handler may
/// answer several methods. The id is the tag and the handler in camelCase
/// (`webhooksRemove`), with the method when the handler answers several
/// (`packagesUploadPut`).
fn name_operations(doc: &mut utoipa::openapi::OpenApi) {
    for item in doc.paths.paths.values_mut() {
        let mut operations: Vec<(&str, &mut utoipa::openapi::path::Operation)> = [
            ("get", &mut item.get),
            ("put", &mut item.put),
            ("post", &mut item.post),
            ("delete", &mut item.delete),
            ("options", &mut item.options),
            ("head", &mut item.head),
            ("patch", &mut item.patch),
            ("trace", &mut item.trace),
        ]
        .into_iter()
        .filter_map(|(method, operation)| Some((method, operation.as_mut()?)))
        .collect();
        let handlers: Vec<String> = operations
            .iter()
            .map(|(_, operation)| operation.operation_id.clone().unwrap_or_default())
            .collect();
        for (method, operation) in &mut operations {
            let handler = operation.operation_id.take().unwrap_or_default();
            let tag = operation
                .tags
                .as_ref()
                .and_then(|tags| tags.first())
                .cloned()
                .unwrap_or_default();
            let shared = handlers.iter().filter(|h| **h == handler).count() > 1;
            let method = if shared { *method } else { "" };
            operation.operation_id = Some(camel_case(&[&tag, &handler, method]));
        }
    }
}

/// `["history page", "sign_in", ""]` → `historyPageSignIn`.
fn camel_case(parts: &[&str]) -> String {
    let mut id = String::new();
    let words = parts
        .iter()
        .flat_map(|part| part.split(|c: char| !c.is_ascii_alphanumeric()))
        .filter(|word| !word.is_empty());
    for word in words {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            if id.is_empty() {
                id.push(first.to_ascii_lowercase());
            } else {
                id.push(first.to_ascii_uppercase());
            }
            id.extend(chars);
        }
    }
    id
}

//! The history in a browser (contract section 9): `GET /promotions`, the sign-in
//! and sign-out forms, and the page's one stylesheet. Server-rendered HTML that
//! needs no script; the same keys and permissions as the API.

mod filters;
mod session;
mod view;

use self::filters::{read_filters, timeline_request, PageRequest};

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use maud::Markup;
use utoipa::openapi::OpenApiBuilder;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use self::session::{FormToken, SessionToken, Visitor};
use self::view::{Filters, HistoryPage};
use super::input::{Fields, RawBody};
use super::openapi::{Always, BodyRefusals};
use super::ApiContext;
use crate::auth::{self, Principal};
use crate::domain::Permission;
use crate::error::{Error, Result};
use crate::store::HistoryQuery;

/// Promotions on one page.
const PAGE: i64 = 50;

const STYLESHEET: &str = include_str!("promoter.css");

/// Only this server's stylesheet; no script at all; forms post only here; no
/// framing by other sites.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub fn router() -> OpenApiRouter<ApiContext> {
    // A timeline's package name may hold slashes (`@babel/runtime/7.21.0`),
    // which only a wildcard route captures. OpenAPI has no wildcards, so the
    // document names the rest of the path `{package_version}`.
    let (_, timeline_doc, timeline_route) = routes!(timeline);
    OpenApiRouter::with_openapi(OpenApiBuilder::new().paths(timeline_doc).build())
        .routes(routes!(home))
        .routes(routes!(history))
        .route("/promotions/{feed_type}/{*package_version}", timeline_route)
        .routes(routes!(sign_in))
        .routes(routes!(sign_out))
        .routes(routes!(stylesheet))
        .layer(middleware::from_fn(protect))
}

#[utoipa::path(
    get,
    path = "/",
    tag = "history page",
    summary = "Sends a browser to the history page",
    responses(
        (status = 303, description = "To `/promotions`.", headers(("Location" = String))),
        Always
    )
)]
async fn home() -> Redirect {
    Redirect::to("/promotions")
}

/// The headers every page and answer of this module carries.
async fn protect(request: axum::extract::Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

fn page(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

#[utoipa::path(
    get,
    path = "/static/promoter.css",
    tag = "history page",
    summary = "The history page's stylesheet",
    responses((status = 200, description = "CSS.", body = String, content_type = "text/css"), Always)
)]
async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
        .into_response()
}

/// `GET /promotions`: the sign-in form for a stranger (200) or a refused key
/// (403); the history for a known key.
#[utoipa::path(
    get,
    path = "/promotions",
    tag = "history page",
    summary = "The promotion history in a browser",
    params(
        ("feed" = Option<String>, Query, description = "Promotions out of or into this feed."),
        ("package" = Option<String>, Query, description = "`name` or `group/name`; `*` matches any run of characters."),
        ("version" = Option<String>, Query),
        ("batch" = Option<String>, Query, description = "Promotions of one batch."),
        ("before" = Option<i64>, Query, description = "Older than this promotion id (the page's links)."),
        ("after" = Option<i64>, Query, description = "Newer than this promotion id (the page's links).")
    ),
    responses(
        (status = 200, description = "The history, or the sign-in form for a visitor without a session or key.", body = String, content_type = "text/html"),
        (status = 400, description = "A filter is wrong; the page says which (a path that is not UTF-8: one sentence).", content(
            (String = "text/html"),
            (String = "text/plain")
        )),
        (status = 403, description = "The key or session is not valid; the sign-in form says so.", body = String, content_type = "text/html"),
        (status = 503, description = "The database is unavailable.", body = String, content_type = "text/plain", headers(("Retry-After" = u64))),
        Always
    )
)]
async fn history(
    State(ctx): State<ApiContext>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let (filters, request) = read_filters(query.as_deref());
    show(&ctx, &headers, query.as_deref(), filters, request).await
}

/// `GET /promotions/{type}/{group/name}/{version}`: one package version's
/// timeline, matched exactly (type, group and name, version).
#[utoipa::path(
    get,
    path = "/promotions/{feed_type}/{package_version}",
    tag = "history page",
    summary = "One package version's timeline",
    params(
        ("feed_type" = String, Path, description = "The feed type, such as `npm`."),
        ("package_version" = String, Path, description = "`group/name/version` or `name/version`, its slashes unescaped."),
        ("before" = Option<i64>, Query, description = "Older than this promotion id (the page's links)."),
        ("after" = Option<i64>, Query, description = "Newer than this promotion id (the page's links).")
    ),
    responses(
        (status = 200, description = "The history, or the sign-in form for a visitor without a session or key.", body = String, content_type = "text/html"),
        (status = 400, description = "A filter is wrong; the page says which (a path that is not UTF-8: one sentence).", content(
            (String = "text/html"),
            (String = "text/plain")
        )),
        (status = 403, description = "The key or session is not valid; the sign-in form says so.", body = String, content_type = "text/html"),
        (status = 503, description = "The database is unavailable.", body = String, content_type = "text/plain", headers(("Retry-After" = u64))),
        Always
    )
)]
async fn timeline(
    State(ctx): State<ApiContext>,
    headers: HeaderMap,
    Path((feed_type, package_version)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let (package, version) = package_version
        .rsplit_once('/')
        .unwrap_or(("", package_version.as_str()));
    let filters = Filters {
        package: package.to_owned(),
        version: version.to_owned(),
        timeline: Some(feed_type.clone()),
        ..Filters::default()
    };
    let request = timeline_request(&feed_type, package, version, query.as_deref());
    show(&ctx, &headers, query.as_deref(), filters, request).await
}

/// The page for whoever asks: the sign-in form, or a page of the history.
async fn show(
    ctx: &ApiContext,
    headers: &HeaderMap,
    query: Option<&str>,
    filters: Filters,
    request: Result<PageRequest>,
) -> Result<Response> {
    let (form_token, new_token) = FormToken::for_page(headers);
    let secure = session::over_https(headers);
    let mut response = match session::visitor(ctx, headers, query).await? {
        Visitor::Known { principal, session } => {
            history_page(ctx, &principal, session, &form_token, &filters, request).await?
        }
        Visitor::Stranger => {
            let mut response = page(StatusCode::OK, view::sign_in(None, form_token.value()));
            // A session that has ended: the browser may forget its cookie.
            if SessionToken::from_headers(headers).is_some() {
                response
                    .headers_mut()
                    .append(header::SET_COOKIE, session::expired_cookie(secure));
            }
            response
        }
        Visitor::Refused => page(
            StatusCode::FORBIDDEN,
            view::sign_in(Some(NOT_VALID), form_token.value()),
        ),
    };
    if new_token {
        response
            .headers_mut()
            .append(header::SET_COOKIE, form_token.cookie(secure));
    }
    Ok(response)
}

const NOT_VALID: &str = "That API key is not valid: it is unknown, expired or revoked.";

async fn history_page(
    ctx: &ApiContext,
    principal: &Principal,
    session: bool,
    form_token: &FormToken,
    filters: &Filters,
    request: Result<PageRequest>,
) -> Result<Response> {
    let mut shown = HistoryPage {
        user: &principal.name,
        session,
        form_token: form_token.value(),
        filters,
        problem: None,
        paged: false,
        rows: &[],
        newer: None,
        older: None,
        now: Utc::now(),
    };
    let request = match request {
        Ok(request) => request,
        Err(Error::Invalid(problem)) => {
            shown.problem = Some(&problem);
            return Ok(page(StatusCode::BAD_REQUEST, view::history(&shown)));
        }
        Err(other) => return Err(other),
    };
    let (rows, newer, older) = one_page(ctx, principal, filters, &request).await?;
    shown.paged = request.before.is_some() || request.after.is_some();
    shown.rows = &rows;
    shown.newer = newer;
    shown.older = older;
    Ok(page(StatusCode::OK, view::history(&shown)))
}

/// One page of rows, newest first, and the links to the pages beside it.
async fn one_page(
    ctx: &ApiContext,
    principal: &Principal,
    filters: &Filters,
    request: &PageRequest,
) -> Result<(
    Vec<crate::store::PromotionRecord>,
    Option<String>,
    Option<String>,
)> {
    let query = HistoryQuery {
        feed_key: request.feed_key.clone(),
        batch_id: request.batch.clone(),
        package: request.package.clone(),
        visible_feed_ids: principal.feeds_with(Permission::View),
        before_id: request.before,
        after_id: request.after,
        // One more than a page tells whether another page follows.
        limit: PAGE + 1,
        ..HistoryQuery::default()
    };
    let mut rows: Vec<_> = ctx
        .store
        .promotion_history(&query)
        .await?
        .into_iter()
        .map(|row| row.record)
        .collect();
    let more = rows.len() as i64 > PAGE;
    rows.truncate(PAGE as usize);
    // A page after `after` was read oldest first.
    let (more_newer, more_older) = match request.after {
        Some(_) => {
            rows.reverse();
            (more, true)
        }
        None => (request.before.is_some(), more),
    };
    let link = |name: &str, id: i64| filters.link(&[(name, id.to_string())]);
    let newer = rows
        .first()
        .filter(|_| more_newer)
        .map(|row| link("after", row.id));
    let older = rows
        .last()
        .filter(|_| more_older)
        .map(|row| link("before", row.id));
    Ok((rows, newer, older))
}

/// The sign-in and sign-out forms' fields, each read on its own and leniently:
/// a field that cannot be read (or a body that cannot) is not there, so that a
/// second, different `key` does not also lose the form token.
#[derive(utoipa::ToSchema)]
struct SignInForm {
    /// The API key (sign-in only).
    key: Option<String>,
    /// The form token of the page the form came from (`FORM_FIELD`).
    form_token: Option<String>,
}

impl SignInForm {
    fn read(body: &RawBody) -> SignInForm {
        #[derive(serde::Deserialize)]
        struct Key {
            key: Option<String>,
        }
        #[derive(serde::Deserialize)]
        struct Token {
            form_token: Option<String>,
        }
        let fields = Fields::parse(body).ok();
        SignInForm {
            key: fields
                .as_ref()
                .and_then(|fields| fields.read::<Key>().ok())
                .and_then(|field| field.key),
            form_token: fields
                .as_ref()
                .and_then(|fields| fields.read::<Token>().ok())
                .and_then(|field| field.form_token),
        }
    }
}

/// `POST /sign-in`, form field `key`: a session, then the history (303).
#[utoipa::path(
    post,
    path = "/sign-in",
    tag = "history page",
    summary = "Sign in with an API key: a session cookie for the history page",
    request_body(content = SignInForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "To the history page, with the session cookie set (or cleared).", headers(("Location" = String), ("Set-Cookie" = String))),
        (status = 400, description = "The body cannot be read.", body = String, content_type = "text/plain"),
        (status = 403, description = "Posted from another site's page (text), or the key is not valid (the sign-in form again).", content(
            (String = "text/plain"),
            (String = "text/html")
        )),
        (status = 503, description = "The database is unavailable.", body = String, content_type = "text/plain", headers(("Retry-After" = u64))),
        BodyRefusals,
        Always
    )
)]
async fn sign_in(
    State(ctx): State<ApiContext>,
    headers: HeaderMap,
    body: RawBody,
) -> Result<Response> {
    let form = SignInForm::read(&body);
    if !session::posted_from_our_pages(&headers, form.form_token.as_deref()) {
        return Ok(cross_site());
    }
    let key = form
        .key
        .map(|text| auth::ApiKey::from_presented(text.trim()));
    let principal = match ctx.limits.authenticate(&ctx.store, key.as_ref()).await {
        Ok(principal) => principal,
        Err(Error::Forbidden) => {
            let (form_token, _) = FormToken::for_page(&headers);
            return Ok(page(
                StatusCode::FORBIDDEN,
                view::sign_in(Some(NOT_VALID), form_token.value()),
            ));
        }
        Err(other) => return Err(other),
    };
    // A new session replaces the browser's old one, which must not live on.
    if let Some(old) = SessionToken::from_headers(&headers) {
        ctx.store.delete_session(&old.hash()).await?;
    }
    let token = SessionToken::generate();
    let expires = Utc::now() + chrono::Duration::from_std(session::LIFETIME).expect("hours fit");
    ctx.store
        .create_session(&token.hash(), principal.key_id, expires)
        .await?;
    tracing::info!(user = %principal.name, "signed in to the history page");
    let mut response = Redirect::to("/promotions").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        token.cookie(session::over_https(&headers)),
    );
    Ok(response)
}

/// `POST /sign-out`: ends the session here and in the browser.
#[utoipa::path(
    post,
    path = "/sign-out",
    tag = "history page",
    summary = "End the session",
    request_body(content = Option<SignInForm>, content_type = "application/x-www-form-urlencoded", description = "The page's form token; a browser that says where the form came from (`Sec-Fetch-Site`, `Origin`) needs none."),
    responses(
        (status = 303, description = "To the history page, with the session cookie set (or cleared).", headers(("Location" = String), ("Set-Cookie" = String))),
        (status = 400, description = "The body cannot be read.", body = String, content_type = "text/plain"),
        (status = 403, description = "Posted from another site's page (text), or the key is not valid (the sign-in form again).", content(
            (String = "text/plain"),
            (String = "text/html")
        )),
        (status = 503, description = "The database is unavailable.", body = String, content_type = "text/plain", headers(("Retry-After" = u64))),
        BodyRefusals,
        Always
    )
)]
async fn sign_out(
    State(ctx): State<ApiContext>,
    headers: HeaderMap,
    body: RawBody,
) -> Result<Response> {
    let form = SignInForm::read(&body);
    if !session::posted_from_our_pages(&headers, form.form_token.as_deref()) {
        return Ok(cross_site());
    }
    if let Some(token) = SessionToken::from_headers(&headers) {
        ctx.store.delete_session(&token.hash()).await?;
    }
    let mut response = Redirect::to("/promotions").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        session::expired_cookie(session::over_https(&headers)),
    );
    Ok(response)
}

/// The hidden field of every form that carries the form token.
pub const FORM_FIELD: &str = "form_token";

/// A form posted from another site's page.
fn cross_site() -> Response {
    super::error::text(
        StatusCode::FORBIDDEN,
        "Sign-in and sign-out are accepted only from this server's own pages.".to_owned(),
    )
}

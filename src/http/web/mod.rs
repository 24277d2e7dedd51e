//! The history in a browser (contract section 9): `GET /promotions`, the sign-in
//! and sign-out forms, and the page's one stylesheet. Server-rendered HTML that
//! needs no script; the same keys and permissions as the API.

mod session;
mod view;

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
use super::input::{Fields, RawBody, Whole, WholeRule};
use super::openapi::{Always, BodyRefusals};
use super::ApiContext;
use crate::auth::{self, Principal};
use crate::domain::{
    split_package, FeedType, FilterKeys, Identifier, PackageFilter, PackageId, Permission,
};
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
    let request = exact_version(&feed_type, package, version).and_then(|keys| {
        let start: PageStart = Fields::from_query(query.as_deref())?.read()?;
        let (before, after) = start.positions()?;
        Ok(PageRequest {
            package: vec![keys],
            before,
            after,
            ..PageRequest::default()
        })
    });
    show(&ctx, &headers, query.as_deref(), filters, request).await
}

/// The keys of exactly one package version, from a timeline's path.
fn exact_version(feed_type: &str, package: &str, version: &str) -> Result<FilterKeys> {
    let invalid =
        |rule: &dyn std::fmt::Display| Error::invalid(format!("This timeline's address {rule}."));
    let feed_type: FeedType = feed_type
        .parse()
        .map_err(|rule| invalid(&format_args!("names no feed type: {rule}")))?;
    let (group, name) = split_package(package);
    let part = |text: &str| {
        Identifier::parse(text).map_err(|rule| invalid(&format_args!("has a part that {rule}")))
    };
    let group = group.map(part).transpose()?;
    let id = PackageId::new(feed_type, group.as_ref(), &part(name)?, &part(version)?)
        .map_err(|rule| invalid(&format_args!("names a group that {rule}")))?;
    Ok(FilterKeys {
        feed_types: vec![feed_type],
        group_key: Some(id.group_key()),
        name_key: Some(id.name_key()),
        version_key: Some(id.version_key()),
    })
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

/// What a page asks the history for.
#[derive(Default)]
struct PageRequest {
    feed_key: Option<String>,
    package: Vec<FilterKeys>,
    batch: Option<String>,
    before: Option<i64>,
    after: Option<i64>,
}

/// The filters as typed (blank fields are no filter) and what they ask for, or
/// the sentence that says what is wrong with them.
fn read_filters(query: Option<&str>) -> (Filters, Result<PageRequest>) {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query.unwrap_or_default()).unwrap_or_default();
    let typed = |name: &str| {
        pairs
            .iter()
            .find(|(given, _)| given.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.trim().to_owned())
            .unwrap_or_default()
    };
    let filters = Filters {
        feed: typed("feed"),
        package: typed("package"),
        version: typed("version"),
        batch: typed("batch"),
        timeline: None,
    };
    (filters, parse_filters(query))
}

fn parse_filters(query: Option<&str>) -> Result<PageRequest> {
    // Read whole once, so that an unknown parameter, or a filter given twice
    // with different values, is refused in words as the API refuses it
    // (rather than read as the first).
    let params: PageQuery = Fields::from_query(query)?.read()?;
    let invalid = |name: &str, rule: &dyn std::fmt::Display| {
        Error::invalid(format!("The {name} filter {rule}."))
    };
    // Blank filters are no filter.
    let typed = |value: &Option<String>| value.as_deref().map_or("", str::trim).to_owned();
    let feed_key = match typed(&params.feed).as_str() {
        "" => None,
        raw => Some(
            crate::domain::FeedName::parse(raw)
                .map_err(|rule| invalid("feed", &rule))?
                .key(),
        ),
    };
    let identifier =
        |name: &str, raw: &str| Identifier::parse(raw).map_err(|rule| invalid(name, &rule));
    let (group, name) = match typed(&params.package).as_str() {
        "" => (None, None),
        package => {
            let (group, name) = split_package(package);
            let group = group
                .map(|group| identifier("package", group))
                .transpose()?;
            (group, Some(identifier("package", name)?))
        }
    };
    let version = match typed(&params.version).as_str() {
        "" => None,
        raw => Some(identifier("version", raw)?),
    };
    let batch = match typed(&params.batch).as_str() {
        "" => None,
        raw => Some(
            uuid::Uuid::parse_str(raw)
                .map_err(|_| invalid("batch", &"must be a batch id, a UUID"))?
                .to_string(),
        ),
    };
    let (before, after) = positions(params.before.as_ref(), params.after.as_ref())?;
    Ok(PageRequest {
        feed_key,
        package: PackageFilter {
            group,
            name,
            version,
        }
        .keys(),
        batch,
        before,
        after,
    })
}

/// The history page's query: its filters (read as typed by `read_filters`) and
/// where the page starts.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    feed: Option<String>,
    package: Option<String>,
    version: Option<String>,
    batch: Option<String>,
    before: Option<Whole<PromotionPosition>>,
    after: Option<Whole<PromotionPosition>>,
}

/// Where a page starts: `before` or `after` a promotion (a timeline's only
/// parameters).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PageStart {
    before: Option<Whole<PromotionPosition>>,
    after: Option<Whole<PromotionPosition>>,
}

struct PromotionPosition;

impl WholeRule for PromotionPosition {
    const MIN: i64 = 1;
    const MAX: i64 = i64::MAX;
}

impl PageStart {
    fn positions(&self) -> Result<(Option<i64>, Option<i64>)> {
        positions(self.before.as_ref(), self.after.as_ref())
    }
}

/// `before` or `after`: where a page starts.
fn positions(
    before: Option<&Whole<PromotionPosition>>,
    after: Option<&Whole<PromotionPosition>>,
) -> Result<(Option<i64>, Option<i64>)> {
    let (before, after) = (before.map(|before| before.0), after.map(|after| after.0));
    if before.is_some() && after.is_some() {
        return Err(Error::invalid(
            "A page starts either before or after a promotion, not both.",
        ));
    }
    Ok((before, after))
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

/// The sign-in and sign-out forms' fields. Read leniently: a form that cannot
/// be read is one without a key or token.
#[derive(Default, serde::Deserialize, utoipa::ToSchema)]
struct SignInForm {
    /// The API key (sign-in only).
    key: Option<String>,
    /// The form token of the page the form came from (`FORM_FIELD`).
    form_token: Option<String>,
}

impl SignInForm {
    fn read(body: &RawBody) -> SignInForm {
        Fields::parse(body)
            .and_then(|fields| fields.read())
            .unwrap_or_default()
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

//! The history page over plain HTTP (contract section 9): status codes, headers,
//! cookies, escaping, filters and pages. `browser.rs` drives the same page in
//! Chromium.

use serde_json::json;
use sha2::Digest;

use crate::helpers::{babel_promotion, Reply, TestApp};
use promoter::domain::{FeedName, FeedType};
use promoter::store::KeyScope;

both_backends!(
    the_root_redirects_and_strangers_get_the_sign_in_form,
    every_key_carrier_opens_the_page,
    a_browser_on_plain_http_signs_in_with_the_form_token,
    a_timeline_is_one_exact_package_version,
    signing_in_sets_a_strict_cookie_that_holds_no_key,
    sign_in_and_out_refuse_posts_from_other_sites,
    signing_out_or_revoking_the_key_ends_the_session,
    every_value_is_escaped,
    filters_and_pages_follow_the_history,
    bad_filters_are_explained_on_the_page,
    a_key_sees_only_what_it_may_view,
);

/// A hostile comment, which must be shown as text and never run.
pub const HOSTILE: &str =
    "<script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\"> & \"quotes\"";

/// `npm_setup`, then 55 promotions of `pkg` 1.0.0–1.0.54 and the contract's
/// example with a hostile comment (the newest): 56 rows. Returns the system key.
pub async fn seeded_history(app: &TestApp) -> String {
    let key = app.npm_setup().await;
    let source = app.npm_source().await;
    for n in 0..55 {
        let version = format!("1.0.{n}");
        app.package(&source, None, "pkg", &version, "").await;
        let body = json!({"fromFeed": "unapproved-npm", "toFeed": "approved-npm",
                          "name": "pkg", "version": version, "comments": format!("build {n}")});
        assert_eq!(app.promote(&key, &body).await.status, 200);
    }
    let hostile = crate::helpers::with(&babel_promotion(), "comments", json!(HOSTILE));
    assert_eq!(app.promote(&key, &hostile).await.status, 200);
    key
}

/// A client that shows redirects instead of following them.
fn browser_like() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn get(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = browser_like().get(app.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    Reply::read(request.send().await.unwrap()).await
}

async fn post_form(app: &TestApp, path: &str, body: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = browser_like()
        .post(app.url(path))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    Reply::read(request.send().await.unwrap()).await
}

fn header<'a>(reply: &'a Reply, name: &str) -> &'a str {
    reply
        .headers
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or_else(|| panic!("no {name} header"))
}

/// The rows of the history table on a page.
fn rows(reply: &Reply) -> usize {
    reply.body.matches("<tr id=\"promotion-").count()
}

/// The `href` of the link with this text, unescaped.
fn link(reply: &Reply, text: &str) -> Option<String> {
    let end = reply.body.find(&format!("\">{text}</a>"))?;
    let start = reply.body[..end].rfind("href=\"")? + "href=\"".len();
    Some(reply.body[start..end].replace("&amp;", "&"))
}

/// Signs in with `key` and returns the session cookie (`name=value`).
async fn sign_in(app: &TestApp, key: &str) -> String {
    let origin = app.address.clone();
    let reply = post_form(
        app,
        "/sign-in",
        &format!("key={key}"),
        &[("Origin", &origin)],
    )
    .await;
    assert_eq!(reply.status, 303, "{}", reply.body);
    header(&reply, "set-cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

fn is_sign_in_form(reply: &Reply) -> bool {
    reply
        .body
        .contains("<form method=\"post\" action=\"/sign-in\">")
        && reply.body.contains("name=\"key\"")
}

async fn the_root_redirects_and_strangers_get_the_sign_in_form(app: TestApp) {
    let root = get(&app, "/", &[]).await;
    assert_eq!(root.status, 303);
    assert_eq!(header(&root, "location"), "/promotions");

    let stranger = get(&app, "/promotions", &[]).await;
    assert_eq!(stranger.status, 200);
    assert_eq!(stranger.content_type, "text/html; charset=utf-8");
    assert!(is_sign_in_form(&stranger), "{}", stranger.body);
    let policy = header(&stranger, "content-security-policy");
    assert!(policy.contains("default-src 'none'") && policy.contains("style-src 'self'"));
    assert!(!policy.contains("unsafe-inline") && !policy.contains("script-src"));
    assert_eq!(header(&stranger, "x-content-type-options"), "nosniff");
    assert_eq!(header(&stranger, "referrer-policy"), "no-referrer");
    assert!(!stranger.body.contains("<script") && !stranger.body.contains("style=\""));

    for carrier in [("X-ApiKey", "not-a-key"), ("Authorization", "Bearer nope")] {
        let refused = get(&app, "/promotions", &[carrier]).await;
        assert_eq!(refused.status, 403);
        assert!(is_sign_in_form(&refused));
        assert!(refused.body.contains("That API key is not valid"));
    }
    let css = get(&app, "/static/promoter.css", &[]).await;
    assert_eq!(css.status, 200);
    assert_eq!(css.content_type, "text/css; charset=utf-8");
    assert!(css.body.contains("prefers-color-scheme: dark"));
}

async fn signing_in_sets_a_strict_cookie_that_holds_no_key(app: TestApp) {
    let key = app.npm_setup().await;
    let origin = app.address.clone();
    let wrong = post_form(&app, "/sign-in", "key=wrong", &[("Origin", &origin)]).await;
    assert_eq!(wrong.status, 403);
    assert!(is_sign_in_form(&wrong) && wrong.headers.get("set-cookie").is_none());

    let reply = post_form(
        &app,
        "/sign-in",
        &format!("key={key}"),
        &[("Origin", &origin)],
    )
    .await;
    assert_eq!(reply.status, 303, "{}", reply.body);
    assert_eq!(header(&reply, "location"), "/promotions");
    let cookie = header(&reply, "set-cookie");
    assert!(cookie.starts_with("promoter_session="), "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=28800"] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    assert!(!cookie.contains(&key), "the cookie holds the key");
    let token = cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("promoter_session=");
    let stored = app.texts("SELECT token_hash FROM web_sessions").await;
    assert_eq!(
        stored,
        [hex::encode(sha2::Sha256::digest(token.as_bytes()))]
    );

    let page = get(
        &app,
        "/promotions",
        &[("Cookie", cookie.split(';').next().unwrap())],
    )
    .await;
    assert_eq!(page.status, 200);
    assert_eq!(header(&page, "cache-control"), "no-store");
    assert_eq!(header(&page, "x-frame-options"), "DENY");
    assert!(page.body.contains("Signed in as <strong>ci-key</strong>"));
    assert!(page.body.contains("action=\"/sign-out\""));

    let over_tls = post_form(
        &app,
        "/sign-in",
        &format!("key={key}"),
        &[
            ("Origin", "https://promoter.example"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "promoter.example"),
        ],
    )
    .await;
    assert_eq!(over_tls.status, 303);
    assert!(header(&over_tls, "set-cookie").ends_with("; Secure"));
}

async fn sign_in_and_out_refuse_posts_from_other_sites(app: TestApp) {
    let key = app.npm_setup().await;
    for headers in [
        [("Origin", "https://evil.example")],
        [("Origin", "null")],
        [("Sec-Fetch-Site", "cross-site")],
    ] {
        let reply = post_form(&app, "/sign-in", &format!("key={key}"), &headers).await;
        assert_eq!(reply.status, 403, "{headers:?}");
        assert_eq!(
            reply.body,
            "Sign-in and sign-out are accepted only from this server's own pages.\n"
        );
        assert!(reply.headers.get("set-cookie").is_none());
    }
    assert!(app
        .texts("SELECT token_hash FROM web_sessions")
        .await
        .is_empty());

    let cookie = sign_in(&app, &key).await;
    let reply = post_form(
        &app,
        "/sign-out",
        "",
        &[("Cookie", &cookie), ("Origin", "https://evil.example")],
    )
    .await;
    assert_eq!(reply.status, 403);
    assert_eq!(
        app.texts("SELECT token_hash FROM web_sessions").await.len(),
        1,
        "a cross-site post signed out"
    );
}

async fn signing_out_or_revoking_the_key_ends_the_session(app: TestApp) {
    let key = app.npm_setup().await;
    let cookie = sign_in(&app, &key).await;
    let origin = app.address.clone();
    let out = post_form(
        &app,
        "/sign-out",
        "",
        &[("Cookie", &cookie), ("Origin", &origin)],
    )
    .await;
    assert_eq!(out.status, 303);
    assert_eq!(header(&out, "location"), "/promotions");
    assert!(header(&out, "set-cookie").contains("Max-Age=0"));
    let after = get(&app, "/promotions", &[("Cookie", &cookie)]).await;
    assert_eq!(after.status, 200);
    assert!(is_sign_in_form(&after), "the old cookie still works");

    let (other, id) = app
        .key_with(promoter::store::NewKey {
            name: Some(promoter::domain::KeyName::parse("temp").unwrap()),
            scope: KeyScope::System,
            permissions: "view".parse().unwrap(),
            expires_at: None,
            description: None,
            logging: "None".into(),
        })
        .await;
    let cookie = sign_in(&app, &other).await;
    assert_eq!(
        get(&app, "/promotions", &[("Cookie", &cookie)])
            .await
            .status,
        200
    );
    assert!(app.store.revoke_key(id).await.unwrap());
    let revoked = get(&app, "/promotions", &[("Cookie", &cookie)]).await;
    assert!(is_sign_in_form(&revoked), "a revoked key's session goes on");
}

async fn every_value_is_escaped(app: TestApp) {
    let key = seeded_history(&app).await;
    let page = get(&app, "/promotions", &[("X-ApiKey", &key)]).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(
        "&lt;script&gt;document.title='pwned'&lt;/script&gt;&lt;img src=x onerror=&quot;document.title='pwned'&quot;&gt; &amp; &quot;quotes&quot;"
    ), "{}", page.body);
    assert!(!page.body.contains("<script") && !page.body.contains("<img"));
    // Typed filters come back escaped too.
    let typed = get(
        &app,
        "/promotions?package=%22%3E%3Cscript%3E",
        &[("X-ApiKey", &key)],
    )
    .await;
    assert!(!typed.body.contains("\"><script>"), "{}", typed.body);
    assert!(typed.body.contains("value=\"&quot;&gt;&lt;script&gt;\""));
}

async fn filters_and_pages_follow_the_history(app: TestApp) {
    let key = seeded_history(&app).await;
    let auth = [("X-ApiKey", key.as_str())];
    let first = get(&app, "/promotions", &auth).await;
    assert_eq!(rows(&first), 50);
    assert!(
        first.body.find("@babel/runtime").unwrap() < first.body.find("build 54").unwrap(),
        "newest first"
    );
    assert!(link(&first, "← Newer").is_none());
    let older = link(&first, "Older →").expect("an Older link");
    assert!(older.starts_with("/promotions?before="), "{older}");

    let second = get(&app, &older, &auth).await;
    assert_eq!(rows(&second), 6);
    assert!(second.body.contains(">build 0<") && second.body.contains(">build 5<"));
    assert!(!second.body.contains(">build 6<"));
    assert!(link(&second, "Older →").is_none());
    let newer = link(&second, "← Newer").expect("a Newer link");
    let back = get(&app, &newer, &auth).await;
    assert_eq!(rows(&back), 50);
    assert_eq!(
        back.body.matches("<tr").count(),
        first.body.matches("<tr").count()
    );
    assert!(back.body.contains("@babel/runtime") && link(&back, "← Newer").is_none());

    // Each package version links to its own timeline.
    let timeline = "/promotions/npm/@babel/runtime/7.21.0";
    assert!(first.body.contains(&format!("href=\"{timeline}\"")));
    assert_eq!(rows(&get(&app, timeline, &auth).await), 1);
    // The feed filter matches either side.
    let out_of = get(&app, "/promotions?feed=unapproved-npm", &auth).await;
    assert_eq!(rows(&out_of), 50);
    let one = "/promotions?feed=UNAPPROVED-npm&package=pkg&version=1.0.3";
    assert_eq!(rows(&get(&app, one, &auth).await), 1);

    let filtered = get(
        &app,
        "/promotions?feed=approved-npm&package=pkg&version=1.0.7",
        &auth,
    )
    .await;
    assert_eq!(rows(&filtered), 1);
    assert!(filtered.body.contains("build 7"));
    // Paging keeps the filters.
    let pkg = get(&app, "/promotions?package=pkg&feed=&version=", &auth).await;
    assert_eq!(rows(&pkg), 50);
    let older = link(&pkg, "Older →").unwrap();
    assert!(
        older.contains("package=pkg") && !older.contains("feed="),
        "{older}"
    );
    assert_eq!(rows(&get(&app, &older, &auth).await), 5);

    let none = get(&app, "/promotions?package=nothing-like-it", &auth).await;
    assert_eq!(none.status, 200);
    assert_eq!(rows(&none), 0);
    assert!(none.body.contains("No promotions match these filters."));
}

async fn bad_filters_are_explained_on_the_page(app: TestApp) {
    let key = app.npm_setup().await;
    let auth = [("X-ApiKey", key.as_str())];
    for (query, sentence) in [
        ("batch=nope", "The batch filter must be a batch id, a UUID."),
        ("feed=bad%20name", "The feed filter must be"),
        ("version=%01", "The version filter must"),
        ("colour=red", "Parameter \"colour\" is not known here;"),
        ("before=x", "Parameter \"before\" must be a whole number"),
        (
            "before=5&after=2",
            "A page starts either before or after a promotion, not both.",
        ),
    ] {
        let reply = get(&app, &format!("/promotions?{query}"), &auth).await;
        assert_eq!(reply.status, 400, "{query}");
        assert_eq!(reply.content_type, "text/html; charset=utf-8");
        let shown = sentence.replace('"', "&quot;");
        assert!(
            reply
                .body
                .contains(&format!("<p class=\"problem\" role=\"alert\">{shown}")),
            "{query}: {}",
            reply.body
        );
        assert!(
            reply.body.contains("<form class=\"filters\""),
            "the form stays usable"
        );
    }
}

async fn a_key_sees_only_what_it_may_view(app: TestApp) {
    let key = app.npm_setup().await;
    assert_eq!(app.promote(&key, &babel_promotion()).await.status, 200);
    let other_source = app.feed("unapproved-nuget", FeedType::Nuget).await;
    app.feed("approved-nuget", FeedType::Nuget).await;
    app.package(&other_source, None, "Newtonsoft.Json", "13.0.3", "")
        .await;
    let nuget = json!({"fromFeed": "unapproved-nuget", "toFeed": "approved-nuget",
                       "name": "Newtonsoft.Json", "version": "13.0.3"});
    assert_eq!(app.promote(&key, &nuget).await.status, 200);

    let scoped = app
        .key(
            "nuget-viewer",
            KeyScope::Feed(FeedName::parse("approved-nuget").unwrap()),
            "view",
        )
        .await;
    let cookie = sign_in(&app, &scoped).await;
    let page = get(&app, "/promotions", &[("Cookie", &cookie)]).await;
    assert_eq!(rows(&page), 1);
    assert!(page.body.contains(">Newtonsoft.Json<") && !page.body.contains(">@babel/runtime<"));

    let blind = app.key("blind", KeyScope::System, "promote").await;
    let page = get(&app, "/promotions", &[("X-ApiKey", &blind)]).await;
    assert_eq!(page.status, 200);
    assert_eq!(rows(&page), 0);
    assert!(page
        .body
        .contains("No promotions yet: none that this key may view."));
}

async fn every_key_carrier_opens_the_page(app: TestApp) {
    let key = seeded_history(&app).await;
    let basic = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("api:{key}"),
    );
    let basic = format!("Basic {basic}");
    let bearer = format!("Bearer {key}");
    for (path, headers) in [
        (format!("/promotions?key={key}"), vec![]),
        (
            "/promotions".to_owned(),
            vec![("Authorization", basic.as_str())],
        ),
        (
            "/promotions".to_owned(),
            vec![("Authorization", bearer.as_str())],
        ),
    ] {
        let page = get(&app, &path, &headers).await;
        assert_eq!(page.status, 200, "{path} {headers:?}");
        assert_eq!(rows(&page), 50);
        // Links never carry a key given in the address.
        assert!(!page.body.contains(&key));
        // Nobody signed in: no session to end.
        assert!(
            page.body
                .contains("Viewing with the key <strong>ci-key</strong> from this request"),
            "{path}"
        );
        assert!(!page.body.contains("Signed in as") && !page.body.contains("Sign out"));
    }
}

/// A browser on plain HTTP (not loopback) sends no `Sec-Fetch-Site` and, under
/// `no-referrer`, `Origin: null`: the form's hidden token must match its cookie.
async fn a_browser_on_plain_http_signs_in_with_the_form_token(app: TestApp) {
    let key = app.npm_setup().await;
    let form = get(&app, "/promotions", &[]).await;
    let cookie = header(&form, "set-cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("promoter_form="), "{cookie}");
    let token = cookie.trim_start_matches("promoter_form=").to_owned();
    assert!(form
        .body
        .contains(&format!("name=\"form_token\" value=\"{token}\"")));

    let with_cookie = [("Origin", "null"), ("Cookie", cookie.as_str())];
    let post = |body: String, headers: Vec<(&'static str, String)>| {
        let app = &app;
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            post_form(app, "/sign-in", &body, &headers).await
        }
    };
    let owned = |pairs: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        pairs.iter().map(|(n, v)| (*n, v.to_string())).collect()
    };
    let without = post(format!("key={key}"), owned(&with_cookie)).await;
    assert_eq!(without.status, 403, "no token in the form");
    let forged = format!("key={key}&form_token={}", "0".repeat(64));
    assert_eq!(
        post(forged, owned(&with_cookie)).await.status,
        403,
        "a token that does not match"
    );
    let honest = format!("key={key}&form_token={token}");
    let no_cookie = post(honest.clone(), owned(&[("Origin", "null")])).await;
    assert_eq!(
        no_cookie.status, 403,
        "another site's page cannot send our cookie"
    );
    let signed = post(honest.clone(), owned(&with_cookie)).await;
    assert_eq!(signed.status, 303, "{}", signed.body);
    let session = header(&signed, "set-cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned();

    // Signing in again replaces the old session rather than keeping both.
    let both = format!("{cookie}; {session}");
    let again = post(
        honest,
        owned(&[("Origin", "null"), ("Cookie", both.as_str())]),
    )
    .await;
    assert_eq!(again.status, 303);
    assert_eq!(
        app.texts("SELECT token_hash FROM web_sessions").await.len(),
        1
    );
    let stale = get(&app, "/promotions", &[("Cookie", session.as_str())]).await;
    assert!(is_sign_in_form(&stale));
    let cleared = stale
        .headers
        .get_all("set-cookie")
        .iter()
        .any(|value| value.to_str().unwrap().starts_with("promoter_session=;"));
    assert!(cleared, "a stale session cookie is cleared");
}

async fn a_timeline_is_one_exact_package_version(app: TestApp) {
    let key = seeded_history(&app).await;
    let source = app.npm_source().await;
    app.package(&source, Some("@x"), "pkg", "1.0.7", "").await;
    let scoped = json!({"fromFeed": "unapproved-npm", "toFeed": "approved-npm", "group": "@x",
                        "name": "pkg", "version": "1.0.7", "comments": "scoped"});
    assert_eq!(app.promote(&key, &scoped).await.status, 200);
    let auth = [("X-ApiKey", key.as_str())];

    let plain = get(&app, "/promotions/npm/pkg/1.0.7", &auth).await;
    assert_eq!(rows(&plain), 1);
    assert!(plain.body.contains(">build 7<"));
    let grouped = get(&app, "/promotions/npm/@x/pkg/1.0.7", &auth).await;
    assert_eq!(rows(&grouped), 1);
    assert!(grouped.body.contains(">scoped<"));
    // The filter form, unlike a timeline, matches a name in any group.
    let any_group = get(&app, "/promotions?package=pkg&version=1.0.7", &auth).await;
    assert_eq!(rows(&any_group), 2);
    assert_eq!(
        rows(&get(&app, "/promotions/nuget/pkg/1.0.7", &auth).await),
        0
    );

    let bad = get(&app, "/promotions/zip/pkg/1.0.7", &auth).await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("This timeline"), "{}", bad.body);
    assert!(bad.body.contains("names no feed type"), "{}", bad.body);
}

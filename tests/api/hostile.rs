//! Hostile requests: each gets its own clear 4xx (one `text/plain` sentence,
//! never a 500), and a dump of every table taken before and after them all is
//! unchanged.

use chrono::{Duration, Utc};
use promoter::domain::FeedType;
use promoter::store::KeyScope;
use serde_json::{json, Value};

use crate::helpers::{babel_promotion, with, Reply, TestApp};

both_backends!(hostile_requests_get_clear_errors_and_change_nothing);

/// Every column of every table, as text, row by row.
const TABLES: &[(&str, &str)] = &[
    (
        "feeds",
        "id, name, name_key, feed_type, description, active, promote_to_feed_id, created_at",
    ),
    ("feed_groups", "id, name, name_key, created_at"),
    ("feed_group_members", "group_id, feed_id"),
    (
        "api_keys",
        "id, name, key_hash, key_prefix, kind, feed_id, feed_group_id, permissions, expires_at, \
         revoked_at, created_at, description, logging",
    ),
    (
        "package_versions",
        "id, feed_id, group_name, name, version, group_key, name_key, version_key, created_at",
    ),
    (
        "package_files",
        "id, version_id, qualifier, size, sha256, published_at",
    ),
    (
        "promotions",
        "id, from_feed_id, to_feed_id, from_feed, to_feed, from_feed_key, to_feed_key, package_type, \
         group_name, name, version, group_key, name_key, version_key, comments, user_name, \
         api_key_id, promoted_at",
    ),
];

impl TestApp {
    /// The whole database as lines of text.
    pub async fn dump(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for (table, columns) in TABLES {
            let row = columns
                .split(',')
                .map(|c| format!("COALESCE(CAST({} AS TEXT), '<null>')", c.trim()))
                .collect::<Vec<_>>()
                .join(" || '|' || ");
            for line in self
                .texts(&format!("SELECT {row} FROM {table} ORDER BY 1"))
                .await
            {
                lines.push(format!("{table}: {line}"));
            }
        }
        lines
    }
}

/// One hostile request and the answer it must get.
struct Case {
    what: &'static str,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
    status: u16,
    says: &'static str,
}

fn case(
    what: &'static str,
    method: &'static str,
    path: &str,
    status: u16,
    says: &'static str,
) -> Case {
    Case {
        what,
        method,
        path: path.to_owned(),
        headers: Vec::new(),
        body: None,
        status,
        says,
    }
}

impl Case {
    fn key(mut self, key: &str) -> Case {
        self.headers.push(("X-ApiKey", key.to_owned()));
        self
    }

    fn header(mut self, name: &'static str, value: &str) -> Case {
        self.headers.push((name, value.to_owned()));
        self
    }

    fn json(self, body: &Value) -> Case {
        self.raw("application/json", body.to_string().into_bytes())
    }

    fn raw(mut self, content_type: &str, body: Vec<u8>) -> Case {
        if !content_type.is_empty() {
            self.headers.push(("Content-Type", content_type.to_owned()));
        }
        self.body = Some(body);
        self
    }
}

const PROMOTE: &str = "/api/promotions/promote";
const FORBIDDEN: &str = crate::helpers::FORBIDDEN;

async fn hostile_requests_get_clear_errors_and_change_nothing(app: TestApp) {
    let k = app.npm_setup().await;
    app.feed("nuget-approved", FeedType::Nuget).await;
    let disabled = app.feed("frozen-npm", FeedType::Npm).await;
    app.store
        .set_feed_active(
            &promoter::domain::FeedName::parse(&disabled.name).unwrap(),
            false,
        )
        .await
        .unwrap();
    let viewer = app
        .key(
            "viewer",
            KeyScope::Feed(promoter::domain::FeedName::parse("approved-npm").unwrap()),
            "view",
        )
        .await;
    let (expired, _) = app
        .system_key_expiring("expired", Some(Utc::now() - Duration::hours(1)))
        .await;
    let (revoked, revoked_id) = app.system_key_expiring("revoked", None).await;
    assert!(app.store.revoke_key(revoked_id).await.unwrap());

    let babel = babel_promotion();
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let cases = vec![
        // Keys.
        case("no key at all", "POST", PROMOTE, 403, FORBIDDEN).json(&babel),
        case("SQL in the key", "POST", PROMOTE, 403, FORBIDDEN)
            .key("' OR 1=1 --")
            .json(&babel),
        case("a 10,000-character key", "POST", PROMOTE, 403, FORBIDDEN)
            .key(&"a".repeat(10_000))
            .json(&babel),
        case(
            "Basic credentials that are not base64",
            "POST",
            PROMOTE,
            403,
            FORBIDDEN,
        )
        .header("Authorization", "Basic !!!")
        .json(&babel),
        case(
            "user:password as pgutil sends it",
            "POST",
            PROMOTE,
            403,
            FORBIDDEN,
        )
        .key("admin:admin")
        .json(&babel),
        case("an expired key", "POST", PROMOTE, 403, FORBIDDEN)
            .key(&expired)
            .json(&babel),
        case("a revoked key", "POST", PROMOTE, 403, FORBIDDEN)
            .key(&revoked)
            .json(&babel),
        case("a view-only key promoting", "POST", PROMOTE, 403, FORBIDDEN)
            .key(&viewer)
            .json(&babel),
        case("API_Key as a number", "POST", PROMOTE, 403, FORBIDDEN).json(&with(
            &babel,
            "API_Key",
            json!(42),
        )),
        // Bodies.
        case(
            "SQL in a feed name",
            "POST",
            PROMOTE,
            400,
            "Field \"fromFeed\"",
        )
        .key(&k)
        .json(&with(&babel, "fromFeed", json!("x'; DROP TABLE feeds; --"))),
        case(
            "NUL in the name",
            "POST",
            PROMOTE,
            400,
            "Field \"name\" must not contain control characters.",
        )
        .key(&k)
        .json(&with(&babel, "name", json!("run\u{0}time"))),
        case(
            "a line break in the group",
            "POST",
            PROMOTE,
            400,
            "Field \"group\"",
        )
        .key(&k)
        .json(&with(&babel, "group", json!("@ba\nbel"))),
        case(
            "a 251-character version",
            "POST",
            PROMOTE,
            400,
            "Field \"version\" must be at most 250 characters long.",
        )
        .key(&k)
        .json(&with(&babel, "version", json!("1".repeat(251)))),
        case(
            "4,001 characters of comments",
            "POST",
            PROMOTE,
            400,
            "Field \"comments\" must be at most 4000 characters long.",
        )
        .key(&k)
        .json(&with(&babel, "comments", json!("c".repeat(4001)))),
        case(
            "a bell in the comments",
            "POST",
            PROMOTE,
            400,
            "Field \"comments\"",
        )
        .key(&k)
        .json(&with(&babel, "comments", json!("ding\u{7}"))),
        case(
            "a 65 KiB body",
            "POST",
            PROMOTE,
            413,
            "larger than the limit",
        )
        .key(&k)
        .json(&with(&babel, "comments", json!("c".repeat(65 * 1024)))),
        case(
            "text/plain",
            "POST",
            PROMOTE,
            415,
            "application/json or application/x-www-form-urlencoded",
        )
        .key(&k)
        .raw("text/plain", babel.to_string().into_bytes()),
        case("no content type", "POST", PROMOTE, 415, "application/json")
            .key(&k)
            .raw("", babel.to_string().into_bytes()),
        case(
            "bytes that are not UTF-8",
            "POST",
            PROMOTE,
            400,
            "not valid JSON",
        )
        .key(&k)
        .raw("application/json", vec![b'{', 0xff, 0xfe, b'}']),
        case(
            "JSON nested 5,000 deep",
            "POST",
            PROMOTE,
            400,
            "not valid JSON",
        )
        .key(&k)
        .raw("application/json", deep.into_bytes()),
        case(
            "a JSON array",
            "POST",
            PROMOTE,
            400,
            "must be a JSON object",
        )
        .key(&k)
        .raw("application/json", b"[1,2]".to_vec()),
        case(
            "a number for a feed",
            "POST",
            PROMOTE,
            400,
            "Field \"fromFeed\" must be a string, not a number.",
        )
        .key(&k)
        .json(&with(&babel, "fromFeed", json!(7))),
        case(
            "an object for a version",
            "POST",
            PROMOTE,
            400,
            "Field \"version\" must be a string, not an object.",
        )
        .key(&k)
        .json(&with(&babel, "version", json!({"$gt": ""}))),
        case(
            "a form field given twice",
            "POST",
            PROMOTE,
            400,
            "given twice",
        )
        .key(&k)
        .raw(
            "application/x-www-form-urlencoded",
            b"fromFeed=a&fromFeed=b&toFeed=c&name=n&version=1".to_vec(),
        ),
        case(
            "JSON labelled as a form",
            "POST",
            PROMOTE,
            400,
            "Content-Type: application/json",
        )
        .key(&k)
        .raw(
            "application/x-www-form-urlencoded",
            babel.to_string().into_bytes(),
        ),
        case(
            "one feed in two spellings",
            "POST",
            PROMOTE,
            400,
            "both name feed",
        )
        .key(&k)
        .json(&with(&babel, "toFeed", json!("UNAPPROVED-npm"))),
        case("feeds of two types", "POST", PROMOTE, 400, "same type")
            .key(&k)
            .json(&with(&babel, "toFeed", json!("nuget-approved"))),
        case(
            "a disabled target",
            "POST",
            PROMOTE,
            400,
            "which is disabled.",
        )
        .key(&k)
        .json(&with(&babel, "toFeed", json!("frozen-npm"))),
        case(
            "a 101-character feed name",
            "POST",
            PROMOTE,
            400,
            "Field \"toFeed\"",
        )
        .key(&k)
        .json(&with(&babel, "toFeed", json!("f".repeat(101)))),
        case(
            "a version that is not there",
            "POST",
            PROMOTE,
            400,
            "was not found in feed",
        )
        .key(&k)
        .json(&with(&babel, "version", json!("9.9.9"))),
        // Query strings.
        case(
            "history limit 0",
            "GET",
            "/api/promotions/list?limit=0",
            400,
            "Parameter \"limit\"",
        )
        .key(&k),
        case(
            "history limit past i64",
            "GET",
            "/api/promotions/list?limit=99999999999999999999",
            400,
            "Parameter \"limit\"",
        )
        .key(&k),
        case(
            "history before -1",
            "GET",
            "/api/promotions/list?before=-1",
            400,
            "Parameter \"before\"",
        )
        .key(&k),
        case(
            "a misspelt history filter",
            "GET",
            "/api/promotions/list?feed=approved-npm",
            400,
            "is not known here",
        )
        .key(&k),
        case(
            "NUL in a history filter",
            "GET",
            "/api/promotions/list?fromFeed=%00",
            400,
            "Parameter \"fromFeed\"",
        )
        .key(&k),
        case(
            "path traversal as a feed",
            "GET",
            "/api/packages/..%2F..%2Fetc%2Fpasswd/versions",
            400,
            "The feed name in the path",
        )
        .key(&k),
        case(
            "bytes that are not UTF-8 in the path",
            "GET",
            "/api/packages/%ff/versions",
            400,
            "percent-encoded UTF-8",
        )
        .key(&k),
        case(
            "a malformed purl",
            "GET",
            "/api/packages/approved-npm/versions?purl=pkg:npm/%25ff@1",
            400,
            "Parameter \"purl\" must be percent-encoded UTF-8.",
        )
        .key(&k),
        case(
            "a query value that is not UTF-8",
            "GET",
            "/api/packages/approved-npm/versions?name=%ff",
            400,
            "Parameter \"name\" is not valid percent-encoded UTF-8.",
        )
        .key(&k),
        case(
            "a form value that is not UTF-8",
            "POST",
            PROMOTE,
            400,
            "Field \"name\" is not valid percent-encoded UTF-8.",
        )
        .key(&k)
        .raw(
            "application/x-www-form-urlencoded",
            b"fromFeed=a&toFeed=b&name=%C3%28&version=1".to_vec(),
        ),
        case(
            "delete without a name",
            "POST",
            "/api/packages/unapproved-npm/delete?version=7.21.0",
            400,
            "Parameter \"name\" is required.",
        )
        .key(&k),
        case(
            "delete with a view-only key",
            "POST",
            "/api/packages/approved-npm/delete?name=x&version=1",
            403,
            FORBIDDEN,
        )
        .key(&viewer),
        // Management.
        case(
            "a feed name with a space",
            "POST",
            "/api/management/feeds/create",
            400,
            "Field \"name\"",
        )
        .key(&k)
        .json(&json!({"name": "a b", "feedType": "npm"})),
        case(
            "an unknown feed type",
            "POST",
            "/api/management/feeds/create",
            400,
            "Field \"feedType\"",
        )
        .key(&k)
        .json(&json!({"name": "exe-feed", "feedType": "exe"})),
        case(
            "a feed name taken in other case",
            "POST",
            "/api/management/feeds/create",
            400,
            "already exists.",
        )
        .key(&k)
        .json(&json!({"name": "Approved-NPM", "feedType": "npm"})),
        case(
            "a fixed target that does not exist",
            "POST",
            "/api/management/feeds/create",
            400,
            "does not exist.",
        )
        .key(&k)
        .json(&json!({"name": "new-npm", "feedType": "npm", "promoteToFeed": "nowhere"})),
        case(
            "a 1,001-character description",
            "POST",
            "/api/management/feeds/create",
            400,
            "Field \"description\"",
        )
        .key(&k)
        .json(&json!({"name": "wordy-npm", "feedType": "npm", "description": "d".repeat(1001)})),
        case(
            "updating a feed that does not exist",
            "POST",
            "/api/management/feeds/update/nowhere",
            404,
            "does not exist.",
        )
        .key(&k)
        .json(&json!({"active": false})),
        case(
            "renaming a feed",
            "POST",
            "/api/management/feeds/update/approved-npm",
            400,
            "cannot be renamed",
        )
        .key(&k)
        .json(&json!({"name": "renamed"})),
        case(
            "deleting a feed with a feed key",
            "DELETE",
            "/api/management/feeds/delete/approved-npm",
            403,
            FORBIDDEN,
        )
        .key(&viewer),
        case(
            "a Personal key",
            "POST",
            "/api/api-keys/create",
            400,
            "Field \"type\"",
        )
        .key(&k)
        .json(&json!({"type": "Personal"})),
        case(
            "a chosen key of 8 characters",
            "POST",
            "/api/api-keys/create",
            400,
            "Field \"key\" must be 32 to 200",
        )
        .key(&k)
        .json(&json!({"type": "System", "key": "12345678"})),
        case(
            "an expiry in year 0",
            "POST",
            "/api/api-keys/create",
            400,
            "Field \"expiration\"",
        )
        .key(&k)
        .json(&json!({"type": "System", "expiration": "0000-01-01T00:00:00Z"})),
        case(
            "an expiry past 9999",
            "POST",
            "/api/api-keys/create",
            400,
            "Field \"expiration\"",
        )
        .key(&k)
        .json(&json!({"type": "System", "expiration": "9999-12-31T23:59:59-12:00"})),
        case(
            "a key id that is not a number",
            "POST",
            "/api/api-keys/delete?id=1%20OR%201=1",
            400,
            "Parameter \"id\"",
        )
        .key(&k),
        case(
            "a key id that does not exist",
            "POST",
            "/api/api-keys/delete?id=999999",
            404,
            "There is no API key with id 999999.",
        )
        .key(&k),
        // Methods and paths.
        case(
            "PUT on promote",
            "PUT",
            PROMOTE,
            405,
            "does not accept that HTTP method.",
        )
        .key(&k),
        case(
            "GET on promote",
            "GET",
            PROMOTE,
            405,
            "does not accept that HTTP method.",
        )
        .key(&k),
        case(
            "a path that does not exist",
            "GET",
            "/api/../../etc/passwd",
            404,
            "There is no endpoint at this path.",
        )
        .key(&k),
    ];
    assert!(cases.len() >= 40, "only {} cases", cases.len());

    let before = app.dump().await;
    for case in cases {
        let mut request = app
            .client
            .request(case.method.parse().unwrap(), app.url(&case.path));
        for (name, value) in &case.headers {
            request = request.header(*name, value);
        }
        if let Some(body) = case.body {
            request = request.body(body);
        }
        let reply = Reply::read(request.send().await.unwrap()).await;
        assert_eq!(
            reply.status, case.status,
            "{}: got {} {}",
            case.what, reply.status, reply.body
        );
        reply.assert_error(case.status, case.says);
    }
    assert_eq!(
        app.dump().await,
        before,
        "a refused request changed the database"
    );
}

//! `GET /api/openapi.json`: the router and the document hold the same routes,
//! and schemathesis, fuzzing the live server from the document, finds no 5xx
//! and no answer the document does not describe.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

use crate::helpers::{Backend, TestApp};

each_backend!(schemathesis_finds_nothing_wrong);

/// The served document is valid OpenAPI 3.1, by a validator of its own
/// (openapi-spec-validator, from PyPI); every operation has an id of its
/// own, which client generators need.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_valid_openapi_3_1() {
    let validator = std::env::var("PROMOTER_TEST_OPENAPI_VALIDATOR").expect(
        "PROMOTER_TEST_OPENAPI_VALIDATOR names openapi-spec-validator: run the tests through scripts/test, which installs it",
    );
    let app = TestApp::spawn(Backend::Sqlite).await;
    let document = app
        .client
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let doc: Value = serde_json::from_str(&document).unwrap();
    let ids: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|operation| operation["operationId"].as_str())
        .collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len(), "{ids:?}");
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("openapi.json");
    std::fs::write(&file, &document).unwrap();
    let output = Command::new(validator)
        .args(["--schema", "3.1"])
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.trim().ends_with(": OK"),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The methods the document gives each path.
fn documented(doc: &Value) -> BTreeMap<String, BTreeSet<String>> {
    doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(path, item)| {
            let methods = item
                .as_object()
                .unwrap()
                .keys()
                .filter(|key| {
                    ["get", "post", "put", "delete", "patch", "head"].contains(&key.as_str())
                })
                .map(|method| method.to_ascii_uppercase())
                .collect();
            (path.clone(), methods)
        })
        .collect()
}

/// Every route path registered with axum by hand (`.route("…"`) in src/http:
/// the rest go through utoipa-axum's `routes!`, which puts a route in the
/// router and the document together. Other ways to add routes by hand are not
/// used at all.
fn routes_added_by_hand() -> Vec<String> {
    let mut found = Vec::new();
    let mut folders = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/http"
    ))];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            // The native endpoints speak npm's, PyPI's… own protocols, which
            // docs/api.md describes; they are not part of this API's document.
            if path.is_dir() && path.ends_with("native") {
                continue;
            }
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for other in [
                    ".route_service(",
                    ".nest(",
                    ".nest_service(",
                    ".fallback(",
                    ".fallback_service(",
                ] {
                    assert!(
                        !text.contains(other),
                        "{}: routes added with {other}",
                        path.display()
                    );
                }
                for piece in text.split(".route(").skip(1) {
                    let literal = piece.trim_start().strip_prefix('"').unwrap_or_else(|| {
                        panic!("{}: a .route( without a literal path", path.display())
                    });
                    found.push(literal.split('"').next().unwrap().to_owned());
                }
            }
        }
    }
    found
}

/// Every documented path is served with exactly its documented methods (axum
/// answers an undocumented method 405 with `Allow`), and every route added by
/// hand is documented.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_and_the_router_hold_the_same_routes() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let reply = app
        .client
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.headers()["content-type"], "application/json");
    let doc: Value = reply.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = documented(&doc);
    assert!(paths.len() >= 29, "{paths:?}");

    for (path, methods) in &paths {
        assert!(!methods.is_empty(), "{path} documents no operation");
        let concrete = path
            .replace("{package_version}", "@babel/runtime/7.21.0")
            .replace(['{', '}'], "");
        let reply = app
            .client
            .request(reqwest::Method::OPTIONS, app.url(&concrete))
            .send()
            .await
            .unwrap();
        assert_eq!(
            reply.status(),
            405,
            "OPTIONS {path}: the router has no such path"
        );
        let allowed: BTreeSet<String> = reply.headers()["allow"]
            .to_str()
            .unwrap()
            .split(',')
            .map(|m| m.trim().to_owned())
            .filter(|m| m != "HEAD")
            .collect();
        assert_eq!(&allowed, methods, "{path}: the router's methods differ");
    }

    let by_hand = routes_added_by_hand();
    assert!(!by_hand.is_empty());
    for route in by_hand {
        // An axum wildcard (`{*rest}`) is an ordinary parameter in OpenAPI.
        let as_documented = route.replace("{*", "{");
        assert!(
            paths.contains_key(&as_documented),
            "route {route} is not in the OpenAPI document"
        );
    }
}

/// The key the fuzzer uses gets an id it will not guess, so that fuzzing
/// `api-keys/delete` does not revoke it halfway through the run.
async fn unguessable_system_key(app: &TestApp) -> String {
    match app.store.db() {
        promoter::store::Db::Postgres(pool) => {
            sqlx::query("SELECT setval(pg_get_serial_sequence('api_keys', 'id'), 987654321)")
                .execute(pool)
                .await
                .unwrap();
        }
        promoter::store::Db::Sqlite(pool, _) => {
            sqlx::query("INSERT INTO sqlite_sequence (name, seq) VALUES ('api_keys', 987654321)")
                .execute(pool)
                .await
                .unwrap();
        }
    }
    app.system_key().await
}

/// schemathesis 4 against the live server, from its own document: examples,
/// coverage, fuzzing and stateful phases, with the checks that compare every
/// answer with the document. A fixed seed, so that a failure can be replayed.
async fn schemathesis_finds_nothing_wrong(backend: Backend) {
    let st = std::env::var("PROMOTER_TEST_SCHEMATHESIS").expect(
        "PROMOTER_TEST_SCHEMATHESIS names schemathesis's `st`: run the tests through scripts/test, which installs it",
    );
    // Webhooks fuzzed into being must not reach private addresses.
    let app = TestApp::spawn_allowing_private(backend, false).await;
    let key = unguessable_system_key(&app).await;
    app.npm_setup().await;
    let folder = tempfile::tempdir().unwrap();
    let output = tokio::task::spawn_blocking({
        let url = app.url("/api/openapi.json");
        let folder = folder.path().to_owned();
        let key = key.clone();
        move || {
            Command::new(st)
                .current_dir(folder)
                .args([
                    "run",
                    &url,
                    "--header",
                    &format!("X-ApiKey: {key}"),
                    "--checks",
                    "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance",
                    "--max-examples",
                    "25",
                    "--seed",
                    "20261126",
                    // One worker: hypothesis's lambda descriptions are not
                    // thread-safe, and two workers now and then crash the run.
                    "--workers",
                    "1",
                    "--no-color",
                ])
                .env("SCHEMATHESIS_HOOKS", "")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // It ran, every operation: "Selected: N/N" and "Tested: N".
    let count = |label: &str| {
        stdout
            .lines()
            .find_map(|line| line.trim().strip_prefix(label))
            .map(|rest| rest.trim().rsplit('/').next().unwrap().to_owned())
            .unwrap_or_else(|| panic!("no {label} line in:\n{stdout}"))
    };
    assert_eq!(count("Tested:"), count("Selected:"), "{stdout}");
    // And with a key that still worked at the end: a run locked out of
    // everything would pass while testing nothing.
    let reply = app
        .client
        .get(app.url("/api/management/feeds/list"))
        .header("X-ApiKey", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200, "the fuzzer's key stopped working");
}

//! The npm registry (contract sections 12 and 13, issue 22), driven by the
//! real npm CLI: publish, install before and after a promotion, the
//! lockfile's integrity, `npm ci`, dist-tags, whoami, ping, audit,
//! conflicts, challenges and a corrupted blob. Each npm run has its own
//! `.npmrc`, cache and home folder, so nothing leaks between tests.

use std::path::{Path, PathBuf};
use std::process::Output;

use promoter::domain::FeedType;
use promoter::store::KeyScope;
use serde_json::{json, Value};

use crate::helpers::{storage_of, Backend, TestApp, TestDatabase};

both_backends!(
    publish_promote_install_and_ci,
    republishing_tags_and_the_small_endpoints,
    challenges_and_refusals,
    a_corrupted_blob_is_refused_by_npm,
    older_blobs_are_described_when_first_served,
    documents_follow_the_feed_at_once,
);

/// The npm CLI, as `scripts/test` installs it (Debian's `npm` package).
fn npm_program() -> String {
    std::env::var("PROMOTER_TEST_NPM").unwrap_or_else(|_| "npm".to_owned())
}

/// One npm user: a folder with its own `.npmrc`, cache and home.
pub struct Npm {
    dir: tempfile::TempDir,
}

impl Npm {
    /// An npm whose registry is `feed` on `app`, with `key` as its token (no
    /// token when `None`).
    pub fn new(app: &TestApp, feed: &str, key: Option<&str>) -> Npm {
        Npm::at(&format!("{}/npm/{feed}/", app.address), key)
    }

    /// An npm whose registry is `registry` (ending in `/`), with `token`.
    pub fn at(registry: &str, key: Option<&str>) -> Npm {
        let dir = tempfile::tempdir().unwrap();
        let nerf = registry.trim_start_matches("http:");
        let mut npmrc = format!("registry={registry}\n");
        if let Some(key) = key {
            npmrc.push_str(&format!("{nerf}:_authToken={key}\n"));
        }
        std::fs::write(dir.path().join(".npmrc"), npmrc).unwrap();
        std::fs::write(dir.path().join("global.npmrc"), "").unwrap();
        Npm { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `npm ARGS` in `cwd`; fails the test if npm cannot be started.
    pub fn run(&self, cwd: &Path, args: &[&str]) -> Output {
        std::process::Command::new(npm_program())
            .args(args)
            .current_dir(cwd)
            .env("HOME", self.dir.path())
            .env("npm_config_userconfig", self.path(".npmrc"))
            .env("npm_config_globalconfig", self.path("global.npmrc"))
            .env("npm_config_cache", self.path("cache"))
            .env("npm_config_update_notifier", "false")
            .env("npm_config_fund", "false")
            .env("npm_config_fetch_retries", "0")
            .output()
            .expect("npm could not be started: scripts/test installs Debian's npm")
    }

    /// Runs npm and asserts that it succeeded; its stdout.
    pub fn ok(&self, cwd: &Path, args: &[&str]) -> String {
        let output = self.run(cwd, args);
        assert!(
            output.status.success(),
            "npm {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Runs npm and asserts that it failed with `code` (`E404`…); its stderr.
    pub fn fails(&self, cwd: &Path, args: &[&str], code: &str) -> String {
        let output = self.run(cwd, args);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(!output.status.success(), "npm {args:?} succeeded");
        // npm 10 and later print `npm error code X`, npm 9 `npm ERR! code X`.
        assert!(
            stderr.contains(&format!("npm error code {code}"))
                || stderr.contains(&format!("npm ERR! code {code}")),
            "npm {args:?}: expected {code}:\n{stderr}"
        );
        stderr
    }

    /// A package folder with `package.json` and `index.js` exporting `said`.
    pub fn package(&self, name: &str, version: &str, said: &str) -> PathBuf {
        let folder = self.path(&format!("src-{}-{version}", name.replace('/', "_")));
        std::fs::create_dir_all(&folder).unwrap();
        let manifest = json!({"name": name, "version": version, "main": "index.js",
            "description": "a test package", "license": "MIT"});
        std::fs::write(folder.join("package.json"), manifest.to_string()).unwrap();
        std::fs::write(
            folder.join("index.js"),
            format!("module.exports = {said:?};\n"),
        )
        .unwrap();
        folder
    }

    /// An empty project to install into.
    pub fn project(&self, name: &str) -> PathBuf {
        let folder = self.path(name);
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(
            folder.join("package.json"),
            json!({"name": name, "version": "1.0.0", "private": true}).to_string(),
        )
        .unwrap();
        folder
    }
}

pub fn node_require(cwd: &Path, module: &str) -> String {
    let output = std::process::Command::new("node")
        .args(["-e", &format!("process.stdout.write(require({module:?}))")])
        .current_dir(cwd)
        .output()
        .expect("node could not be started");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

async fn npm_feeds(app: &TestApp) -> String {
    app.feed("unapproved-npm", FeedType::Npm).await;
    app.feed("approved-npm", FeedType::Npm).await;
    app.system_key().await
}

async fn promote(app: &TestApp, key: &str, group: &str, name: &str, version: &str) {
    let reply = app
        .promote(
            key,
            &json!({"packageName": name, "group": group, "version": version,
                "fromFeed": "unapproved-npm", "toFeed": "approved-npm"}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

async fn get_json(app: &TestApp, path: &str, key: &str, accept: &str) -> (u16, Value) {
    let response = app
        .client
        .get(app.url(path))
        .bearer_auth(key)
        .header("Accept", accept)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn publish_promote_install_and_ci(app: TestApp) {
    let key = npm_feeds(&app).await;
    let publisher = Npm::new(&app, "unapproved-npm", Some(&key));
    let installer = Npm::new(&app, "approved-npm", Some(&key));
    for (name, said) in [("@acme/greeting", "hello"), ("plain-greeting", "hi")] {
        let package = publisher.package(name, "1.0.0", said);
        let out = publisher.ok(&package, &["publish"]);
        assert!(out.contains(&format!("+ {name}@1.0.0")), "{out}");
    }
    let project = installer.project("app");
    // Not approved yet: npm cannot find it.
    installer.fails(&project, &["install", "@acme/greeting@1.0.0"], "E404");

    promote(&app, &key, "@acme", "greeting", "1.0.0").await;
    promote(&app, &key, "", "plain-greeting", "1.0.0").await;
    installer.ok(&project, &["install", "@acme/greeting", "plain-greeting"]);
    assert_eq!(node_require(&project, "@acme/greeting"), "hello");
    assert_eq!(node_require(&project, "plain-greeting"), "hi");

    // The lockfile names the approved feed and a sha512 integrity, which is
    // the packument's.
    let lock: Value =
        serde_json::from_str(&std::fs::read_to_string(project.join("package-lock.json")).unwrap())
            .unwrap();
    let locked = &lock["packages"]["node_modules/@acme/greeting"];
    assert_eq!(
        locked["resolved"],
        format!(
            "{}/npm/approved-npm/@acme/greeting/-/greeting-1.0.0.tgz",
            app.address
        )
    );
    let (status, packument) = get_json(
        &app,
        "/npm/approved-npm/@acme%2fgreeting",
        &key,
        "application/json",
    )
    .await;
    assert_eq!(status, 200);
    let integrity = locked["integrity"].as_str().unwrap();
    assert!(integrity.starts_with("sha512-"), "{integrity}");
    assert_eq!(
        packument["versions"]["1.0.0"]["dist"]["integrity"],
        integrity
    );
    // How it got here: the promotion, in the server's own field.
    let promotion = &packument["versions"]["1.0.0"]["_promotion"];
    assert_eq!(promotion["fromFeed"], "unapproved-npm");
    assert_eq!(promotion["user"], "ci-key");
    assert!(promotion["id"].as_i64().unwrap() > 0, "{promotion}");

    // npm ci from the lockfile alone, with a cold cache.
    std::fs::remove_dir_all(project.join("node_modules")).unwrap();
    std::fs::remove_dir_all(installer.path("cache")).unwrap();
    installer.ok(&project, &["ci"]);
    assert_eq!(node_require(&project, "@acme/greeting"), "hello");

    // The source no longer serves what moved.
    let (status, body) = get_json(
        &app,
        "/npm/unapproved-npm/@acme/greeting",
        &key,
        "application/json",
    )
    .await;
    assert_eq!((status, body), (404, json!({"error": "Not found"})));
    let tarball = app
        .client
        .get(app.url("/npm/unapproved-npm/@acme/greeting/-/greeting-1.0.0.tgz"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(tarball.status(), 404);
    publisher.fails(&project, &["view", "@acme/greeting"], "E404");
}

async fn republishing_tags_and_the_small_endpoints(app: TestApp) {
    let key = npm_feeds(&app).await;
    let npm = Npm::new(&app, "unapproved-npm", Some(&key));
    let first = npm.package("tagged", "1.0.0", "one");
    npm.ok(&first, &["publish"]);
    // Other bytes under that version: npm 11 reads the packument first and
    // stops itself; older npm sends them and shows the server's 409.
    std::fs::write(first.join("index.js"), "module.exports = 'changed';\n").unwrap();
    let output = npm.run(&first, &["publish"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot publish over the previously published version"),
        "{stderr}"
    );
    // A client that sends anyway (a retry, another tool): the same bytes
    // are accepted as they are, other bytes are a conflict.
    let tarball = crate::content::npm_tgz("retried", "1.0.0");
    for _ in 0..2 {
        let (status, body) = put_document(
            &app,
            "unapproved-npm",
            Some(&key),
            "retried",
            "1.0.0",
            &tarball,
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let manifest = json!({"name": "retried", "version": "1.0.0"}).to_string();
    let other = crate::content::tgz_of(&[
        ("package/index.js", b"module.exports = 'other';\n"),
        ("package/package.json", manifest.as_bytes()),
    ]);
    let (status, body) = put_document(
        &app,
        "unapproved-npm",
        Some(&key),
        "retried",
        "1.0.0",
        &other,
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body["error"],
        "You cannot publish over the previously published version 1.0.0 of retried in feed \"unapproved-npm\": other bytes are stored under it. Publish a new version, or delete this one first (pgutil packages delete)."
    );

    let beta = npm.package("tagged", "2.0.0-beta.1", "two");
    npm.ok(&beta, &["publish", "--tag", "beta"]);
    let tags = npm.ok(&beta, &["dist-tag", "ls", "tagged"]);
    // latest stays on the highest stable version; beta as published.
    assert!(tags.contains("latest: 1.0.0"), "{tags}");
    assert!(tags.contains("beta: 2.0.0-beta.1"), "{tags}");
    npm.ok(&beta, &["dist-tag", "add", "tagged@1.0.0", "stable"]);
    let tags = npm.ok(&beta, &["dist-tag", "ls", "tagged"]);
    assert!(tags.contains("stable: 1.0.0"), "{tags}");
    npm.ok(&beta, &["dist-tag", "rm", "tagged", "stable"]);
    let gone = app
        .client
        .delete(app.url("/npm/unapproved-npm/-/package/tagged/dist-tags/stable"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    let tags = npm.ok(&beta, &["dist-tag", "ls", "tagged"]);
    assert!(!tags.contains("stable"), "{tags}");
    // A tag on a version the feed does not hold is refused.
    npm.fails(&beta, &["dist-tag", "add", "tagged@9.9.9", "nope"], "E404");

    // latest is the highest stable version, not the last published: an older
    // patch published later does not take it (nor does a retry).
    let dist_tags = || async {
        get_json(
            &app,
            "/npm/unapproved-npm/-/package/tagged/dist-tags",
            &key,
            "application/json",
        )
        .await
        .1
    };
    let older = crate::content::npm_tgz("tagged", "0.9.1");
    let (status, body) = put_document(
        &app,
        "unapproved-npm",
        Some(&key),
        "tagged",
        "0.9.1",
        &older,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(dist_tags().await["latest"], "1.0.0");
    // A pinned latest holds through a retry, until the next new publish
    // hands it back to the feed's order.
    npm.ok(&beta, &["dist-tag", "add", "tagged@0.9.1", "latest"]);
    let (status, _) = put_document(
        &app,
        "unapproved-npm",
        Some(&key),
        "tagged",
        "0.9.1",
        &older,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(dist_tags().await["latest"], "0.9.1");
    let newest = crate::content::npm_tgz("tagged", "1.0.1");
    let (status, _) = put_document(
        &app,
        "unapproved-npm",
        Some(&key),
        "tagged",
        "1.0.1",
        &newest,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(dist_tags().await["latest"], "1.0.1");

    // A tag whose version leaves the feed leaves with it.
    promote(&app, &key, "", "tagged", "2.0.0-beta.1").await;
    let (_, tags) = get_json(
        &app,
        "/npm/unapproved-npm/-/package/tagged/dist-tags",
        &key,
        "application/json",
    )
    .await;
    assert_eq!(tags, json!({"latest": "1.0.1"}));
    let (_, approved) = get_json(&app, "/npm/approved-npm/tagged", &key, "application/json").await;
    assert_eq!(approved["dist-tags"], json!({"latest": "2.0.0-beta.1"}));

    assert_eq!(npm.ok(&beta, &["whoami"]).trim(), "ci-key");
    npm.ok(&beta, &["ping"]);
    let project = npm.project("audited");
    npm.ok(&project, &["install", "tagged@1.0.0"]);
    let audit = npm.ok(&project, &["audit"]);
    assert!(audit.contains("found 0 vulnerabilities"), "{audit}");

    // Unpublish and deprecate are not npm's to do here.
    let stderr = npm.fails(&project, &["unpublish", "tagged@1.0.0", "--force"], "E405");
    assert!(stderr.contains("pgutil packages delete"), "{stderr}");
    npm.fails(&project, &["deprecate", "tagged@1.0.0", "old"], "E405");
    assert_eq!(node_require(&project, "tagged"), "one");
}

async fn challenges_and_refusals(app: TestApp) {
    let key = npm_feeds(&app).await;
    app.feed("pypi-feed", FeedType::Pypi).await;
    let publisher = Npm::new(&app, "unapproved-npm", Some(&key));
    let package = publisher.package("guarded", "1.0.0", "guarded");
    publisher.ok(&package, &["publish"]);
    promote(&app, &key, "", "guarded", "1.0.0").await;

    // No token: a challenge, which npm shows as E401.
    let stranger = Npm::new(&app, "approved-npm", None);
    let project = stranger.project("p");
    stranger.fails(&project, &["install", "guarded"], "E401");
    let response = app
        .client
        .get(app.url("/npm/approved-npm/guarded"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Basic realm=\"Promoter\""
    );
    // The same for a feed that does not exist: nothing is learnt.
    let response = app
        .client
        .get(app.url("/npm/no-such-feed/guarded"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    // A wrong token is a wrong password.
    let wrong = Npm::new(&app, "approved-npm", Some(&"f".repeat(64)));
    wrong.fails(&project, &["install", "guarded"], "E401");

    // A key for another feed: 403.
    let other = app
        .key(
            "other",
            KeyScope::Feed(promoter::domain::FeedName::parse("unapproved-npm").unwrap()),
            "view,add",
        )
        .await;
    let outsider = Npm::new(&app, "approved-npm", Some(&other));
    outsider.fails(&project, &["install", "guarded"], "E403");
    // A key that may view but not add cannot publish.
    let viewer = app
        .key(
            "viewer",
            KeyScope::Feed(promoter::domain::FeedName::parse("unapproved-npm").unwrap()),
            "view",
        )
        .await;
    let reader = Npm::new(&app, "unapproved-npm", Some(&viewer));
    let second = reader.package("guarded", "1.0.1", "again");
    reader.fails(&second, &["publish"], "E403");

    // Basic authentication with any user name and the key as password
    // (npm's `_auth`).
    let response = app
        .client
        .get(app.url("/npm/approved-npm/guarded"))
        .basic_auth("anyone", Some(&key))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // A public feed: anyone may install, nobody may publish without a key.
    let reply = app
        .json_post(
            "/api/management/feeds/update/approved-npm",
            &key,
            &json!({"public": true}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["public"], true);
    stranger.ok(&project, &["install", "guarded"]);
    assert_eq!(node_require(&project, "guarded"), "guarded");
    // A key scoped elsewhere loses nothing strangers have (npm sends one
    // token to every feed of a host).
    let elsewhere = outsider.project("elsewhere");
    outsider.ok(&elsewhere, &["install", "guarded"]);
    let anonymous = Npm::new(&app, "approved-npm", None);
    let third = anonymous.package("guarded", "1.0.2", "anonymous");
    // npm will not even try without credentials; the server would say 401.
    anonymous.fails(&third, &["publish"], "ENEEDAUTH");
    let (status, _) = put_document(
        &app,
        "approved-npm",
        None,
        "guarded",
        "1.0.2",
        &crate::content::npm_tgz("guarded", "1.0.2"),
    )
    .await;
    assert_eq!(status, 401);
    // … and the packages API's download too.
    let response = app
        .client
        .get(app.url("/api/packages/approved-npm/download?name=guarded&version=1.0.0"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // A scoped key asking for a feed that does not exist: 403, as for one
    // outside its scope; a stranger asking a private feed of another type:
    // 401, not the type.
    let response = app
        .client
        .get(app.url("/npm/no-such-feed/guarded"))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let response = app
        .client
        .get(app.url("/npm/pypi-feed/guarded"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    // Malformed publishes: a 400 that npm prints, nothing stored.
    for (body, expected) in [
        ("not json", "The publish document is not valid JSON"),
        (
            r#"{"name":"bad","versions":{"1.0.0":{}},"_attachments":{"bad-1.0.0.tgz":{"data":"%%%"}}}"#,
            "Field \"_attachments\" has \"data\" that is not base64.",
        ),
        (
            r#"{"name":"bad","versions":{"1.0.0":{},"1.0.1":{}},"_attachments":{"bad-1.0.0.tgz":{"data":""}}}"#,
            "Field \"versions\" must hold exactly one version.",
        ),
    ] {
        let response = app
            .client
            .put(app.url("/npm/unapproved-npm/bad"))
            .bearer_auth(&key)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let reply: Value = response.json().await.unwrap();
        assert!(
            reply["error"].as_str().unwrap().starts_with(expected),
            "{reply}"
        );
    }

    // The feed's type must match the endpoint.
    let response = app
        .client
        .get(app.url("/npm/pypi-feed/guarded"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["error"],
        "Feed \"pypi-feed\" is a pypi feed, not an npm feed."
    );

    // A document whose tarball is another package: refused, nothing stored.
    let tarball = crate::content::npm_tgz("someone-else", "1.0.0");
    let (status, body) = put_document(
        &app,
        "unapproved-npm",
        Some(&key),
        "guarded",
        "3.0.0",
        &tarball,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"],
        "The file is package someone-else 1.0.0, not guarded 3.0.0 as the request says."
    );
    assert_eq!(
        app.texts("SELECT version FROM package_versions WHERE name = 'someone-else'")
            .await,
        Vec::<String>::new()
    );
}

/// `PUT /npm/{feed}/{name}` as `npm publish` sends it.
async fn put_document(
    app: &TestApp,
    feed: &str,
    key: Option<&str>,
    name: &str,
    version: &str,
    tarball: &[u8],
) -> (u16, Value) {
    let document = json!({
        "name": name, "versions": {version: {"name": name, "version": version}},
        "dist-tags": {"latest": version},
        "_attachments": {format!("{name}-{version}.tgz"): {
            "data": base64_of(tarball), "length": tarball.len()}}
    });
    let mut request = app
        .client
        .put(app.url(&format!("/npm/{feed}/{name}")))
        .json(&document);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

async fn a_corrupted_blob_is_refused_by_npm(app: TestApp) {
    let key = npm_feeds(&app).await;
    let npm = Npm::new(&app, "unapproved-npm", Some(&key));
    let package = npm.package("fragile", "1.0.0", "intact");
    npm.ok(&package, &["publish"]);
    let sha = app
        .texts("SELECT blob_sha256 FROM package_files")
        .await
        .remove(0);
    let blob = crate::helpers::blob_path(&app.database.url, &sha);
    // Another valid tarball of the same length in its place (padded with a
    // gzip comment), so that only the integrity check can tell.
    let original = std::fs::read(&blob).unwrap();
    let forged = crate::content::tgz_of(&[
        ("package/index.js", b"module.exports = 'forged';\n"),
        (
            "package/package.json",
            br#"{"name":"fragile","version":"1.0.0"}"#,
        ),
    ]);
    let padding = original.len() - forged.len() - 1;
    let mut replaced = forged[..10].to_vec();
    replaced[3] |= 0x10; // FCOMMENT: a zero-ended comment follows the header
    replaced.extend(std::iter::repeat_n(b'x', padding));
    replaced.push(0);
    replaced.extend_from_slice(&forged[10..]);
    assert_eq!(replaced.len(), original.len());
    std::fs::write(&blob, replaced).unwrap();
    // Another npm, whose cache did not keep the tarball it packed.
    let installer = Npm::new(&app, "unapproved-npm", Some(&key));
    let project = installer.project("victim");
    installer.fails(&project, &["install", "fragile"], "EINTEGRITY");
    assert!(!project.join("node_modules/fragile").exists());
}

async fn older_blobs_are_described_when_first_served(app: TestApp) {
    let key = npm_feeds(&app).await;
    let npm = Npm::new(&app, "unapproved-npm", Some(&key));
    let package = npm.package("@old/timer", "1.0.0", "old");
    npm.ok(&package, &["publish"]);
    let (_, before) = get_json(
        &app,
        "/npm/unapproved-npm/@old%2ftimer",
        &key,
        "application/json",
    )
    .await;
    // As a blob stored before digests and metadata were kept.
    app.execute("UPDATE blobs SET sha1 = NULL, sha512 = NULL")
        .await;
    app.execute("UPDATE package_files SET metadata = NULL")
        .await;
    let (status, after) = get_json(
        &app,
        "/npm/unapproved-npm/@old%2ftimer",
        &key,
        "application/json",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(after["versions"], before["versions"]);
    assert_eq!(after["versions"]["1.0.0"]["description"], "a test package");
    // Kept: the next document reads them from the database.
    assert_eq!(
        app.texts("SELECT CAST(COUNT(*) AS TEXT) FROM blobs WHERE sha512 IS NOT NULL AND sha1 IS NOT NULL")
            .await,
        ["1"]
    );
    assert_eq!(
        app.texts("SELECT CAST(COUNT(*) AS TEXT) FROM package_files WHERE metadata IS NOT NULL")
            .await,
        ["1"]
    );
    let project = npm.project("p");
    npm.ok(&project, &["install", "@old/timer"]);
    assert_eq!(node_require(&project, "@old/timer"), "old");
}

async fn documents_follow_the_feed_at_once(app: TestApp) {
    let key = npm_feeds(&app).await;
    let npm = Npm::new(&app, "unapproved-npm", Some(&key));
    npm.ok(&npm.package("cached", "1.0.0", "a"), &["publish"]);
    let url = app.url("/npm/unapproved-npm/cached");
    let first = app.client.get(&url).bearer_auth(&key).send().await.unwrap();
    assert_eq!(first.headers()["cache-control"], "no-cache");
    let etag = first.headers()["etag"].clone();
    let again = app
        .client
        .get(&url)
        .bearer_auth(&key)
        .header("If-None-Match", etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    // A new version changes the document, and its ETag.
    npm.ok(&npm.package("cached", "1.1.0", "b"), &["publish"]);
    let changed = app
        .client
        .get(&url)
        .bearer_auth(&key)
        .header("If-None-Match", etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
    assert_ne!(changed.headers()["etag"], etag);
    let body: Value = changed.json().await.unwrap();
    assert_eq!(body["dist-tags"]["latest"], "1.1.0");

    // Uploaded straight into the feed: no `_promotion`.
    assert!(body["versions"]["1.1.0"].is_object(), "{body}");
    assert!(
        body["versions"]["1.1.0"].get("_promotion").is_none(),
        "{body}"
    );

    // The abbreviated form npm installs from: only what an install reads.
    let (status, short) = get_json(
        &app,
        "/npm/unapproved-npm/cached",
        &key,
        "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*",
    )
    .await;
    assert_eq!(status, 200);
    assert!(short.get("time").is_none(), "{short}");
    assert!(short["modified"].is_string(), "{short}");
    let version = &short["versions"]["1.1.0"];
    assert!(version.get("description").is_none(), "{version}");
    assert!(version["dist"]["integrity"].is_string(), "{version}");
}

each_backend!(a_promotion_through_one_server_is_installed_through_another);

/// Two servers on one database: what one promotes, npm installs through the
/// other at once (a document is never cached past a commit).
async fn a_promotion_through_one_server_is_installed_through_another(backend: Backend) {
    let database = TestDatabase::fresh(backend).await;
    let first = TestApp::on_database(&database.url).await;
    let second = TestApp::on_database(&database.url).await;
    let key = npm_feeds(&first).await;
    let publisher = Npm::new(&first, "unapproved-npm", Some(&key));
    publisher.ok(
        &publisher.package("replicated", "1.0.0", "seen"),
        &["publish"],
    );
    let installer = Npm::new(&second, "approved-npm", Some(&key));
    let project = installer.project("p");
    installer.fails(&project, &["install", "replicated"], "E404");
    // The second server has rendered the source's document once already.
    let source = || async {
        second
            .client
            .get(second.url("/npm/unapproved-npm/replicated"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(source().await, 200);
    promote(&first, &key, "", "replicated", "1.0.0").await;
    assert_eq!(source().await, 404);
    installer.ok(&project, &["install", "replicated"]);
    assert_eq!(node_require(&project, "replicated"), "seen");
}

each_backend!(absolute_urls_follow_the_public_url_or_the_proxy);

/// Tarball URLs start with `--public-url` when it is set, and otherwise with
/// the address the request (or its proxy) names.
async fn absolute_urls_follow_the_public_url_or_the_proxy(backend: Backend) {
    let database = TestDatabase::fresh(backend).await;
    let app = TestApp::on_database(&database.url).await;
    let key = npm_feeds(&app).await;
    let (status, _) = put_document(
        &app,
        "unapproved-npm",
        Some(&key),
        "located",
        "1.0.0",
        &crate::content::npm_tgz("located", "1.0.0"),
    )
    .await;
    assert_eq!(status, 200);
    let tarball_of = |packument: &Value| packument["versions"]["1.0.0"]["dist"]["tarball"].clone();

    let proxied: Value = app
        .client
        .get(app.url("/npm/unapproved-npm/located"))
        .bearer_auth(&key)
        .header("X-Forwarded-Proto", "https")
        .header("X-Forwarded-Host", "packages.example.com")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        tarball_of(&proxied),
        "https://packages.example.com/npm/unapproved-npm/located/-/located-1.0.0.tgz"
    );

    let public =
        promoter::http::native::PublicUrl::parse("https://npm.example.org/registry/").unwrap();
    let server = promoter::startup::Application::build("127.0.0.1:0", &database.url)
        .await
        .unwrap()
        .content(promoter::content::Settings::directory(storage_of(
            &database.url,
        )))
        .public_url(Some(public));
    let address = crate::helpers::serve(server);
    let configured: Value = app
        .client
        .get(format!("{address}/npm/unapproved-npm/located"))
        .bearer_auth(&key)
        .header("X-Forwarded-Host", "ignored.example.com")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        tarball_of(&configured),
        "https://npm.example.org/registry/npm/unapproved-npm/located/-/located-1.0.0.tgz"
    );
}

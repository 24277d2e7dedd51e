//! Package content (contract section 10): uploads as pgutil sends them, with the
//! identity read from real package files built here; downloads with their
//! headers and ranges; one blob per content; promotion moving no bytes; the
//! collector; hostile archives; a server killed mid-upload.

use std::io::Write;
use std::path::{Path, PathBuf};

use promoter::domain::FeedType;
use serde_json::{json, Value};

use crate::helpers::{storage_of, Backend, Reply, ServerProcess, TestApp};

each_backend!(
    uploads_read_each_type_and_download_the_same_bytes,
    a_retried_upload_is_answered_again_and_other_bytes_are_refused,
    hostile_and_invalid_files_are_refused_and_change_nothing,
    downloads_honour_ranges_latest_and_etags,
    a_promotion_moves_records_and_no_bytes,
    blobs_no_record_refers_to_are_collected,
    a_server_killed_mid_upload_leaves_no_record,
    uploads_racing_the_collector_never_lose_their_bytes,
    an_upload_clears_only_its_own_mark
);

/// A process's resident memory now and at its peak, in KiB (`/proc`).
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// 200 MiB up and down again through the real binary: the server's peak
/// resident memory grows by a few MiB at most (its buffers), not by the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_and_downloads_stream_in_constant_memory() {
    const SIZE: usize = 200 * 1024 * 1024;
    let app = TestApp::spawn(Backend::Sqlite).await;
    let key = app.system_key().await;
    app.feed("maven", FeedType::Maven).await;
    let mut server = ServerProcess::start(&app.database.url).await;
    // Warm up: the first requests allocate what every request reuses.
    let small = app
        .client
        .put(format!(
            "{}/api/packages/maven/upload/w.jar?name=w&version=1",
            server.address
        ))
        .header("X-ApiKey", &key)
        .body(vec![1u8; 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(small.status(), 200);
    let (_, before) = memory_kib(server.pid());

    let chunk = vec![0x5au8; 1024 * 1024];
    let chunks = futures::stream::iter(
        (0..SIZE / chunk.len()).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
    );
    let reply = app
        .client
        .put(format!(
            "{}/api/packages/maven/upload/big.jar?name=big&version=1",
            server.address
        ))
        .header("X-ApiKey", &key)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200, "{}", reply.text().await.unwrap());
    let (_, after_upload) = memory_kib(server.pid());

    let mut download = app
        .client
        .get(format!(
            "{}/api/packages/maven/download?name=big&version=1",
            server.address
        ))
        .header("X-ApiKey", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    let mut received = 0;
    while let Some(chunk) = download.chunk().await.unwrap() {
        assert!(chunk.iter().all(|b| *b == 0x5a));
        received += chunk.len();
    }
    assert_eq!(received, SIZE);
    let (_, after_download) = memory_kib(server.pid());
    let grown = after_download.max(after_upload) - before;
    assert!(
        grown < 16 * 1024,
        "peak resident memory grew by {grown} KiB for a {SIZE}-byte file"
    );
    server.kill_9();
}

pub fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in entries {
        writer.start_file(*name, options).unwrap();
        writer.write_all(bytes).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

pub fn tgz_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (name, bytes) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, name, *bytes).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

pub fn nupkg(id: &str, version: &str) -> Vec<u8> {
    let nuspec = format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<package xmlns="http://schemas.microsoft.com/packaging/2013/05/nuspec.xsd">
  <metadata><id>{id}</id><version>{version}</version><authors>me</authors><description>d</description></metadata>
</package>"#
    );
    zip_of(&[
        ("_rels/.rels", b"<Relationships/>"),
        (&format!("{id}.nuspec"), nuspec.as_bytes()),
        ("lib/net8.0/lib.dll", &[7u8; 5000]),
    ])
}

pub fn npm_tgz(name: &str, version: &str) -> Vec<u8> {
    let manifest = json!({"name": name, "version": version, "main": "index.js"}).to_string();
    tgz_of(&[
        ("package/index.js", b"module.exports = 42;\n"),
        ("package/package.json", manifest.as_bytes()),
    ])
}

/// A PUT of the raw bytes, as pgutil uploads a file.
pub async fn put(app: &TestApp, path: &str, key: &str, body: Vec<u8>) -> Reply {
    Reply::read(
        app.client
            .put(app.url(path))
            .header("X-ApiKey", key)
            .body(body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn get(app: &TestApp, path: &str, key: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .header("X-ApiKey", key)
        .send()
        .await
        .unwrap()
}

pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Every blob file in the database's storage.
fn blobs(app: &TestApp) -> Vec<PathBuf> {
    fn walk(folder: &Path, found: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(folder) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, found);
            } else {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(&storage_of(&app.database.url).join("blobs"), &mut found);
    found
}

/// Uploads `bytes`, expects 200, and checks the answer's identity and hash.
async fn uploaded(
    app: &TestApp,
    path: &str,
    key: &str,
    bytes: &[u8],
    expected: (Option<&str>, &str, &str),
) -> Value {
    let reply = put(app, path, key, bytes.to_vec()).await;
    assert_eq!(reply.status, 200, "{path}: {}", reply.body);
    let info = reply.json();
    let (group, name, version) = expected;
    assert_eq!(info["group"].as_str(), group, "{info}");
    assert_eq!(info["name"], name, "{info}");
    assert_eq!(info["version"], version, "{info}");
    assert_eq!(info["sha256"], sha256(bytes));
    assert_eq!(info["size"], bytes.len() as u64);
    info
}

async fn downloads_as(app: &TestApp, path: &str, key: &str, bytes: &[u8], file_name: &str) {
    let reply = get(app, path, key).await;
    assert_eq!(reply.status(), 200, "{path}");
    let headers = reply.headers().clone();
    assert_eq!(headers["content-length"], bytes.len().to_string());
    assert_eq!(headers["etag"], format!("\"{}\"", sha256(bytes)));
    let media_type = if file_name.ends_with(".tgz") || file_name.ends_with(".tar.gz") {
        "application/gzip"
    } else if [".nupkg", ".upack", ".whl"]
        .iter()
        .any(|e| file_name.ends_with(e))
    {
        "application/zip"
    } else {
        "application/octet-stream"
    };
    assert_eq!(headers["content-type"], media_type, "{file_name}");
    let disposition = headers["content-disposition"].to_str().unwrap();
    assert!(
        disposition.starts_with(&format!("attachment; filename=\"{file_name}\"")),
        "{disposition}"
    );
    assert_eq!(reply.bytes().await.unwrap().as_ref(), bytes, "{path}");
}

async fn uploads_read_each_type_and_download_the_same_bytes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.system_key().await;
    for (feed, feed_type) in [
        ("nuget", FeedType::Nuget),
        ("npm", FeedType::Npm),
        ("upack", FeedType::Universal),
        ("pypi", FeedType::Pypi),
        ("maven", FeedType::Maven),
    ] {
        app.feed(feed, feed_type).await;
    }

    // NuGet, as `pgutil packages upload` sends it: PUT, no Content-Type.
    let package = nupkg("Newtonsoft.Json", "13.0.3");
    uploaded(
        &app,
        "/api/packages/nuget/upload/newtonsoft.json.13.0.3.nupkg",
        &key,
        &package,
        (None, "Newtonsoft.Json", "13.0.3"),
    )
    .await;
    downloads_as(
        &app,
        "/api/packages/nuget/download?name=Newtonsoft.Json&version=13.0.3",
        &key,
        &package,
        "newtonsoft.json.13.0.3.nupkg",
    )
    .await;
    // As ProGet's documentation downloads: by package URL.
    downloads_as(
        &app,
        "/api/packages/nuget/download?purl=pkg:nuget/Newtonsoft.Json@13.0.3",
        &key,
        &package,
        "newtonsoft.json.13.0.3.nupkg",
    )
    .await;

    // npm, its scope the group; from stdin (no file name), by POST.
    let tarball = npm_tgz("@babel/runtime", "7.21.0");
    let reply = Reply::read(
        app.client
            .post(app.url("/api/packages/npm/upload"))
            .basic_auth("api", Some(&key))
            .header("Content-Type", "application/octet-stream")
            .body(tarball.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["group"], "@babel");
    downloads_as(
        &app,
        "/api/packages/npm/download?group=@babel&name=runtime&version=7.21.0",
        &key,
        &tarball,
        "runtime-7.21.0.tgz",
    )
    .await;

    // Universal: group, name and version from upack.json.
    let upack = zip_of(&[
        (
            "upack.json",
            br#"{"group":"tools/build","name":"agent","version":"2.1.0"}"#,
        ),
        ("package/agent.exe", &[1u8; 3000]),
    ]);
    uploaded(
        &app,
        "/api/packages/upack/upload",
        &key,
        &upack,
        (Some("tools/build"), "agent", "2.1.0"),
    )
    .await;

    // PyPI: a wheel and an sdist of one version are two files of it.
    let wheel = zip_of(&[
        (
            "django_rest-5.0.6.dist-info/METADATA",
            b"Metadata-Version: 2.1\nName: Django-REST\nVersion: 5.0.6\n\nA long description.\n",
        ),
        ("django_rest/__init__.py", b""),
    ]);
    let info = uploaded(
        &app,
        "/api/packages/pypi/upload/django_rest-5.0.6-py3-none-any.whl",
        &key,
        &wheel,
        (None, "Django-REST", "5.0.6"),
    )
    .await;
    assert_eq!(info["qualifier"], "file=django_rest-5.0.6-py3-none-any.whl");
    let sdist = tgz_of(&[(
        "Django-REST-5.0.6/PKG-INFO",
        b"Metadata-Version: 2.1\nName: Django-REST\nVersion: 5.0.6\n",
    )]);
    uploaded(
        &app,
        "/api/packages/pypi/upload/Django-REST-5.0.6.tar.gz",
        &key,
        &sdist,
        (None, "Django-REST", "5.0.6"),
    )
    .await;
    // Two files of one version: a download must say which.
    let both = get(
        &app,
        "/api/packages/pypi/download?name=django-rest&version=5.0.6",
        &key,
    )
    .await;
    assert_eq!(both.status(), 400);
    downloads_as(&app, "/api/packages/pypi/download?name=django-rest&version=5.0.6&qualifier=file%3DDjango-REST-5.0.6.tar.gz", &key, &sdist, "Django-REST-5.0.6.tar.gz").await;

    // Maven files say nothing the server reads: the query names the package.
    let jar = vec![9u8; 10_000];
    uploaded(
        &app,
        "/api/packages/maven/upload/lib-1.0.jar?group=org.example&name=lib&version=1.0",
        &key,
        &jar,
        (Some("org.example"), "lib", "1.0"),
    )
    .await;
    let reply = put(
        &app,
        "/api/packages/maven/upload/lib-2.0.jar",
        &key,
        jar.clone(),
    )
    .await;
    reply.assert_error(
        400,
        "Parameter \"name\" is required: a maven package file does not say which package it is.",
    );

    // The pgutil listing carries the real hash and size.
    let listed = get(
        &app,
        "/api/packages/npm/versions?name=runtime&group=@babel",
        &key,
    )
    .await;
    let listed: Value = listed.json().await.unwrap();
    assert_eq!(listed[0]["sha256"], sha256(&tarball));
    assert_eq!(listed[0]["size"], tarball.len() as u64);

    // A record without content (`promoter packages add`) has nothing to download.
    let feed = app.feed("plain", FeedType::Npm).await;
    app.package(&feed, None, "left-pad", "1.3.0", "").await;
    let reply = Reply::read(
        get(
            &app,
            "/api/packages/plain/download?name=left-pad&version=1.3.0",
            &key,
        )
        .await,
    )
    .await;
    reply.assert_error(404, "Package left-pad 1.3.0 is a record without content (added with `promoter packages add`), so there is nothing to download.");
    let missing = Reply::read(
        get(
            &app,
            "/api/packages/npm/download?name=nothing&version=1.0.0",
            &key,
        )
        .await,
    )
    .await;
    missing.assert_error(404, "Package nothing 1.0.0 was not found in feed \"npm\".");
}

async fn a_retried_upload_is_answered_again_and_other_bytes_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.system_key().await;
    app.feed("nuget", FeedType::Nuget).await;
    let package = nupkg("Lib", "1.0.0");
    let first = uploaded(
        &app,
        "/api/packages/nuget/upload",
        &key,
        &package,
        (None, "Lib", "1.0.0"),
    )
    .await;
    let again = uploaded(
        &app,
        "/api/packages/nuget/upload",
        &key,
        &package,
        (None, "Lib", "1.0.0"),
    )
    .await;
    assert_eq!(first, again);
    assert_eq!(blobs(&app).len(), 1);
    let before = app.snapshot().await;

    // Same version, other bytes (another description).
    let other = zip_of(&[(
        "Lib.nuspec",
        b"<package><metadata><id>Lib</id><version>1.0.0</version><description>changed</description></metadata></package>",
    )]);
    let reply = put(&app, "/api/packages/nuget/upload", &key, other).await;
    reply.assert_error(400, "Package Lib 1.0.0 already exists in feed \"nuget\" with different content; delete it first to replace it.");
    assert_eq!(app.snapshot().await, before);
    // The refused bytes were never published.
    assert_eq!(blobs(&app).len(), 1);
}

async fn hostile_and_invalid_files_are_refused_and_change_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.system_key().await;
    app.feed("nuget", FeedType::Nuget).await;
    app.feed("npm", FeedType::Npm).await;
    app.feed("pypi", FeedType::Pypi).await;
    let before = app.snapshot().await;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("/api/packages/nuget/upload", b"not a zip at all".to_vec(), "The file is not a .nupkg (a zip archive)."),
        ("/api/packages/nuget/upload", zip_of(&[("readme.txt", b"hi")]), "The file is not a NuGet package: it has no .nuspec at its root."),
        ("/api/packages/nuget/upload", zip_of(&[("x.nuspec", b"<package><metadata><id>x</id>")]), "The file is not a NuGet package: its .nuspec has no <version>."),
        ("/api/packages/npm/upload", b"\x1f\x8bgarbage".to_vec(), "The file is not an npm package (a .tgz)"),
        ("/api/packages/npm/upload", tgz_of(&[("package/index.js", b"")]), "The file is not an npm package: it has no package/package.json."),
        ("/api/packages/npm/upload", tgz_of(&[("package/package.json", b"{\"name\":\"x\"}")]), "The file is not an npm package: its package.json has no \"version\"."),
        // A manifest inflated past 1 MiB: read no further than the limit.
        ("/api/packages/npm/upload", tgz_of(&[("package/package.json", &vec![b' '; 3 * 1024 * 1024])]), "larger than 1024 KiB."),
        ("/api/packages/pypi/upload", b"whatever".to_vec(), "The file has no file name: a PyPI file is uploaded to /api/packages/{feed}/upload/{fileName}."),
        ("/api/packages/pypi/upload/a-1.0.whl", zip_of(&[("a-1.0.dist-info/METADATA", b"Name: b\nVersion: 1.0\n")]), "The file \"a-1.0.whl\" names a 1.0, but its metadata says b 1.0."),
        ("/api/packages/nuget/upload", Vec::new(), "The request body is empty: send the package file."),
    ];
    for (path, body, expected) in cases {
        let reply = put(&app, path, &key, body).await;
        assert_eq!(reply.status, 400, "{path}: {}", reply.body);
        assert!(
            reply.body.contains(expected),
            "{path}: {:?} lacks {expected:?}",
            reply.body
        );
        assert_eq!(reply.content_type, "text/plain; charset=utf-8");
    }
    // A zip that claims more entries than a package may hold.
    let names: Vec<String> = (0..65_535).map(|i| format!("f{i}")).collect();
    let many: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b""[..])).collect();
    let reply = put(&app, "/api/packages/nuget/upload", &key, zip_of(&many)).await;
    reply.assert_error(
        400,
        "The file is refused: a package may hold fewer than 65535 entries.",
    );
    // A ZIP64 end record, whose counts could be anything.
    let mut zip64 = nupkg("Z", "1.0.0");
    let end = zip64
        .windows(4)
        .rposition(|w| w == [0x50, 0x4b, 5, 6])
        .unwrap();
    zip64[end + 16..end + 20].copy_from_slice(&[0xff; 4]);
    let reply = put(&app, "/api/packages/nuget/upload", &key, zip64).await;
    reply.assert_error(
        400,
        "The file is refused: a package may hold fewer than 65535 entries.",
    );
    // A tar long name of 100 KiB, which would otherwise be read whole.
    let long_name = format!("package/{}", "a".repeat(100 * 1024));
    let reply = put(
        &app,
        "/api/packages/npm/upload",
        &key,
        tgz_of(&[(long_name.as_str(), b"x")]),
    )
    .await;
    reply.assert_error(
        400,
        "The file is refused: it has a tar extension header larger than 64 KiB.",
    );
    // Multipart is not a file.
    let reply = Reply::read(
        app.client
            .put(app.url("/api/packages/nuget/upload"))
            .header("X-ApiKey", &key)
            .header("Content-Type", "multipart/form-data; boundary=x")
            .body("--x--")
            .send()
            .await
            .unwrap(),
    )
    .await;
    reply.assert_error(
        415,
        "The body must be the package file's bytes as they are, not multipart/form-data.",
    );
    // A key without `add` on the feed.
    let viewer = app
        .key("viewer", promoter::store::KeyScope::System, "view")
        .await;
    let reply = put(
        &app,
        "/api/packages/nuget/upload",
        &viewer,
        nupkg("A", "1.0.0"),
    )
    .await;
    assert_eq!(reply.status, 403);
    assert_eq!(app.snapshot().await, before);
    assert!(blobs(&app).is_empty());
}

async fn downloads_honour_ranges_latest_and_etags(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.system_key().await;
    app.feed("npm", FeedType::Npm).await;
    let mut versions = Vec::new();
    for version in ["1.2.0", "1.10.0", "2.0.0-beta.1"] {
        let bytes = npm_tgz("lodash", version);
        uploaded(
            &app,
            "/api/packages/npm/upload",
            &key,
            &bytes,
            (None, "lodash", version),
        )
        .await;
        versions.push(bytes);
    }
    let file = "/api/packages/npm/download?name=lodash";
    downloads_as(
        &app,
        &format!("{file}&version=latest"),
        &key,
        &versions[2],
        "lodash-2.0.0-beta.1.tgz",
    )
    .await;
    downloads_as(
        &app,
        &format!("{file}&version=latest-stable"),
        &key,
        &versions[1],
        "lodash-1.10.0.tgz",
    )
    .await;

    let exact = format!("{file}&version=1.10.0");
    let bytes = &versions[1];
    let ranged = |range: &'static str| {
        app.client
            .get(app.url(&exact))
            .header("X-ApiKey", &key)
            .header("Range", range)
            .send()
    };
    let reply = ranged("bytes=0-9").await.unwrap();
    assert_eq!(reply.status(), 206);
    assert_eq!(
        reply.headers()["content-range"],
        format!("bytes 0-9/{}", bytes.len())
    );
    assert_eq!(reply.bytes().await.unwrap().as_ref(), &bytes[..10]);
    let reply = ranged("bytes=-5").await.unwrap();
    assert_eq!(reply.status(), 206);
    assert_eq!(
        reply.bytes().await.unwrap().as_ref(),
        &bytes[bytes.len() - 5..]
    );
    let reply = ranged("bytes=999999-").await.unwrap();
    assert_eq!(reply.status(), 416);
    assert_eq!(
        reply.headers()["content-range"],
        format!("bytes */{}", bytes.len())
    );

    let reply = app
        .client
        .get(app.url(&exact))
        .header("X-ApiKey", &key)
        .header("If-None-Match", format!("\"{}\"", sha256(bytes)))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 304);

    // A name in two groups: without a group, the one without (an unscoped
    // npm package), even when the scoped one has a higher version.
    let scoped = npm_tgz("@a/core", "2.0.0");
    let unscoped = npm_tgz("core", "1.0.0");
    for bytes in [&scoped, &unscoped] {
        let reply = put(&app, "/api/packages/npm/upload", &key, bytes.clone()).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    downloads_as(
        &app,
        "/api/packages/npm/download?name=core&version=latest",
        &key,
        &unscoped,
        "core-1.0.0.tgz",
    )
    .await;
    downloads_as(
        &app,
        "/api/packages/npm/download?purl=pkg:npm/core@latest",
        &key,
        &unscoped,
        "core-1.0.0.tgz",
    )
    .await;
    downloads_as(
        &app,
        "/api/packages/npm/download?group=@a&name=core&version=latest",
        &key,
        &scoped,
        "core-2.0.0.tgz",
    )
    .await;
    let reply = get(
        &app,
        "/api/packages/npm/download?name=core&version=2.0.0",
        &key,
    )
    .await;
    assert_eq!(reply.status(), 404);
}

async fn a_promotion_moves_records_and_no_bytes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.system_key().await;
    app.feed("unapproved-npm", FeedType::Npm).await;
    app.feed("approved-npm", FeedType::Npm).await;
    let tarball = npm_tgz("@babel/runtime", "7.21.0");
    uploaded(
        &app,
        "/api/packages/unapproved-npm/upload",
        &key,
        &tarball,
        (Some("@babel"), "runtime", "7.21.0"),
    )
    .await;
    let stored = blobs(&app);
    assert_eq!(stored.len(), 1);
    let modified = std::fs::metadata(&stored[0]).unwrap().modified().unwrap();

    let reply = app.promote(&key, &crate::helpers::babel_promotion()).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let query = "download?group=@babel&name=runtime&version=7.21.0";
    downloads_as(
        &app,
        &format!("/api/packages/approved-npm/{query}"),
        &key,
        &tarball,
        "runtime-7.21.0.tgz",
    )
    .await;
    let gone = get(&app, &format!("/api/packages/unapproved-npm/{query}"), &key).await;
    assert_eq!(gone.status(), 404);
    // The same one blob, untouched.
    assert_eq!(blobs(&app), stored);
    assert_eq!(
        std::fs::metadata(&stored[0]).unwrap().modified().unwrap(),
        modified
    );
}

async fn blobs_no_record_refers_to_are_collected(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.system_key().await;
    app.feed("a", FeedType::Nuget).await;
    app.feed("b", FeedType::Nuget).await;
    let package = nupkg("Shared", "1.0.0");
    // The same bytes in two feeds are one blob.
    uploaded(
        &app,
        "/api/packages/a/upload",
        &key,
        &package,
        (None, "Shared", "1.0.0"),
    )
    .await;
    uploaded(
        &app,
        "/api/packages/b/upload",
        &key,
        &package,
        (None, "Shared", "1.0.0"),
    )
    .await;
    let only = uploaded(
        &app,
        "/api/packages/a/upload",
        &key,
        &nupkg("Only", "1.0.0"),
        (None, "Only", "1.0.0"),
    )
    .await;
    assert_eq!(blobs(&app).len(), 2);

    let delete = |feed: &'static str, name: &'static str| {
        app.client
            .post(app.url(&format!(
                "/api/packages/{feed}/delete?name={name}&version=1.0.0"
            )))
            .header("X-ApiKey", &key)
            .send()
    };
    assert_eq!(delete("a", "Shared").await.unwrap().status(), 200);
    assert_eq!(delete("a", "Only").await.unwrap().status(), 200);
    // Collected right after the deletion; the shared one stays for feed b.
    let only_blob = only["sha256"].as_str().unwrap().to_owned();
    // Its bytes and its row (which goes at the collector's commit, just
    // after the bytes).
    let rows = || async {
        let count: i64 = crate::helpers::on_store!(app, pool => sqlx::query_scalar("SELECT COUNT(*) FROM blobs").fetch_one(pool).await);
        count
    };
    let mut left = blobs(&app);
    for _ in 0..100 {
        if left.len() == 1 && rows().await == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        left = blobs(&app);
    }
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(!left[0].ends_with(&only_blob));
    assert_eq!(rows().await, 1);
    downloads_as(
        &app,
        "/api/packages/b/download?name=Shared&version=1.0.0",
        &key,
        &package,
        "Shared.1.0.0.nupkg",
    )
    .await;
}

async fn a_server_killed_mid_upload_leaves_no_record(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.system_key().await;
    app.feed("nuget", FeedType::Nuget).await;
    let mut server = ServerProcess::start(&app.database.url).await;
    let before = app.snapshot().await;
    // A body that starts and then waits, while the server is killed.
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    // The first mebibyte of a real package, then nothing.
    let mut start = nupkg("Cut", "1.0.0");
    start.resize(1024 * 1024, 0);
    sender.send(Ok(start)).await.unwrap();
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    });
    let upload = tokio::spawn(
        app.client
            .put(format!("{}/api/packages/nuget/upload", server.address))
            .header("X-ApiKey", &key)
            .body(reqwest::Body::wrap_stream(stream))
            .send(),
    );
    // Wait until the server has started staging the upload.
    let staging = storage_of(&app.database.url).join("staging");
    let mut staged = false;
    for _ in 0..200 {
        staged = std::fs::read_dir(&staging).is_ok_and(|mut d| d.next().is_some());
        if staged {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(staged, "the server never started staging the upload");
    server.kill_9();
    // The client sees its connection cut; what matters is the server side.
    let _ = upload.await;
    drop(sender);
    assert_eq!(app.snapshot().await, before);
    assert!(blobs(&app).is_empty());
    // A restarted server works, and a complete upload then lands.
    let mut server = ServerProcess::start(&app.database.url).await;
    let package = nupkg("After", "1.0.0");
    let reply = Reply::read(
        app.client
            .put(format!("{}/api/packages/nuget/upload", server.address))
            .header("X-ApiKey", &key)
            .body(package)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    server.kill_9();
}

/// The same bytes uploaded, deleted and uploaded again while the collector runs
/// (the server's own after each deletion, and another here): whenever the
/// record exists, its bytes download.
async fn uploads_racing_the_collector_never_lose_their_bytes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.system_key().await;
    app.feed("nuget", FeedType::Nuget).await;
    let settings = promoter::content::Settings::directory(storage_of(&app.database.url));
    let package = nupkg("Race", "1.0.0");
    let delete = || {
        app.client
            .post(app.url("/api/packages/nuget/delete?name=Race&version=1.0.0"))
            .header("X-ApiKey", &key)
            .send()
    };
    for _ in 0..20 {
        let reply = put(&app, "/api/packages/nuget/upload", &key, package.clone()).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(delete().await.unwrap().status(), 200);
        let (reply, collected) = tokio::join!(
            put(&app, "/api/packages/nuget/upload", &key, package.clone()),
            promoter::content::collect_garbage(&app.store, &settings),
        );
        collected.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.body);
        promoter::content::collect_garbage(&app.store, &settings)
            .await
            .unwrap();
        downloads_as(
            &app,
            "/api/packages/nuget/download?name=Race&version=1.0.0",
            &key,
            &package,
            "Race.1.0.0.nupkg",
        )
        .await;
        assert_eq!(delete().await.unwrap().status(), 200);
    }
}

/// Upload A marks a blob, upload B of the same bytes marks it again, A
/// records its file and commits: B's mark stays, so a collection while B is
/// still publishing leaves the bytes alone (even once A's record is gone).
async fn an_upload_clears_only_its_own_mark(backend: Backend) {
    use promoter::domain::{Identifier, PackageId};
    let app = TestApp::spawn(backend).await;
    let key = app.system_key().await;
    let feed = app.feed("nuget", FeedType::Nuget).await;
    let settings = promoter::content::Settings::directory(storage_of(&app.database.url));
    let bytes = nupkg("Marked", "1.0.0");
    let sha = sha256(&bytes);
    let a = app.store.note_blob(&sha, bytes.len() as u64).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let _b = app.store.note_blob(&sha, bytes.len() as u64).await.unwrap();
    // A publishes.
    let chunks = futures::stream::iter([Ok::<_, std::io::Error>(axum::body::Bytes::from(
        bytes.clone(),
    ))]);
    let staged = promoter::content::storage::stage(&settings.storage.staging(), chunks, u64::MAX)
        .await
        .unwrap();
    settings.storage.publish(&staged).await.unwrap();
    let package = PackageId::new(
        FeedType::Nuget,
        None,
        &Identifier::parse("Marked").unwrap(),
        &Identifier::parse("1.0.0").unwrap(),
    )
    .unwrap();
    let file = promoter::store::ContentFile {
        package: &package,
        qualifier: "",
        file_name: "Marked.1.0.0.nupkg",
        sha256: &sha,
        size: bytes.len() as u64,
        digests: &staged.digests,
        metadata: None,
        origin: None,
    };
    app.store
        .add_content(&feed, &file, a, || async { Ok(true) })
        .await
        .unwrap();
    // A's record deleted: only B's mark keeps the bytes now.
    for feed in ["nuget"] {
        let reply = app
            .client
            .post(app.url(&format!(
                "/api/packages/{feed}/delete?name=Marked&version=1.0.0"
            )))
            .header("X-ApiKey", &key)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200);
    }
    promoter::content::collect_garbage(&app.store, &settings)
        .await
        .unwrap();
    assert_eq!(blobs(&app).len(), 1, "B's bytes were collected");
}

//! PyPI feeds (contract sections 12 and 14, issue 23), driven by the real
//! clients `scripts/test` installs from PyPI: files built by `python -m
//! build`, uploaded by twine and `uv publish`, installed by pip and `uv pip
//! install` before and after a promotion; the simple API in HTML and JSON,
//! PEP 658 metadata, redirects, challenges and refused uploads over plain
//! HTTP. Every client run has its own cache and ignores the machine's
//! configuration (`--isolated`, `--no-config`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use promoter::domain::FeedType;
use promoter::store::KeyScope;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::TestApp;

both_backends!(
    upload_promote_and_install,
    pages_challenges_and_refusals,
    older_files_are_described_when_first_served,
);

/// The virtual environment's `bin` folder with pip, twine, uv and build,
/// as `scripts/test` installs them.
pub fn clients() -> PathBuf {
    PathBuf::from(std::env::var("PROMOTER_TEST_PYPI_CLIENTS").expect(
        "PROMOTER_TEST_PYPI_CLIENTS must name the folder with pip, twine and uv: run the tests through scripts/test",
    ))
}

pub fn run(program: &str, args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(clients().join(program));
    command.args(args).current_dir(cwd);
    // The machine's pip settings (find-links, certificates) stay out.
    for (name, _) in std::env::vars() {
        if name.starts_with("PIP_") || name.starts_with("UV_") || name.starts_with("TWINE_") {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().copied());
    command.output().unwrap_or_else(|e| {
        panic!("{program} could not be started ({e}): scripts/test installs it")
    })
}

pub fn text(output: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn ok(program: &str, args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> String {
    let output = run(program, args, cwd, env);
    assert!(
        output.status.success(),
        "{program} {args:?} failed:\n{}",
        text(&output)
    );
    text(&output)
}

/// The files every test uploads, built once: `Hello.Promoter` 1.0.0 and
/// 1.1.0rc1 (wheel and sdist each, `requires-python >=3.8`), and another
/// 1.0.0 wheel with other bytes.
pub struct Dists {
    _dir: tempfile::TempDir,
    pub stable: Vec<PathBuf>,
    pub candidate: Vec<PathBuf>,
    pub other_stable_wheel: PathBuf,
}

pub fn dists() -> &'static Dists {
    static DISTS: OnceLock<Dists> = OnceLock::new();
    DISTS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let build = |folder: &str, version: &str, said: &str| -> Vec<PathBuf> {
            let project = dir.path().join(folder);
            std::fs::create_dir_all(project.join("src/hello_promoter")).unwrap();
            std::fs::write(
                project.join("pyproject.toml"),
                format!(
                    "[build-system]\nrequires = [\"setuptools\"]\nbuild-backend = \"setuptools.build_meta\"\n\
                     [project]\nname = \"Hello.Promoter\"\nversion = \"{version}\"\nrequires-python = \">=3.8\"\n\
                     description = \"a test package\"\n"
                ),
            )
            .unwrap();
            std::fs::write(
                project.join("src/hello_promoter/__init__.py"),
                format!("SAID = {said:?}\n"),
            )
            .unwrap();
            ok(
                "python",
                &["-m", "build", "--no-isolation", "--sdist", "--wheel", "."],
                &project,
                &[],
            );
            let mut files: Vec<PathBuf> = std::fs::read_dir(project.join("dist"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            files.sort();
            files
        };
        let stable = build("stable", "1.0.0", "hello");
        let candidate = build("candidate", "1.1.0rc1", "candidate");
        let other = build("other", "1.0.0", "other bytes");
        let other_stable_wheel = other.into_iter().find(|f| is_wheel(f)).unwrap();
        Dists {
            _dir: dir,
            stable,
            candidate,
            other_stable_wheel,
        }
    })
}

pub fn is_wheel(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "whl")
}

fn names(files: &[PathBuf]) -> Vec<&str> {
    files.iter().map(|f| f.to_str().unwrap()).collect()
}

fn sha256_of(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

async fn pypi_feeds(app: &TestApp) -> String {
    app.feed("unapproved-pypi", FeedType::Pypi).await;
    app.feed("approved-pypi", FeedType::Pypi).await;
    app.system_key().await
}

fn upload_url(app: &TestApp, feed: &str) -> String {
    format!("{}/pypi/{feed}/", app.address)
}

/// `twine upload` of `files` to `feed` with `key`.
fn twine(app: &TestApp, feed: &str, key: &str, files: &[&str]) -> Output {
    let url = upload_url(app, feed);
    let mut args = vec!["upload", "--disable-progress-bar", "--repository-url", &url];
    args.extend_from_slice(files);
    run(
        "twine",
        &args,
        Path::new("/"),
        &[
            ("TWINE_USERNAME", "api"),
            ("TWINE_PASSWORD", key),
            ("TWINE_NON_INTERACTIVE", "1"),
        ],
    )
}

/// The index URL pip and uv read, with the key as Basic's password.
pub fn index_url(app: &TestApp, feed: &str, key: Option<&str>) -> String {
    let host = app.address.trim_start_matches("http://");
    match key {
        Some(key) => format!("http://api:{key}@{host}/pypi/{feed}/simple"),
        None => format!("http://{host}/pypi/{feed}/simple"),
    }
}

/// `pip install --target` into a new folder of `work`; the pip run.
pub fn pip_install(work: &Path, index: &str, args: &[&str]) -> (Output, PathBuf) {
    let target = tempfile::tempdir_in(work).unwrap().keep();
    let target_text = target.to_str().unwrap().to_owned();
    let mut all = vec![
        "install",
        "--isolated",
        "--no-input",
        "--disable-pip-version-check",
        "--no-cache-dir",
        "--target",
        &target_text,
        "--index-url",
        index,
    ];
    all.extend_from_slice(args);
    (run("pip", &all, work, &[]), target)
}

/// What `hello_promoter.SAID` is in an installed folder.
pub fn said(target: &Path) -> String {
    let output = Command::new(clients().join("python"))
        .args([
            "-c",
            "import sys; sys.path.insert(0, sys.argv[1]); import hello_promoter; print(hello_promoter.SAID)",
            target.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

async fn promote(app: &TestApp, key: &str, version: &str) {
    let reply = app
        .promote(
            key,
            &json!({"packageName": "hello-promoter", "version": version,
                "fromFeed": "unapproved-pypi", "toFeed": "approved-pypi"}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

async fn page(app: &TestApp, path: &str, key: &str, accept: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .basic_auth("api", Some(key))
        .header("Accept", accept)
        .send()
        .await
        .unwrap()
}

async fn json_page(app: &TestApp, feed: &str, key: &str) -> (u16, Value) {
    let response = page(
        app,
        &format!("/pypi/{feed}/simple/hello-promoter/"),
        key,
        "application/vnd.pypi.simple.v1+json",
    )
    .await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn upload_promote_and_install(app: TestApp) {
    let key = pypi_feeds(&app).await;
    let dists = dists();
    let work = tempfile::tempdir().unwrap();
    let all: Vec<&str> = names(&dists.stable)
        .into_iter()
        .chain(names(&dists.candidate))
        .collect();

    // twine uploads all four; the same files again are fine.
    for _ in 0..2 {
        let output = twine(&app, "unapproved-pypi", &key, &all);
        assert!(output.status.success(), "{}", text(&output));
    }
    // Other bytes under a file name already there: refused, and twine says why.
    let output = twine(
        &app,
        "unapproved-pypi",
        &key,
        &[dists.other_stable_wheel.to_str().unwrap()],
    );
    assert!(!output.status.success());
    let said_by_twine = text(&output);
    assert!(said_by_twine.contains("409"), "{said_by_twine}");
    assert!(
        said_by_twine.contains("File already exists"),
        "{said_by_twine}"
    );
    // uv publishes the same files: each is already there, unchanged.
    let url = upload_url(&app, "unapproved-pypi");
    let uv_cache = work.path().join("uv-cache");
    let mut args = vec![
        "publish",
        "--no-config",
        "--publish-url",
        &url,
        "--username",
        "api",
        "--password",
        &key,
    ];
    args.extend_from_slice(&all);
    ok(
        "uv",
        &args,
        work.path(),
        &[("UV_CACHE_DIR", uv_cache.to_str().unwrap())],
    );

    // The page shows both versions, every file, and what pip needs.
    let (status, page) = json_page(&app, "unapproved-pypi", &key).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["meta"]["api-version"], "1.1");
    assert_eq!(page["name"], "hello-promoter");
    assert_eq!(page["versions"], json!(["1.0.0", "1.1.0rc1"]));
    let files = page["files"].as_array().unwrap();
    assert_eq!(files.len(), 4, "{page}");
    for path in dists.stable.iter().chain(&dists.candidate) {
        let name = path.file_name().unwrap().to_str().unwrap();
        let file = files.iter().find(|f| f["filename"] == name).unwrap();
        assert_eq!(file["hashes"]["sha256"], sha256_of(path));
        assert_eq!(file["requires-python"], ">=3.8");
        assert_eq!(file["size"], std::fs::metadata(path).unwrap().len());
        assert!(file.get("_promotion").is_none(), "uploaded here: {file}");
        let bytes = app
            .client
            .get(file["url"].as_str().unwrap())
            .basic_auth("api", Some(&key))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(hex::encode(Sha256::digest(&bytes)), sha256_of(path));
        if is_wheel(path) {
            // PEP 658: the wheel's METADATA beside it, with the hash the page gives.
            let metadata = app
                .client
                .get(format!("{}.metadata", file["url"].as_str().unwrap()))
                .basic_auth("api", Some(&key))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            assert_eq!(metadata, metadata_in(path));
            assert_eq!(
                file["core-metadata"]["sha256"],
                hex::encode(Sha256::digest(metadata.as_bytes()))
            );
        } else {
            assert_eq!(file["core-metadata"], false);
            let none = app
                .client
                .get(format!("{}.metadata", file["url"].as_str().unwrap()))
                .basic_auth("api", Some(&key))
                .send()
                .await
                .unwrap();
            assert_eq!(none.status(), 404, "an sdist offers no metadata");
        }
    }

    // Not approved yet: pip finds nothing.
    let approved = index_url(&app, "approved-pypi", Some(&key));
    let (output, _) = pip_install(work.path(), &approved, &["Hello.Promoter"]);
    assert!(!output.status.success());
    assert!(
        text(&output).contains("No matching distribution found for Hello.Promoter"),
        "{}",
        text(&output)
    );

    promote(&app, &key, "1.0.0").await;
    promote(&app, &key, "1.1.0rc1").await;
    // Wheel and sdist moved together; the source serves neither.
    let (status, moved) = json_page(&app, "approved-pypi", &key).await;
    assert_eq!(status, 200);
    assert_eq!(moved["files"].as_array().unwrap().len(), 4);
    let promotion = &moved["files"][0]["_promotion"];
    assert_eq!(promotion["fromFeed"], "unapproved-pypi");
    assert_eq!(promotion["user"], "ci-key");
    let (status, _) = json_page(&app, "unapproved-pypi", &key).await;
    assert_eq!(status, 404);

    // Stable only without --pre; the release candidate with it.
    let (output, target) = pip_install(work.path(), &approved, &["Hello.Promoter"]);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(said(&target), "hello");
    let (output, target) = pip_install(work.path(), &approved, &["--pre", "hello_promoter"]);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(said(&target), "candidate");

    // --require-hashes with the hashes of the files built here: the wheel,
    // and the sdist when pip may not use wheels.
    let wheel = dists.stable.iter().find(|f| is_wheel(f)).unwrap();
    let sdist = dists.stable.iter().find(|f| !is_wheel(f)).unwrap();
    let requirements = work.path().join("requirements.txt");
    std::fs::write(
        &requirements,
        format!(
            "hello-promoter==1.0.0 --hash=sha256:{} --hash=sha256:{}\n",
            sha256_of(wheel),
            sha256_of(sdist)
        ),
    )
    .unwrap();
    let requirements = requirements.to_str().unwrap();
    for extra in [
        &[][..],
        &["--no-binary", ":all:", "--no-build-isolation"][..],
    ] {
        let mut args = vec!["--require-hashes", "-r", requirements];
        args.extend_from_slice(extra);
        let (output, target) = pip_install(work.path(), &approved, &args);
        assert!(output.status.success(), "{}", text(&output));
        assert_eq!(said(&target), "hello");
    }
    // A hash that is not the file's: pip refuses what the feed serves.
    std::fs::write(
        work.path().join("wrong.txt"),
        format!("hello-promoter==1.0.0 --hash=sha256:{}\n", "0".repeat(64)),
    )
    .unwrap();
    let wrong = work.path().join("wrong.txt");
    let (output, _) = pip_install(
        work.path(),
        &approved,
        &["--require-hashes", "-r", wrong.to_str().unwrap()],
    );
    assert!(!output.status.success());
    assert!(
        text(&output).contains("THESE PACKAGES DO NOT MATCH THE HASHES"),
        "{}",
        text(&output)
    );

    // uv reads the same index.
    let target = work.path().join("uv-target");
    ok(
        "uv",
        &[
            "pip",
            "install",
            "--no-config",
            "--python",
            clients().join("python").to_str().unwrap(),
            "--target",
            target.to_str().unwrap(),
            "--index-url",
            &approved,
            "hello-promoter",
        ],
        work.path(),
        &[
            ("UV_CACHE_DIR", uv_cache.to_str().unwrap()),
            ("UV_PYTHON_DOWNLOADS", "never"),
        ],
    );
    assert_eq!(said(&target), "hello");

    // Without credentials pip is challenged, and says so when asked.
    let anonymous = index_url(&app, "approved-pypi", None);
    let (output, _) = pip_install(work.path(), &anonymous, &["-vv", "hello-promoter"]);
    assert!(!output.status.success());
    assert!(
        text(&output).contains("401 Client Error"),
        "{}",
        text(&output)
    );
}

/// One multipart form field: a name and a value, or a file.
enum Part<'a> {
    Text(&'a str, &'a str),
    File(&'a str, &'a [u8]),
}

/// A `multipart/form-data` body as twine sends it, and its content type.
fn form(parts: &[Part]) -> (String, Vec<u8>) {
    let boundary = "promoter-test-boundary";
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match part {
            Part::Text(name, value) => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                    .as_bytes(),
            ),
            Part::File(file_name, bytes) => {
                body.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"content\"; filename=\"{file_name}\"\r\n\
                         Content-Type: application/octet-stream\r\n\r\n"
                    )
                    .as_bytes(),
                );
                body.extend_from_slice(bytes);
                body.extend_from_slice(b"\r\n");
            }
        }
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A wheel of Hello.Promoter 1.0.0 holding only `metadata` as its METADATA.
fn wheel_with_metadata(metadata: &str) -> Vec<u8> {
    use std::io::Write;
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    writer
        .start_file(
            "hello_promoter-1.0.0.dist-info/METADATA",
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
    writer.write_all(metadata.as_bytes()).unwrap();
    writer.finish().unwrap().into_inner()
}

/// The METADATA inside a wheel file.
fn metadata_in(wheel: &Path) -> String {
    use std::io::Read;
    let mut archive = zip::ZipArchive::new(std::fs::File::open(wheel).unwrap()).unwrap();
    let name = archive
        .file_names()
        .filter_map(Result::ok)
        .find(|n| n.ends_with(".dist-info/METADATA"))
        .unwrap()
        .into_owned();
    let mut text = String::new();
    archive
        .by_name(&name)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    text
}

async fn post_raw(app: &TestApp, key: &str, content_type: String, body: Vec<u8>) -> (u16, String) {
    let response = app
        .client
        .post(upload_url(app, "unapproved-pypi"))
        .basic_auth("__token__", Some(key))
        .header("Content-Type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

async fn pages_challenges_and_refusals(app: TestApp) {
    let key = pypi_feeds(&app).await;
    app.feed("some-npm", FeedType::Npm).await;
    let dists = dists();
    let wheel_path = dists.stable.iter().find(|f| is_wheel(f)).unwrap();
    let wheel = std::fs::read(wheel_path).unwrap();
    let wheel_name = wheel_path.file_name().unwrap().to_str().unwrap();
    let digest = sha256_of(wheel_path);
    // The form twine sends for the wheel, with `changed` fields replaced
    // (an empty value leaves the field out).
    let fields = |changed: &[(&str, &str)]| -> Vec<(String, String)> {
        [
            (":action", "file_upload"),
            ("protocol_version", "1"),
            ("name", "Hello.Promoter"),
            ("version", "1.0.0"),
            ("filetype", "bdist_wheel"),
            ("sha256_digest", digest.as_str()),
        ]
        .iter()
        .map(|(name, value)| {
            let value = changed
                .iter()
                .find(|(n, _)| n == name)
                .map_or(*value, |(_, v)| *v);
            (name.to_string(), value.to_string())
        })
        .filter(|(_, value)| !value.is_empty())
        .collect()
    };
    let with = |fields: &[(String, String)], file: Part| -> (String, Vec<u8>) {
        let mut parts: Vec<Part> = fields
            .iter()
            .map(|(n, v)| Part::Text(n.as_str(), v.as_str()))
            .collect();
        parts.push(file);
        form(&parts)
    };
    let the_wheel = || Part::File(wheel_name, &wheel);
    // A wheel whose METADATA holds a NUL: refused before PostgreSQL sees it.
    let nul_wheel = wheel_with_metadata("Name: Hello.Promoter\nVersion: 1.0.0\nSummary: a\0b\n\n");
    let nul_digest = hex::encode(Sha256::digest(&nul_wheel));
    let long = "x".repeat(70 * 1024);
    let zeros = "0".repeat(64);
    // Refusals name the field, and store nothing.
    let cases: Vec<((String, Vec<u8>), &str)> = vec![
        (
            with(&fields(&[("sha256_digest", &zeros)]), the_wheel()),
            "Field sha256_digest is",
        ),
        (
            with(&fields(&[("version", "2.0")]), the_wheel()),
            "not Hello.Promoter 2.0 as the request says",
        ),
        (
            with(&fields(&[(":action", "")]), the_wheel()),
            "Field :action is missing",
        ),
        (
            with(&fields(&[("filetype", "sdist")]), the_wheel()),
            "filetype \"sdist\" does not fit",
        ),
        (
            with(&fields(&[(":action", "doc_upload")]), the_wheel()),
            "Field :action \"doc_upload\" is not supported",
        ),
        (
            with(&fields(&[("name", &long)]), the_wheel()),
            "Field name is longer than 64 KiB",
        ),
        (
            with(
                &fields(&[]),
                Part::File("../x-1.0-py3-none-any.whl", &wheel),
            ),
            "Field content must have a file name",
        ),
        (
            with(&fields(&[]), Part::File(wheel_name, b"")),
            "Field content is empty",
        ),
        (
            with(
                &fields(&[("sha256_digest", &nul_digest)]),
                Part::File("hello_promoter-1.0.0-py3-none-any.whl", &nul_wheel),
            ),
            "holding a NUL character",
        ),
        (form(&[the_wheel(), the_wheel()]), "two content fields"),
        (
            form(&[Part::Text(":action", "file_upload")]),
            "Field content is missing",
        ),
    ];
    for ((content_type, body), said) in cases {
        let (status, answer) = post_raw(&app, &key, content_type, body).await;
        assert_eq!(status, 400, "{said}: {answer}");
        assert!(answer.contains(said), "{said}: {answer}");
    }
    let response = app
        .client
        .post(upload_url(&app, "unapproved-pypi"))
        .basic_auth("api", Some(&key))
        .body("name=x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("multipart/form-data"));
    assert_eq!(
        app.texts("SELECT CAST((SELECT COUNT(*) FROM blobs) + (SELECT COUNT(*) FROM package_files) AS TEXT)")
            .await,
        ["0"],
        "a refused upload stored nothing"
    );
    let (status, _) = json_page(&app, "unapproved-pypi", &key).await;
    assert_eq!(status, 404, "a refused upload stored nothing");
    // The same form, right: stored; at /legacy/ too, as on PyPI.
    let (content_type, body) = with(&fields(&[]), the_wheel());
    let (status, answer) = post_raw(&app, &key, content_type, body).await;
    assert_eq!(status, 200, "{answer}");
    let (content_type, body) = with(&fields(&[]), the_wheel());
    let legacy = app
        .client
        .post(app.url("/pypi/unapproved-pypi/legacy/"))
        .basic_auth("api", Some(&key))
        .header("Content-Type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(legacy.status(), 200);

    // HTML by default and for PEP 691's HTML name; JSON when asked; 406 for
    // nothing this index serves.
    let html = page(
        &app,
        "/pypi/unapproved-pypi/simple/hello-promoter/",
        &key,
        "",
    )
    .await;
    assert_eq!(html.status(), 200);
    assert_eq!(html.headers()["content-type"], "text/html");
    let html = html.text().await.unwrap();
    assert!(html.contains("data-requires-python=\"&gt;=3.8\""), "{html}");
    assert!(html.contains(&format!("#sha256={digest}\"")), "{html}");
    assert!(html.contains("data-core-metadata=\"sha256="), "{html}");
    let named = page(
        &app,
        "/pypi/unapproved-pypi/simple/hello-promoter/",
        &key,
        "application/vnd.pypi.simple.v1+html",
    )
    .await;
    assert_eq!(
        named.headers()["content-type"],
        "application/vnd.pypi.simple.v1+html"
    );
    let refused = page(
        &app,
        "/pypi/unapproved-pypi/simple/hello-promoter/",
        &key,
        "application/xml",
    )
    .await;
    assert_eq!(refused.status(), 406);
    // The project list.
    let list = page(
        &app,
        "/pypi/unapproved-pypi/simple/",
        &key,
        "application/vnd.pypi.simple.v1+json",
    )
    .await;
    let list: Value = list.json().await.unwrap();
    assert_eq!(list["projects"], json!([{"name": "Hello.Promoter"}]));
    let list = page(&app, "/pypi/unapproved-pypi/simple/", &key, "text/html")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        list.contains("/pypi/unapproved-pypi/simple/hello-promoter/\">Hello.Promoter</a>"),
        "{list}"
    );

    // Another spelling of the name: sent to the normalised page.
    let redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(app.url("/pypi/unapproved-pypi/simple/Hello_Promoter/"))
        .basic_auth("api", Some(&key))
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), 301);
    assert_eq!(
        redirect.headers()["location"],
        format!(
            "{}/pypi/unapproved-pypi/simple/hello-promoter/",
            app.address
        )
    );

    // ETag and 304; never cached past a commit.
    let first = page(
        &app,
        "/pypi/unapproved-pypi/simple/hello-promoter/",
        &key,
        "",
    )
    .await;
    assert_eq!(first.headers()["cache-control"], "no-cache");
    let etag = first.headers()["etag"].clone();
    let again = app
        .client
        .get(app.url("/pypi/unapproved-pypi/simple/hello-promoter/"))
        .basic_auth("api", Some(&key))
        .header("If-None-Match", etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);

    // Challenges: none without credentials, a wrong key 401, a key for
    // another feed 403, another feed type 404 naming it.
    let anonymous = app
        .client
        .get(app.url("/pypi/unapproved-pypi/simple/hello-promoter/"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        anonymous.headers()["www-authenticate"],
        "Basic realm=\"Promoter\""
    );
    let wrong = page(
        &app,
        "/pypi/unapproved-pypi/simple/hello-promoter/",
        &"f".repeat(64),
        "",
    )
    .await;
    assert_eq!(wrong.status(), 401);
    let other = app
        .key(
            "other",
            KeyScope::Feed(promoter::domain::FeedName::parse("approved-pypi").unwrap()),
            "view,add",
        )
        .await;
    let outsider = page(
        &app,
        "/pypi/unapproved-pypi/simple/hello-promoter/",
        &other,
        "",
    )
    .await;
    assert_eq!(outsider.status(), 403);
    let (content_type, body) = with(&fields(&[]), the_wheel());
    let (status, _) = post_raw(&app, &other, content_type, body).await;
    assert_eq!(status, 403);
    let npm = page(&app, "/pypi/some-npm/simple/", &key, "").await;
    assert_eq!(npm.status(), 404);
    assert!(npm
        .text()
        .await
        .unwrap()
        .contains("is an npm feed, not a pypi feed"));

    // twine with a wrong key: refused, nothing stored.
    let output = twine(
        &app,
        "approved-pypi",
        &"f".repeat(64),
        &[wheel_path.to_str().unwrap()],
    );
    assert!(!output.status.success());
    assert!(text(&output).contains("401"), "{}", text(&output));

    // A public feed: pip needs no key to install, twine still needs one to upload.
    promote(&app, &key, "1.0.0").await;
    let reply = app
        .json_post(
            "/api/management/feeds/update/approved-pypi",
            &key,
            &json!({"public": true}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let work = tempfile::tempdir().unwrap();
    let (output, target) = pip_install(
        work.path(),
        &index_url(&app, "approved-pypi", None),
        &["hello-promoter"],
    );
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(said(&target), "hello");
    let anonymous_upload = app
        .client
        .post(upload_url(&app, "approved-pypi"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous_upload.status(), 401);
}

async fn older_files_are_described_when_first_served(app: TestApp) {
    let key = pypi_feeds(&app).await;
    let dists = dists();
    let output = twine(&app, "unapproved-pypi", &key, &names(&dists.stable));
    assert!(output.status.success(), "{}", text(&output));
    let (_, before) = json_page(&app, "unapproved-pypi", &key).await;
    // As files stored before core metadata and digests were kept.
    app.execute("UPDATE blobs SET sha1 = NULL, sha512 = NULL")
        .await;
    app.execute("UPDATE package_files SET metadata = NULL")
        .await;
    let (status, after) = json_page(&app, "unapproved-pypi", &key).await;
    assert_eq!(status, 200);
    assert_eq!(after["files"], before["files"]);
    assert_eq!(after["files"][0]["requires-python"], ">=3.8");
    assert_eq!(
        app.texts("SELECT CAST(COUNT(*) AS TEXT) FROM package_files WHERE metadata IS NOT NULL")
            .await,
        ["2"]
    );
}

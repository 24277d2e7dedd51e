//! The `promoter` binary itself: bootstrap commands, then `promoter serve` answering
//! curl-style requests, on both backends.

use std::process::{Command, Output};

use crate::helpers::{Backend, ServerProcess, TestDatabase, FORBIDDEN};

const BINARY: &str = env!("CARGO_BIN_EXE_promoter");

fn promoter(database_url: &str, args: &[&str]) -> Output {
    Command::new(BINARY)
        .args(args)
        .env("PROMOTER_DATABASE_URL", database_url)
        .env_remove("RUST_LOG")
        .output()
        .expect("could not run the promoter binary")
}

#[track_caller]
fn succeeds(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[track_caller]
fn fails_saying(output: &Output, expected: &str) {
    assert!(!output.status.success(), "should have failed");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(expected),
        "stderr {stderr:?} lacks {expected:?}"
    );
}

each_backend!(
    the_quickstart_works_end_to_end,
    bad_cli_input_is_refused_and_changes_nothing,
    webhooks_are_managed_from_the_command_line,
    connectors_are_set_from_the_command_line
);

/// Contract section 16: `feeds create|update --connector`, `--no-connectors`.
async fn connectors_are_set_from_the_command_line(backend: Backend) {
    let database = TestDatabase::fresh(backend).await;
    let db = database.url.as_str();
    let feeds = |args: &[&str]| {
        let mut all = vec!["feeds"];
        all.extend_from_slice(args);
        promoter(db, &all)
    };
    // A loopback upstream is the operator's choice: set, with a note.
    let created = feeds(&[
        "create",
        "unapproved-npm",
        "--type",
        "npm",
        "--connector",
        "http://127.0.0.1:4873",
    ]);
    succeeds(&created);
    let note = String::from_utf8_lossy(&created.stderr);
    assert!(
        note.contains("a loopback address; the server's connectors may only call public addresses unless it runs with --connector-allow-private"),
        "{note}"
    );
    let listed = succeeds(&feeds(&["list"]));
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("unapproved-npm") && l.ends_with("http://127.0.0.1:4873/")),
        "{listed}"
    );
    fails_saying(
        &feeds(&[
            "create",
            "files",
            "--type",
            "universal",
            "--connector",
            "https://up.example/",
        ]),
        "universal feed has no connectors",
    );
    fails_saying(
        &feeds(&[
            "create",
            "odd",
            "--type",
            "npm",
            "--connector",
            "ftp://up.example/",
        ]),
        "--connector ftp://up.example/: must be an http:// or https:// URL with a host.",
    );
    fails_saying(
        &feeds(&[
            "update",
            "unapproved-npm",
            "--connector",
            "https://a.example/",
            "--connector",
            "https://b.example/",
            "--connector-username",
            "bob",
        ]),
        "sign in to one connector",
    );
    succeeds(&feeds(&["update", "unapproved-npm", "--no-connectors"]));
    let listed = succeeds(&feeds(&["list"]));
    assert!(!listed.contains("4873"), "{listed}");
    assert!(
        !listed.contains("odd") && !listed.contains("files"),
        "{listed}"
    );
}

async fn the_quickstart_works_end_to_end(backend: Backend) {
    let database = TestDatabase::fresh(backend).await;
    let db = database.url.as_str();
    // A fixed target must exist before the feed that promotes to it.
    fails_saying(
        &promoter(
            db,
            &[
                "feeds",
                "create",
                "unapproved-npm",
                "--type",
                "npm",
                "--promote-to",
                "approved-npm",
            ],
        ),
        "Feed \"approved-npm\" does not exist.",
    );
    succeeds(&promoter(
        db,
        &["feeds", "create", "approved-npm", "--type", "NPM"],
    ));
    succeeds(&promoter(
        db,
        &[
            "feeds",
            "create",
            "unapproved-npm",
            "--type",
            "npm",
            "--promote-to",
            "approved-npm",
        ],
    ));
    let feeds = succeeds(&promoter(db, &["feeds", "list"]));
    assert!(
        feeds
            .lines()
            .any(|l| l.starts_with("unapproved-npm") && l.ends_with("approved-npm")),
        "{feeds}"
    );
    // Public: at creation, and changed later.
    let created = succeeds(&promoter(
        db,
        &["feeds", "create", "open-npm", "--type", "npm", "--public"],
    ));
    assert_eq!(created.trim(), "Created public npm feed open-npm.");
    let public_column = |db: &str| {
        succeeds(&promoter(db, &["feeds", "list"]))
            .lines()
            .find(|l| l.starts_with("open-npm"))
            .map(|l| l.split_whitespace().nth(3).unwrap().to_owned())
            .unwrap()
    };
    assert_eq!(public_column(db), "yes");
    let updated = succeeds(&promoter(
        db,
        &["feeds", "update", "open-npm", "--public", "false"],
    ));
    assert_eq!(updated.trim(), "Updated feed open-npm (not public).");
    assert_eq!(public_column(db), "no");
    succeeds(&promoter(db, &["feeds", "update", "open-npm", "--public"]));
    assert_eq!(public_column(db), "yes");
    succeeds(&promoter(
        db,
        &[
            "groups",
            "create",
            "npm",
            "--feeds",
            "unapproved-npm,approved-npm",
        ],
    ));

    let created = promoter(
        db,
        &[
            "keys",
            "create",
            "--group",
            "npm",
            "--permissions",
            "view,promote",
            "--name",
            "release-bot",
        ],
    );
    let key = succeeds(&created).trim().to_owned();
    assert_eq!(key.len(), 64);
    assert!(String::from_utf8_lossy(&created.stderr).contains("shown only this once"));

    succeeds(&promoter(
        db,
        &[
            "packages",
            "add",
            "--feed",
            "unapproved-npm",
            "--package",
            "@babel/runtime",
            "--version",
            "7.21.0",
            "--qualifier",
            "file=runtime.tgz",
        ],
    ));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("packages.jsonl");
    let lines: String = (0..500)
        .map(|i| {
            format!(
                "{{\"package\":\"@acme/lib{i}\",\"version\":\"1.0.{}\",\"size\":{i}}}\n",
                i % 3
            )
        })
        .collect();
    std::fs::write(&file, format!("{lines}{{\"package\":\"@babel/runtime\",\"version\":\"7.21.0\",\"qualifier\":\"file=runtime.tgz\"}}\n")).unwrap();
    let imported = succeeds(&promoter(
        db,
        &[
            "packages",
            "import",
            "--feed",
            "unapproved-npm",
            file.to_str().unwrap(),
        ],
    ));
    assert_eq!(
        imported.trim(),
        "Imported 500 files into feed unapproved-npm (1 were already there); it now holds 501 files."
    );

    // Listings never show any of the key text, only a label from its hash.
    let listed = succeeds(&promoter(db, &["keys", "list"]));
    let label = format!(
        "sha256:{}",
        &promoter::auth::ApiKey::from_presented(&key).hash()[..8]
    );
    assert!(
        listed.contains("release-bot") && listed.contains(&label) && !listed.contains(&key[..8]),
        "{listed}"
    );
    assert!(listed.contains("group npm") && listed.contains("view,promote"));

    let server = ServerProcess::start(db).await;
    let client = reqwest::Client::new();
    let promote = |body: &'static str| {
        client
            .post(format!("{}/api/promotions/promote", server.address))
            .header("X-ApiKey", &key)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let reply = promote("fromFeed=unapproved-npm&toFeed=approved-npm&group=babel&name=runtime&version=7.21.0&comments=QA+passed")
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let json: serde_json::Value = reply.json().await.unwrap();
    assert_eq!(json["user"], "release-bot");
    assert_eq!(json["group"], "@babel");

    // Revoking takes effect for the running server within 100 ms (the bound
    // on what a serving process keeps of another process's changes).
    let id = listed
        .lines()
        .find(|l| l.contains("release-bot"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap();
    succeeds(&promoter(db, &["keys", "revoke", id]));
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let reply =
        promote("fromFeed=unapproved-npm&toFeed=approved-npm&group=acme&name=lib1&version=1.0.1")
            .await
            .unwrap();
    assert_eq!(reply.status(), 403);
    assert_eq!(reply.text().await.unwrap(), format!("{FORBIDDEN}\n"));
    assert!(succeeds(&promoter(db, &["keys", "list"])).contains("release-bot"));
}

async fn bad_cli_input_is_refused_and_changes_nothing(backend: Backend) {
    let database = TestDatabase::fresh(backend).await;
    let db = database.url.as_str();
    fails_saying(
        &promoter(db, &["feeds", "create", "x", "--type", "zip"]),
        "[possible values: universal, nuget,",
    );
    fails_saying(
        &promoter(db, &["feeds", "create", "bad name", "--type", "npm"]),
        "must be 1 to 100 letters",
    );
    succeeds(&promoter(db, &["feeds", "create", "a", "--type", "npm"]));
    fails_saying(
        &promoter(db, &["feeds", "create", "A", "--type", "npm"]),
        "A feed named \"A\" already exists.",
    );
    fails_saying(
        &promoter(
            db,
            &[
                "feeds",
                "create",
                "b",
                "--type",
                "npm",
                "--promote-to",
                "nowhere",
            ],
        ),
        "Feed \"nowhere\" does not exist.",
    );
    fails_saying(
        &promoter(db, &["keys", "create", "--name", "x"]),
        "--system",
    );
    fails_saying(
        &promoter(
            db,
            &[
                "keys",
                "create",
                "--feed",
                "a",
                "--permissions",
                "view,manage",
            ],
        ),
        "manage is only for --system keys",
    );
    fails_saying(
        &promoter(db, &["keys", "create", "--system", "--expires", "tomorrow"]),
        "--expires \"tomorrow\" must be a date and time such as 2027-01-31T00:00:00Z",
    );
    fails_saying(
        &promoter(
            db,
            &["keys", "create", "--system", "--expires", "0001-01-01"],
        ),
        "--expires \"0001-01-01\" must be a date and time between the years 1970 and 9999",
    );
    fails_saying(
        &promoter(
            db,
            &[
                "keys",
                "create",
                "--system",
                "--expires",
                "9999-12-31T23:00:00-05:00",
            ],
        ),
        "between the years 1970 and 9999",
    );
    fails_saying(
        &promoter(db, &["keys", "create", "--group", "nope"]),
        "Feed group \"nope\" does not exist.",
    );
    fails_saying(
        &promoter(db, &["keys", "revoke", "99"]),
        "there is no key with id 99 that is not already revoked",
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.jsonl");
    std::fs::write(&file, "{\"package\":\"ok\",\"version\":\"1.0.0\"}\n{\"package\":\"bad\",\"version\":\"2.0.0\",\"sha256\":\"xyz\"}\n").unwrap();
    fails_saying(
        &promoter(
            db,
            &["packages", "import", "--feed", "a", file.to_str().unwrap()],
        ),
        "line 2: sha256 must be 64 hexadecimal digits",
    );
    // An npm feed takes what npm would publish: SemVer (contract 11).
    fails_saying(
        &promoter(
            db,
            &[
                "packages",
                "add",
                "--feed",
                "a",
                "--package",
                "x",
                "--version",
                "1.0",
            ],
        ),
        "the version \"1.0\" is not a SemVer 2.0.0 version",
    );
    fails_saying(
        &promoter(
            db,
            &[
                "packages",
                "add",
                "--feed",
                "a",
                "--package",
                "x",
                "--version",
                " ",
            ],
        ),
        "the version must not be empty",
    );
    fails_saying(
        &promoter(
            db,
            &[
                "packages",
                "add",
                "--feed",
                "zzz",
                "--package",
                "x",
                "--version",
                "1",
            ],
        ),
        "Feed \"zzz\" does not exist.",
    );

    let listed = succeeds(&promoter(db, &["keys", "list"]));
    assert_eq!(listed.lines().count(), 1, "no key was created: {listed}");
    let store = promoter::store::Store::open(db).await.unwrap();
    let feed = store
        .existing_feed(&promoter::domain::FeedName::parse("a").unwrap())
        .await
        .unwrap();
    assert_eq!(
        store.count_files(&feed).await.unwrap(),
        0,
        "a failed import wrote files"
    );
}

async fn webhooks_are_managed_from_the_command_line(backend: Backend) {
    let database = TestDatabase::fresh(backend).await;
    let db = database.url.as_str();
    succeeds(&promoter(
        db,
        &["feeds", "create", "approved-npm", "--type", "npm"],
    ));
    // The API's cap on a webhook's feeds holds here too.
    let many: Vec<String> = (0..101).map(|n| format!("feed{n}")).collect();
    fails_saying(
        &promoter(
            db,
            &[
                "webhooks",
                "add",
                "https://example.com/hook",
                "--feed",
                &many.join(","),
            ],
        ),
        "error: --feed may name at most 100 feeds",
    );
    fails_saying(
        &promoter(db, &["webhooks", "add", "http://127.0.0.1:9/hook"]),
        "error: the URL names 127.0.0.1, a loopback address; webhooks may only call public addresses unless `webhooks add` is given --webhook-allow-private",
    );
    fails_saying(
        &promoter(db, &["webhooks", "add", "gopher://example.com/"]),
        "error: the URL must use http or https, not gopher",
    );
    fails_saying(
        &promoter(
            db,
            &[
                "webhooks",
                "add",
                "http://127.0.0.1:9/",
                "--feed",
                "nowhere",
                "--webhook-allow-private",
            ],
        ),
        "Feed \"nowhere\" does not exist.",
    );

    let added = promoter(
        db,
        &[
            "webhooks",
            "add",
            "http://127.0.0.1:9/hook",
            "--feed",
            "APPROVED-npm",
            "--webhook-allow-private",
        ],
    );
    let secret = succeeds(&added);
    assert_eq!(
        secret.trim().len(),
        64,
        "the generated secret, alone on stdout"
    );
    assert!(String::from_utf8_lossy(&added.stderr).contains(
        "Added webhook 1 for approved-npm. Its signing secret follows; it is shown only this once."
    ));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret");
    std::fs::write(&file, "a secret chosen by the operator\n").unwrap();
    let chosen = succeeds(&promoter(
        db,
        &[
            "webhooks",
            "add",
            "http://127.0.0.1:9/other",
            "--secret-file",
            file.to_str().unwrap(),
            "--webhook-allow-private",
        ],
    ));
    assert_eq!(chosen, "Added webhook 2 for every feed.\n");
    std::fs::write(&file, "short\n").unwrap();
    fails_saying(
        &promoter(
            db,
            &[
                "webhooks",
                "add",
                "http://127.0.0.1:9/",
                "--secret-file",
                file.to_str().unwrap(),
                "--webhook-allow-private",
            ],
        ),
        "must be 16 to 200 characters long, not 5",
    );

    succeeds(&promoter(db, &["webhooks", "pause", "2"]));
    let listed = succeeds(&promoter(db, &["webhooks", "list"]));
    assert!(
        !listed.contains(secret.trim()) && !listed.contains("chosen by"),
        "{listed}"
    );
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 3, "{listed}");
    assert!(
        lines[1].starts_with("1     yes")
            && lines[1].contains("approved-npm")
            && lines[1].ends_with("http://127.0.0.1:9/hook"),
        "{listed}"
    );
    assert!(
        lines[2].starts_with("2     paused") && lines[2].contains("(all)"),
        "{listed}"
    );
    succeeds(&promoter(db, &["webhooks", "resume", "2"]));
    assert!(succeeds(&promoter(db, &["webhooks", "list"]))
        .lines()
        .nth(2)
        .unwrap()
        .starts_with("2     yes"));

    let deliveries = succeeds(&promoter(db, &["webhooks", "deliveries", "1"]));
    assert!(
        deliveries.starts_with("TIME") && deliveries.lines().count() == 1,
        "{deliveries}"
    );
    fails_saying(
        &promoter(db, &["webhooks", "deliveries", "7"]),
        "there is no webhook with id 7",
    );
    succeeds(&promoter(db, &["webhooks", "remove", "1"]));
    fails_saying(
        &promoter(db, &["webhooks", "remove", "1"]),
        "there is no webhook with id 1",
    );
    assert_eq!(
        succeeds(&promoter(db, &["webhooks", "list"]))
            .lines()
            .count(),
        2
    );
}

/// What a new user tripped over (issue 19): flags where they mean nothing,
/// a misspelt level, a bad address, a database that cannot be opened, a
/// server URL without its scheme. Each is one line that says what to do, and
/// leaves nothing behind.
#[test]
fn start_up_mistakes_are_refused_in_one_line_and_leave_nothing_behind() {
    let folder = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(BINARY)
            .args(args)
            .current_dir(folder.path())
            .env_remove("PROMOTER_DATABASE_URL")
            .env_remove("PROMOTER_URL")
            .env_remove("PROMOTER_LOG_LEVEL")
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    };
    let one_line = |output: &Output, expected: &str| {
        fails_saying(output, expected);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    };
    // A serve flag before the command is refused, not ignored.
    one_line(
        &run(&["--listen", "127.0.0.1:8701", "serve"]),
        "error: unexpected argument '--listen' found",
    );
    one_line(
        &run(&[
            "--webhook-allow-private",
            "webhooks",
            "add",
            "http://127.0.0.1:8899/x",
        ]),
        "error: unexpected argument '--webhook-allow-private' found",
    );
    // The client commands take no --database-url.
    one_line(
        &run(&["promote", "--database-url", "sqlite://x.db"]),
        "error: unexpected argument '--database-url' found",
    );
    // A level that is not one.
    for level in ["warning", "debg"] {
        one_line(
            &run(&["serve", "--log-level", level]),
            "is not a level; the levels are error, warn, info, debug, trace, off",
        );
    }
    // A bad address, before any database is created.
    one_line(
        &run(&["serve", "--listen", "nonsense"]),
        "error: could not listen on nonsense",
    );
    // `promoter` alone reads serve's settings from the environment, checked
    // as flags are.
    let alone = Command::new(BINARY)
        .current_dir(folder.path())
        .env_remove("PROMOTER_DATABASE_URL")
        .env("PROMOTER_MAX_UPLOAD_MIB", "0")
        .output()
        .unwrap();
    one_line(
        &alone,
        "error: invalid value '0' for '--max-upload-mib <MAX_UPLOAD_MIB>'",
    );
    assert_eq!(alone.status.code(), Some(2));
    // A package folder that cannot be written, before any database exists.
    one_line(
        &run(&["serve", "--storage-path", "/proc/no-such-folder"]),
        "error: could not write package files under /proc/no-such-folder/staging",
    );
    // A SQLite file in a folder that does not exist names both.
    let missing = folder.path().join("no-such-folder");
    one_line(
        &run(&[
            "feeds",
            "list",
            "--database-url",
            &format!("sqlite://{}/promoter.db?mode=rwc", missing.display()),
        ]),
        &format!(
            "error: could not open the SQLite database at {}/promoter.db: its folder {} does not exist",
            missing.display(),
            missing.display()
        ),
    );
    // A server URL without its scheme says so.
    let without_scheme = Command::new(BINARY)
        .args(["revert", "3"])
        .env("PROMOTER_URL", "127.0.0.1:8624")
        .env("PROMOTER_API_KEY", "k")
        .output()
        .unwrap();
    one_line(
        &without_scheme,
        "error: the server URL \"127.0.0.1:8624\" (from --url or PROMOTER_URL) has no scheme: write http://127.0.0.1:8624 (or https://…)",
    );
    assert_eq!(
        std::fs::read_dir(folder.path()).unwrap().count(),
        0,
        "a refused start left files behind"
    );
    // Help names the environment variables without values.
    let help = String::from_utf8(run(&["serve", "--help"]).stdout).unwrap();
    assert!(help.contains("[env: PROMOTER_LISTEN]"), "{help}");
    assert!(!help.contains("PROMOTER_LISTEN="), "{help}");
    let top = String::from_utf8(run(&["--help"]).stdout).unwrap();
    assert!(
        !top.contains("--listen") && !top.contains("--database-url"),
        "{top}"
    );
    let revert = String::from_utf8(run(&["revert", "--help"]).stdout).unwrap();
    assert!(
        revert.contains("Kept in the history with the revert\n")
            && revert.contains("Check everything and report what would happen"),
        "{revert}"
    );
}

/// SIGTERM is logged with what shutdown waits for and the exit, in both log
/// formats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_logged_in_both_formats() {
    for format in ["human", "json"] {
        let folder = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // A misspelt level in RUST_LOG is passed over, said, and does not
        // silence the server.
        let child = Command::new(BINARY)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--log-format", format])
            .current_dir(folder.path())
            .env_remove("PROMOTER_DATABASE_URL")
            .env_remove("PROMOTER_LOG_LEVEL")
            .env("RUST_LOG", "warning")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut listening = false;
        for _ in 0..400 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                listening = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(listening, "promoter serve did not start");
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{format}: {}", output.status);
        let log = String::from_utf8(output.stderr).unwrap();
        for said in [
            "RUST_LOG is ignored",
            "promoter listening",
            "shutdown requested",
            "SIGTERM",
            "shutting down: no new connections",
            "promoter stopped",
        ] {
            assert!(log.contains(said), "{format}: {said:?} not in {log}");
        }
        if format == "json" {
            for line in log.lines() {
                serde_json::from_str::<serde_json::Value>(line)
                    .unwrap_or_else(|e| panic!("{e}: {line}"));
            }
        }
    }
}

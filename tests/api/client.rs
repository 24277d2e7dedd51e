//! The binary as a client (`promoter promote`, `promoter revert`) against a
//! running server, as a CI job would use it.

use std::process::{Command, Output};

use crate::helpers::TestApp;

both_backends!(the_client_commands_promote_batch_and_revert);

/// Runs the binary with the server's URL and `key` in the environment.
fn client(app: &TestApp, key: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_promoter"));
    command
        .args(args)
        .env("PROMOTER_URL", &app.address)
        .env_remove("PROMOTER_API_KEY")
        .env_remove("RUST_LOG");
    if let Some(key) = key {
        command.env("PROMOTER_API_KEY", key);
    }
    command.output().unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    assert!(!output.status.success(), "should have failed");
    String::from_utf8(output.stderr.clone()).unwrap()
}

const BABEL: [&str; 9] = [
    "promote",
    "--feed",
    "unapproved-npm",
    "--to-feed",
    "approved-npm",
    "--package",
    "@babel/runtime",
    "--version",
    "7.21.0",
];

async fn the_client_commands_promote_batch_and_revert(app: TestApp) {
    let key = app.npm_setup().await;
    let source = app.existing("unapproved-npm").await;
    app.package(&source, None, "lodash", "4.17.21", "").await;

    // Without a key it says how to give one.
    assert!(stderr(&client(&app, None, &BABEL))
        .contains("set PROMOTER_API_KEY, or pass --api-key-file FILE"));

    let before = app.snapshot().await;
    let dry = stdout(&client(
        &app,
        Some(&key),
        &[&BABEL[..], &["--dry-run"]].concat(),
    ));
    assert_eq!(
        dry.trim(),
        "Dry run, nothing changed: would promote @babel/runtime 7.21.0 from unapproved-npm to approved-npm."
    );
    assert_eq!(app.snapshot().await, before);

    // The key from a file.
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, format!("{key}\n")).unwrap();
    let promoted = stdout(&client(
        &app,
        None,
        &[
            &BABEL[..],
            &[
                "--api-key-file",
                key_file.to_str().unwrap(),
                "--comments",
                "ok",
            ],
        ]
        .concat(),
    ));
    let id = app.history().await[0].id;
    assert_eq!(
        promoted.trim(),
        format!(
            "Promoted @babel/runtime 7.21.0 from unapproved-npm to approved-npm (promotion {id})."
        )
    );

    // A refusal exits non-zero with the server's reason.
    let again = stderr(&client(&app, Some(&key), &BABEL));
    assert!(
        again
            .contains("400 Package @babel/runtime 7.21.0 was not found in feed \"unapproved-npm\""),
        "{again}"
    );
    assert!(stderr(&client(&app, Some("wrong"), &BABEL)).contains("403 The specified API key"));

    // A batch from a file; a bad one lists every failing version.
    let list = dir.path().join("release.txt");
    std::fs::write(
        &list,
        "# release 4.2\nlodash 4.17.21\n\n@babel/runtime 7.21.0\n",
    )
    .unwrap();
    let batch_args = [
        "promote",
        "--feed",
        "unapproved-npm",
        "--to-feed",
        "approved-npm",
        "--from-file",
        list.to_str().unwrap(),
    ];
    let refused = stderr(&client(&app, Some(&key), &batch_args));
    assert!(
        refused.contains("1 of 2 packages cannot be promoted"),
        "{refused}"
    );
    assert!(
        refused.contains("Package @babel/runtime 7.21.0 was not found"),
        "{refused}"
    );
    std::fs::write(&list, "lodash 4.17.21\n").unwrap();
    // A dry run says what would happen.
    let dry = stdout(&client(
        &app,
        Some(&key),
        &[&batch_args[..], &["--dry-run"]].concat(),
    ));
    assert!(dry.contains("would promote  lodash 4.17.21\n"), "{dry}");
    assert!(
        dry.contains(
            "Dry run, nothing changed: would promote 1, overwrite 0 and skip 0 into approved-npm."
        ),
        "{dry}"
    );
    let batch = stdout(&client(&app, Some(&key), &batch_args));
    assert!(
        batch.contains("promoted       lodash 4.17.21 (promotion"),
        "{batch}"
    );
    assert!(
        batch.contains("1 promoted, 0 overwritten, 0 skipped into approved-npm as batch "),
        "{batch}"
    );
    let batch_id = batch
        .trim()
        .rsplit(' ')
        .next()
        .unwrap()
        .trim_end_matches('.')
        .to_owned();

    // Reverts, by batch and by id.
    let reverted = stdout(&client(&app, Some(&key), &["revert", "--batch", &batch_id]));
    assert!(
        reverted.contains("reverted       lodash 4.17.21 back to unapproved-npm (promotion"),
        "{reverted}"
    );
    let reverted = stdout(&client(&app, Some(&key), &["revert", &id.to_string()]));
    assert!(
        reverted.contains("\n1 reverted back to unapproved-npm"),
        "{reverted}"
    );
    assert!(app
        .records()
        .await
        .iter()
        .all(|r| r.starts_with("unapproved-npm ")));

    // The conflict policy, as pgutil would spell it.
    let approved = app.existing("approved-npm").await;
    app.package(&approved, Some("@babel"), "runtime", "7.21.0", "")
        .await;
    let skipped = stdout(&client(
        &app,
        Some(&key),
        &[&BABEL[..], &["--on-conflict", "skip"]].concat(),
    ));
    assert!(
        skipped.starts_with("Skipped @babel/runtime 7.21.0"),
        "{skipped}"
    );
}

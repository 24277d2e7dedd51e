//! Maven repositories (contract sections 12 and 15, issue 24), driven by the
//! real `mvn` (Debian's, offline: plugins from Debian's Maven repository, as
//! `scripts/test` installs them): `deploy:deploy-file` into `maven-dev`,
//! `dependency:get` from `maven-prod` before and after a promotion with
//! strict checksums, snapshots; and at the HTTP level: checksums answered and
//! checked, generated metadata following a promotion, refusals.

use std::path::{Path, PathBuf};
use std::process::Output;

use promoter::domain::FeedType;
use promoter::store::KeyScope;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::helpers::TestApp;

both_backends!(deploy_promote_and_resolve, checksums_metadata_and_refusals);

/// One Maven user: a folder with its settings and local repositories.
pub struct Maven {
    dir: tempfile::TempDir,
}

impl Maven {
    /// A Maven whose key for the server `promoter` is `key`, and which
    /// resolves from `feed` with checksums that must match (`fail`); every
    /// other repository is Debian's folder.
    pub fn new(app: &TestApp, feed: &str, key: &str) -> Maven {
        let dir = tempfile::tempdir().unwrap();
        let settings = format!(
            r#"<settings>
  <mirrors><mirror><id>debian</id><mirrorOf>*,!promoter</mirrorOf><url>file:///usr/share/maven-repo</url></mirror></mirrors>
  <servers><server><id>promoter</id><username>api</username><password>{key}</password></server></servers>
  <profiles><profile><id>promoter</id><repositories><repository><id>promoter</id>
    <url>{}/maven2/{feed}</url>
    <releases><checksumPolicy>fail</checksumPolicy></releases>
    <snapshots><checksumPolicy>fail</checksumPolicy><updatePolicy>always</updatePolicy></snapshots>
  </repository></repositories></profile></profiles>
  <activeProfiles><activeProfile>promoter</activeProfile></activeProfiles>
</settings>"#,
            app.address
        );
        std::fs::write(dir.path().join("settings.xml"), settings).unwrap();
        Maven { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `mvn -B ARGS` with a local repository of its own (`local`), so
    /// that nothing is answered from an earlier run's downloads.
    fn run(&self, local: &str, args: &[&str]) -> Output {
        std::process::Command::new("mvn")
            .arg("-B")
            .arg("-s")
            .arg(self.path("settings.xml"))
            .arg(format!("-Dmaven.repo.local={}", self.path(local).display()))
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("mvn could not be started: scripts/test installs Debian's maven")
    }

    fn ok(&self, local: &str, args: &[&str]) -> String {
        let output = self.run(local, args);
        let said = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "mvn {args:?} failed:\n{said}");
        said
    }

    /// A jar holding one text file that says `said`.
    pub fn jar(&self, name: &str, said: &str) -> PathBuf {
        let path = self.path(name);
        let mut writer = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        writer
            .start_file("said.txt", zip::write::SimpleFileOptions::default())
            .unwrap();
        std::io::Write::write_all(&mut writer, said.as_bytes()).unwrap();
        writer.finish().unwrap();
        path
    }

    /// `deploy:deploy-file` of `jar` as org.acme:widget:`version` (with a
    /// generated pom) to `feed`.
    pub fn deploy(&self, app: &TestApp, feed: &str, jar: &Path, version: &str) -> String {
        self.ok(
            "m2-deploy",
            &[
                "org.apache.maven.plugins:maven-deploy-plugin:3.0.0:deploy-file",
                &format!("-Dfile={}", jar.display()),
                "-DgroupId=org.acme",
                "-DartifactId=widget",
                &format!("-Dversion={version}"),
                "-Dpackaging=jar",
                &format!("-Durl={}/maven2/{feed}", app.address),
                "-DrepositoryId=promoter",
            ],
        )
    }

    /// `dependency:get` of org.acme:widget:`version` into a new local
    /// repository `local`.
    pub fn get(&self, local: &str, version: &str) -> Output {
        self.run(
            local,
            &[
                "org.apache.maven.plugins:maven-dependency-plugin:3.5.0:get",
                &format!("-Dartifact=org.acme:widget:{version}"),
                "-Dtransitive=false",
            ],
        )
    }
}

async fn maven_feeds(app: &TestApp) -> String {
    app.feed("maven-dev", FeedType::Maven).await;
    app.feed("maven-prod", FeedType::Maven).await;
    app.system_key().await
}

async fn get(app: &TestApp, path: &str, key: &str) -> (u16, String) {
    let response = app
        .client
        .get(app.url(path))
        .basic_auth("api", Some(key))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

fn said(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

const METADATA: &str = "/org/acme/widget/maven-metadata.xml";

async fn deploy_promote_and_resolve(app: TestApp) {
    let key = maven_feeds(&app).await;
    let dev = Maven::new(&app, "maven-dev", &key);
    let prod = Maven::new(&app, "maven-prod", &key);
    let jar = dev.jar("widget-1.0.jar", "one");
    dev.deploy(&app, "maven-dev", &jar, "1.0");
    dev.deploy(
        &app,
        "maven-dev",
        &dev.jar("widget-1.1.jar", "one one"),
        "1.1",
    );
    // The jar, a pom Maven generated, nothing else stored (checksum and
    // metadata uploads are checked or dropped).
    let mut files = app
        .texts("SELECT qualifier FROM package_files ORDER BY qualifier")
        .await;
    files.sort();
    assert_eq!(
        files,
        [
            "widget-1.0.jar",
            "widget-1.0.pom",
            "widget-1.1.jar",
            "widget-1.1.pom"
        ]
    );
    let (status, dev_metadata) = get(&app, &format!("/maven2/maven-dev{METADATA}"), &key).await;
    assert_eq!(status, 200);
    assert!(
        dev_metadata.contains("<release>1.1</release>"),
        "{dev_metadata}"
    );
    assert!(
        dev_metadata.contains("<version>1.0</version>"),
        "{dev_metadata}"
    );

    // Not in maven-prod yet.
    let output = prod.get("m2-before", "1.0");
    assert!(!output.status.success());
    assert!(
        said(&output).contains("Could not find artifact org.acme:widget:jar:1.0"),
        "{}",
        said(&output)
    );

    let reply = app
        .promote(
            &key,
            &json!({"packageName": "widget", "group": "org.acme", "version": "1.0",
                "fromFeed": "maven-dev", "toFeed": "maven-prod"}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    // The jar and its pom moved together; both feeds' metadata follows.
    let output = prod.get("m2-after", "1.0");
    assert!(output.status.success(), "{}", said(&output));
    let resolved = prod.path("m2-after/org/acme/widget/1.0");
    assert_eq!(
        std::fs::read(resolved.join("widget-1.0.jar")).unwrap(),
        std::fs::read(&jar).unwrap()
    );
    assert!(resolved.join("widget-1.0.pom").exists());
    // Maven kept the checksum it verified.
    assert_eq!(
        std::fs::read_to_string(resolved.join("widget-1.0.jar.sha1"))
            .unwrap()
            .trim(),
        hex::encode(sha1::Sha1::digest(std::fs::read(&jar).unwrap()))
    );
    let (_, prod_metadata) = get(&app, &format!("/maven2/maven-prod{METADATA}"), &key).await;
    assert!(
        prod_metadata.contains("<release>1.0</release>"),
        "{prod_metadata}"
    );
    let (_, dev_metadata) = get(&app, &format!("/maven2/maven-dev{METADATA}"), &key).await;
    assert!(
        !dev_metadata.contains("<version>1.0</version>"),
        "{dev_metadata}"
    );
    assert!(
        dev_metadata.contains("<version>1.1</version>"),
        "{dev_metadata}"
    );

    // A snapshot: timestamped files, found through the version's metadata.
    dev.deploy(
        &app,
        "maven-dev",
        &dev.jar("widget-2.0-SNAPSHOT.jar", "two"),
        "2.0-SNAPSHOT",
    );
    let snapshots = Maven::new(&app, "maven-dev", &key);
    let output = snapshots.get("m2-snapshot", "2.0-SNAPSHOT");
    assert!(output.status.success(), "{}", said(&output));
    let (status, version_metadata) = get(
        &app,
        "/maven2/maven-dev/org/acme/widget/2.0-SNAPSHOT/maven-metadata.xml",
        &key,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        version_metadata.contains("<extension>jar</extension>"),
        "{version_metadata}"
    );
    let (_, dev_metadata) = get(&app, &format!("/maven2/maven-dev{METADATA}"), &key).await;
    assert!(
        dev_metadata.contains("<latest>2.0-SNAPSHOT</latest>"),
        "{dev_metadata}"
    );
    assert!(
        dev_metadata.contains("<release>1.1</release>"),
        "{dev_metadata}"
    );

    // Bytes changed in storage: Maven's strict checksum refuses them.
    let sha = app
        .texts("SELECT blob_sha256 FROM package_files WHERE qualifier = 'widget-1.0.jar'")
        .await
        .remove(0);
    let blob = crate::helpers::blob_path(&app.database.url, &sha);
    crate::helpers::tamper_with(&blob);
    let output = prod.get("m2-corrupt", "1.0");
    assert!(!output.status.success(), "{}", said(&output));
    assert!(
        said(&output).contains("Checksum validation failed"),
        "{}",
        said(&output)
    );
}

async fn put(app: &TestApp, path: &str, key: &str, body: &[u8]) -> (u16, String) {
    let response = app
        .client
        .put(app.url(path))
        .basic_auth("api", Some(key))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

async fn checksums_metadata_and_refusals(app: TestApp) {
    let key = maven_feeds(&app).await;
    app.feed("some-npm", FeedType::Npm).await;
    let folder = "/maven2/maven-dev/org/acme/widget/1.0";
    let jar = b"not really a jar, but bytes".to_vec();
    let (status, body) = put(&app, &format!("{folder}/widget-1.0.jar"), &key, &jar).await;
    assert_eq!(status, 201, "{body}");
    // The same bytes again are fine; other bytes are a conflict.
    let (status, _) = put(&app, &format!("{folder}/widget-1.0.jar"), &key, &jar).await;
    assert_eq!(status, 200);
    let (status, body) = put(&app, &format!("{folder}/widget-1.0.jar"), &key, b"other").await;
    assert_eq!(status, 409, "{body}");

    // Every checksum, computed; each checked on PUT and never stored.
    let expected = [
        ("md5", hex::encode(md5::Md5::digest(&jar))),
        ("sha1", hex::encode(sha1::Sha1::digest(&jar))),
        ("sha256", hex::encode(Sha256::digest(&jar))),
        ("sha512", hex::encode(sha2::Sha512::digest(&jar))),
    ];
    for (extension, digest) in &expected {
        let path = format!("{folder}/widget-1.0.jar.{extension}");
        assert_eq!(get(&app, &path, &key).await, (200, digest.clone()));
        let (status, body) = put(&app, &path, &key, digest.as_bytes()).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = put(
        &app,
        &format!("{folder}/widget-1.0.jar.sha1"),
        &key,
        &[b'0'; 40],
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body.contains("The SHA-1 checksum of widget-1.0.jar is 0000"),
        "{body}"
    );
    // Right after its upload, the file goes with the disagreement: Maven
    // deploys it again.
    assert!(body.contains("It was removed: upload it again."), "{body}");
    assert_eq!(
        app.texts("SELECT qualifier FROM package_files").await.len(),
        0
    );
    let (status, _) = put(&app, &format!("{folder}/widget-1.0.jar"), &key, &jar).await;
    assert_eq!(status, 201);
    let (status, body) = put(&app, &format!("{folder}/widget-1.0.pom.md5"), &key, b"abc").await;
    assert_eq!(status, 400);
    assert!(body.contains("widget-1.0.pom is not in feed"), "{body}");
    assert_eq!(
        app.texts("SELECT qualifier FROM package_files").await,
        ["widget-1.0.jar"],
        "checksums are not files"
    );
    // A file that arrived damaged: its checksum, the client's, disagrees
    // right after the upload, so the upload is taken back.
    let (status, _) = put(&app, &format!("{folder}/widget-1.0.pom"), &key, b"<projec").await;
    assert_eq!(status, 201);
    let intended = hex::encode(sha1::Sha1::digest(b"<project/>"));
    let (status, body) = put(
        &app,
        &format!("{folder}/widget-1.0.pom.sha1"),
        &key,
        intended.as_bytes(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("It was removed: upload it again."), "{body}");
    assert_eq!(
        app.texts("SELECT qualifier FROM package_files").await,
        ["widget-1.0.jar"]
    );
    let (status, _) = put(
        &app,
        &format!("{folder}/widget-1.0.pom"),
        &key,
        b"<project/>",
    )
    .await;
    assert_eq!(status, 201, "the right bytes are welcome again");
    // Paths no client writes name nothing.
    for path in [
        "/maven2/maven-dev/org/../acme/widget/1.0/widget-1.0.jar",
        "/maven2/maven-dev/org/acme/widget/1.0/widget-2.0.jar",
        "/maven2/maven-dev/org/ac%00me/widget/maven-metadata.xml",
    ] {
        assert_eq!(get(&app, path, &key).await.0, 404, "{path}");
    }

    // The metadata is generated; an uploaded one is dropped; its checksums
    // are of what is served.
    let (status, _) = put(
        &app,
        &format!("/maven2/maven-dev{METADATA}"),
        &key,
        b"<metadata/>",
    )
    .await;
    assert_eq!(status, 200);
    let (status, metadata) = get(&app, &format!("/maven2/maven-dev{METADATA}"), &key).await;
    assert_eq!(status, 200);
    assert!(metadata.contains("<latest>1.0</latest>"), "{metadata}");
    let (_, sha1) = get(&app, &format!("/maven2/maven-dev{METADATA}.sha1"), &key).await;
    assert_eq!(sha1, hex::encode(sha1::Sha1::digest(metadata.as_bytes())));
    assert_eq!(
        get(&app, &format!("/maven2/maven-prod{METADATA}"), &key)
            .await
            .0,
        404
    );

    // Snapshot files as deploy-file names them, and the version's metadata.
    let snapshot = "/maven2/maven-dev/org/acme/widget/1.1-SNAPSHOT";
    for file in [
        "widget-1.1-20261204.101500-1.jar",
        "widget-1.1-20261204.111500-2.jar",
    ] {
        let (status, _) = put(&app, &format!("{snapshot}/{file}"), &key, file.as_bytes()).await;
        assert_eq!(status, 201);
    }
    let (status, version_metadata) =
        get(&app, &format!("{snapshot}/maven-metadata.xml"), &key).await;
    assert_eq!(status, 200);
    assert!(
        version_metadata.contains("<value>1.1-20261204.111500-2</value>"),
        "{version_metadata}"
    );

    // Challenges and refusals.
    let anonymous = app
        .client
        .get(app.url(&format!("{folder}/widget-1.0.jar")))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        anonymous.headers()["www-authenticate"],
        "Basic realm=\"Promoter\""
    );
    let other = app
        .key(
            "other",
            KeyScope::Feed(promoter::domain::FeedName::parse("maven-prod").unwrap()),
            "view,add",
        )
        .await;
    assert_eq!(
        get(&app, &format!("{folder}/widget-1.0.jar"), &other)
            .await
            .0,
        403
    );
    assert_eq!(
        put(&app, &format!("{folder}/widget-1.0.pom"), &other, b"x")
            .await
            .0,
        403
    );
    let (status, body) = get(
        &app,
        "/maven2/some-npm/org/acme/widget/maven-metadata.xml",
        &key,
    )
    .await;
    assert_eq!(status, 404);
    assert!(body.contains("is an npm feed, not a maven feed"), "{body}");
    let (status, _) = get(
        &app,
        "/maven2/maven-dev/org/acme/widget/1.0/other-1.0.jar",
        &key,
    )
    .await;
    assert_eq!(status, 404);
    let deleted = app
        .client
        .delete(app.url(&format!("{folder}/widget-1.0.jar")))
        .basic_auth("api", Some(&key))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 405);
}

//! Spawning the real application against a fresh database per test, on either
//! backend, and looking at what the database holds afterwards.

use std::process::Command;
use std::sync::OnceLock;

use promoter::auth;
use promoter::domain::{FeedName, FeedType, Identifier, PackageId, Permissions};
use promoter::startup::Application;
use promoter::store::{
    Db, Feed, FeedSettings, KeyScope, NewFile, NewKey, NewPackage, PromotionRecord, Store,
};
use promoter::webhooks;
use serde_json::Value;
use sqlx::Connection;
use tempfile::TempDir;
use tokio::net::{TcpListener, TcpStream};

pub const FORBIDDEN: &str =
    "The specified API key does not have the proper permissions to perform this action.";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// Generates, for each named `async fn NAME(app: TestApp)`, a module `NAME` with
/// one test per backend, so that both backends always run the same test body.
macro_rules! both_backends {
    ($($test:ident),* $(,)?) => {$(
        mod $test {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$test($crate::helpers::TestApp::spawn($crate::helpers::Backend::Postgres).await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$test($crate::helpers::TestApp::spawn($crate::helpers::Backend::Sqlite).await).await
            }
        }
    )*};
}

/// Like `both_backends!`, for `async fn NAME(backend: Backend)` bodies that set
/// up their own database and servers.
macro_rules! each_backend {
    ($($test:ident),* $(,)?) => {$(
        mod $test {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() { super::$test($crate::helpers::Backend::Postgres).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() { super::$test($crate::helpers::Backend::Sqlite).await }
        }
    )*};
}

/// Runs one query expression on a `TestApp`'s store, whichever the backend, and
/// unwraps its result.
macro_rules! on_store {
    ($app:expr, $pool:ident => $body:expr) => {
        match $app.store.db() {
            promoter::store::Db::Postgres($pool) => $body,
            promoter::store::Db::Sqlite($pool, _) => $body,
        }
        .unwrap()
    };
}
pub(crate) use on_store;

/// The PostgreSQL server the tests create their databases on: TEST_DATABASE_URL,
/// or a throwaway cluster started once per test binary. Never skipped: without a
/// server, every PostgreSQL test fails and says why.
fn postgres_server() -> &'static str {
    static SERVER: OnceLock<String> = OnceLock::new();
    SERVER.get_or_init(|| {
        if let Ok(url) = std::env::var("TEST_DATABASE_URL") {
            return url;
        }
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/throwaway-postgres.sh");
        let output = Command::new("bash")
            .arg(script)
            .arg(std::process::id().to_string())
            .output()
            .expect("could not run scripts/throwaway-postgres.sh");
        assert!(
            output.status.success(),
            "the PostgreSQL tests need a server: set TEST_DATABASE_URL, or install PostgreSQL \
             (scripts/test does). Starting a throwaway cluster failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    })
}

/// A database nobody else uses: a new PostgreSQL database, or a SQLite file in a
/// new temporary directory (kept alive by the returned guard).
pub struct TestDatabase {
    pub url: String,
    _dir: Option<TempDir>,
}

impl TestDatabase {
    pub async fn fresh(backend: Backend) -> TestDatabase {
        match backend {
            Backend::Postgres => {
                let server = postgres_server();
                let name = format!("promoter_test_{}", uuid::Uuid::new_v4().simple());
                let mut admin = sqlx::PgConnection::connect(server)
                    .await
                    .expect("could not connect to the test PostgreSQL server");
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut admin)
                    .await
                    .expect("could not create a test database");
                let mut url = url::Url::parse(server).unwrap();
                url.set_path(&name);
                TestDatabase {
                    url: url.to_string(),
                    _dir: None,
                }
            }
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                TestDatabase {
                    url: format!("sqlite://{}/promoter.db?mode=rwc", dir.path().display()),
                    _dir: Some(dir),
                }
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(storage_of(&self.url));
    }
}

/// What a response said, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Reply {
    pub async fn read(response: reqwest::Response) -> Reply {
        Self::read_checked(response)
            .await
            .expect("the response body could not be read")
    }

    /// Like `read`, but `None` when the body breaks off (the server died).
    pub async fn read_checked(response: reqwest::Response) -> Option<Reply> {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let content_type = headers
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = response.text().await.ok()?;
        Some(Reply {
            status,
            content_type,
            headers,
            body,
        })
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// Asserts an error reply: this status, a one-sentence text/plain body that
    /// contains `expected`.
    #[track_caller]
    pub fn assert_error(&self, status: u16, expected: &str) {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.body
        );
        assert!(
            self.content_type.starts_with("text/plain"),
            "content type {:?}",
            self.content_type
        );
        assert!(
            self.body.contains(expected),
            "body {:?} does not contain {expected:?}",
            self.body
        );
        let sentence = self.body.strip_suffix('\n');
        assert!(
            sentence.is_some_and(|s| !s.contains('\n') && s.ends_with('.')),
            "not one sentence ending in a line break: {:?}",
            self.body
        );
    }
}

/// Rows of package files and of the history, as text, for before/after checks.
#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub records: Vec<String>,
    pub history: Vec<String>,
}

pub struct TestApp {
    pub address: String,
    pub store: Store,
    pub client: reqwest::Client,
    pub database: TestDatabase,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_allowing_private(backend, true).await
    }

    /// A server whose webhooks may (or may not) call private addresses.
    pub async fn spawn_allowing_private(backend: Backend, allow: bool) -> TestApp {
        Self::spawn_with(backend, allowing_private(allow)).await
    }

    pub async fn spawn_with(backend: Backend, settings: webhooks::Settings) -> TestApp {
        let database = TestDatabase::fresh(backend).await;
        let (address, store) = start_instance_and_store(&database.url, settings).await;
        TestApp {
            address,
            store,
            client: reqwest::Client::new(),
            database,
        }
    }

    /// A server and a store on an existing database (which the caller owns).
    pub async fn on_database(url: &str) -> TestApp {
        let (address, store) = start_instance_and_store(url, allowing_private(true)).await;
        TestApp {
            address,
            store,
            client: reqwest::Client::new(),
            database: TestDatabase {
                url: url.to_owned(),
                _dir: None,
            },
        }
    }

    /// The fixtures and the store on an existing database, with no server of its
    /// own (whose webhook dispatcher would compete with the processes under test).
    pub async fn without_server(url: &str) -> TestApp {
        TestApp {
            address: String::new(),
            store: Store::open(url).await.unwrap(),
            client: reqwest::Client::new(),
            database: TestDatabase {
                url: url.to_owned(),
                _dir: None,
            },
        }
    }

    /// Another server on the same database, as a second process would be.
    pub async fn another_instance(&self) -> String {
        start_instance(&self.database.url).await
    }

    /// Another server whose PostgreSQL connections pass through a relay, and a
    /// function that cuts the relay, as a network failure or a stopped database
    /// server would.
    pub async fn instance_behind_relay(&self) -> (String, impl FnOnce()) {
        let mut url = url::Url::parse(&self.database.url).unwrap();
        let target = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
        let (port, cut) = start_relay(target).await;
        url.set_port(Some(port)).unwrap();
        let cut = move || {
            cut.send_replace(true);
        };
        (start_instance(url.as_str()).await, cut)
    }

    /// The PostgreSQL pool, for tests that only make sense there.
    pub fn pg_pool(&self) -> &sqlx::PgPool {
        match self.store.db() {
            Db::Postgres(pool) => pool,
            Db::Sqlite(..) => panic!("this test needs PostgreSQL"),
        }
    }

    /// The database URL as another role would use it.
    pub fn url_as_role(&self, role: &str) -> String {
        let mut url = url::Url::parse(&self.database.url).unwrap();
        url.set_username(role).unwrap();
        url.to_string()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    // ---- fixtures, made through the library as the CLI makes them ----

    pub async fn feed(&self, name: &str, feed_type: FeedType) -> Feed {
        self.store
            .create_feed(
                &FeedName::parse(name).unwrap(),
                feed_type,
                Default::default(),
            )
            .await
            .unwrap()
    }

    pub async fn feed_promoting_to(&self, name: &str, feed_type: FeedType, target: &str) -> Feed {
        let target = FeedName::parse(target).unwrap();
        self.store
            .create_feed(
                &FeedName::parse(name).unwrap(),
                feed_type,
                FeedSettings {
                    promote_to: Some(&target),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
    }

    pub async fn group(&self, name: &str, feeds: &[&str]) {
        let feeds: Vec<_> = feeds.iter().map(|f| FeedName::parse(f).unwrap()).collect();
        self.store
            .create_group(&FeedName::parse(name).unwrap(), &feeds)
            .await
            .unwrap();
    }

    /// A key's text. `permissions` as on the CLI ("view,promote").
    pub async fn key(&self, name: &str, scope: KeyScope, permissions: &str) -> String {
        self.key_with(NewKey {
            name: Some(promoter::domain::KeyName::parse(name).unwrap()),
            scope,
            permissions: permissions.parse::<Permissions>().unwrap(),
            expires_at: None,
            description: None,
            logging: "None".to_owned(),
        })
        .await
        .0
    }

    pub async fn key_with(&self, new: NewKey) -> (String, i64) {
        let (key, stored) = auth::create_key(&self.store, &new, None).await.unwrap();
        (key.expose().to_owned(), stored.id)
    }

    /// A system key with every permission, named `name`, that stops working at
    /// `expires_at`; its text and id.
    pub async fn system_key_expiring(
        &self,
        name: &str,
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> (String, i64) {
        self.key_with(NewKey {
            name: Some(promoter::domain::KeyName::parse(name).unwrap()),
            scope: KeyScope::System,
            permissions: Permissions::ALL,
            expires_at,
            description: None,
            logging: "None".to_owned(),
        })
        .await
    }

    pub async fn system_key(&self) -> String {
        self.key("ci-key", KeyScope::System, "view,add,promote,delete,manage")
            .await
    }

    pub async fn package(
        &self,
        feed: &Feed,
        group: Option<&str>,
        name: &str,
        version: &str,
        qualifier: &str,
    ) {
        let group = group.map(|g| Identifier::parse(g).unwrap());
        let id = PackageId::new(
            feed.feed_type,
            group.as_ref(),
            &Identifier::parse(name).unwrap(),
            &Identifier::parse(version).unwrap(),
        )
        .unwrap();
        let file = NewFile {
            qualifier: qualifier.to_owned(),
            size: Some(1024),
            sha256: Some("ab".repeat(32)),
        };
        assert!(self
            .store
            .add_package(feed, &NewPackage { id, file })
            .await
            .unwrap());
    }

    /// The source feed of `npm_setup`, for adding more packages to it.
    pub async fn npm_source(&self) -> Feed {
        let name = FeedName::parse("unapproved-npm").unwrap();
        self.store.feed(&name).await.unwrap().unwrap()
    }

    /// Two npm feeds, a system key, and @babel/runtime 7.21.0 (two files) in the
    /// source feed: the contract's own example.
    pub async fn npm_setup(&self) -> String {
        let source = self.feed("unapproved-npm", FeedType::Npm).await;
        self.feed("approved-npm", FeedType::Npm).await;
        self.package(
            &source,
            Some("@babel"),
            "runtime",
            "7.21.0",
            "file=runtime-7.21.0.tgz",
        )
        .await;
        self.package(
            &source,
            Some("@babel"),
            "runtime",
            "7.21.0",
            "file=runtime-7.21.0.sig",
        )
        .await;
        self.system_key().await
    }

    // ---- requests ----

    pub async fn post(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Reply {
        let mut request = self.client.post(self.url(path)).body(body);
        if let Some(content_type) = content_type {
            request = request.header("Content-Type", content_type);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Reply::read(request.send().await.unwrap()).await
    }

    /// POSTs a JSON body (labelled `application/json`) with the key in X-ApiKey.
    /// GETs `path` with `key` on the server at `address` (this one's or another's).
    pub async fn get_from(&self, address: &str, path: &str, key: &str) -> reqwest::Response {
        self.client
            .get(format!("{address}{path}"))
            .header("X-ApiKey", key)
            .send()
            .await
            .unwrap()
    }

    pub async fn json_post(&self, path: &str, key: &str, body: &Value) -> Reply {
        self.json_post_to(&self.address, path, key, body).await
    }

    /// `json_post` to another server (`address`).
    pub async fn json_post_to(&self, address: &str, path: &str, key: &str, body: &Value) -> Reply {
        Reply::read(
            self.client
                .post(format!("{address}{path}"))
                .header("X-ApiKey", key)
                .header("Content-Type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// POSTs a JSON promotion with the key in X-ApiKey, as pgutil does.
    pub async fn promote(&self, key: &str, body: &Value) -> Reply {
        self.json_post("/api/promotions/promote", key, body).await
    }

    /// The contract's example promotion, sent to another server (`address`).
    pub async fn promote_via(&self, address: &str, key: &str) -> Reply {
        self.json_post_to(address, "/api/promotions/promote", key, &babel_promotion())
            .await
    }

    /// Like `promote`, and asserts that the refusal changed nothing.
    pub async fn promote_refused(&self, key: &str, body: &Value, status: u16, expected: &str) {
        let before = self.snapshot().await;
        self.promote(key, body).await.assert_error(status, expected);
        assert_eq!(
            self.snapshot().await,
            before,
            "a refused promotion changed the database"
        );
    }

    // ---- looking at the database ----

    /// Rows of a query that selects one text column, on whichever backend.
    pub async fn texts(&self, sql: &str) -> Vec<String> {
        on_store!(self, pool => sqlx::query_scalar(sql).fetch_all(pool).await)
    }

    pub async fn execute(&self, sql: &str) {
        on_store!(self, pool => sqlx::query(sql).execute(pool).await.map(drop))
    }

    /// "feed group name version qualifier" for every file, sorted.
    pub async fn records(&self) -> Vec<String> {
        self.texts(
            "SELECT feed || ' ' || group_name || ' ' || name || ' ' || version || ' ' || qualifier \
             FROM package_records ORDER BY 1",
        )
        .await
    }

    pub async fn history(&self) -> Vec<PromotionRecord> {
        let sql = format!(
            "SELECT {} FROM promotions ORDER BY id",
            promoter::store::RECORD_COLUMNS
        );
        on_store!(self, pool => sqlx::query_as(&sql).fetch_all(pool).await)
    }

    pub async fn snapshot(&self) -> Snapshot {
        Snapshot {
            records: self.records().await,
            history: self
                .history()
                .await
                .into_iter()
                .map(|h| format!("{h:?}"))
                .collect(),
        }
    }
}

/// A TCP relay between the app and PostgreSQL that can be cut, as a network
/// failure or a stopped server would cut it.
async fn start_relay(target: String) -> (u16, tokio::sync::watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (cut, watch) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        loop {
            let mut cut_signal = watch.clone();
            tokio::select! {
                _ = cut_signal.changed() => break,
                accepted = listener.accept() => {
                    let Ok((mut client, _)) = accepted else { break };
                    let target = target.clone();
                    let mut cut_signal = watch.clone();
                    tokio::spawn(async move {
                        let Ok(mut server) = TcpStream::connect(&target).await else { return };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            _ = cut_signal.changed() => {}
                        }
                    });
                }
            }
        }
    });
    (port, cut)
}

/// A server on `database_url`, in this process, on a free port; its address.
/// Its webhooks may call loopback addresses, where the tests' receivers listen.
pub async fn start_instance(database_url: &str) -> String {
    start_instance_allowing_private(database_url, true).await
}

pub async fn start_instance_allowing_private(database_url: &str, allow: bool) -> String {
    start_instance_with(database_url, allowing_private(allow)).await
}

/// Webhook settings that do (or do not) let deliveries reach private addresses.
fn allowing_private(allow: bool) -> webhooks::Settings {
    webhooks::Settings {
        allow_private: allow,
        ..Default::default()
    }
}

pub async fn start_instance_with(database_url: &str, settings: webhooks::Settings) -> String {
    start_instance_and_store(database_url, settings).await.0
}

/// A server, and the store it serves from: the tests' own changes through it
/// are this process's changes, which its cache forgets at once (a change made
/// through another store is heard within the cache's bound instead).
pub async fn start_instance_and_store(
    database_url: &str,
    settings: webhooks::Settings,
) -> (String, Store) {
    let app = build_instance(database_url, settings).await;
    let store = app.store().clone();
    (serve(app), store)
}

/// A server that writes single promotions in rounds of at most `max` (group
/// commit), or each on its own with `None`, and its store.
pub async fn start_instance_grouping(database_url: &str, max: Option<usize>) -> (String, Store) {
    let app = build_instance(database_url, allowing_private(true))
        .await
        .group_commit(max);
    let store = app.store().clone();
    (serve(app), store)
}

/// The tests' server on `database_url`, built but not yet serving.
async fn build_instance(database_url: &str, settings: webhooks::Settings) -> Application {
    Application::build("127.0.0.1:0", database_url)
        .await
        .expect("the application did not start")
        // Connectors may reach loopback upstreams whenever webhooks may
        // reach loopback receivers.
        .connectors(promoter::connectors::Settings {
            allow_private: settings.allow_private,
            ..Default::default()
        })
        .webhooks(settings)
        .content(promoter::content::Settings::directory(storage_of(
            database_url,
        )))
}

/// Where the servers on a test database keep package files: one folder per
/// database, shared by its servers as replicas share their storage. A SQLite
/// database's is beside its file, in the test's own temporary folder; a
/// PostgreSQL database's is a temporary folder of its own. `TestDatabase`
/// removes it, so a run leaves nothing behind.
pub fn storage_of(database_url: &str) -> std::path::PathBuf {
    if let Some(file) = database_url.strip_prefix("sqlite://") {
        let file = std::path::Path::new(file.split('?').next().unwrap_or_default());
        return file.with_file_name("storage");
    }
    let id = promoter::domain::sha256_hex(database_url);
    std::env::temp_dir().join(format!("promoter-test-storage-{}", &id[..16]))
}

/// Where the servers on a test database keep the blob with this SHA-256.
pub fn blob_path(database_url: &str, sha256: &str) -> std::path::PathBuf {
    storage_of(database_url)
        .join("blobs")
        .join(&sha256[..2])
        .join(&sha256[2..4])
        .join(sha256)
}

/// Changes a stored file's last byte, as a disk or an attacker might.
pub fn tamper_with(path: &std::path::Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(path, bytes).unwrap();
}

/// Runs a built server in the background, for the rest of the test; its address.
pub fn serve(app: Application) -> String {
    let address = format!("http://{}", app.local_addr());
    tokio::spawn(app.run(std::future::pending()));
    address
}

/// The contract's example promotion, as JSON.
pub fn babel_promotion() -> Value {
    serde_json::json!({
        "fromFeed": "unapproved-npm",
        "group": "@babel",
        "name": "runtime",
        "version": "7.21.0",
        "toFeed": "approved-npm",
        "comments": "ok"
    })
}

/// `base` with `field` set to `value` (or removed, for Null).
pub fn with(base: &Value, field: &str, value: Value) -> Value {
    let mut body = base.clone();
    let object = body.as_object_mut().unwrap();
    if value.is_null() {
        object.remove(field);
    } else {
        object.insert(field.to_owned(), value);
    }
    body
}

/// `promoter serve`, the real binary, as its own process on a free port; killed
/// when dropped. It can be killed with SIGKILL and started again on the same
/// port, or stopped with SIGTERM as a service manager would.
pub struct ServerProcess {
    child: Option<std::process::Child>,
    pub address: String,
    port: u16,
    database_url: String,
    /// Settings given to `serve` beside `--listen`.
    args: Vec<String>,
}

impl ServerProcess {
    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server runs").id()
    }

    pub async fn start(database_url: &str) -> ServerProcess {
        Self::start_with(database_url, &[]).await
    }

    /// With these settings for `serve` beside `--listen`.
    pub async fn start_with(database_url: &str, args: &[&str]) -> ServerProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = ServerProcess {
            child: None,
            address: format!("http://127.0.0.1:{port}"),
            port,
            database_url: database_url.to_owned(),
            args: args.iter().map(|arg| (*arg).to_owned()).collect(),
        };
        server.spawn().await;
        server
    }

    async fn spawn(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_promoter"))
            .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
            .args(&self.args)
            .env("PROMOTER_DATABASE_URL", &self.database_url)
            .env("PROMOTER_STORAGE_PATH", storage_of(&self.database_url))
            .env("PROMOTER_WEBHOOK_ALLOW_PRIVATE", "true")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Owned at once, so that the child is killed however this function ends.
        self.child = Some(child);
        for _ in 0..400 {
            if TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("promoter serve did not start listening");
    }

    /// SIGKILL: the process dies wherever it is, mid-transaction included.
    pub fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Starts the binary again on the same port and database.
    pub async fn restart(&mut self) {
        self.kill_9();
        self.spawn().await;
    }

    /// Sends SIGTERM, as a service manager stops a service.
    pub fn terminate(&self) {
        let child = self.child.as_ref().expect("the server is running");
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    /// How the process ended, once it has (`None` while it runs).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let status = child.try_wait().unwrap()?;
        self.child = None;
        Some(status)
    }

    /// Waits for the process to end, at most 60 s.
    pub async fn wait_for_exit(&mut self) -> std::process::ExitStatus {
        for _ in 0..600 {
            if let Some(status) = self.exited() {
                return status;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("promoter serve did not exit within 60 s");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill_9();
    }
}

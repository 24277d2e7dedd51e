//! The history page in a real browser: Debian's headless Chromium, driven through
//! chromedriver (WebDriver) by fantoccini. `scripts/test` installs both when they
//! are missing; without them these tests fail and say so.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};

use crate::helpers::TestApp;
use crate::web::{seeded_history, HOSTILE};
use promoter::domain::FeedName;
use promoter::store::KeyScope;

both_backends!(signing_in_filtering_paging_and_signing_out_in_chromium);

/// chromedriver on a free port, stopped when dropped.
struct Driver {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Driver {
    async fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // Its own process group, so that Chromium, its child, goes with it.
        let child = Command::new("chromedriver")
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is missing: scripts/test installs Debian's chromium and chromium-driver");
        let driver = Driver {
            child,
            port,
            _profile: tempfile::tempdir().unwrap(),
        };
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return driver;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("chromedriver did not start listening");
    }

    /// A headless Chromium that talks to nothing but this machine.
    async fn browser(&self) -> Client {
        let profile = self._profile.path().display().to_string();
        let capabilities = serde_json::json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-background-networking", "--disable-component-update",
                         "--disable-sync", "--no-first-run", "--window-size=1280,900",
                         format!("--user-data-dir={profile}")]
            }
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        // chromedriver is on loopback: plain HTTP, no TLS stack needed.
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("chromedriver did not start Chromium")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole group: a test that failed midway leaves Chromium running.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

async fn rows(browser: &Client) -> usize {
    browser
        .find_all(Locator::Css("table.history tbody tr"))
        .await
        .unwrap()
        .len()
}

async fn click(browser: &Client, what: Locator<'_>) {
    browser.find(what).await.unwrap().click().await.unwrap();
}

/// Waits (fantoccini's default: 30 s) until the page shows `what`.
async fn wait_for(browser: &Client, what: Locator<'_>) {
    browser.wait().for_element(what).await.unwrap();
}

async fn type_into(browser: &Client, css: &str, text: &str) {
    let field = browser.find(Locator::Css(css)).await.unwrap();
    field.send_keys(text).await.unwrap();
}

async fn text(browser: &Client, css: &str) -> String {
    let element = browser.find(Locator::Css(css)).await.unwrap();
    element.text().await.unwrap()
}

async fn sign_in(browser: &Client, app: &TestApp, key: &str) {
    browser.goto(&app.url("/promotions")).await.unwrap();
    type_into(browser, "input#key", key).await;
    click(browser, Locator::Css("form[action='/sign-in'] button")).await;
    if browser
        .wait()
        .for_element(Locator::Css("table.history, p.empty"))
        .await
        .is_err()
    {
        panic!(
            "no history after signing in; the browser shows {}:\n{}",
            browser.current_url().await.unwrap(),
            browser.source().await.unwrap()
        );
    }
}

async fn signing_in_filtering_paging_and_signing_out_in_chromium(app: TestApp) {
    let key = seeded_history(&app).await;
    let driver = Driver::start().await;
    let browser = driver.browser().await;

    // A stranger sees the sign-in form; a key signs in through it.
    browser.goto(&app.url("/")).await.unwrap();
    assert_eq!(browser.current_url().await.unwrap().path(), "/promotions");
    assert!(browser.find(Locator::Css("input#key")).await.is_ok());
    sign_in(&browser, &app, &key).await;
    assert_eq!(rows(&browser).await, 50);
    assert_eq!(text(&browser, ".who").await, "Signed in as ci-key");

    // The hostile comment is text, exactly as written. (The title check would
    // also catch a script that ran, had the escaping and the CSP both failed.)
    assert_eq!(text(&browser, "tr td.comments").await, HOSTILE);
    assert_eq!(
        browser.title().await.unwrap(),
        "Promotion history · Promoter"
    );
    let screenshot = browser.screenshot().await.unwrap();
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("history-page.png");
    std::fs::write(&shot, screenshot).unwrap();

    // Pages: Older, then Newer again.
    click(&browser, Locator::LinkText("Older →")).await;
    wait_for(&browser, Locator::LinkText("← Newer")).await;
    assert_eq!(rows(&browser).await, 6);
    click(&browser, Locator::LinkText("← Newer")).await;
    wait_for(&browser, Locator::LinkText("Older →")).await;
    assert_eq!(rows(&browser).await, 50);

    // The filter form.
    type_into(&browser, "input#package", "pkg").await;
    type_into(&browser, "input#version", "1.0.42").await;
    click(&browser, Locator::Css("form.filters button")).await;
    wait_for(&browser, Locator::LinkText("Clear")).await;
    assert_eq!(rows(&browser).await, 1);
    assert_eq!(text(&browser, "td.comments").await, "build 42");
    // Its version links to its own timeline.
    click(&browser, Locator::LinkText("1.0.42")).await;
    let timeline = app.url("/promotions/npm/pkg/1.0.42").parse().unwrap();
    browser.wait().for_url(&timeline).await.unwrap();
    assert_eq!(rows(&browser).await, 1);

    // Signing out ends the session: the page asks for a key again.
    click(&browser, Locator::Css("form.sign-out button")).await;
    wait_for(&browser, Locator::Css("input#key")).await;
    browser.goto(&app.url("/promotions")).await.unwrap();
    assert!(browser.find(Locator::Css("input#key")).await.is_ok());
    let tables = browser
        .find_all(Locator::Css("table.history"))
        .await
        .unwrap();
    assert!(tables.is_empty());

    // A key scoped to a feed outside these promotions sees none of them.
    let elsewhere = app
        .feed("elsewhere-npm", promoter::domain::FeedType::Npm)
        .await;
    let feed = FeedName::parse(&elsewhere.name).unwrap();
    let scoped = app.key("scoped", KeyScope::Feed(feed), "view").await;
    sign_in(&browser, &app, &scoped).await;
    assert_eq!(
        text(&browser, "p.empty").await,
        "No promotions yet: none that this key may view."
    );

    browser.close().await.unwrap();
}

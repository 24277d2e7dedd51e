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

async fn sign_in(browser: &Client, app: &TestApp, key: &str) {
    browser.goto(&app.url("/promotions")).await.unwrap();
    let field = browser.find(Locator::Css("input#key")).await.unwrap();
    field.send_keys(key).await.unwrap();
    browser
        .find(Locator::Css("form[action='/sign-in'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
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
    let who = browser
        .find(Locator::Css(".who"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(who, "Signed in as ci-key");

    // The hostile comment is text: nothing ran, the title is ours.
    assert_eq!(
        browser.title().await.unwrap(),
        "Promotion history · Promoter"
    );
    let comment = browser
        .find(Locator::Css("tr td.comments"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(comment, HOSTILE);
    let screenshot = browser.screenshot().await.unwrap();
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("history-page.png");
    std::fs::write(&shot, screenshot).unwrap();

    // Pages: Older, then Newer again.
    browser
        .find(Locator::LinkText("Older →"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::LinkText("← Newer"))
        .await
        .unwrap();
    assert_eq!(rows(&browser).await, 6);
    browser
        .find(Locator::LinkText("← Newer"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::LinkText("Older →"))
        .await
        .unwrap();
    assert_eq!(rows(&browser).await, 50);

    // The filter form.
    let package = browser.find(Locator::Css("input#package")).await.unwrap();
    package.send_keys("pkg").await.unwrap();
    browser
        .find(Locator::Css("input#version"))
        .await
        .unwrap()
        .send_keys("1.0.42")
        .await
        .unwrap();
    browser
        .find(Locator::Css("form.filters button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::LinkText("Clear"))
        .await
        .unwrap();
    assert_eq!(rows(&browser).await, 1);
    let cell = browser
        .find(Locator::Css("td.comments"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(cell, "build 42");
    // Its version links to its own timeline.
    browser
        .find(Locator::LinkText("1.0.42"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let timeline = app.url("/promotions/npm/pkg/1.0.42").parse().unwrap();
    browser.wait().for_url(&timeline).await.unwrap();
    assert_eq!(rows(&browser).await, 1);

    // Signing out ends the session: the page asks for a key again.
    browser
        .find(Locator::Css("form.sign-out button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::Css("input#key"))
        .await
        .unwrap();
    browser.goto(&app.url("/promotions")).await.unwrap();
    assert!(browser.find(Locator::Css("input#key")).await.is_ok());
    assert!(browser
        .find_all(Locator::Css("table.history"))
        .await
        .unwrap()
        .is_empty());

    // A key scoped to a feed outside these promotions sees none of them.
    let elsewhere = app
        .feed("elsewhere-npm", promoter::domain::FeedType::Npm)
        .await;
    let scoped = app
        .key(
            "scoped",
            KeyScope::Feed(FeedName::parse(&elsewhere.name).unwrap()),
            "view",
        )
        .await;
    sign_in(&browser, &app, &scoped).await;
    let empty = browser
        .find(Locator::Css("p.empty"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(empty, "No promotions yet: none that this key may view.");

    browser.close().await.unwrap();
}

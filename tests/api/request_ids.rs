//! Every answer carries its request's id: the caller's `X-Request-Id` when it is
//! sane, a new one otherwise (see src/http/request_log.rs).

use crate::helpers::TestApp;

both_backends!(every_answer_carries_a_request_id);

async fn every_answer_carries_a_request_id(app: TestApp) {
    let id_of = |response: &reqwest::Response| {
        response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    let sent = app
        .client
        .get(app.url("/health"))
        .header("X-Request-Id", "proxy-7f3a.1:2")
        .send()
        .await
        .unwrap();
    assert_eq!(id_of(&sent), "proxy-7f3a.1:2");

    // Missing, or not sane: a fresh id, even on a 404 or a refusal.
    for (path, id) in [
        ("/health", None),
        ("/no/such/endpoint", None),
        ("/api/packages/nowhere", Some("two words")),
        ("/health", Some("x".repeat(65).as_str())),
    ] {
        let mut request = app.client.get(app.url(path));
        if let Some(id) = id {
            request = request.header("X-Request-Id", id);
        }
        let response = request.send().await.unwrap();
        let given = id_of(&response);
        assert_eq!(given.len(), 32, "{path}: {given}");
        assert!(given.chars().all(|c| c.is_ascii_hexdigit()), "{given}");
    }
}

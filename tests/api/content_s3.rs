//! Package content in an S3-compatible object store: moto's server (from PyPI,
//! started by scripts/throwaway-s3.sh), never a mock. Two servers on one
//! database share one bucket, as replicas would.

use std::sync::OnceLock;

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::ObjectStore;
use promoter::domain::FeedType;
use promoter::startup::Application;

use crate::content::{npm_tgz, nupkg};
use crate::helpers::{babel_promotion, serve, storage_of, Backend, TestApp};

each_backend!(replicas_share_a_bucket_for_uploads_downloads_and_collection);

/// moto's endpoint, started once per test binary.
fn s3_endpoint() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/throwaway-s3.sh");
        let output = std::process::Command::new("bash")
            .arg(script)
            .arg(std::process::id().to_string())
            .output()
            .expect("could not run scripts/throwaway-s3.sh");
        assert!(
            output.status.success(),
            "the S3 tests need moto's server (scripts/test installs it): {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    })
}

/// moto takes any credentials; these name its endpoint.
fn options(endpoint: &str) -> [(&'static str, String); 5] {
    [
        ("aws_endpoint", endpoint.to_owned()),
        ("aws_allow_http", "true".to_owned()),
        ("aws_access_key_id", "promoter-test".to_owned()),
        ("aws_secret_access_key", "promoter-test".to_owned()),
        ("aws_region", "us-east-1".to_owned()),
    ]
}

/// A new bucket, and what it holds under `prefix`.
async fn bucket(
    endpoint: &str,
) -> (
    String,
    impl Fn() -> futures::future::BoxFuture<'static, Vec<String>>,
) {
    let name = format!("promoter-{}", uuid::Uuid::new_v4().simple());
    let created = reqwest::Client::new()
        .put(format!("{endpoint}/{name}"))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "{created:?}");
    let mut builder = AmazonS3Builder::new().with_bucket_name(&name);
    for (key, value) in options(endpoint) {
        builder = builder.with_config(key.parse().unwrap(), value);
    }
    let store = std::sync::Arc::new(builder.build().unwrap());
    let list = move || {
        let store = store.clone();
        Box::pin(async move {
            store
                .list(None)
                .map_ok(|meta| meta.location.to_string())
                .try_collect::<Vec<_>>()
                .await
                .unwrap()
        }) as futures::future::BoxFuture<'static, Vec<String>>
    };
    (name, list)
}

async fn replica(app: &TestApp, url: &str, endpoint: &str) -> String {
    let options = options(endpoint);
    let options: Vec<(&str, &str)> = options.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let settings =
        promoter::content::Settings::s3(url, storage_of(&app.database.url), &options).unwrap();
    serve(
        Application::build("127.0.0.1:0", &app.database.url)
            .await
            .unwrap()
            .content(settings),
    )
}

async fn replicas_share_a_bucket_for_uploads_downloads_and_collection(backend: Backend) {
    let endpoint = s3_endpoint();
    let app = TestApp::spawn(backend).await;
    let key = app.system_key().await;
    app.feed("unapproved-npm", FeedType::Npm).await;
    app.feed("approved-npm", FeedType::Npm).await;
    app.feed("nuget-a", FeedType::Nuget).await;
    app.feed("nuget-b", FeedType::Nuget).await;
    app.feed("maven", FeedType::Maven).await;
    let (bucket, objects) = bucket(endpoint).await;
    let url = format!("s3://{bucket}/promoter");
    let one = replica(&app, &url, endpoint).await;
    let two = replica(&app, &url, endpoint).await;
    let client = &app.client;
    let put = |server: &str, path: &str, body: Vec<u8>| {
        client
            .put(format!("{server}{path}"))
            .header("X-ApiKey", &key)
            .body(body)
            .send()
    };
    let get = |server: &str, path: &str| {
        client
            .get(format!("{server}{path}"))
            .header("X-ApiKey", &key)
            .send()
    };

    // Uploaded through one replica, downloaded through the other.
    let tarball = npm_tgz("@babel/runtime", "7.21.0");
    let reply = put(&one, "/api/packages/unapproved-npm/upload", tarball.clone())
        .await
        .unwrap();
    assert_eq!(reply.status(), 200, "{}", reply.text().await.unwrap());
    let query = "download?group=@babel&name=runtime&version=7.21.0";
    let reply = get(&two, &format!("/api/packages/unapproved-npm/{query}"))
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.bytes().await.unwrap().as_ref(), tarball.as_slice());
    let ranged = client
        .get(format!("{two}/api/packages/unapproved-npm/{query}"))
        .header("X-ApiKey", &key)
        .header("Range", "bytes=2-11")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.bytes().await.unwrap().as_ref(), &tarball[2..12]);

    // A promotion through the other replica moves the record, not the object.
    let stored = objects().await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(stored[0].starts_with("promoter/blobs/"), "{stored:?}");
    let reply = app
        .json_post_to(&two, "/api/promotions/promote", &key, &babel_promotion())
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = get(&one, &format!("/api/packages/approved-npm/{query}"))
        .await
        .unwrap();
    assert_eq!(reply.bytes().await.unwrap().as_ref(), tarball.as_slice());
    assert_eq!(objects().await, stored);

    // A file of several 8 MiB parts goes up as a multipart upload.
    let large: Vec<u8> = (0..20 * 1024 * 1024)
        .map(|i: u32| (i % 251) as u8)
        .collect();
    let reply = put(
        &one,
        "/api/packages/maven/upload/big.jar?name=big&version=1",
        large.clone(),
    )
    .await
    .unwrap();
    assert_eq!(reply.status(), 200);
    let reply = get(&two, "/api/packages/maven/download?name=big&version=1")
        .await
        .unwrap();
    assert_eq!(reply.bytes().await.unwrap().as_ref(), large.as_slice());
    let reply = client
        .post(format!(
            "{one}/api/packages/maven/delete?name=big&version=1"
        ))
        .header("X-ApiKey", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);

    // The same bytes in two feeds, through two replicas: one object.
    let package = nupkg("Shared", "1.0.0");
    for (server, feed) in [(&one, "nuget-a"), (&two, "nuget-b")] {
        let reply = put(
            server,
            &format!("/api/packages/{feed}/upload"),
            package.clone(),
        )
        .await
        .unwrap();
        assert_eq!(reply.status(), 200);
    }
    // The npm file's and the shared one (the large one is collected).
    let mut stored = objects().await;
    for _ in 0..100 {
        if stored.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        stored = objects().await;
    }
    assert_eq!(stored.len(), 2, "{stored:?}");

    // Deleting the last record of each collects its object; the shared one
    // stays while a record remains.
    for (server, path) in [
        (
            &one,
            "/api/packages/nuget-a/delete?name=Shared&version=1.0.0",
        ),
        (
            &two,
            "/api/packages/approved-npm/delete?group=@babel&name=runtime&version=7.21.0",
        ),
    ] {
        let reply = client
            .post(format!("{server}{path}"))
            .header("X-ApiKey", &key)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200);
    }
    let mut left = objects().await;
    for _ in 0..100 {
        if left.len() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        left = objects().await;
    }
    assert_eq!(left.len(), 1, "{left:?}");
    let reply = get(
        &one,
        "/api/packages/nuget-b/download?name=Shared&version=1.0.0",
    )
    .await
    .unwrap();
    assert_eq!(reply.bytes().await.unwrap().as_ref(), package.as_slice());
}

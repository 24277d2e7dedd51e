//! NuGet v3 feeds (contract sections 12 and 15, issue 24). No .NET client
//! installs on these machines, so these tests replay what NuGet.Client sends,
//! read from its source, and check the answers against what it reads:
//! (NuGet.Client at fac35579c8c3; `P` is `src/NuGet.Core/NuGet.Protocol`):
//! - push (`dotnet nuget push`): `P/Resources/PackageUpdateResource.cs`
//!   PUTs to the `PackagePublish/2.0.0` `@id` with a slash appended, a
//!   chunked `multipart/form-data` body whose one part is the `.nupkg`
//!   (`name=package; filename=package.nupkg`), with `X-NuGet-ApiKey`,
//!   `X-NuGet-Session-Id` and `X-NuGet-Client-Version`
//!   (`P/HttpSource/HttpSource.cs`, `UserAgent.cs`); any 2xx is success,
//!   409 a duplicate; delete is `DELETE {publish}/{id}/{version}` as typed;
//! - restore: `P/Resources/ServiceIndexResourceV3.cs` reads `version` (major
//!   3) and `resources[]` `@id`/`@type`;
//!   `P/RemoteRepositories/HttpFileSystemBasedFindPackageByIdResource.cs`
//!   asks `{PackageBaseAddress}{id lower}/index.json` (`versions`; 404 is
//!   none), then `{id lower}/{v}/{id lower}.{v}.nupkg` with `v` each listed
//!   version normalised but not lower-cased; credentials only after a 401
//!   with `WWW-Authenticate`;
//! - `dotnet add package`: `RegistrationResourceV3` reads
//!   `{RegistrationsBaseUrl}{id}/index.json` (`items[].items[].catalogEntry`
//!   with `id`, `version`, `listed`, `dependencyGroups`, `packageContent`);
//! - search: `RawSearchResourceV3` sends `q`, `skip`, `take`,
//!   `prerelease`, `semVerLevel=2.0.0` and reads `totalHits` and `data[]`.

use std::io::Write;

use promoter::domain::FeedType;
use promoter::store::KeyScope;
use serde_json::{json, Value};

use crate::helpers::TestApp;

both_backends!(push_restore_promote_and_delete);

/// A .nupkg as `dotnet pack` lays it out, its .nuspec naming `id` and
/// `version`, its dll saying `said`.
fn nupkg(id: &str, version: &str, said: &str) -> (Vec<u8>, String) {
    let nuspec = format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<package xmlns="http://schemas.microsoft.com/packaging/2013/05/nuspec.xsd">
  <metadata>
    <id>{id}</id>
    <version>{version}</version>
    <authors>Contoso</authors>
    <description>Widgets &amp; more.</description>
    <dependencies>
      <group targetFramework="net8.0">
        <dependency id="Newtonsoft.Json" version="13.0.3" exclude="Build,Analyzers" />
      </group>
    </dependencies>
  </metadata>
</package>"#
    );
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    for (name, bytes) in [
        ("_rels/.rels", b"<Relationships/>".as_slice()),
        (&format!("{id}.nuspec"), nuspec.as_bytes()),
        (&format!("lib/net8.0/{id}.dll"), said.as_bytes()),
        ("[Content_Types].xml", b"<Types/>".as_slice()),
    ] {
        writer.start_file(name, options).unwrap();
        writer.write_all(bytes).unwrap();
    }
    (writer.finish().unwrap().into_inner(), nuspec)
}

/// `dotnet nuget push`'s request: the package as the one part of a form,
/// sent chunked, to the publish URL with a slash appended. Each push has a
/// client of its own, as `dotnet nuget push` is one request: a refusal
/// answered before the body was read closes its connection.
async fn push(app: &TestApp, feed: &str, key: &str, package: &[u8]) -> (u16, String) {
    let boundary = "a7f8b7a5-0c1e-4e5f-9d3e-1b2c3d4e5f60";
    let mut body = format!(
        "--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Disposition: form-data; name=package; filename=package.nupkg; filename*=utf-8''package.nupkg\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(package);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(1000).map(|c| Ok(c.to_vec())).collect();
    let response = reqwest::Client::new()
        .put(app.url(&format!("/nuget/{feed}/v2/package/")))
        .header("X-NuGet-ApiKey", key)
        .header("X-NuGet-Session-Id", "5b1f0c43-8f4a-4c52-9d0f-0a9f3e1d2c7b")
        .header("X-NuGet-Client-Version", "6.12.1")
        .header("User-Agent", "NuGet xplat/6.12.1 (Linux)")
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary=\"{boundary}\""),
        )
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// A GET as restore sends it once challenged: Basic with the key.
async fn get(app: &TestApp, url: &str, key: &str) -> reqwest::Response {
    let url = if url.starts_with("http") {
        url.to_owned()
    } else {
        app.url(url)
    };
    app.client
        .get(url)
        .basic_auth("api", Some(key))
        .send()
        .await
        .unwrap()
}

async fn get_json(app: &TestApp, url: &str, key: &str) -> (u16, Value) {
    let response = get(app, url, key).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The `@id` of the first resource of `kind` in a service index.
fn resource(index: &Value, kind: &str) -> String {
    index["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["@type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {index}"))["@id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn push_restore_promote_and_delete(app: TestApp) {
    app.feed("nuget-unapproved", FeedType::Nuget).await;
    app.feed("nuget-approved", FeedType::Nuget).await;
    app.feed("choco", FeedType::Chocolatey).await;
    app.feed("some-npm", FeedType::Npm).await;
    let key = app.system_key().await;

    // Push: 201, the same bytes again 200, other bytes 409, junk 400.
    let (stable, nuspec) = nupkg("Contoso.Lib", "1.0", "one");
    assert_eq!(push(&app, "nuget-unapproved", &key, &stable).await.0, 201);
    assert_eq!(push(&app, "nuget-unapproved", &key, &stable).await.0, 200);
    let (status, said) = push(
        &app,
        "nuget-unapproved",
        &key,
        &nupkg("Contoso.Lib", "1.0.0", "other").0,
    )
    .await;
    assert_eq!(status, 409, "{said}");
    assert!(said.contains("already stored as this version"), "{said}");
    let (status, said) = push(&app, "nuget-unapproved", &key, b"not a zip").await;
    assert_eq!(status, 400, "{said}");
    let (beta, _) = nupkg("Contoso.Lib", "1.1.0-Beta", "beta");
    assert_eq!(push(&app, "nuget-unapproved", &key, &beta).await.0, 201);
    let (semver2, _) = nupkg("Contoso.Lib", "2.0.0-rc.1+build.5", "two");
    assert_eq!(push(&app, "nuget-unapproved", &key, &semver2).await.0, 201);
    // No key: the challenge; a key without add on the feed: 403.
    let anonymous = app
        .client
        .put(app.url("/nuget/nuget-unapproved/v2/package"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let reader = app
        .key(
            "reader",
            KeyScope::Feed(promoter::domain::FeedName::parse("nuget-unapproved").unwrap()),
            "view",
        )
        .await;
    assert_eq!(
        push(&app, "nuget-unapproved", &reader, &stable).await.0,
        403
    );

    // The service index, challenged without credentials.
    let anonymous = app
        .client
        .get(app.url("/nuget/nuget-unapproved/v3/index.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        anonymous.headers()["www-authenticate"],
        "Basic realm=\"Promoter\""
    );
    let (status, index) = get_json(&app, "/nuget/nuget-unapproved/v3/index.json", &key).await;
    assert_eq!(status, 200);
    assert_eq!(index["version"], "3.0.0");
    let flat = resource(&index, "PackageBaseAddress/3.0.0");
    let registrations = resource(&index, "RegistrationsBaseUrl/3.6.0");
    let query = resource(&index, "SearchQueryService/3.5.0");
    assert_eq!(
        resource(&index, "PackagePublish/2.0.0"),
        format!("{}/nuget/nuget-unapproved/v2/package", app.address)
    );
    assert!(
        flat.ends_with('/') && registrations.ends_with('/'),
        "{flat} {registrations}"
    );

    // Restore: the versions, lower case and normalised, lowest first; then
    // the .nupkg and .nuspec by their lower-case names.
    let (status, versions) = get_json(&app, &format!("{flat}contoso.lib/index.json"), &key).await;
    assert_eq!(status, 200);
    assert_eq!(
        versions,
        json!({"versions": ["1.0.0", "1.1.0-beta", "2.0.0-rc.1"]})
    );
    let bytes = get(
        &app,
        &format!("{flat}contoso.lib/1.0.0/contoso.lib.1.0.0.nupkg"),
        &key,
    )
    .await
    .bytes()
    .await
    .unwrap();
    assert_eq!(bytes.as_ref(), stable.as_slice());
    let served = get(
        &app,
        &format!("{flat}contoso.lib/1.0.0/contoso.lib.nuspec"),
        &key,
    )
    .await
    .text()
    .await
    .unwrap();
    assert_eq!(served, nuspec);
    // An id no package could have is simply not there.
    assert_eq!(
        get(&app, &format!("{flat}contoso%00lib/index.json"), &key)
            .await
            .status(),
        404
    );
    // Restore writes the version as listed, normalised, in its own case.
    let beta_bytes = get(
        &app,
        &format!("{flat}contoso.lib/1.1.0-Beta/contoso.lib.1.1.0-Beta.nupkg"),
        &key,
    )
    .await
    .bytes()
    .await
    .unwrap();
    assert_eq!(beta_bytes.as_ref(), beta.as_slice());
    assert_eq!(
        get(&app, &format!("{flat}contoso.other/index.json"), &key)
            .await
            .status(),
        404
    );
    assert_eq!(
        get(
            &app,
            &format!("{flat}contoso.lib/9.0.0/contoso.lib.9.0.0.nupkg"),
            &key
        )
        .await
        .status(),
        404
    );

    // Registration, every version inline, what `dotnet add package` reads.
    let (status, registration) = get_json(
        &app,
        &format!("{registrations}contoso.lib/index.json"),
        &key,
    )
    .await;
    assert_eq!(status, 200, "{registration}");
    assert_eq!(registration["count"], 1);
    let page = &registration["items"][0];
    assert_eq!(page["count"], 3);
    assert_eq!(page["lower"], "1.0");
    let leaf = &page["items"][0];
    let entry = &leaf["catalogEntry"];
    assert_eq!(entry["id"], "Contoso.Lib");
    assert_eq!(entry["listed"], true);
    assert_eq!(entry["description"], "Widgets & more.");
    assert_eq!(
        entry["dependencyGroups"][0]["dependencies"][0],
        json!({"@type": "PackageDependency", "id": "Newtonsoft.Json", "range": "13.0.3"})
    );
    assert_eq!(entry["dependencyGroups"][0]["targetFramework"], "net8.0");
    let content = get(&app, leaf["packageContent"].as_str().unwrap(), &key).await;
    assert_eq!(content.bytes().await.unwrap().as_ref(), stable.as_slice());
    let (status, one) = get_json(&app, leaf["@id"].as_str().unwrap(), &key).await;
    assert_eq!(status, 200);
    assert_eq!(one["catalogEntry"]["version"], "1.0");

    // Search: stable only by default, pre-releases when asked, SemVer 2.0.0
    // versions only for a client that says it reads them.
    let search = |params: &str| format!("{query}?q=contoso&skip=0&take=20{params}");
    let (_, found) = get_json(&app, &search("&prerelease=false"), &key).await;
    assert_eq!(found["totalHits"], 1);
    assert_eq!(found["data"][0]["id"], "Contoso.Lib");
    assert_eq!(found["data"][0]["version"], "1.0");
    assert_eq!(found["data"][0]["description"], "Widgets & more.");
    let (_, found) = get_json(&app, &search("&prerelease=true"), &key).await;
    assert_eq!(found["data"][0]["version"], "1.1.0-Beta");
    let (_, found) = get_json(&app, &search("&prerelease=true&semVerLevel=2.0.0"), &key).await;
    assert_eq!(found["data"][0]["version"], "2.0.0-rc.1+build.5");
    assert_eq!(found["data"][0]["versions"].as_array().unwrap().len(), 3);
    let (_, none) = get_json(&app, &format!("{query}?q=fabrikam"), &key).await;
    assert_eq!(none, json!({"totalHits": 0, "data": []}));
    let (status, _) = get_json(&app, &format!("{query}?q=x&take=many"), &key).await;
    assert_eq!(status, 400);

    // A promotion moves 1.0 from one flat container to the other at once.
    let reply = app
        .promote(
            &key,
            &json!({"packageName": "Contoso.Lib", "version": "1.0.0",
                "fromFeed": "nuget-unapproved", "toFeed": "nuget-approved"}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let (_, approved) = get_json(
        &app,
        "/nuget/nuget-approved/v3/flatcontainer/contoso.lib/index.json",
        &key,
    )
    .await;
    assert_eq!(approved, json!({"versions": ["1.0.0"]}));
    let (_, left) = get_json(&app, &format!("{flat}contoso.lib/index.json"), &key).await;
    assert_eq!(left, json!({"versions": ["1.1.0-beta", "2.0.0-rc.1"]}));

    // Delete needs `delete`: 204, then 404.
    let delete = |who: String| {
        app.client
            .delete(app.url("/nuget/nuget-unapproved/v2/package/Contoso.Lib/1.1.0-beta"))
            .header("X-NuGet-ApiKey", who)
            .send()
    };
    assert_eq!(delete(reader.clone()).await.unwrap().status(), 403);
    assert_eq!(delete(key.clone()).await.unwrap().status(), 204);
    assert_eq!(delete(key.clone()).await.unwrap().status(), 404);
    let (_, left) = get_json(&app, &format!("{flat}contoso.lib/index.json"), &key).await;
    assert_eq!(left, json!({"versions": ["2.0.0-rc.1"]}));

    // Chocolatey feeds speak the same protocol; other types are not NuGet.
    assert_eq!(push(&app, "choco", &key, &stable).await.0, 201);
    let (status, _) = get_json(
        &app,
        "/nuget/choco/v3/flatcontainer/contoso.lib/index.json",
        &key,
    )
    .await;
    assert_eq!(status, 200);
    let npm = get(&app, "/nuget/some-npm/v3/index.json", &key).await;
    assert_eq!(npm.status(), 404);
    assert!(npm
        .text()
        .await
        .unwrap()
        .contains("is an npm feed, not a nuget feed"));
}

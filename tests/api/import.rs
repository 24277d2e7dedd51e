//! Bulk import through the store, large enough to span several batches (and, on
//! PostgreSQL, batches running side by side).

use promoter::domain::{FeedType, Identifier, PackageId};
use promoter::store::{ImportSummary, NewFile, NewPackage};

use crate::helpers::TestApp;

both_backends!(a_large_import_loads_every_file_once);

async fn a_large_import_loads_every_file_once(app: TestApp) {
    let feed = app.feed("nuget-bulk", FeedType::Nuget).await;
    // 25,000 files: 5,000 versions with five files each, the files of a version
    // spread through the input, and names in two spellings of one identity.
    let packages: Vec<NewPackage> = (0..25_000)
        .map(|i| {
            let version = i % 5000;
            let name = if i % 2 == 0 {
                "Bulk.Package"
            } else {
                "bulk.package"
            };
            NewPackage {
                id: PackageId::new(
                    FeedType::Nuget,
                    None,
                    &Identifier::parse(&format!("{name}{}", version / 10)).unwrap(),
                    &Identifier::parse(&format!("1.0.{}", version % 10)).unwrap(),
                )
                .unwrap(),
                file: NewFile {
                    qualifier: format!("file={}", i / 5000),
                    size: Some(i),
                    sha256: None,
                },
            }
        })
        .collect();
    let first = app.store.import_packages(&feed, &packages).await.unwrap();
    assert_eq!(
        first,
        ImportSummary {
            files_added: 25_000,
            files_present: 0
        }
    );
    assert_eq!(app.store.count_files(&feed).await.unwrap(), 25_000);
    let versions = app
        .texts("SELECT CAST(COUNT(*) AS TEXT) FROM package_versions")
        .await;
    assert_eq!(versions, ["5000"]);

    let again = app
        .store
        .import_packages(&feed, &packages[..12_345])
        .await
        .unwrap();
    assert_eq!(
        again,
        ImportSummary {
            files_added: 0,
            files_present: 12_345
        }
    );
    assert_eq!(app.store.count_files(&feed).await.unwrap(), 25_000);
}

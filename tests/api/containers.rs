//! The container files, checked without a Docker engine: the Dockerfile's build
//! context is all cargo needs, the image runs the binary with a health check it
//! can run, and the compose file starts Promoter on a healthy PostgreSQL with
//! settings the binary reads.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

use crate::helpers::{Backend, TestApp};

fn project_file(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(name)).unwrap()
}

/// The Dockerfile's instructions, continuation lines joined: (keyword, rest).
fn dockerfile() -> Vec<(String, String)> {
    project_file("Dockerfile")
        .replace("\\\n", " ")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (keyword, rest) = line.split_once(' ').unwrap_or((line, ""));
            (keyword.to_ascii_uppercase(), rest.trim().to_owned())
        })
        .collect()
}

/// Every environment variable the binary reads, from its own help texts.
fn environment_the_binary_reads() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for args in [&["--help"][..], &["serve", "--help"], &["health", "--help"]] {
        let output = Command::new(env!("CARGO_BIN_EXE_promoter"))
            .args(args)
            .output()
            .unwrap();
        let help = String::from_utf8(output.stdout).unwrap();
        for part in help.split("[env: ").skip(1) {
            let end = part.find(['=', ']']).unwrap();
            names.insert(part[..end].to_owned());
        }
    }
    assert!(names.contains("PROMOTER_DATABASE_URL"), "{names:?}");
    names
}

fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::copy(from, to).unwrap();
    }
}

/// What the build stage copies from the context, copied alone into an empty
/// folder, is a package cargo accepts with its lock file as it is: the build
/// once failed because `benches/`, which Cargo.toml names, was not copied.
#[test]
fn the_dockerfile_copies_everything_cargo_needs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let context = tempfile::tempdir().unwrap();
    let mut copied = 0;
    for (keyword, rest) in dockerfile() {
        if keyword != "COPY" || rest.starts_with("--from") {
            continue;
        }
        let parts: Vec<&str> = rest.split_whitespace().collect();
        let (sources, destination) = parts.split_at(parts.len() - 1);
        for source in sources {
            let target = if destination[0].ends_with('/') {
                context.path().join(source)
            } else {
                context.path().join(destination[0].trim_start_matches("./"))
            };
            copy_tree(&root.join(source), &target);
            copied += 1;
        }
    }
    assert!(copied >= 4, "the Dockerfile copies only {copied} paths");
    // Every target the manifest declares by hand must be there: cargo reads
    // the manifest without them, but the build stops at the first missing one.
    let manifest = project_file("Cargo.toml");
    let mut kind = None;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            kind = ["bench", "bin", "test", "example"]
                .into_iter()
                .find(|k| line == format!("[[{k}]]"));
        } else if let (Some(kind), Some(value)) = (kind, line.strip_prefix("name = ")) {
            let name = value.trim_matches('"');
            let folder = match kind {
                "bin" => "src/bin",
                "bench" => "benches",
                "test" => "tests",
                _ => "examples",
            };
            let file = context.path().join(folder).join(format!("{name}.rs"));
            assert!(
                file.exists(),
                "Cargo.toml names the {kind} {name:?}, which the image lacks"
            );
        }
    }
    // What the sources embed at compile time (sqlx::migrate!, include_str!).
    for embedded in [
        "migrations/postgres",
        "migrations/sqlite",
        "src/http/web/promoter.css",
    ] {
        assert!(
            context.path().join(embedded).exists(),
            "the image lacks {embedded}"
        );
    }
    // The manifest is read whole (every target it names must be there) and
    // the lock file must be up to date; `tree` resolves for this machine only,
    // so it needs no crate that was not already downloaded for the build.
    let resolved = Command::new(env!("CARGO"))
        .args(["tree", "--locked", "--offline", "--depth", "1"])
        .current_dir(context.path())
        .output()
        .unwrap();
    assert!(
        resolved.status.success(),
        "cargo refuses the Dockerfile's build context: {}",
        String::from_utf8_lossy(&resolved.stderr)
    );
}

#[test]
fn the_image_runs_the_binary_unprivileged_with_a_health_check() {
    let instructions = dockerfile();
    let all = |keyword: &str| -> Vec<String> {
        instructions
            .iter()
            .filter(|(k, _)| k == keyword)
            .map(|(_, rest)| rest.clone())
            .collect()
    };
    // Pinned base images: an exact version, never a moving tag alone.
    for from in all("FROM") {
        let image = from.split_whitespace().next().unwrap();
        let tag = image
            .split_once(':')
            .map(|(_, tag)| tag)
            .unwrap_or("latest");
        assert!(
            tag.split(['-', '.'])
                .filter(|p| p.chars().all(|c| c.is_ascii_digit()))
                .count()
                >= 2,
            "base image {image} is not pinned to an exact version"
        );
    }
    let copied_binary = all("COPY")
        .into_iter()
        .find(|rest| rest.starts_with("--from=build"))
        .expect("the binary is copied from the build stage");
    assert!(
        copied_binary.ends_with(" /usr/local/bin/promoter"),
        "{copied_binary}"
    );
    assert!(
        copied_binary.contains("/target/release/promoter "),
        "{copied_binary}"
    );
    assert_eq!(all("ENTRYPOINT"), [r#"["promoter"]"#]);
    assert_eq!(all("CMD"), [r#"["serve"]"#]);
    assert_eq!(all("EXPOSE"), ["8624"]);
    let user = all("USER");
    assert!(
        user.len() == 1 && user[0] != "root" && user[0] != "0",
        "{user:?}"
    );
    let health = all("HEALTHCHECK");
    assert!(
        health.len() == 1 && health[0].ends_with(r#"CMD ["promoter", "health"]"#),
        "{health:?}"
    );
    let reads = environment_the_binary_reads();
    for env in all("ENV") {
        let name = env.split(['=', ' ']).next().unwrap();
        assert!(
            reads.contains(name),
            "the image sets {name}, which the binary does not read"
        );
    }
    assert!(all("ENV")
        .iter()
        .any(|env| env.starts_with("PROMOTER_LISTEN=0.0.0.0:8624")));
}

#[test]
fn compose_starts_promoter_on_a_healthy_postgres() {
    let documents = YamlLoader::load_from_str(&project_file("docker-compose.yml")).unwrap();
    let services = &documents[0]["services"];
    let (postgres, promoter) = (&services["postgres"], &services["promoter"]);
    assert!(!postgres.is_badvalue() && !promoter.is_badvalue());

    let image = postgres["image"].as_str().unwrap();
    let tag = image.split_once(':').map_or("latest", |(_, tag)| tag);
    assert!(
        tag.split(['-', '.'])
            .filter(|p| p.parse::<u32>().is_ok())
            .count()
            >= 2,
        "{image} is not pinned to an exact version"
    );
    for service in [postgres, promoter] {
        let test = service["healthcheck"]["test"]
            .as_vec()
            .expect("a health check");
        assert_eq!(test[0].as_str(), Some("CMD"));
    }
    let promoter_check: Vec<&str> = promoter["healthcheck"]["test"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert_eq!(promoter_check, ["CMD", "promoter", "health"]);
    assert_eq!(
        promoter["depends_on"]["postgres"]["condition"].as_str(),
        Some("service_healthy")
    );
    let ports: Vec<&str> = promoter["ports"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert!(
        ports.iter().any(|port| port.ends_with(":8624")),
        "{ports:?}"
    );

    // The data lives on a named volume.
    let volume = postgres["volumes"][0].as_str().unwrap();
    let (name, path) = volume.split_once(':').unwrap();
    assert_eq!(path, "/var/lib/postgresql/data");
    assert!(
        !documents[0]["volumes"][name].is_badvalue(),
        "volume {name} is not declared"
    );
    // So do package files: on the folder the image's working directory gives
    // the default --storage-path, which the image creates for its user.
    let volume = promoter["volumes"][0].as_str().unwrap();
    let (name, path) = volume.split_once(':').unwrap();
    assert_eq!(
        path,
        format!(
            "/var/lib/promoter/{}",
            promoter::content::DEFAULT_STORAGE_PATH
        )
    );
    assert!(!documents[0]["volumes"][name].is_badvalue());
    let dockerfile =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
    assert!(dockerfile.contains(&format!("install -d -o promoter -g promoter {path}")));
    assert!(dockerfile.contains("WORKDIR /var/lib/promoter\n"));

    let reads = environment_the_binary_reads();
    let environment = promoter["environment"].as_hash().unwrap();
    for (name, value) in environment {
        let name = name.as_str().unwrap();
        assert!(
            reads.contains(name),
            "compose sets {name}, which the binary does not read"
        );
        if name == "PROMOTER_DATABASE_URL" {
            let url = url::Url::parse(value.as_str().unwrap()).unwrap();
            assert_eq!(
                url.host_str(),
                Some("postgres"),
                "the database is the postgres service"
            );
            assert_eq!(
                url.username(),
                postgres["environment"]["POSTGRES_USER"].as_str().unwrap()
            );
        }
    }
}

/// `promoter health`, the image's health check, against a live server and
/// against an address where nothing listens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_command_says_whether_the_server_answers() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let listen = app.address.trim_start_matches("http://").to_owned();
    let health = |listen: String| {
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_promoter"))
                .args(["health", "--listen", &listen])
                .output()
                .unwrap()
        })
    };
    let up = health(listen).await.unwrap();
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );

    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nobody = unused.local_addr().unwrap().to_string();
    drop(unused);
    let down = health(nobody).await.unwrap();
    assert_eq!(down.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&down.stderr).contains("no answer from http://127.0.0.1:"));
}

//! The client commands: `promoter promote` and `promoter revert` call a running
//! Promoter over HTTP, so that CI on any Linux runner can promote without .NET
//! or pgutil. Unlike the database commands they need only a URL and a key.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use serde_json::{json, Value};

use crate::domain::split_package;

/// Where `promoter serve` listens by default.
const DEFAULT_URL: &str = "http://127.0.0.1:8624";

/// Where the server is and how to prove who we are. The key is never a flag:
/// a command line is visible to every user of the machine (`ps`).
#[derive(Debug, Args)]
pub struct Connection {
    /// The server, e.g. https://promoter.example.com; without it, the local
    /// server at serve's default address.
    #[arg(long, env = "PROMOTER_URL", default_value = DEFAULT_URL)]
    url: String,
    /// A file holding the API key; otherwise the key comes from PROMOTER_API_KEY.
    #[arg(long)]
    api_key_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PromoteArgs {
    #[command(flatten)]
    connection: Connection,
    /// The feed to promote from.
    #[arg(long)]
    feed: String,
    /// The feed to promote to.
    #[arg(long)]
    to_feed: String,
    /// [GROUP/]NAME, split at the last '/', as pgutil does.
    #[arg(
        long,
        required_unless_present = "from_file",
        conflicts_with = "from_file"
    )]
    package: Option<String>,
    /// The version, or latest, or latest-stable.
    #[arg(
        long,
        required_unless_present = "from_file",
        conflicts_with = "from_file"
    )]
    version: Option<String>,
    /// Promote every version listed in FILE ('-' for stdin) as one batch: one
    /// `[GROUP/]NAME VERSION` per line; blank lines and lines starting with #
    /// are skipped.
    #[arg(long)]
    from_file: Option<PathBuf>,
    /// Kept in the history with the promotion.
    #[arg(long)]
    comments: Option<String>,
    /// Check everything and report what would happen, changing nothing.
    #[arg(long)]
    dry_run: bool,
    /// What to do with a version already in the target feed.
    #[arg(long, value_parser = ["fail", "skip", "overwrite"], default_value = "fail")]
    on_conflict: String,
}

#[derive(Debug, Args)]
pub struct RevertArgs {
    #[command(flatten)]
    connection: Connection,
    /// The promotion to undo.
    #[arg(required_unless_present = "batch", conflicts_with = "batch")]
    id: Option<i64>,
    /// Undo every promotion of this batch instead.
    #[arg(long)]
    batch: Option<String>,
    /// Kept in the history with the revert.
    #[arg(long)]
    comments: Option<String>,
    /// Check everything and report what would happen, changing nothing.
    #[arg(long)]
    dry_run: bool,
}

/// `promoter health`: whether the server listening on `listen` answers
/// `/health` with 200 within 5 seconds. An address that listens on every
/// interface is checked on the loopback one.
pub async fn health(listen: &str) -> anyhow::Result<()> {
    let address: std::net::SocketAddr = listen.parse().with_context(|| {
        format!("--listen {listen:?} is not an address and port such as 0.0.0.0:8624")
    })?;
    let host = match address.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_owned(),
        ip if ip.is_unspecified() => "[::1]".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let url = format!("http://{host}:{}/health", address.port());
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .no_proxy()
        .build()?;
    let response = client
        .get(&url)
        .send()
        .await
        .with_context(|| format!("no answer from {url}"))?;
    if !response.status().is_success() {
        bail!("{url} answered {}", response.status());
    }
    Ok(())
}

pub async fn promote(args: PromoteArgs) -> anyhow::Result<()> {
    let server = Server::new(&args.connection)?;
    let mut body = json!({
        "fromFeed": args.feed,
        "toFeed": args.to_feed,
        "onConflict": args.on_conflict,
        "dryRun": args.dry_run,
    });
    if let Some(comments) = &args.comments {
        body["comments"] = json!(comments);
    }
    match (&args.from_file, &args.package, &args.version) {
        (Some(file), _, _) => {
            body["packages"] = Value::Array(read_batch_file(file)?);
            let answer = server.post("/api/promotions/batch", &body).await?;
            print_batch(&answer, Verb::Promote);
        }
        (None, Some(package), Some(version)) => {
            let (group, name) = split_package(package);
            body["name"] = json!(name);
            body["version"] = json!(version);
            if let Some(group) = group {
                body["group"] = json!(group);
            }
            let answer = server.post("/api/promotions/promote", &body).await?;
            println!("{}", describe_single(&answer));
        }
        _ => bail!("give --package and --version, or --from-file"),
    }
    Ok(())
}

pub async fn revert(args: RevertArgs) -> anyhow::Result<()> {
    let server = Server::new(&args.connection)?;
    let mut body = json!({"dryRun": args.dry_run});
    match (args.id, &args.batch) {
        (Some(id), None) => body["id"] = json!(id),
        (None, Some(batch)) => body["batch"] = json!(batch),
        _ => bail!("give a promotion ID or --batch UUID"),
    }
    if let Some(comments) = &args.comments {
        body["comments"] = json!(comments);
    }
    let answer = server.post("/api/promotions/revert", &body).await?;
    print_batch(&answer, Verb::Revert);
    Ok(())
}

/// A server and the key to call it with.
struct Server {
    url: String,
    key: String,
    client: reqwest::Client,
}

impl Server {
    fn new(connection: &Connection) -> anyhow::Result<Server> {
        // CI secrets often end in a line break: the key is what is around it.
        let key = match &connection.api_key_file {
            Some(file) => {
                let key = std::fs::read_to_string(file)
                    .with_context(|| format!("could not read the API key from {}", file.display()))?
                    .trim()
                    .to_owned();
                if key.is_empty() {
                    bail!("the API key file {} is empty", file.display());
                }
                key
            }
            None => std::env::var("PROMOTER_API_KEY")
                .unwrap_or_default()
                .trim()
                .to_owned(),
        };
        if key.is_empty() {
            bail!(
                "no API key: set PROMOTER_API_KEY, or pass --api-key-file FILE (never the key itself, which ps would show)"
            );
        }
        if reqwest::header::HeaderValue::from_str(&key).is_err() {
            bail!("the API key holds characters that cannot be sent in a header");
        }
        Ok(Server {
            url: server_url(&connection.url)?,
            key,
            // The server answers within 60 s; a stalled one must not hang CI.
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(90))
                .build()
                .context("could not set up the HTTP client")?,
        })
    }

    /// POSTs JSON; a refusal becomes an error carrying the server's reasons.
    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let response = self
            .client
            .post(format!("{}{path}", self.url))
            .header("X-ApiKey", &self.key)
            .json(body)
            .send()
            .await
            .map_err(|error| {
                let hint = if self.url == DEFAULT_URL {
                    " (the default: set --url or PROMOTER_URL to call another server)"
                } else {
                    ""
                };
                // The innermost cause says what happened; reqwest's layers
                // above it each restate that the request failed.
                anyhow::anyhow!(
                    "could not reach {}{hint}: {}",
                    self.url,
                    crate::error::root_cause(&error)
                )
            })?;
        let status = response.status();
        let is_problem = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .is_some_and(|ct| ct.as_bytes().starts_with(b"application/problem+json"));
        let text = response
            .text()
            .await
            .context("the server's answer broke off")?;
        if status.is_success() {
            return serde_json::from_str(&text).context("the server's answer is not JSON");
        }
        if is_problem {
            if let Ok(problem) = serde_json::from_str::<Value>(&text) {
                let mut message = problem["detail"].as_str().unwrap_or_default().to_owned();
                for item in problem["items"].as_array().into_iter().flatten() {
                    message.push_str("\n  ");
                    message.push_str(item["reason"].as_str().unwrap_or_default());
                }
                bail!("{} {message}", status.as_u16());
            }
        }
        bail!("{} {}", status.as_u16(), text.trim())
    }
}

/// The server's base URL, without a trailing slash; one sentence when it is not
/// an http(s) URL, naming what is missing.
fn server_url(given: &str) -> anyhow::Result<String> {
    // An empty PROMOTER_URL is as good as none.
    let given = match given.trim() {
        "" => DEFAULT_URL,
        given => given,
    };
    let trimmed = given.trim_end_matches('/');
    let which = || {
        if given == DEFAULT_URL {
            format!("{given} (the default)")
        } else {
            format!("{given:?} (from --url or PROMOTER_URL)")
        }
    };
    if !trimmed.contains("://") {
        bail!(
            "the server URL {} has no scheme: write http://{trimmed} (or https://…)",
            which()
        );
    }
    match url::Url::parse(trimmed) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
            Ok(trimmed.to_owned())
        }
        Ok(url) => bail!(
            "the server URL {} must be http:// or https:// with a host, not {}://",
            which(),
            url.scheme()
        ),
        Err(error) => bail!("the server URL {} is not a URL: {error}", which()),
    }
}

/// One `[GROUP/]NAME VERSION` per line, as batch items.
fn read_batch_file(file: &PathBuf) -> anyhow::Result<Vec<Value>> {
    let text = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("could not read stdin")?
    } else {
        std::fs::read_to_string(file)
            .with_context(|| format!("could not read {}", file.display()))?
    };
    let mut items = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [package, version] = parts[..] else {
            bail!(
                "line {} of {} is not \"[GROUP/]NAME VERSION\": {line:?}",
                index + 1,
                file.display()
            );
        };
        let (group, name) = split_package(package);
        let mut item = json!({"name": name, "version": version});
        if let Some(group) = group {
            item["group"] = json!(group);
        }
        items.push(item);
    }
    if items.is_empty() {
        bail!("{} lists no package versions", file.display());
    }
    Ok(items)
}

fn full_name(item: &Value) -> String {
    match item["group"].as_str().filter(|g| !g.is_empty()) {
        Some(group) => format!("{group}/{}", item["name"].as_str().unwrap_or_default()),
        None => item["name"].as_str().unwrap_or_default().to_owned(),
    }
}

fn describe_single(answer: &Value) -> String {
    let what = format!(
        "{} {} from {} to {}",
        full_name(answer),
        answer["version"].as_str().unwrap_or_default(),
        answer["fromFeed"].as_str().unwrap_or_default(),
        answer["toFeed"].as_str().unwrap_or_default()
    );
    let id = answer["id"]
        .as_i64()
        .map(|id| format!(" (promotion {id})"))
        .unwrap_or_default();
    let (overwrote, skipped) = match answer["outcome"].as_str() {
        Some("overwritten") => (", replacing the copy there", false),
        Some("skipped") => ("", true),
        _ => ("", false),
    };
    match (skipped, answer["dryRun"] == true) {
        (true, _) => format!("Skipped {what}: it is already in the target feed."),
        (false, true) => format!("Dry run, nothing changed: would promote {what}{overwrote}."),
        (false, false) => format!("Promoted {what}{overwrote}{id}."),
    }
}

/// What a batch answer reports: promotions, or reverts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Verb {
    Promote,
    Revert,
}

fn print_batch(answer: &Value, verb: Verb) {
    let dry_run = answer["dryRun"] == true;
    let to_feed = answer["toFeed"].as_str().unwrap_or_default();
    for item in answer["items"].as_array().into_iter().flatten() {
        let id = item["id"]
            .as_i64()
            .map(|id| format!(" (promotion {id})"))
            .unwrap_or_default();
        let outcome = match (item["outcome"].as_str().unwrap_or_default(), verb, dry_run) {
            ("promoted", Verb::Promote, true) => "would promote",
            ("promoted", Verb::Revert, true) => "would revert",
            ("promoted", Verb::Revert, false) => "reverted",
            ("overwritten", _, true) => "would overwrite",
            ("skipped", _, true) => "would skip",
            (outcome, _, _) => outcome,
        };
        let back = match verb {
            Verb::Revert => format!(" back to {to_feed}"),
            Verb::Promote => String::new(),
        };
        println!(
            "{outcome:<14} {} {}{back}{id}",
            full_name(item),
            item["version"].as_str().unwrap_or_default()
        );
    }
    let batch = answer["batch"]
        .as_str()
        .map(|b| format!(" as batch {b}"))
        .unwrap_or_default();
    let (promoted, overwritten, skipped) = (
        &answer["promoted"],
        &answer["overwritten"],
        &answer["skipped"],
    );
    match (verb, dry_run) {
        (Verb::Promote, false) => println!(
            "{promoted} promoted, {overwritten} overwritten, {skipped} skipped into {to_feed}{batch}."
        ),
        (Verb::Promote, true) => println!(
            "Dry run, nothing changed: would promote {promoted}, overwrite {overwritten} and skip {skipped} into {to_feed}."
        ),
        (Verb::Revert, false) => println!("{promoted} reverted back to {to_feed}{batch}."),
        (Verb::Revert, true) => {
            println!("Dry run, nothing changed: would revert {promoted} back to {to_feed}.")
        }
    }
}

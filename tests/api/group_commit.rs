//! Group commit (issue 26): single promotions that arrive together are written
//! in rounds, and each request still gets exactly the answer it would have got
//! alone. Every check here runs one set of requests twice, on two databases
//! set up alike: one at a time against a server writing each promotion on its
//! own, and all at once against servers that group them. The answers, the
//! history and where every version ends up must agree.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::future::join_all;
use promoter::domain::{
    FeedName, FeedType, Identifier, MoveItem, OnConflict, PackageId, VersionSpec,
};
use promoter::store::{KeyScope, MoveAudit, MoveError, MovePlan, Outcome, Store};
use proptest::prelude::*;
use serde_json::{json, Value};

use crate::helpers::{start_instance_grouping, Backend, Reply, TestApp, TestDatabase};

each_backend!(
    a_round_answers_each_request_as_it_would_have_been_answered_alone,
    two_servers_grouping_on_one_database_answer_as_one_at_a_time,
);

/// One kind of request, about a package of its own (so that no two kinds
/// interfere), sent `copies` times.
#[derive(Debug, Clone, Copy)]
enum Ask {
    /// A version in the source, promoted to the target.
    Move,
    /// A version in the target, promoted back to the source.
    Back,
    /// A version that is nowhere.
    Missing,
    /// A version in the source and already in the target.
    Conflict,
    /// A version in the source, asked to go to a disabled feed.
    ToDisabled,
    /// A version in a feed that only promotes to the target, asked elsewhere.
    WrongTarget,
    /// `latest` of a package with two versions in the source.
    Latest,
    /// A key that may not promote.
    Forbidden,
}

const ASKS: [Ask; 8] = [
    Ask::Move,
    Ask::Back,
    Ask::Missing,
    Ask::Conflict,
    Ask::ToDisabled,
    Ask::WrongTarget,
    Ask::Latest,
    Ask::Forbidden,
];

/// The feeds: a source, a target, a disabled feed, a feed with a fixed
/// target, and another feed.
const SOURCE: &str = "gc-source";
const TARGET: &str = "gc-target";
const DISABLED: &str = "gc-disabled";
const FIXED: &str = "gc-fixed";
const OTHER: &str = "gc-other";

/// The packages and requests of a set of asks (each with its copies).
struct Requests {
    /// (ask index, key is the viewer's, body), in the order sent one at a time.
    sent: Vec<(usize, bool, Value)>,
}

impl Requests {
    fn of(asks: &[(Ask, usize)]) -> Requests {
        let mut sent = Vec::new();
        for (index, (ask, copies)) in asks.iter().enumerate() {
            let name = format!("Group.Pkg{index}");
            let (from, to, version) = match ask {
                Ask::Move | Ask::Missing | Ask::Conflict | Ask::Forbidden => {
                    (SOURCE, TARGET, "1.0.0")
                }
                Ask::Back => (TARGET, SOURCE, "1.0.0"),
                Ask::ToDisabled => (SOURCE, DISABLED, "1.0.0"),
                Ask::WrongTarget => (FIXED, OTHER, "1.0.0"),
                Ask::Latest => (SOURCE, TARGET, "latest"),
            };
            let body = json!({
                "fromFeed": from, "toFeed": to, "name": name, "version": version,
                "comments": format!("ask {index}"),
            });
            for _ in 0..*copies {
                sent.push((index, matches!(ask, Ask::Forbidden), body.clone()));
            }
        }
        // Copies apart, as clients would send them.
        let half = sent.len() / 2;
        sent.rotate_left(half);
        Requests { sent }
    }
}

/// A database set up for `asks`, with its keys (promoter's, viewer's).
async fn set_up(backend: Backend, asks: &[(Ask, usize)]) -> (TestApp, String, String) {
    let database = TestDatabase::fresh(backend).await;
    let app = TestApp::without_server(&database.url).await;
    let app = TestApp { database, ..app };
    let source = app.feed(SOURCE, FeedType::Nuget).await;
    let target = app.feed(TARGET, FeedType::Nuget).await;
    app.feed(DISABLED, FeedType::Nuget).await;
    let fixed = app.feed_promoting_to(FIXED, FeedType::Nuget, TARGET).await;
    app.feed(OTHER, FeedType::Nuget).await;
    for (index, (ask, _)) in asks.iter().enumerate() {
        let name = format!("Group.Pkg{index}");
        match ask {
            Ask::Move | Ask::ToDisabled | Ask::Forbidden => {
                app.package(&source, None, &name, "1.0.0", "").await
            }
            Ask::Back => app.package(&target, None, &name, "1.0.0", "").await,
            Ask::Missing => {}
            Ask::Conflict => {
                app.package(&source, None, &name, "1.0.0", "").await;
                app.package(&target, None, &name, "1.0.0", "").await;
            }
            Ask::WrongTarget => app.package(&fixed, None, &name, "1.0.0", "").await,
            Ask::Latest => {
                app.package(&source, None, &name, "1.0.0", "").await;
                app.package(&source, None, &name, "2.0.0", "").await;
            }
        }
    }
    app.store
        .set_feed_active(&FeedName::parse(DISABLED).unwrap(), false)
        .await
        .unwrap();
    let key = app.key("ci", KeyScope::System, "view,promote").await;
    let viewer = app.key("viewer", KeyScope::System, "view").await;
    (app, key, viewer)
}

/// An answer with its history id and time left out, which differ between
/// two runs; everything else (package names, versions, feeds, sentences) is
/// kept.
fn shape(reply: &Reply) -> String {
    if reply.status == 200 {
        let mut body = reply.json();
        for field in ["id", "date"] {
            if body.get(field).is_some_and(|value| !value.is_null()) {
                body[field] = json!("#");
            }
        }
        return format!("200 {body}");
    }
    // "... promotion 12 moved it to feed "x" at 2026-12-04T15:00:00Z."
    let mut text = reply.body.clone();
    if let Some(start) = text.find("promotion ") {
        let digits = text[start + 10..]
            .chars()
            .take_while(char::is_ascii_digit)
            .count();
        text.replace_range(start + 10..start + 10 + digits, "#");
    }
    if let Some(at) = text.rfind(" at ") {
        text.replace_range(at.., " at #.\n");
    }
    format!("{} {text}", reply.status)
}

/// What a database holds after a run: every history row and every version's
/// feed, without ids and times.
async fn outcome(app: &TestApp) -> (Vec<String>, Vec<String>) {
    let history = app
        .texts(
            "SELECT name || ' ' || version || ' ' || from_feed || '>' || to_feed || ' ' \
             || user_name || ' ' || COALESCE(comments, '') FROM promotions ORDER BY 1",
        )
        .await;
    let places = app
        .texts(
            "SELECT f.name || ' ' || v.name || ' ' || v.version FROM package_versions v \
             JOIN feeds f ON f.id = v.feed_id ORDER BY 1",
        )
        .await;
    (history, places)
}

/// Sends `requests` to the servers at `addresses` in turn, all at once.
async fn all_at_once(
    app: &TestApp,
    addresses: &[String],
    keys: (&str, &str),
    requests: &Requests,
) -> Vec<Reply> {
    join_all(
        requests
            .sent
            .iter()
            .enumerate()
            .map(|(i, (_, viewer, body))| {
                let address = &addresses[i % addresses.len()];
                let key = if *viewer { keys.1 } else { keys.0 };
                app.json_post_to(address, "/api/promotions/promote", key, body)
            }),
    )
    .await
}

/// Runs `asks` one at a time without group commit and all at once through
/// `servers` grouping servers, and checks that they agree; the grouping
/// servers' rounds (rounds that moved something, versions they moved).
async fn agree(backend: Backend, asks: &[(Ask, usize)], servers: usize) -> (u64, u64) {
    let requests = Requests::of(asks);

    let (alone, key, viewer) = set_up(backend, asks).await;
    let (address, _) = start_instance_grouping(&alone.database.url, None).await;
    let mut expected = Vec::new();
    for (_, is_viewer, body) in &requests.sent {
        let key = if *is_viewer { &viewer } else { &key };
        expected.push(
            alone
                .json_post_to(&address, "/api/promotions/promote", key, body)
                .await,
        );
    }

    let (grouped, key, viewer) = set_up(backend, asks).await;
    let mut addresses = Vec::new();
    let mut stores = Vec::new();
    for _ in 0..servers {
        let (address, store) = start_instance_grouping(&grouped.database.url, Some(256)).await;
        addresses.push(address);
        stores.push(store);
    }
    let answers = all_at_once(&grouped, &addresses, (&key, &viewer), &requests).await;

    // Each ask's answers, as a multiset: copies of one request may be
    // answered in either order, one moving and the others told where it went.
    let mut by_ask: BTreeMap<usize, (Vec<String>, Vec<String>)> = BTreeMap::new();
    for (((ask, _, _), want), got) in requests.sent.iter().zip(&expected).zip(&answers) {
        let entry = by_ask.entry(*ask).or_default();
        entry.0.push(shape(want));
        entry.1.push(shape(got));
        assert_ne!(got.status, 500, "{}", got.body);
    }
    for (ask, (mut want, mut got)) in by_ask {
        want.sort();
        got.sort();
        assert_eq!(got, want, "the answers to ask {ask} ({:?})", asks[ask]);
    }
    // A copy that did not move names the promotion that did.
    for (index, (ask, copies)) in asks.iter().enumerate() {
        if !matches!(ask, Ask::Move | Ask::Back) || *copies < 2 {
            continue;
        }
        let of_ask: Vec<&Reply> = requests
            .sent
            .iter()
            .zip(&answers)
            .filter(|((i, _, _), _)| *i == index)
            .map(|(_, reply)| reply)
            .collect();
        let moved: Vec<i64> = of_ask
            .iter()
            .filter(|reply| reply.status == 200)
            .map(|reply| reply.json()["id"].as_i64().unwrap())
            .collect();
        assert_eq!(moved.len(), 1, "{of_ask:?}");
        for reply in of_ask.iter().filter(|reply| reply.status != 200) {
            assert!(
                reply
                    .body
                    .contains(&format!("promotion {} moved it", moved[0])),
                "{}",
                reply.body
            );
        }
    }
    assert_eq!(outcome(&grouped).await, outcome(&alone).await);
    // Each 200 carries its own history row: its id names its own version.
    for ((_, _, body), reply) in requests.sent.iter().zip(&answers) {
        if reply.status != 200 {
            continue;
        }
        let id = reply.json()["id"].as_i64().unwrap();
        let row = grouped
            .texts(&format!(
                "SELECT name || ' ' || from_feed || '>' || to_feed || ' ' || COALESCE(comments, '') \
                 FROM promotions WHERE id = {id}"
            ))
            .await;
        assert_eq!(
            row,
            vec![format!(
                "{} {}>{} {}",
                body["name"].as_str().unwrap(),
                body["fromFeed"].as_str().unwrap(),
                body["toFeed"].as_str().unwrap(),
                body["comments"].as_str().unwrap()
            )],
            "the history row of {}",
            reply.body
        );
    }

    stores.iter().fold((0, 0), |(rounds, moved), store| {
        let (r, m) = store.group_commit_counts().expect("group commit is on");
        (rounds + r, moved + m)
    })
}

/// Every kind of request, several of most, against one grouping server.
async fn a_round_answers_each_request_as_it_would_have_been_answered_alone(backend: Backend) {
    let mut asks = Vec::new();
    for round in 0..6 {
        for ask in ASKS {
            let copies = match ask {
                Ask::Move | Ask::Back => 1 + round % 3,
                // `latest` twice at once resolves both before either moves
                // (the general path, with or without group commit): one
                // request per package.
                Ask::Latest => 1,
                _ => 1 + round % 2,
            };
            asks.push((ask, copies));
        }
    }
    let (rounds, moved) = agree(backend, &asks, 1).await;
    // The versions moved by rounds: at most every Move and Back once
    // (`latest` takes the general path).
    assert!(moved <= 12, "rounds moved {moved} versions");
    assert!(rounds < moved, "{rounds} rounds wrote {moved} promotions");
}

/// The same through two servers on one database, racing for the same rows.
async fn two_servers_grouping_on_one_database_answer_as_one_at_a_time(backend: Backend) {
    let asks: Vec<(Ask, usize)> = (0..40)
        .map(|i| match i % 4 {
            0 => (Ask::Move, 2),
            1 => (Ask::Move, 1),
            2 => (Ask::Conflict, 1),
            _ => (Ask::Missing, 1),
        })
        .collect();
    let (rounds, moved) = agree(backend, &asks, 2).await;
    assert!(moved <= 20, "{moved}");
    assert!(rounds < moved, "{rounds} rounds wrote {moved} promotions");
}

fn ask() -> impl Strategy<Value = (Ask, usize)> {
    (0..ASKS.len(), 1..4usize).prop_map(|(kind, copies)| {
        let ask = ASKS[kind];
        (
            ask,
            if matches!(ask, Ask::Latest) {
                1
            } else {
                copies
            },
        )
    })
}

/// Generated sets of requests, through one or two servers: grouped and one at
/// a time always agree.
fn generated_sets_agree(backend: Backend) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = ProptestConfig {
        cases: 6,
        // Each case sets up two databases: shrinking a failure is slow, and
        // the first failing set is reported as it is.
        max_shrink_iters: 8,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    runner
        .run(
            &(prop::collection::vec(ask(), 1..30), 1..3usize),
            |(asks, servers)| {
                runtime.block_on(agree(backend, &asks, servers));
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn generated_request_sets_agree_on_postgres() {
    generated_sets_agree(Backend::Postgres);
}

#[test]
fn generated_request_sets_agree_on_sqlite() {
    generated_sets_agree(Backend::Sqlite);
}

each_backend!(a_round_checks_the_feeds_as_they_are_not_as_they_were_read);

/// Plans whose feeds changed after they were read (as a server's kept feeds
/// may lag another server's change) are refused by the round's own checks,
/// while the other plans of the same rounds move.
async fn a_round_checks_the_feeds_as_they_are_not_as_they_were_read(backend: Backend) {
    let database = TestDatabase::fresh(backend).await;
    let app = TestApp::without_server(&database.url).await;
    let source = app.feed(SOURCE, FeedType::Nuget).await;
    let target = app.feed(TARGET, FeedType::Nuget).await;
    let other = app.feed(OTHER, FeedType::Nuget).await;
    let fixed = app.feed_promoting_to(FIXED, FeedType::Nuget, OTHER).await;
    for i in 0..10 {
        app.package(&source, None, &format!("To.Disabled{i}"), "1.0.0", "")
            .await;
        app.package(&fixed, None, &format!("Fixed.Pkg{i}"), "1.0.0", "")
            .await;
        app.package(&source, None, &format!("Still.Fine{i}"), "1.0.0", "")
            .await;
    }
    // Behind the plans' backs: the target disabled, the fixed target moved.
    app.execute(&format!(
        "UPDATE feeds SET active = FALSE WHERE id = {}",
        target.id
    ))
    .await;
    app.execute(&format!(
        "UPDATE feeds SET promote_to_feed_id = {} WHERE id = {}",
        target.id, fixed.id
    ))
    .await;

    let store = Store::open(&database.url)
        .await
        .unwrap()
        .group_commit(Some(256));
    let item = |name: &str| MoveItem {
        package: PackageId::new(
            FeedType::Nuget,
            None,
            &Identifier::parse(name).unwrap(),
            &Identifier::parse("1.0.0").unwrap(),
        )
        .unwrap(),
        version: VersionSpec::Exact,
        revert_of: None,
    };
    let mut asks = Vec::new();
    for i in 0..10 {
        asks.push((&source, &target, item(&format!("To.Disabled{i}")), false));
        asks.push((&fixed, &other, item(&format!("Fixed.Pkg{i}")), false));
        asks.push((&source, &other, item(&format!("Still.Fine{i}")), true));
    }
    let results = join_all(asks.iter().map(|(from, to, item, _)| {
        let store = &store;
        async move {
            let plan = MovePlan {
                from,
                to,
                items: std::slice::from_ref(item),
                on_conflict: OnConflict::Fail,
                check_fixed_target: true,
                audit: MoveAudit {
                    comments: None,
                    user: "test",
                    api_key_id: 0,
                },
                batch_id: None,
                dry_run: false,
                answer_due: Instant::now() + Duration::from_secs(60),
            };
            store.execute_plan(&plan).await
        }
    }))
    .await;
    for ((_, _, item, allowed), result) in asks.iter().zip(results) {
        match (allowed, result) {
            (true, Ok(results)) => assert!(
                matches!(results[0].outcome, Outcome::Promoted(_)),
                "{results:?}"
            ),
            (false, Err(MoveError::FeedsChanged)) => {}
            (_, other) => panic!("{}: {other:?}", item.package),
        }
    }
    let (rounds, moved) = store.group_commit_counts().unwrap();
    assert_eq!(moved, 10);
    assert!(rounds < moved, "{rounds} rounds wrote {moved} promotions");
    let places = app
        .texts(
            "SELECT f.name || ' ' || v.name FROM package_versions v \
             JOIN feeds f ON f.id = v.feed_id WHERE f.name <> 'gc-source' ORDER BY 1",
        )
        .await;
    assert_eq!(places.len(), 20, "{places:?}");
    assert!(
        places
            .iter()
            .filter(|p| p.starts_with("gc-other Still.Fine"))
            .count()
            == 10
    );
}

/// A version row another writer holds (an operator's `SELECT … FOR UPDATE`)
/// keeps only its own promotion waiting: the round skips it, the others of
/// the same rounds are answered at once, and it is answered when the row is
/// let go, as it would have been without group commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_row_delays_only_its_own_promotion() {
    let asks = vec![(Ask::Move, 1); 12];
    let (app, key, _) = set_up(Backend::Postgres, &asks).await;
    let (address, store) = start_instance_grouping(&app.database.url, Some(256)).await;
    let requests = Requests::of(&asks);
    let mut holder = app.pg_pool().begin().await.unwrap();
    sqlx::query("SELECT id FROM package_versions WHERE name = 'Group.Pkg0' FOR UPDATE")
        .fetch_all(&mut *holder)
        .await
        .unwrap();
    let mut waiting = Vec::new();
    for (ask, _, body) in requests.sent {
        let request = app
            .client
            .post(format!("{address}/api/promotions/promote"))
            .header("X-ApiKey", &key)
            .header("Content-Type", "application/json")
            .body(body.to_string());
        waiting.push((
            ask,
            tokio::spawn(async move { Reply::read(request.send().await.unwrap()).await }),
        ));
    }
    let (held, others): (Vec<_>, Vec<_>) = waiting.into_iter().partition(|(ask, _)| *ask == 0);
    // Well inside the 20 s a statement may wait for a lock.
    for (ask, reply) in others {
        let reply = tokio::time::timeout(Duration::from_secs(10), reply)
            .await
            .unwrap_or_else(|_| panic!("promotion {ask} waited for another's row"))
            .unwrap();
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let (_, held) = held.into_iter().next().unwrap();
    assert!(
        !held.is_finished(),
        "the held version's promotion did not wait"
    );
    holder.rollback().await.unwrap();
    let reply = held.await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let (rounds, moved) = store.group_commit_counts().unwrap();
    assert!(
        moved <= 11 && rounds < moved,
        "{rounds} rounds wrote {moved}"
    );
}

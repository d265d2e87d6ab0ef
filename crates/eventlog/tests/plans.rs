//! The hot statements' query plans, pinned (issue 22): every statement of
//! `eventlog::plans` is EXPLAINed on a seeded log, on SQLite and on PostgreSQL (as a custom
//! and as a generic plan, sequential scans disabled; `testkit::plans`). A statement that
//! would read its whole table, or page through the log by sorting it, fails here.

use eventlog::{EventStore, ExpectedVersion, Metadata, NewEvent, StreamAppend, plans};
use serde_json::json;
use testkit::TestDb;
use testkit::plans::{Planner, full_scans, sorts, uses_an_index};
use uuid::Uuid;

/// A log of 20,000 events in 200 streams of two categories and four tenants, so that the
/// planner's estimates are those of a log in use rather than of an empty table.
async fn seeded(db: &TestDb) -> EventStore {
    let store = EventStore::connect(&db.url).await.expect("open store");
    for s in 0..200u64 {
        let stream = format!("{}-{s}", if s % 2 == 0 { "ride" } else { "pilot" });
        // Four chapters (tenants), the first of them the tenant the statements ask for.
        let tenant = Uuid::from_u128(0x0000_0000_0000_7000_8000_0000_0000_0001 + u128::from(s % 4));
        let events = (0..100u64)
            .map(|n| {
                let event = NewEvent::new("Happened", &json!({ "n": n })).unwrap();
                event.metadata(Metadata { tenant: Some(tenant), ..Metadata::default() })
            })
            .collect();
        store.append(vec![StreamAppend::new(stream, ExpectedVersion::NoStream, events)]).await.unwrap();
    }
    store
}

/// The statements that page through the whole log (or its end): their input is unbounded,
/// so they must walk an index in order; the others are bounded by a key and may sort the
/// few rows it finds (PostgreSQL reads a short stream by a bitmap of its index and sorts it).
const ORDERED: &[&str] = &[
    "read_all",
    "read_all_filtered",
    "read_all_prefix",
    "read_all_tenant",
    "read_all_prefix_tenant",
    "head",
    "last_committed",
];

/// The arguments each PostgreSQL statement is executed with, as SQL literals.
fn pg_args(name: &str) -> &'static str {
    match name {
        "stream_version" | "checkpoint" => "('ride-2')",
        "read_stream" => "('ride-2', 0, 100)",
        "read_streams" => "(ARRAY['ride-2', 'pilot-3', 'ride-4'])",
        "read_all" | "read_all_filtered" => "(0, 0, 1000)",
        "read_all_prefix" => "(0, 0, 1000, 'ride-')",
        "read_all_tenant" => "(0, 0, 1000, '00000000-0000-7000-8000-000000000001')",
        "read_all_prefix_tenant" => "(0, 0, 1000, 'ride-', '00000000-0000-7000-8000-000000000001')",
        "head" | "last_committed" | "event_by_id" | "stream_versions" => "",
        "events_by_ids" => "(ARRAY['00000000-0000-7000-8000-000000000002'::uuid])",
        other => panic!("no sample arguments for the hot statement {other}: add them here"),
    }
}

/// The SQLite statements built for a number of streams are pinned by their shape for three.
#[test]
fn the_pinned_sqlite_shapes_are_the_statements_built() {
    assert_eq!(plans::sqlite::stream_versions(3), plans::sqlite::STREAM_VERSIONS_3);
    assert_eq!(plans::sqlite::read_streams(3), plans::sqlite::READ_STREAMS_3);
}

async fn hot_statements_use_their_indexes(db: &TestDb, hot: &[(&str, &str)]) {
    let store = seeded(db).await;
    let mut planner = Planner::connect(db).await;
    planner.analyze().await;
    for (name, sql) in hot {
        for (how, plan) in planner.plans(sql, pg_args(name)).await {
            assert!(uses_an_index(&plan), "{name} ({how}) reads no index: {plan:#?}");
            let unbounded = planner.unbounded(&plan).await;
            assert!(unbounded.is_empty(), "{name} ({how}) reads a whole table or index: {unbounded:#?} in {plan:#?}");
            if ORDERED.contains(name) {
                assert!(sorts(&plan).is_empty(), "{name} ({how}) sorts its page: {plan:#?}");
            }
        }
    }
    // The check can fail: a statement without an index to use is caught.
    let plan = planner.plan("SELECT position FROM eventlog_events WHERE event_type = 'x'").await;
    assert!(!full_scans(&plan).is_empty(), "{plan:#?}");
    // ... also inside a subquery of a compound statement (whose own rows SQLite "scans").
    let plan = planner
        .plan("SELECT * FROM (SELECT position FROM eventlog_events WHERE event_type = 'x' LIMIT 5) AS s UNION ALL SELECT 1")
        .await;
    assert!(!full_scans(&plan).is_empty(), "{plan:#?}");
    store.close().await;
}

#[tokio::test]
async fn sqlite_hot_statements_search_their_indexes() {
    hot_statements_use_their_indexes(&TestDb::sqlite(), plans::sqlite::HOT).await;
}

#[tokio::test]
async fn postgres_hot_statements_use_their_indexes_as_custom_and_generic_plans() {
    let Some(db) = TestDb::postgres() else { return };
    hot_statements_use_their_indexes(&db, plans::postgres::HOT).await;
}

/// A prepared statement keeps the generic plan it made while the log was small (a fresh
/// deployment: autoanalyze runs a minute later at the earliest, then only every 10 %
/// of growth), so the statements of every command must use their index even then, with
/// sequential scans allowed. `stream_id = ANY($1)` did not: it read the whole table for
/// each command of the load mix on PostgreSQL (issue 22, part 3).
#[tokio::test]
async fn postgres_per_command_statements_use_their_indexes_on_a_young_log() {
    let Some(db) = TestDb::postgres() else { return };
    let store = EventStore::connect(&db.url).await.expect("open store");
    for s in 0..30u64 {
        let event = NewEvent::new("Happened", &json!({ "n": s })).unwrap();
        store
            .append(vec![StreamAppend::new(format!("ride-{s}"), ExpectedVersion::NoStream, vec![event])])
            .await
            .unwrap();
    }
    let mut planner = Planner::connect(&db).await;
    planner.allow_sequential_scans().await;
    for (name, sql) in plans::postgres::HOT.iter().filter(|(name, _)| ["read_stream", "read_streams"].contains(name)) {
        for (how, plan) in planner.plans(sql, pg_args(name)).await {
            assert!(full_scans(&plan).is_empty(), "{name} ({how}) reads the whole young log: {plan:#?}");
        }
    }
    // The check can fail: the former statement's generic plan is caught.
    let former = "SELECT position FROM eventlog_events WHERE stream_id = ANY($1) ORDER BY stream_id, version";
    let generic = planner.plans(former, pg_args("read_streams")).await.remove(1);
    assert_eq!(generic.0, "force_generic_plan");
    assert!(!full_scans(&generic.1).is_empty(), "{generic:#?}");
    store.close().await;
}

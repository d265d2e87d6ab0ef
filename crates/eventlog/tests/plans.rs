//! The hot statements' query plans, pinned (issue 22): every statement of
//! `eventlog::plans` is EXPLAINed on a seeded log, on SQLite (`EXPLAIN QUERY PLAN`) and on
//! PostgreSQL (`EXPLAIN EXECUTE` of the prepared statement, with sequential scans disabled
//! so that the planner's choice on a small table is not mistaken for a good one, as a
//! custom and as a generic plan, which is what a prepared statement comes to use). A
//! statement that would scan its table or sort its rows fails here.

use std::str::FromStr;

use eventlog::{EventStore, ExpectedVersion, Metadata, NewEvent, StreamAppend, plans};
use serde_json::json;
use sqlx::{Connection, Row};
use testkit::TestDb;
use uuid::Uuid;

/// A log of 20,000 events in 200 streams of two categories, so that the planner's
/// estimates are those of a log in use rather than of an empty table.
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
const ORDERED: &[&str] =
    &["read_all", "read_all_prefix", "read_all_tenant", "read_all_prefix_tenant", "head", "last_committed"];

/// Lines of a plan that give a statement away: a full scan of a table or index, or, for
/// the [`ORDERED`] ones, a sort.
fn regressions(name: &str, plan: &[String]) -> Vec<String> {
    let ordered = ORDERED.contains(&name);
    plan.iter()
        .filter(|line| {
            let step = line.trim_start().trim_start_matches("->").trim_start();
            step.starts_with("Seq Scan")
                || step.starts_with("SCAN ")
                || ordered
                    && (step.starts_with("Sort")
                        || step.starts_with("Incremental Sort")
                        || step.contains("TEMP B-TREE"))
        })
        .cloned()
        .collect()
}

/// The plan's lines: SQLite's `detail` column, PostgreSQL's one text column.
async fn sqlite_plan(conn: &mut sqlx::SqliteConnection, explain: String, params: usize) -> Vec<String> {
    let mut q = sqlx::query(sqlx::AssertSqlSafe(explain));
    for _ in 0..params {
        q = q.bind(None::<String>);
    }
    q.fetch_all(conn).await.unwrap().iter().map(|r| r.get::<String, _>("detail")).collect()
}

async fn pg_plan(conn: &mut sqlx::PgConnection, explain: String) -> Vec<String> {
    sqlx::query(sqlx::AssertSqlSafe(explain))
        .fetch_all(conn)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect()
}

#[tokio::test]
async fn sqlite_hot_statements_search_their_indexes() {
    let db = TestDb::sqlite();
    let store = seeded(&db).await;
    let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
    for (name, sql) in plans::sqlite::HOT {
        let params = (1..=9).filter(|n| sql.contains(&format!("${n}"))).count();
        let plan = sqlite_plan(&mut conn, format!("EXPLAIN QUERY PLAN {sql}"), params).await;
        assert!(plan.iter().any(|l| l.starts_with("SEARCH")), "{name} searches nothing: {plan:?}");
        assert!(regressions(name, &plan).is_empty(), "{name} scans or sorts: {plan:?}");
    }
    // The test itself can fail: a statement without an index to use is caught.
    let unindexed = "SELECT position FROM eventlog_events WHERE event_type = 'x'";
    let plan = sqlite_plan(&mut conn, format!("EXPLAIN QUERY PLAN {unindexed}"), 0).await;
    assert!(!regressions("read_all", &plan).is_empty(), "{plan:?}");
    store.close().await;
}

/// The arguments each PostgreSQL statement is executed with, as SQL literals.
fn pg_args(name: &str) -> &'static str {
    match name {
        "stream_version" | "checkpoint" => "('ride-2')",
        "read_stream" => "('ride-2', 0, 100)",
        "read_all" => "(0, 0, 1000)",
        "read_all_prefix" => "(0, 0, 1000, 'ride-')",
        "read_all_tenant" => "(0, 0, 1000, '00000000-0000-7000-8000-000000000001')",
        "read_all_prefix_tenant" => "(0, 0, 1000, 'ride-', '00000000-0000-7000-8000-000000000001')",
        "head" | "last_committed" => "",
        "events_by_ids" => "(ARRAY['00000000-0000-7000-8000-000000000002'::uuid])",
        other => panic!("no sample arguments for the hot statement {other}: add them here"),
    }
}

#[tokio::test]
async fn postgres_hot_statements_use_their_indexes_as_custom_and_generic_plans() {
    let Some(db) = TestDb::postgres() else { return };
    let store = seeded(&db).await;
    let schema = db.schema.clone().expect("a schema");
    let server = db.url.replace(&format!("schema={schema}"), "").replace("?&", "?");
    let server = server.trim_end_matches(['?', '&']).to_owned();
    let options = sqlx::postgres::PgConnectOptions::from_str(&server).unwrap();
    let mut conn = sqlx::PgConnection::connect_with(&options).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("SET search_path TO {schema}; SET enable_seqscan = off")))
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::raw_sql("ANALYZE eventlog_events; ANALYZE eventlog_streams").execute(&mut conn).await.unwrap();
    for mode in ["force_custom_plan", "force_generic_plan"] {
        for (i, (name, sql)) in plans::postgres::HOT.iter().enumerate() {
            let statement = format!("hot_{i}_{}", mode.len());
            let setup = format!("SET plan_cache_mode = {mode}; PREPARE {statement} AS {sql}");
            sqlx::raw_sql(sqlx::AssertSqlSafe(setup)).execute(&mut conn).await.unwrap();
            let plan = pg_plan(&mut conn, format!("EXPLAIN EXECUTE {statement}{}", pg_args(name))).await;
            assert!(plan.iter().any(|l| l.contains("Index")), "{name} ({mode}) uses no index: {plan:#?}");
            assert!(regressions(name, &plan).is_empty(), "{name} ({mode}) scans or sorts: {plan:#?}");
        }
    }
    // The test itself can fail: a statement without an index to use is caught.
    let plan = pg_plan(&mut conn, "EXPLAIN SELECT position FROM eventlog_events WHERE event_type = 'x'".into()).await;
    assert!(!regressions("read_all", &plan).is_empty(), "{plan:#?}");
    store.close().await;
}

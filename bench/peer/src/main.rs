//! Our event log beside a Rust peer, cqrs-es + postgres-es, on one PostgreSQL in one run,
//! each figure also as a ratio to raw INSERT commits measured in the same run (issue 22).
//!
//!   scripts/bench-peer --seconds 5          # starts a durable PostgreSQL, builds, runs
//!
//! A "command" is what an event-sourced service does for a request: load the aggregate
//! (read its stream, deserialize and fold every event), decide, append one event with
//! optimistic concurrency.
//! - eventlog: `read_whole_stream`, fold, `append` with `ExpectedVersion::Exact(version)`.
//! - peer: `CqrsFramework::execute_with_metadata` of postgres-es' default `postgres_cqrs`
//!   (plain event store, no snapshots): SELECT of the aggregate's events, `handle`, INSERT
//!   with the next sequence in a transaction (the primary key is its concurrency check).
//!
//! Fairness: the same aggregate (a counter whose `Increment` emits one `Incremented`), the
//! same event payload (the existing eventlog bench's ride-shaped JSON; the peer's serde enum
//! wraps it as `{"Incremented": ...}`, 16 bytes more) and the same metadata values, both as
//! JSON; pools of the same size on every side (the largest writer count); each side in a
//! database of its own on the same server, which is durable (fsync and synchronous_commit
//! on); measurements of the three sides run back to back for every writer count.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use eventlog::{Actor, EventStore, ExpectedVersion, Metadata, NewEvent, StoreOptions, StreamAppend};
use postgres_es::{PostgresCqrs, postgres_cqrs};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Parser, Debug)]
struct Args {
    /// Seconds per throughput measurement.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent writers, each on aggregates of its own.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1, 8, 32])]
    writers: Vec<usize>,
    /// Commands per aggregate in the throughput runs before a writer moves on to a fresh
    /// one (keeps the load step short, so the writer counts measure concurrency only).
    #[arg(long, default_value_t = 10)]
    per_aggregate: u64,
    /// Length the one aggregate of the growth run reaches.
    #[arg(long, default_value_t = 1000)]
    grow_to: u64,
    /// Server URL; each side gets a database of its own on it.
    #[arg(long, env = "SAMSKAB_BENCH_PG_URL")]
    url: String,
}

/// The payload of every event on both sides: the existing eventlog bench's ride-shaped
/// event, whose `n` is the counter's new value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Incremented {
    ride_id: Uuid,
    bike_id: Uuid,
    pilot_id: Uuid,
    start: String,
    duration_minutes: u32,
    kind: String,
    n: u64,
    riders: Vec<Uuid>,
}

impl Incremented {
    fn new(n: u64) -> Self {
        Incremented {
            ride_id: Uuid::now_v7(),
            bike_id: Uuid::now_v7(),
            pilot_id: Uuid::now_v7(),
            start: "2027-05-04T08:00:00Z".into(),
            duration_minutes: 60,
            kind: "pleasure".into(),
            n,
            riders: vec![Uuid::now_v7(), Uuid::now_v7()],
        }
    }
}

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

// ---- eventlog side -------------------------------------------------------------------

fn our_event(n: u64, tenant: Uuid) -> NewEvent {
    NewEvent::new("Incremented", &Incremented::new(n)).expect("payload").metadata(Metadata {
        tenant: Some(tenant),
        actor: Some(Actor { id: "u-1a2b3c".into(), role: "pilot".into() }),
        correlation_id: Some(Uuid::now_v7()),
        causation_id: None,
        traceparent: Some(TRACEPARENT.into()),
    })
}

/// One command on our log: load and fold the stream, decide, append with the version read.
async fn our_command(store: &EventStore, stream: &str, tenant: Uuid) {
    let events = store.read_whole_stream(stream).await.expect("read stream");
    let mut counter = 0;
    for e in &events {
        let p: Incremented = serde_json::from_str(e.payload.get()).expect("event");
        counter = p.n;
    }
    let version = events.last().map_or(0, |e| e.version);
    store
        .append(vec![StreamAppend::new(stream, ExpectedVersion::Exact(version), vec![our_event(counter + 1, tenant)])])
        .await
        .expect("append");
}

// ---- peer side: cqrs-es aggregate --------------------------------------------------------

#[derive(Debug, Default, Serialize, Deserialize)]
struct Counter {
    n: u64,
}

enum CounterCommand {
    Increment,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum CounterEvent {
    Incremented(Incremented),
}

impl DomainEvent for CounterEvent {
    fn event_type(&self) -> String {
        "Incremented".into()
    }
    fn event_version(&self) -> String {
        "1.0".into()
    }
}

#[derive(Debug)]
struct Never;

impl std::fmt::Display for Never {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("never")
    }
}

impl std::error::Error for Never {}

impl Aggregate for Counter {
    const TYPE: &'static str = "Counter";
    type Command = CounterCommand;
    type Event = CounterEvent;
    type Error = Never;
    type Services = ();

    async fn handle(&mut self, command: CounterCommand, _: &(), sink: &EventSink<Self>) -> Result<(), Never> {
        match command {
            CounterCommand::Increment => {
                let next = self.n + 1;
                sink.write(CounterEvent::Incremented(Incremented::new(next)), self).await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: CounterEvent) {
        match event {
            CounterEvent::Incremented(p) => self.n = p.n,
        }
    }
}

/// The same metadata values as ours, in the peer's string map.
fn peer_metadata(tenant: Uuid) -> HashMap<String, String> {
    HashMap::from([
        ("tenant".into(), tenant.to_string()),
        ("actor_id".into(), "u-1a2b3c".into()),
        ("actor_role".into(), "pilot".into()),
        ("correlation_id".into(), Uuid::now_v7().to_string()),
        ("traceparent".into(), TRACEPARENT.into()),
    ])
}

async fn peer_command(cqrs: &PostgresCqrs<Counter>, id: &str, tenant: Uuid) {
    cqrs.execute_with_metadata(id, CounterCommand::Increment, peer_metadata(tenant)).await.expect("peer command");
}

/// postgres-es' tables, as in its repository's db/init.sql (the snapshot table is unused
/// by the plain event store but created as documented).
const PEER_TABLES: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS events (
        aggregate_type text NOT NULL,
        aggregate_id   text NOT NULL,
        sequence       bigint CHECK (sequence >= 0) NOT NULL,
        event_type     text NOT NULL,
        event_version  text NOT NULL,
        payload        json NOT NULL,
        metadata       json NOT NULL,
        PRIMARY KEY (aggregate_type, aggregate_id, sequence))",
    "CREATE TABLE IF NOT EXISTS snapshots (
        aggregate_type   text NOT NULL,
        aggregate_id     text NOT NULL,
        last_sequence    bigint CHECK (last_sequence >= 0) NOT NULL,
        current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL,
        payload          json NOT NULL,
        PRIMARY KEY (aggregate_type, aggregate_id, last_sequence))",
];

// ---- baseline: the eventlog bench's raw INSERT -----------------------------------------------

/// The eventlog bench's baseline table: the event table's columns, no constraints or indexes.
const PLAIN_TABLE: &str = "CREATE TABLE IF NOT EXISTS bench_plain (position BIGINT, tx_id XID8, event_id UUID, \
    stream_id TEXT, version BIGINT, event_type TEXT, schema_version INTEGER, payload JSON, metadata JSON, tenant UUID, \
    content_hash BYTEA, occurred_at TIMESTAMPTZ, recorded_at TIMESTAMPTZ)";

/// One single-row INSERT committed on its own, as in the eventlog bench.
async fn plain_insert(pool: &sqlx::PgPool, w: usize, i: u64, body: &str, meta: &str) {
    sqlx::query(
        "INSERT INTO bench_plain VALUES ($1, pg_current_xact_id(), $2, $3, $4, 'Incremented', 1, $5::json, \
         $6::json, $7, $8, now(), now())",
    )
    .bind(i as i64)
    .bind(Uuid::now_v7())
    .bind(format!("plain-{w}"))
    .bind(i as i64)
    .bind(body)
    .bind(meta)
    .bind(Uuid::nil())
    .bind(vec![0u8; 32])
    .execute(pool)
    .await
    .expect("insert");
}

// ---- measurement ----------------------------------------------------------------------------

/// Runs `writers` tasks for `secs`, each calling `op(writer, i)` in a loop; returns ops/s
/// (the eventlog bench's `rate`).
async fn rate<F, Fut>(writers: usize, secs: u64, op: F) -> f64
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (op, done) = (op.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0;
            while Instant::now() < deadline {
                op(w, i).await;
                done.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// The stream lengths (after the command) the growth run reports on.
fn buckets(grow_to: u64) -> Vec<(u64, u64)> {
    let mut edges = vec![0, 100, 500, 1000];
    edges.retain(|&e| e < grow_to);
    edges.push(grow_to);
    edges.windows(2).map(|w| (w[0], w[1])).collect()
}

/// Commands/s (1 / mean latency) per bucket of one aggregate grown by `command` to
/// `grow_to` events by one writer.
async fn growth<F, Fut>(grow_to: u64, command: F) -> Vec<f64>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut took = Vec::with_capacity(grow_to as usize);
    for _ in 0..grow_to {
        let started = Instant::now();
        command().await;
        took.push(started.elapsed().as_secs_f64());
    }
    buckets(grow_to)
        .into_iter()
        .map(|(from, to)| {
            let slice = &took[from as usize..to as usize];
            slice.len() as f64 / slice.iter().sum::<f64>()
        })
        .collect()
}

/// The server URL with another database.
fn with_db(url: &str, db: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let (server, _) = base.rsplit_once('/').expect("URL with a database");
    match query {
        Some(q) => format!("{server}/{db}?{q}"),
        None => format!("{server}/{db}"),
    }
}

async fn create_database(url: &str, db: &'static str) {
    let admin = sqlx::PgPool::connect(url).await.expect("connect");
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(db)
        .fetch_one(&admin)
        .await
        .unwrap();
    if !exists {
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}"))).execute(&admin).await.unwrap();
    }
    admin.close().await;
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let pool_size = *args.writers.iter().max().expect("writers") as u32;
    for db in ["bench_eventlog", "bench_peer", "bench_plain"] {
        create_database(&args.url, db).await;
    }

    // Ours, in its own database; the store creates its schema.
    let store = EventStore::connect_with(
        &with_db(&args.url, "bench_eventlog"),
        StoreOptions { max_connections: pool_size, ..StoreOptions::default() },
    )
    .await
    .expect("open store");
    // The peer (its sqlx 0.8), in its own database, with postgres-es' tables.
    let peer_pool = sqlx08::postgres::PgPoolOptions::new()
        .max_connections(pool_size)
        .connect(&with_db(&args.url, "bench_peer"))
        .await
        .expect("peer pool");
    for sql in PEER_TABLES {
        sqlx08::query(sql).execute(&peer_pool).await.expect("peer tables");
    }
    let cqrs = Arc::new(postgres_cqrs::<Counter>(peer_pool.clone(), vec![], ()));
    // The baseline, in its own database.
    let plain = sqlx::postgres::PgPoolOptions::new()
        .max_connections(pool_size)
        .connect(&with_db(&args.url, "bench_plain"))
        .await
        .expect("baseline pool");
    sqlx::query(PLAIN_TABLE).execute(&plain).await.unwrap();
    let sample = our_event(0, Uuid::nil());
    let body: Arc<str> = sample.payload.get().into();
    let meta: Arc<str> = serde_json::to_string(&sample.metadata).unwrap().into();

    let tenant = Uuid::now_v7();
    let run = Uuid::now_v7().simple().to_string();
    let per = args.per_aggregate;
    let ours = |writers: usize, secs: u64, tag: &str| {
        let (s, prefix) = (store.clone(), format!("{tag}{run}"));
        rate(writers, secs, move |w, i| {
            let (s, stream) = (s.clone(), format!("{prefix}-{w}-{}", i / per));
            async move { our_command(&s, &stream, tenant).await }
        })
    };
    let peer = |writers: usize, secs: u64, tag: &str| {
        let (c, prefix) = (cqrs.clone(), format!("{tag}{run}"));
        rate(writers, secs, move |w, i| {
            let (c, id) = (c.clone(), format!("{prefix}-{w}-{}", i / per));
            async move { peer_command(&c, &id, tenant).await }
        })
    };
    let base = |writers: usize, secs: u64| {
        let (p, body, meta) = (plain.clone(), body.clone(), meta.clone());
        rate(writers, secs, move |w, i| {
            let (p, body, meta) = (p.clone(), body.clone(), meta.clone());
            async move { plain_insert(&p, w, i, &body, &meta).await }
        })
    };

    // Warm-up: opens every pool's connections and the tables' first pages; not reported.
    ours(pool_size as usize, 1, "warm").await;
    peer(pool_size as usize, 1, "warm").await;
    base(pool_size as usize, 1).await;

    let mut rows: Vec<(String, f64, f64, f64)> = Vec::new();
    let mut base_1 = None;
    for &writers in &args.writers {
        eprintln!("{writers} writer(s) ...");
        let o = ours(writers, args.seconds, "c").await;
        let p = peer(writers, args.seconds, "c").await;
        let b = base(writers, args.seconds).await;
        if writers == 1 {
            base_1 = Some(b);
        }
        rows.push((format!("single-event commands/s, {writers} writer(s)"), o, p, b));
    }
    eprintln!("growing one aggregate to {} events ...", args.grow_to);
    let (s, c) = (store.clone(), cqrs.clone());
    let our_stream = format!("grow{run}");
    let o = growth(args.grow_to, || our_command(&s, &our_stream, tenant)).await;
    let peer_id = format!("grow{run}");
    let p = growth(args.grow_to, || peer_command(&c, &peer_id, tenant)).await;
    let b = match base_1 {
        Some(b) => b,
        None => base(1, args.seconds).await,
    };
    for (k, (from, to)) in buckets(args.grow_to).into_iter().enumerate() {
        rows.push((
            format!("commands/s on one aggregate, stream length {}–{to}, 1 writer", from.max(1)),
            o[k],
            p[k],
            b,
        ));
    }

    println!(
        "# eventlog beside cqrs-es + postgres-es ({} s per throughput measurement, pools of {pool_size}, \
         durable PostgreSQL)\n",
        args.seconds
    );
    println!(
        "| measurement | eventlog | cqrs-es + postgres-es | raw INSERT commits/s | eventlog / baseline | peer / baseline | eventlog / peer |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (what, o, p, b) in rows {
        println!("| {what} | {o:.0} | {p:.0} | {b:.0} | {:.2} | {:.2} | {:.2} |", o / b, p / b, o / p);
    }
    store.close().await;
    peer_pool.close().await;
    plain.close().await;
}

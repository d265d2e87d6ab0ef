//! Event log benchmark: appends and catch-up reads on each backend, each printed beside a
//! baseline measured in the same run on the same database (raw INSERT commits into a
//! plain table; a plain COPY or SELECT of the same rows).
//!
//!   scripts/bench-eventlog                       # starts a durable PostgreSQL, runs both
//!   cargo bench -p eventlog -- --seconds 5 --events 1000000
//!
//! PostgreSQL is used when `SAMSKAB_BENCH_PG_URL` is set (keep its default, durable
//! `fsync` and `synchronous_commit`); SQLite always, in a temporary file, with
//! `synchronous=FULL`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use eventlog::{Actor, Cursor, EventStore, ExpectedVersion, Filter, Metadata, NewEvent, StoreOptions, StreamAppend};
use futures_util::StreamExt;
use serde_json::json;
use uuid::Uuid;

#[derive(Parser, Debug)]
struct Args {
    /// Seconds per append measurement.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Events in the catch-up read.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Writer counts for single-event appends.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1, 8, 32])]
    writers: Vec<usize>,
    /// Only this backend (`sqlite` or `postgres`).
    #[arg(long)]
    only: Option<String>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn event(n: u64, tenant: Uuid) -> NewEvent {
    NewEvent::new(
        "RideBooked",
        &json!({
            "ride_id": Uuid::now_v7(), "bike_id": Uuid::now_v7(), "pilot_id": Uuid::now_v7(),
            "start": "2027-05-04T08:00:00Z", "duration_minutes": 60, "kind": "pleasure", "n": n,
            "riders": [Uuid::now_v7(), Uuid::now_v7()],
        }),
    )
    .expect("payload")
    .metadata(Metadata {
        tenant: Some(tenant),
        actor: Some(Actor { id: "u-1a2b3c".into(), role: "pilot".into() }),
        correlation_id: Some(Uuid::now_v7()),
        causation_id: None,
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
    })
}

/// Runs `writers` tasks for `secs`, each calling `op(writer, i)` in a loop; returns ops/s.
async fn rate<F, Fut>(writers: usize, secs: u64, op: F) -> f64
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = u64> + Send,
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
                done.fetch_add(op(w, i).await, Ordering::Relaxed);
                i += 1;
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

struct Plain {
    url: String,
}

impl Plain {
    /// A table with the event table's columns and no constraints or indexes.
    const PG_TABLE: &'static str = "CREATE TABLE IF NOT EXISTS bench_plain (position BIGINT, tx_id XID8, event_id UUID, \
        stream_id TEXT, version BIGINT, event_type TEXT, schema_version INTEGER, payload JSON, metadata JSON, tenant UUID, \
        content_hash BYTEA, occurred_at TIMESTAMPTZ, recorded_at TIMESTAMPTZ)";
    const SQLITE_TABLE: &'static str = "CREATE TABLE IF NOT EXISTS bench_plain (position INTEGER, event_id BLOB, \
        stream_id TEXT, version INTEGER, event_type TEXT, schema_version INTEGER, payload TEXT, metadata TEXT, tenant BLOB, \
        content_hash BLOB, occurred_at INTEGER, recorded_at INTEGER)";

    async fn insert_rate(&self, clients: usize, secs: u64) -> f64 {
        let payload = event(0, Uuid::nil());
        let body = payload.payload.get().to_owned();
        let meta = serde_json::to_string(&payload.metadata).unwrap();
        if self.url.starts_with("postgres") {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(clients as u32)
                .connect(&self.url)
                .await
                .expect("pg");
            sqlx::query(Self::PG_TABLE).execute(&pool).await.unwrap();
            rate(clients, secs, move |w, i| {
                let (pool, body, meta) = (pool.clone(), body.clone(), meta.clone());
                async move {
                    sqlx::query(
                        "INSERT INTO bench_plain VALUES ($1, pg_current_xact_id(), $2, $3, $4, 'RideBooked', 1, $5::json, \
                         $6::json, $7, $8, now(), now())",
                    )
                    .bind(i as i64)
                    .bind(Uuid::now_v7())
                    .bind(format!("plain-{w}"))
                    .bind(i as i64)
                    .bind(&body)
                    .bind(&meta)
                    .bind(Uuid::nil())
                    .bind(vec![0u8; 32])
                    .execute(&pool)
                    .await
                    .unwrap();
                    1
                }
            })
            .await
        } else {
            use std::str::FromStr;
            let opts = sqlx::sqlite::SqliteConnectOptions::from_str(&self.url)
                .unwrap()
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(30));
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(clients as u32)
                .connect_with(opts)
                .await
                .unwrap();
            sqlx::query(Self::SQLITE_TABLE).execute(&pool).await.unwrap();
            rate(clients, secs, move |w, i| {
                let (pool, body, meta) = (pool.clone(), body.clone(), meta.clone());
                async move {
                    sqlx::query(
                        "INSERT INTO bench_plain VALUES ($1, $2, $3, $4, 'RideBooked', 1, $5, $6, $7, $8, $9, $9)",
                    )
                    .bind(i as i64)
                    .bind(Uuid::now_v7())
                    .bind(format!("plain-{w}"))
                    .bind(i as i64)
                    .bind(&body)
                    .bind(&meta)
                    .bind(Uuid::nil())
                    .bind(vec![0u8; 32])
                    .bind(chrono::Utc::now().timestamp_micros())
                    .execute(&pool)
                    .await
                    .unwrap();
                    1
                }
            })
            .await
        }
    }

    /// Rows/s of a plain ordered read of the whole event table.
    async fn plain_read_rate(&self, expected: u64) -> f64 {
        let started = Instant::now();
        let rows = if self.url.starts_with("postgres") {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
            let mut out = conn
                .copy_out_raw(
                    "COPY (SELECT position, tx_id, event_id, stream_id, version, event_type, schema_version, payload, \
                     metadata, occurred_at, recorded_at FROM eventlog_events ORDER BY position) TO STDOUT",
                )
                .await
                .unwrap();
            let mut lines = 0u64;
            while let Some(chunk) = out.next().await {
                lines += chunk.unwrap().iter().filter(|&&b| b == b'\n').count() as u64;
            }
            lines
        } else {
            let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect(&self.url).await.unwrap();
            let mut rows = sqlx::query(
                "SELECT position, event_id, stream_id, version, event_type, schema_version, payload, metadata, \
                 occurred_at, recorded_at FROM eventlog_events ORDER BY position",
            )
            .fetch(&pool);
            let mut n = 0u64;
            while let Some(r) = rows.next().await {
                r.unwrap();
                n += 1;
            }
            n
        };
        assert!(rows >= expected, "plain read saw {rows} rows, expected {expected}");
        rows as f64 / started.elapsed().as_secs_f64()
    }
}

async fn bench_backend(name: &str, url: &str, args: &Args) {
    println!("\n## {name}\n");
    let opts = StoreOptions { max_connections: 40, ..StoreOptions::default() };
    let store = EventStore::connect_with(url, opts).await.expect("open store");
    // The baseline runs in the same database (and schema) as the log.
    let plain = Plain { url: url.replace("?schema=", "?options=-csearch_path%3D") };
    let tenant = Uuid::now_v7();

    println!("| measurement | eventlog | baseline | ratio |");
    println!("|---|---:|---:|---:|");
    for &writers in &args.writers {
        let s = store.clone();
        let run = Uuid::now_v7().simple().to_string();
        let ours = rate(writers, args.seconds, move |w, i| {
            let (s, run) = (s.clone(), run.clone());
            async move {
                let stream = format!("bench{run}-{w}");
                s.append(vec![StreamAppend::new(stream, ExpectedVersion::Exact(i), vec![event(i, tenant)])])
                    .await
                    .expect("append");
                1
            }
        })
        .await;
        let base = plain.insert_rate(writers, args.seconds).await;
        println!(
            "| single-event appends/s, {writers} writer(s) | {ours:.0} | {base:.0} raw INSERT commits/s | {:.2} |",
            ours / base
        );
    }

    let s = store.clone();
    let run = Uuid::now_v7().simple().to_string();
    let batched = rate(1, args.seconds, move |_, i| {
        let (s, run) = (s.clone(), run.clone());
        async move {
            let events = (0..100).map(|k| event(i * 100 + k, tenant)).collect();
            s.append(vec![StreamAppend::new(format!("batch{run}-{i}"), ExpectedVersion::NoStream, events)])
                .await
                .expect("append");
            100
        }
    })
    .await;
    println!("| events/s in batches of 100, 1 writer | {batched:.0} | target 20000 | {:.2} |", batched / 20_000.0);

    // Fill up to the catch-up size with batched appends from 4 writers.
    let have = {
        let mut n = 0u64;
        let mut c = Cursor::START;
        loop {
            let p = store.read_all(c, &Filter::all(), 10_000).await.unwrap();
            if p.events.is_empty() {
                break n;
            }
            n += p.events.len() as u64;
            c = p.next;
        }
    };
    let missing = args.events.saturating_sub(have);
    let fill_started = Instant::now();
    let per_writer = missing.div_ceil(400);
    let mut fills = Vec::new();
    for w in 0..4 {
        let s = store.clone();
        fills.push(tokio::spawn(async move {
            for b in 0..per_writer {
                let events = (0..100).map(|k| event(b * 100 + k, tenant)).collect();
                let stream = format!("fill-{w}-{b}-{}", Uuid::now_v7().simple());
                s.append(vec![StreamAppend::new(stream, ExpectedVersion::NoStream, events)]).await.unwrap();
            }
        }));
    }
    for f in fills {
        f.await.unwrap();
    }
    eprintln!("filled {} events in {:.1} s", per_writer * 400, fill_started.elapsed().as_secs_f64());
    let head = store.head().await.unwrap();
    store.wait_until_readable(head, Duration::from_secs(30)).await.unwrap();

    let started = Instant::now();
    let mut sub = store.subscribe(Cursor::START, Filter::all());
    let mut n = 0u64;
    while let Some(e) = sub.next().await {
        let e = e.unwrap();
        n += 1;
        if e.cursor >= head {
            break;
        }
    }
    let ours = n as f64 / started.elapsed().as_secs_f64();
    let base = plain.plain_read_rate(n).await;
    let what = if url.starts_with("postgres") { "COPY TO STDOUT" } else { "plain SELECT" };
    println!(
        "| catch-up read of {n} events via subscription, events/s | {ours:.0} | {base:.0} rows/s {what} | {:.2} |",
        ours / base
    );
    store.close().await;
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    println!("# eventlog benchmark ({} s per append measurement)", args.seconds);
    let run_pg = args.only.as_deref() != Some("sqlite");
    let run_sqlite = args.only.as_deref() != Some("postgres");
    if run_pg {
        match std::env::var("SAMSKAB_BENCH_PG_URL") {
            Ok(url) => bench_backend("PostgreSQL (durable: fsync on, synchronous_commit on)", &url, &args).await,
            Err(_) => println!("\nPostgreSQL skipped: set SAMSKAB_BENCH_PG_URL (scripts/bench-eventlog does)"),
        }
    }
    if run_sqlite {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
        bench_backend("SQLite (WAL, synchronous=FULL)", &url, &args).await;
    }
}

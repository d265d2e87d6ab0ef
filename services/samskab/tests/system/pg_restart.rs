//! PostgreSQL stopped with `pg_ctl -m immediate` (a crash, as far as the server's clients can
//! tell) in the middle of a burst of writes, then restarted on the same port and data
//! directory: the services reconnect and go on, the clients (retrying with their
//! idempotency keys) only ever see an acknowledgement or 503 (or 409 `idempotency-in-flight`
//! for a retry racing its own first attempt), and no acknowledged write is lost or doubled.
//!
//! Each test runs a PostgreSQL server of its own (durable: default fsync and synchronous
//! commits, unlike the shared test server) in a temp dir on a free port, as the `postgres`
//! user when running as root, with the installed binaries (`PGBIN`, else the newest
//! `/usr/lib/postgresql/*/bin`). Like every PostgreSQL test it is skipped outside CI when
//! no test server is configured (`SAMSKAB_TEST_PG_URL`, set by `scripts/test`) and fails
//! under `CI=true` when it cannot run.
//!
//! Two rounds by default; the long form runs more, under `cargo test` (nextest stops a test
//! after 5 minutes; any `SAMSKAB_TEST_PG_URL` enables the test, which starts its own server):
//! `SAMSKAB_TEST_PG_URL=own SAMSKAB_FAULT_ROUNDS=10 cargo test -p samskab --test system pg_restart::`.

use crate::support::{BIN, PLAINTEXT, SHARED_SECRETS, client, free_port, shared_token};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::process::{Child, Command};

fn rounds() -> usize {
    std::env::var("SAMSKAB_FAULT_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(2).max(1)
}

// ---------------------------------------------------------------------------------------
// A PostgreSQL server of the test's own.

/// A durable PostgreSQL server in a temp dir; stopped (immediately) and removed on drop.
struct PgServer {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

fn is_root() -> bool {
    std::process::Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A command of the PostgreSQL binaries, as the `postgres` user when we are root (the server
/// refuses to run as root).
fn pg_command(bin: &Path, tool: &str) -> std::process::Command {
    let exe = bin.join(tool);
    if is_root() {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(exe);
        c
    } else {
        std::process::Command::new(exe)
    }
}

fn pg_bin() -> PathBuf {
    if let Ok(b) = std::env::var("PGBIN") {
        return PathBuf::from(b);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, p): &(u32, PathBuf)| p.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p).expect("PostgreSQL binaries (set PGBIN or install postgresql)")
}

impl PgServer {
    fn start() -> PgServer {
        let bin = pg_bin();
        let dir = tempfile::Builder::new().prefix("samskab-pg-restart.").tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        if is_root() {
            let ok = std::process::Command::new("chown").arg("postgres:postgres").arg(dir.path()).status().unwrap();
            assert!(ok.success(), "chown the PostgreSQL directory");
        }
        let out = pg_command(&bin, "initdb")
            .arg("-D")
            .arg(dir.path().join("data"))
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8"])
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let mut server = PgServer { bin, dir, port: 0 };
        for _ in 0..5 {
            server.port = free_port();
            if server.pg_ctl_start() {
                let out = std::process::Command::new(server.bin.join("createdb"))
                    .args(["-h", "127.0.0.1", "-p", &server.port.to_string(), "-U", "postgres", "samskab"])
                    .output()
                    .unwrap();
                assert!(out.status.success(), "createdb: {}", String::from_utf8_lossy(&out.stderr));
                return server;
            }
        }
        panic!("PostgreSQL did not start: {}", server.log());
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/samskab", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Starts the server on its port (waiting until it accepts connections).
    fn pg_ctl_start(&self) -> bool {
        pg_command(&self.bin, "pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .arg("-l")
            .arg(self.dir.path().join("server.log"))
            .args(["-w", "-t", "120", "-o"])
            .arg(format!(
                "-c listen_addresses=127.0.0.1 -p {} -k {} -c max_connections=300",
                self.port,
                self.dir.path().display()
            ))
            .arg("start")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// `pg_ctl stop -m immediate`: every server process quits at once, without a
    /// checkpoint; the next start replays the WAL (crash recovery).
    fn stop_immediately(&self) {
        let ok = pg_command(&self.bin, "pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success(), "pg_ctl -m immediate stop");
    }

    fn restart(&self) {
        assert!(self.pg_ctl_start(), "PostgreSQL restarted on port {}: {}", self.port, self.log());
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = pg_command(&self.bin, "pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

// ---------------------------------------------------------------------------------------
// Samskab processes and HTTP.

fn samskab(args: &[String], data_dir: &Path) -> Child {
    Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .envs(SHARED_SECRETS)
        .env(PLAINTEXT.0, PLAINTEXT.1)
        .env("SAMSKAB_LOG", "warn")
        .env("SAMSKAB_RATE_LIMIT_PER_MINUTE", "1000000")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("samskab starts")
}

async fn readyz(http: &reqwest::Client, port: u16) -> u16 {
    match http.get(format!("http://127.0.0.1:{port}/readyz")).send().await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

async fn wait_ready(http: &reqwest::Client, port: u16, what: &str) {
    testkit::eventually(
        &format!("{what}: samskab on port {port} to become ready"),
        Duration::from_secs(120),
        || async { readyz(http, port).await == 200 },
    )
    .await;
}

/// One answer: status (0 when the connection failed), the problem code or body, the body.
async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<&Value>,
    key: Option<&str>,
) -> (u16, Value) {
    let mut req = http.request(method, url).bearer_auth(token);
    if let Some(k) = key {
        req = req.header("idempotency-key", k);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    match req.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or(Value::Null))
        }
        Err(e) => (0, Value::String(e.to_string())),
    }
}

/// What a client saw: every answer to every attempt.
#[derive(Default)]
struct Seen {
    answers: Vec<(String, u16, Value)>,
}

/// The world the bursts book in: a chapter, a care home open all week, a trishaw, a pilot.
struct World {
    base: String,
    chapter: String,
    ca: String,
    pilot: String,
    pilot_token: String,
    bike: String,
}

async fn world(http: &reqwest::Client, base: &str, dir: &Path) -> World {
    let post = |path: &str, token: &str, body: Value| {
        let url = format!("{base}{path}");
        let (http, token) = (http.clone(), token.to_owned());
        async move { call(&http, reqwest::Method::POST, &url, &token, Some(&body), None).await }
    };
    let admin = shared_token(dir, &["--role", "admin"]);
    let (st, ch) = post("/v1/chapters", &admin, json!({"name": "Aarhus", "timezone": "Europe/Copenhagen"})).await;
    assert_eq!(st, 201, "{ch}");
    let chapter = ch["chapter_id"].as_str().unwrap().to_owned();
    let ca = shared_token(dir, &["--role", "chapter_admin", "--chapter", &chapter]);
    let days = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
    let (st, home) = post(
        "/v1/carehomes",
        &ca,
        json!({"chapter_id": chapter, "name": "Havblik", "address": "Havnevej 1",
               "ride_hours": days.iter().map(|d| json!({"weekday": d, "opens": "06:00", "closes": "22:00"})).collect::<Vec<_>>(),
               "turnaround_minutes": 15, "requires_confirmation": false}),
    )
    .await;
    assert_eq!(st, 201, "{home}");
    let home = home["carehome_id"].as_str().unwrap().to_owned();
    let (st, bike) = post(&format!("/v1/carehomes/{home}/bikes"), &ca, json!({"name": "Cykel", "seats": 2})).await;
    assert_eq!(st, 201, "{bike}");
    let bike = bike["bike_id"].as_str().unwrap().to_owned();
    let (st, p) = post("/v1/pilots", &ca, json!({"chapter_id": chapter, "display_name": "Pilot"})).await;
    assert_eq!(st, 201, "{p}");
    let pilot = p["pilot_id"].as_str().unwrap().to_owned();
    let (st, q) = post(
        &format!("/v1/pilots/{pilot}/qualifications"),
        &ca,
        json!({"qualified_on": "2026-01-01", "valid_until": "2030-12-31"}),
    )
    .await;
    assert_eq!(st, 200, "{q}");
    let pilot_token = shared_token(dir, &["--role", "pilot", "--pilot", &pilot]);
    World { base: base.to_owned(), chapter, ca, pilot, pilot_token, bike }
}

impl World {
    /// A one-hour ride on day `n` (09:00 UTC, inside the ride hours), one per day.
    fn ride(&self, n: i64) -> Value {
        let start = chrono::DateTime::parse_from_rfc3339("2027-04-01T09:00:00Z").unwrap() + chrono::Duration::days(n);
        json!({"bike_id": self.bike, "pilot_id": self.pilot, "start": start, "duration_minutes": 60, "resident_ids": []})
    }

    /// Books day `n`, retrying until acknowledged (or 60 s pass); returns the key that was
    /// acknowledged and the ride. A refusal is recorded under its key (a retry with that
    /// key replays it): while booking has not yet heard of the pilot or the trishaw from
    /// its peers (404, 422) the next attempt takes a new key.
    async fn book_until_acknowledged(&self, http: &reqwest::Client, n: i64, key: &str) -> (String, String) {
        let url = format!("{}/v1/rides", self.base);
        let until = Instant::now() + Duration::from_secs(60);
        let mut k = key.to_owned();
        for attempt in 1.. {
            let (st, v) =
                call(http, reqwest::Method::POST, &url, &self.pilot_token, Some(&self.ride(n)), Some(&k)).await;
            if st == 201 {
                return (k, v["ride_id"].as_str().unwrap().to_owned());
            }
            assert!(Instant::now() < until, "{key}: never acknowledged: {st} {v}");
            if matches!(st, 404 | 422) {
                k = format!("{key}-{attempt}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        unreachable!()
    }
}

/// A client that sends `body` to `url` with `key` until it is acknowledged (201), retrying
/// after 503, a cut connection or 409 `idempotency-in-flight`; every answer is recorded.
/// Gives up after `patience` (the test then fails on the missing acknowledgement).
async fn client_until_acknowledged(
    http: reqwest::Client,
    url: String,
    token: String,
    body: Value,
    key: String,
    seen: Arc<Mutex<Seen>>,
    patience: Duration,
) -> Option<Value> {
    let until = Instant::now() + patience;
    loop {
        let (st, v) = call(&http, reqwest::Method::POST, &url, &token, Some(&body), Some(&key)).await;
        seen.lock().unwrap().answers.push((key.clone(), st, v.clone()));
        if st == 201 {
            return Some(v);
        }
        if !retryable(st, &v) || Instant::now() > until {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The answers a client retries with its key while PostgreSQL is away: 503 (the service or
/// the gateway's idempotency store cannot reach it), 408 (the request waited on the
/// database past the gateway's request timeout: the attempt was abandoned, its key stays
/// claimed until the lease runs out) and 409 `idempotency-in-flight` (a retry while an
/// earlier attempt with the key is running or abandoned).
fn retryable(st: u16, v: &Value) -> bool {
    (st == 503 && v["code"] == "unavailable")
        || (st == 408 && v["code"] == "timeout")
        || (st == 409 && v["code"] == "idempotency-in-flight")
}

/// Rounds of: a burst of bookings and new pilots, PostgreSQL stopped with `-m immediate`
/// once a few were acknowledged, clients going on against the stopped server for a while,
/// PostgreSQL restarted; then everything acknowledged is there exactly once.
async fn crash_rounds(pg: &PgServer, gateway: u16, dir: &Path) {
    let http = client(Duration::from_secs(60));
    let base = format!("http://127.0.0.1:{gateway}");
    wait_ready(&http, gateway, "first start").await;
    let w = world(&http, &base, dir).await;
    // Booking learns of the trishaw and the qualification from its peers' feeds.
    let mut booked: BTreeMap<String, (i64, String)> = BTreeMap::new();
    let (warm_key, warm) = w.book_until_acknowledged(&http, 0, "warm-up").await;
    booked.insert(warm_key, (0, warm));
    let mut pilots: BTreeMap<String, String> = BTreeMap::new();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let per_round = 16i64;
    for round in 0..rounds() as i64 {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..per_round {
            let day = 1 + round * (per_round + 1) + i;
            let key = format!("ride-{day}");
            let (http, url, token, body, seen) =
                (http.clone(), format!("{base}/v1/rides"), w.pilot_token.clone(), w.ride(day), seen.clone());
            tasks.spawn(async move {
                tokio::time::sleep(Duration::from_millis(25 * i as u64)).await;
                let v = client_until_acknowledged(http, url, token, body, key.clone(), seen, Duration::from_secs(240))
                    .await;
                (key, day, v.map(|v| v["ride_id"].as_str().unwrap().to_owned()))
            });
        }
        for i in 0..per_round / 2 {
            let key = format!("pilot-{round}-{i}");
            let body = json!({"chapter_id": w.chapter, "display_name": format!("Pilot {round}-{i}")});
            let (http, url, token, seen) = (http.clone(), format!("{base}/v1/pilots"), w.ca.clone(), seen.clone());
            tasks.spawn(async move {
                tokio::time::sleep(Duration::from_millis(50 * i as u64)).await;
                let v = client_until_acknowledged(http, url, token, body, key.clone(), seen, Duration::from_secs(240))
                    .await;
                (key, -1, v.map(|v| v["pilot_id"].as_str().unwrap().to_owned()))
            });
        }
        // Crash PostgreSQL once a few bookings of this round were acknowledged.
        let acked_rides = || {
            seen.lock()
                .unwrap()
                .answers
                .iter()
                .filter(|(k, st, _)| *st == 201 && k.starts_with("ride-"))
                .map(|(k, _, _)| k.clone())
                .collect::<BTreeSet<_>>()
        };
        let before = acked_rides().len();
        testkit::eventually(
            &format!("round {round}: acknowledgements of the burst"),
            Duration::from_secs(60),
            || async { acked_rides().len() >= before + 4 },
        )
        .await;
        pg.stop_immediately();
        let answered_at_stop = seen.lock().unwrap().answers.len();
        // The clients go on against the stopped server: wait until they have been answered
        // (refused) a good number of times, and readiness says the system is not ready.
        let until = Instant::now() + Duration::from_secs(60);
        let mut not_ready = false;
        loop {
            not_ready |= readyz(&http, gateway).await == 503;
            let during = seen.lock().unwrap().answers.len() - answered_at_stop;
            if during >= 12 && not_ready {
                break;
            }
            assert!(
                Instant::now() < until,
                "round {round}: {during} answers during the outage, not ready: {not_ready}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let outage: Vec<(u16, Value)> =
            seen.lock().unwrap().answers[answered_at_stop..].iter().map(|(_, s, v)| (*s, v.clone())).collect();
        assert!(
            outage.iter().any(|(s, _)| *s == 503),
            "round {round}: PostgreSQL is down, the clients are told 503: {outage:?}"
        );
        pg.restart();
        // Every client is acknowledged once PostgreSQL is back.
        while let Some(r) = tasks.join_next().await {
            let (key, day, id) = r.unwrap();
            let id = id.unwrap_or_else(|| {
                let mine: Vec<_> = seen
                    .lock()
                    .unwrap()
                    .answers
                    .iter()
                    .filter(|(k, _, _)| *k == key)
                    .map(|(_, s, v)| (*s, v.clone()))
                    .collect();
                panic!("round {round}: {key} was never acknowledged after the restart: {mine:?}")
            });
            if day >= 0 {
                booked.insert(key, (day, id));
            } else {
                pilots.insert(key, id);
            }
        }
        // The system is ready again, and a new booking succeeds at once.
        wait_ready(&http, gateway, "after the restart").await;
        let day = (round + 1) * (per_round + 1);
        let key = format!("ride-{day}");
        let (st, v) = call(
            &http,
            reqwest::Method::POST,
            &format!("{base}/v1/rides"),
            &w.pilot_token,
            Some(&w.ride(day)),
            Some(&key),
        )
        .await;
        assert_eq!(st, 201, "round {round}: a new booking after the restart: {v}");
        booked.insert(key, (day, v["ride_id"].as_str().unwrap().to_owned()));
    }

    // Only acknowledgements and unavailability: never another 5xx, never a refusal.
    let answers = std::mem::take(&mut seen.lock().unwrap().answers);
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for (key, st, v) in &answers {
        *statuses.entry(*st).or_default() += 1;
        assert!(*st == 201 || retryable(*st, v), "{key}: only 201, 503, 408 or 409 in flight: {st} {v}");
    }
    eprintln!("answers while PostgreSQL crashed and came back: {statuses:?}");
    // One acknowledgement per key, and each key's acknowledgements name one object.
    let mut ids: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (key, st, v) in &answers {
        if *st == 201 {
            let id = v["ride_id"].as_str().or(v["pilot_id"].as_str()).unwrap().to_owned();
            ids.entry(key.as_str()).or_default().insert(id);
        }
    }
    assert!(ids.values().all(|s| s.len() == 1), "a key acknowledged as two objects: {ids:?}");

    // Every acknowledged ride is there exactly once: read one by one, in the list (which
    // may lag by a moment: wait for it), and replayed with its key.
    for (key, (day, id)) in &booked {
        let (st, got) =
            call(&http, reqwest::Method::GET, &format!("{base}/v1/rides/{id}"), &w.pilot_token, None, None).await;
        assert_eq!((st, got["status"].as_str()), (200, Some("booked")), "{key}: {got}");
        assert_eq!(got["start"], w.ride(*day)["start"], "{key}");
        let (st, again) = call(
            &http,
            reqwest::Method::POST,
            &format!("{base}/v1/rides"),
            &w.pilot_token,
            Some(&w.ride(*day)),
            Some(key),
        )
        .await;
        assert_eq!((st, again["ride_id"].as_str()), (201, Some(id.as_str())), "{key} replays its original ride");
    }
    let list = format!("{base}/v1/rides?pilot_id={}&limit=500", w.pilot);
    let rides = testkit::eventually("the list to show every booked ride", Duration::from_secs(20), || async {
        let (st, rides) = call(&http, reqwest::Method::GET, &list, &w.pilot_token, None, None).await;
        assert_eq!(st, 200, "{rides}");
        let n = rides["items"].as_array().map_or(0, Vec::len);
        if n >= booked.len() { Ok(rides) } else { Err(format!("{n} listed, {} booked: {rides}", booked.len())) }
    })
    .await;
    let listed: Vec<&str> = rides["items"].as_array().unwrap().iter().filter_map(|r| r["ride_id"].as_str()).collect();
    let listed_set: BTreeSet<&str> = listed.iter().copied().collect();
    let acknowledged: BTreeSet<&str> = booked.values().map(|(_, id)| id.as_str()).collect();
    assert_eq!(listed.len(), listed_set.len(), "a ride listed twice");
    assert_eq!(listed_set, acknowledged, "the ride list is exactly the acknowledged rides");

    // The pilots created during the crashes: each once, in the chapter's list.
    let list = format!("{base}/v1/pilots?chapter_id={}&limit=500", w.chapter);
    let listed = testkit::eventually("the list to show every pilot", Duration::from_secs(20), || async {
        let (st, list) = call(&http, reqwest::Method::GET, &list, &w.ca, None, None).await;
        assert_eq!(st, 200, "{list}");
        let items = list["items"].as_array().unwrap().clone();
        if items.len() > pilots.len() {
            Ok(items)
        } else {
            Err(format!("{} listed, {} pilots: {list}", items.len(), pilots.len()))
        }
    })
    .await;
    let listed: BTreeSet<&str> = listed.iter().filter_map(|p| p["pilot_id"].as_str()).collect();
    let mut expected: BTreeSet<&str> = pilots.values().map(String::as_str).collect();
    expected.insert(w.pilot.as_str());
    assert_eq!(listed, expected, "the chapter's pilots are the acknowledged ones (and the first), once each");
    for (key, id) in &pilots {
        let (st, got) = call(&http, reqwest::Method::GET, &format!("{base}/v1/pilots/{id}"), &w.ca, None, None).await;
        assert_eq!(st, 200, "{key}: {got}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_all_in_one_survives_postgres_crashing_mid_burst() {
    if testkit::pg_server_url().is_none() {
        return;
    }
    let pg = PgServer::start();
    let dir = tempfile::tempdir().unwrap();
    let gateway = free_port();
    let _samskab = samskab(
        &["serve".into(), "--database-url".into(), pg.url(), "--listen".into(), format!("127.0.0.1:{gateway}")],
        dir.path(),
    );
    crash_rounds(&pg, gateway, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn separate_processes_survive_postgres_crashing_mid_burst() {
    if testkit::pg_server_url().is_none() {
        return;
    }
    let pg = PgServer::start();
    let dir = tempfile::tempdir().unwrap();
    let [carehome, volunteer, booking, gateway] = [free_port(), free_port(), free_port(), free_port()];
    let url = |c: &str| format!("{}?schema={c}", pg.url());
    let grpc = |p: u16| format!("http://127.0.0.1:{p}");
    let listen = |p: u16| format!("127.0.0.1:{p}");
    let run = |args: &[&str]| {
        let mut all = vec!["run".to_owned()];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        samskab(&all, dir.path())
    };
    let _procs = [
        run(&["carehome", "--database-url", &url("carehome"), "--listen", &listen(carehome)]),
        run(&["volunteer", "--database-url", &url("volunteer"), "--listen", &listen(volunteer)]),
        run(&[
            "booking",
            "--database-url",
            &url("booking"),
            "--listen",
            &listen(booking),
            "--carehome-url",
            &grpc(carehome),
            "--volunteer-url",
            &grpc(volunteer),
        ]),
        run(&[
            "gateway",
            "--database-url",
            &url("gateway"),
            "--listen",
            &listen(gateway),
            "--booking-url",
            &grpc(booking),
            "--carehome-url",
            &grpc(carehome),
            "--volunteer-url",
            &grpc(volunteer),
        ]),
    ];
    crash_rounds(&pg, gateway, dir.path()).await;
}

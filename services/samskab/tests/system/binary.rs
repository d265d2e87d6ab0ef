//! The `samskab` binary as an operator meets it, as real processes: `serve --demo` seeds
//! once and prints what a newcomer needs; SIGTERM drains and exits cleanly; SIGKILL in the
//! middle of a burst of bookings loses no acknowledged one and duplicates none when the
//! clients retry with their keys; `token`, `migrate` and `rebuild-projections` work; and
//! every component runs as its own process against PostgreSQL (`samskab run ...`).

use crate::support::{BIN, PLAINTEXT, SHARED_SECRETS, client, free_port, shared_token};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub(crate) fn signal(child: &Child, sig: &str) {
    let pid = child.id().expect("running").to_string();
    let ok = std::process::Command::new("kill").args([sig, &pid]).status().expect("kill runs").success();
    assert!(ok, "kill {sig} {pid}");
}

/// `samskab serve` on a data directory; returns when it prints its welcome (demo) or answers.
pub(crate) async fn serve(dir: &Path, port: u16, demo: bool) -> (Child, String) {
    let mut cmd = Command::new(BIN);
    cmd.arg("serve").arg("--data-dir").arg(dir).arg("--listen").arg(format!("127.0.0.1:{port}"));
    if demo {
        cmd.arg("--demo");
    }
    let mut child = cmd
        .env("SAMSKAB_LOG", "warn")
        .env("SAMSKAB_RATE_LIMIT_PER_MINUTE", "100000")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("samskab starts");
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    if demo {
        let read = tokio::time::timeout(Duration::from_secs(120), async {
            while let Ok(Some(line)) = out.next_line().await {
                printed.push_str(&line);
                printed.push('\n');
                if line.starts_with("API documentation") {
                    break;
                }
            }
        })
        .await;
        assert!(read.is_ok(), "the demo printed its welcome: {printed}");
    }
    tokio::spawn(async move { while let Ok(Some(_)) = out.next_line().await {} });
    wait_ready(port).await;
    (child, printed)
}

pub(crate) async fn wait_ready(port: u16) {
    let http = client(Duration::from_secs(30));
    testkit::eventually(&format!("samskab on port {port} to become ready"), Duration::from_secs(120), || async {
        let r = http.get(format!("http://127.0.0.1:{port}/readyz")).send().await;
        r.is_ok_and(|r| r.status() == 200)
    })
    .await;
}

fn utc(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub(crate) async fn exit_status(child: &mut Child) -> std::process::ExitStatus {
    tokio::time::timeout(Duration::from_secs(60), child.wait()).await.expect("the process exits").expect("status")
}

fn demo_env(dir: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(dir.join("demo.env")).expect("demo.env written");
    text.lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

pub(crate) async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<Value>,
    key: Option<&str>,
) -> (u16, Value) {
    let mut req = http.request(method, url).bearer_auth(token);
    if let Some(k) = key {
        req = req.header("idempotency-key", k);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    match req.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serve_demo_drains_on_sigterm_and_keeps_every_acknowledged_booking_through_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (child, printed) = serve(dir.path(), port, true).await;
    // Stdout is a pipe here, not a terminal: the welcome says where the tokens are and
    // prints none (a redirected stdout ends up in logs); demo.env has them.
    assert!(printed.contains("demo.env") && printed.contains("curl "), "the welcome: {printed}");
    let env = demo_env(dir.path());
    for role in ["ADMIN", "CHAPTER_ADMIN", "COORDINATOR", "PILOT", "INTEGRATOR"] {
        assert!(env[role].starts_with("eyJ"), "demo.env has {role}");
        assert!(!printed.contains(&env[role]), "the {role} token is not printed to a pipe: {printed}");
    }
    assert!(!printed.contains("eyJ"), "no token on stdout: {printed}");
    let mode = std::fs::metadata(dir.path().join("demo.env")).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777, 0o600, "tokens are secrets");
    let base = format!("http://127.0.0.1:{port}");
    let http = client(Duration::from_secs(30));
    let pilot = env["PILOT"].clone();

    // The demo has rides in several states.
    let (st, list) = call(
        &http,
        reqwest::Method::GET,
        &format!("{base}/v1/rides?carehome_id={}&limit=500", env["CAREHOME_ID"]),
        &env["COORDINATOR"],
        None,
        None,
    )
    .await;
    assert_eq!(st, 200, "{list}");
    let statuses: BTreeSet<String> =
        list["items"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap().to_owned()).collect();
    assert!(statuses.len() >= 3, "rides in several states: {statuses:?}");
    // A full ride with a resident waiting, and an open request with candidates (the demo's
    // pilots declared their availability).
    assert!(
        list["items"].as_array().unwrap().iter().any(|r| r["waitlist"].as_array().is_some_and(|w| w.len() == 1)),
        "a ride with a waitlist: {list}"
    );
    let (st, candidates) = call(
        &http,
        reqwest::Method::GET,
        &format!("{base}/v1/ride-requests/{}/candidates", env["REQUEST_ID"]),
        &env["COORDINATOR"],
        None,
        None,
    )
    .await;
    assert_eq!(st, 200, "{candidates}");
    assert!(!candidates["items"].as_array().unwrap().is_empty(), "the demo request has candidates: {candidates}");
    // Notify started before the seeding: the demo pilot's inbox has the rides booked for them.
    let mut booked_for_you = 0;
    for _ in 0..60 {
        let (st, inbox) =
            call(&http, reqwest::Method::GET, &format!("{base}/v1/me/notifications?limit=100"), &pilot, None, None)
                .await;
        assert_eq!(st, 200, "{inbox}");
        booked_for_you =
            inbox["items"].as_array().unwrap().iter().filter(|n| n["kind"] == "ride.booked_for_you").count();
        if booked_for_you > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(booked_for_you > 0, "the demo pilot's inbox holds the rides booked for them");

    // Three rounds: a burst of bookings (one a day at 15:00 Copenhagen time, each with its
    // own key) during which the process is killed; then a restart and every client retries
    // with its key.
    let day: chrono::NaiveDate = env["DAY"].parse().unwrap();
    let start: chrono::DateTime<chrono::Utc> = env["START"].parse().unwrap();
    assert!(day > chrono::Utc::now().date_naive());
    let mut bodies: Vec<(String, Value)> = Vec::new();
    let mut acknowledged: BTreeMap<String, String> = BTreeMap::new();
    let mut child = child;
    for round in 0..3i64 {
        let burst: Vec<(String, Value)> = (2 + round * 14..2 + (round + 1) * 14)
            .map(|d| {
                let s = start + chrono::Duration::days(d);
                let key = format!("burst-{d}");
                (key, json!({"bike_id": env["BIKE_ID"], "pilot_id": env["PILOT_ID"], "start": s, "duration_minutes": 60, "resident_ids": []}))
            })
            .collect();
        let mut tasks = tokio::task::JoinSet::new();
        for (i, (key, body)) in burst.iter().cloned().enumerate() {
            let (http, url, pilot) = (http.clone(), format!("{base}/v1/rides"), pilot.clone());
            tasks.spawn(async move {
                tokio::time::sleep(Duration::from_millis(15 * i as u64)).await;
                let (st, v) = call(&http, reqwest::Method::POST, &url, &pilot, Some(body), Some(&key)).await;
                (key, st, v)
            });
        }
        // Kill once some bookings of this round were acknowledged.
        let mut acked = 0;
        while let Some(r) = tasks.join_next().await {
            let (key, st, v) = r.unwrap();
            if st == 201 {
                acknowledged.insert(key, v["ride_id"].as_str().unwrap().to_owned());
                acked += 1;
            } else {
                assert!(st == 0 || st == 201, "only success or a dropped connection: {st} {v}");
            }
            if acked == 5 && child.id().is_some() {
                signal(&child, "-KILL");
                let _ = child.wait().await;
            }
        }
        assert!(acked >= 5, "round {round}: the burst was cut after {acked} acknowledged");
        bodies.extend(burst);
        // Restart (the demo is not seeded twice), then every client retries with its key.
        child = serve(dir.path(), port, true).await.0;
        for (key, body) in &bodies {
            let (st, v) =
                call(&http, reqwest::Method::POST, &format!("{base}/v1/rides"), &pilot, Some(body.clone()), Some(key))
                    .await;
            assert_eq!(st, 201, "{key}: {v}");
            if let Some(id) = acknowledged.get(key) {
                assert_eq!(v["ride_id"].as_str(), Some(id.as_str()), "{key} keeps its original ride");
            }
            acknowledged.insert(key.clone(), v["ride_id"].as_str().unwrap().to_owned());
        }
    }
    // None lost, none duplicated: exactly one ride per key on those days. The list is
    // booking's read model, which follows the log a moment behind the last retry's answer:
    // read it until it has caught up (or shows more than it should), then compare exactly.
    let from = start + chrono::Duration::days(2);
    let to = start + chrono::Duration::days(45);
    // (the demo's own rides of this pilot are at other times of day)
    let wanted: BTreeSet<String> =
        bodies.iter().map(|(_, b)| utc(b["start"].as_str().unwrap().parse().unwrap())).collect();
    let mut burst: Vec<(String, String)> = Vec::new();
    let mut list = Value::Null;
    for _ in 0..100 {
        let (st, read) = call(
            &http,
            reqwest::Method::GET,
            &format!("{base}/v1/rides?pilot_id={}&from={}&to={}&limit=500", env["PILOT_ID"], utc(from), utc(to)),
            &pilot,
            None,
            None,
        )
        .await;
        assert_eq!(st, 200, "{read}");
        list = read;
        burst = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["ride_id"].as_str().unwrap().to_owned(), utc(r["start"].as_str().unwrap().parse().unwrap())))
            .filter(|(_, start)| wanted.contains(start))
            .collect();
        if burst.len() >= bodies.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let starts: BTreeSet<&String> = burst.iter().map(|(_, s)| s).collect();
    assert_eq!((burst.len(), starts.len()), (bodies.len(), bodies.len()), "exactly one ride per key");
    let ids: BTreeSet<&str> = burst.iter().map(|(id, _)| id.as_str()).collect();
    for id in acknowledged.values() {
        assert!(ids.contains(id.as_str()), "acknowledged ride {id} survived the kill");
    }

    // SIGTERM drains and exits cleanly.
    signal(&child, "-TERM");
    assert!(exit_status(&mut child).await.success(), "SIGTERM is a clean exit");

    // The operator commands on the same data: a token that works, migrations, a rebuild.
    let token = std::process::Command::new(BIN)
        .args(["token", "--role", "pilot", "--pilot", &env["PILOT_ID"], "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(token.status.success());
    let token = String::from_utf8(token.stdout).unwrap().split_whitespace().last().unwrap().to_owned();
    for args in [vec!["migrate"], vec!["rebuild-projections"]] {
        let out = std::process::Command::new(BIN)
            .args(&args)
            .arg("--data-dir")
            .arg(dir.path())
            .env("SAMSKAB_LOG", "warn")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let (mut child, _) = serve(dir.path(), port, false).await;
    let (st, again) = call(
        &http,
        reqwest::Method::GET,
        &format!("{base}/v1/rides?pilot_id={}&from={}&to={}&limit=500", env["PILOT_ID"], utc(from), utc(to)),
        &token,
        None,
        None,
    )
    .await;
    assert_eq!(st, 200, "the printed token works: {again}");
    assert_eq!(again["items"], list["items"], "the rebuilt read models answer exactly as before");
    signal(&child, "-INT");
    assert!(exit_status(&mut child).await.success(), "SIGINT is a clean exit");
}

/// A component process, killed when dropped.
pub(crate) struct Component(#[allow(dead_code)] pub(crate) Child);

pub(crate) fn run_component(dir: &Path, args: &[String]) -> Component {
    let child = Command::new(BIN)
        .arg("run")
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .envs(SHARED_SECRETS)
        .env(PLAINTEXT.0, PLAINTEXT.1)
        .env("SAMSKAB_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("samskab run starts");
    Component(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_component_runs_as_its_own_process_on_postgres() {
    let Some(db) = testkit::TestDb::postgres() else { return };
    let dir: PathBuf = tempfile::tempdir().unwrap().keep();
    let [carehome, volunteer, booking, gateway] = [free_port(), free_port(), free_port(), free_port()];
    let url = |c: &str| db.sibling(c);
    let grpc = |p: u16| format!("http://127.0.0.1:{p}");
    let _procs = [
        run_component(
            &dir,
            &[
                "carehome".into(),
                "--database-url".into(),
                url("carehome"),
                "--listen".into(),
                format!("127.0.0.1:{carehome}"),
            ],
        ),
        run_component(
            &dir,
            &[
                "volunteer".into(),
                "--database-url".into(),
                url("volunteer"),
                "--listen".into(),
                format!("127.0.0.1:{volunteer}"),
            ],
        ),
        run_component(
            &dir,
            &[
                "booking".into(),
                "--database-url".into(),
                url("booking"),
                "--listen".into(),
                format!("127.0.0.1:{booking}"),
                "--carehome-url".into(),
                grpc(carehome),
                "--volunteer-url".into(),
                grpc(volunteer),
            ],
        ),
        run_component(
            &dir,
            &[
                "gateway".into(),
                "--database-url".into(),
                url("gateway"),
                "--listen".into(),
                format!("127.0.0.1:{gateway}"),
                "--booking-url".into(),
                grpc(booking),
                "--carehome-url".into(),
                grpc(carehome),
                "--volunteer-url".into(),
                grpc(volunteer),
            ],
        ),
    ];
    wait_ready(gateway).await;
    let token = |args: &[&str]| shared_token(&dir, args);
    let http = client(Duration::from_secs(30));
    let base = format!("http://127.0.0.1:{gateway}");
    let post = |path: String, token: String, body: Value| {
        let http = http.clone();
        let url = format!("{base}{path}");
        async move { call(&http, reqwest::Method::POST, &url, &token, Some(body), None).await }
    };
    let admin = token(&["--role", "admin"]);
    let (st, ch) = post("/v1/chapters".into(), admin, json!({"name": "Odense", "timezone": "Europe/Copenhagen"})).await;
    assert_eq!(st, 201, "{ch}");
    let chapter = ch["chapter_id"].as_str().unwrap().to_owned();
    let ca = token(&["--role", "chapter_admin", "--chapter", &chapter]);
    let days = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
    let (st, home) = post(
        "/v1/carehomes".into(),
        ca.clone(),
        json!({"chapter_id": chapter, "name": "Egeparken", "address": "Egevej 2",
               "ride_hours": days.iter().map(|d| json!({"weekday": d, "opens": "09:00", "closes": "17:00"})).collect::<Vec<_>>(),
               "turnaround_minutes": 15, "requires_confirmation": false}),
    )
    .await;
    assert_eq!(st, 201, "{home}");
    let home = home["carehome_id"].as_str().unwrap().to_owned();
    let (st, bike) =
        post(format!("/v1/carehomes/{home}/bikes"), ca.clone(), json!({"name": "Cykel 1", "seats": 2})).await;
    assert_eq!(st, 201, "{bike}");
    let bike = bike["bike_id"].as_str().unwrap().to_owned();
    let (st, p) = post("/v1/pilots".into(), ca.clone(), json!({"chapter_id": chapter, "display_name": "Pilot"})).await;
    assert_eq!(st, 201, "{p}");
    let pilot = p["pilot_id"].as_str().unwrap().to_owned();
    let (st, q) = post(
        format!("/v1/pilots/{pilot}/qualifications"),
        ca.clone(),
        json!({"qualified_on": "2026-01-01", "valid_until": "2028-12-31"}),
    )
    .await;
    assert_eq!(st, 200, "{q}");
    // Booking learns of the trishaw and the qualification from the other processes' feeds.
    let pt = token(&["--role", "pilot", "--pilot", &pilot]);
    let body = json!({"bike_id": bike, "pilot_id": pilot, "start": "2027-06-01T08:00:00Z", "duration_minutes": 60, "resident_ids": []});
    let ride = testkit::eventually("booking to learn the world", Duration::from_secs(30), || async {
        let (st, v) = post("/v1/rides".into(), pt.clone(), body.clone()).await;
        if st == 201 { Ok(v) } else { Err(format!("{st} {v}")) }
    })
    .await;
    let id = ride["ride_id"].as_str().unwrap();
    let (st, got) = call(&http, reqwest::Method::GET, &format!("{base}/v1/rides/{id}"), &pt, None, None).await;
    assert_eq!((st, got["status"].as_str()), (200, Some("booked")), "{got}");
}

/// gRPC health of one service: the overall entry and the subscriptions entry.
async fn health(port: u16) -> (Option<i32>, Option<i32>) {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let Ok(channel) =
        tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}")).unwrap().connect().await
    else {
        return (None, None);
    };
    let mut c = HealthClient::new(channel);
    let mut check = async |service: &str| {
        c.check(HealthCheckRequest { service: service.to_owned() }).await.ok().map(|r| r.into_inner().status)
    };
    (check("").await, check(servicekit::server::SUBSCRIPTIONS).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn booking_serves_while_a_peer_is_down_and_its_health_says_so() {
    const SERVING: i32 = 1;
    const NOT_SERVING: i32 = 2;
    let dir: PathBuf = tempfile::tempdir().unwrap().keep();
    let [carehome, volunteer, booking] = [free_port(), free_port(), free_port()];
    let sqlite = |c: &str| format!("sqlite://{}", dir.join(format!("{c}.db")).display());
    let grpc = |p: u16| format!("http://127.0.0.1:{p}");
    let _booking = run_component(
        &dir,
        &[
            "booking".into(),
            "--database-url".into(),
            sqlite("booking"),
            "--listen".into(),
            format!("127.0.0.1:{booking}"),
            "--carehome-url".into(),
            grpc(carehome),
            "--volunteer-url".into(),
            grpc(volunteer),
        ],
    );
    // Its peers are not there: the service serves (from its read models), the
    // subscriptions entry does not.
    testkit::eventually("booking's health with its peers down", Duration::from_secs(60), || async {
        let h = health(booking).await;
        if h == (Some(SERVING), Some(NOT_SERVING)) { Ok(()) } else { Err(format!("{h:?}")) }
    })
    .await;
    // The peers come up: the subscriptions connect.
    let _peers = [
        run_component(
            &dir,
            &[
                "carehome".into(),
                "--database-url".into(),
                sqlite("carehome"),
                "--listen".into(),
                format!("127.0.0.1:{carehome}"),
            ],
        ),
        run_component(
            &dir,
            &[
                "volunteer".into(),
                "--database-url".into(),
                sqlite("volunteer"),
                "--listen".into(),
                format!("127.0.0.1:{volunteer}"),
            ],
        ),
    ];
    testkit::eventually("booking's health once its peers are up", Duration::from_secs(60), || async {
        let h = health(booking).await;
        if h == (Some(SERVING), Some(SERVING)) { Ok(()) } else { Err(format!("{h:?}")) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn production_logs_are_json_lines_with_trace_ids_and_no_personal_data() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = dir.path().join("stderr.log");
    let mut child = Command::new(BIN)
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .env("SAMSKAB_LOG_FORMAT", "json")
        .env("SAMSKAB_LOG", "info")
        .envs(SHARED_SECRETS)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_ready(port).await;
    let token = |args: &[&str]| shared_token(dir.path(), args);
    let http = client(Duration::from_secs(30));
    let base = format!("http://127.0.0.1:{port}");
    let admin = token(&["--role", "admin"]);
    let (st, ch) = call(
        &http,
        reqwest::Method::POST,
        &format!("{base}/v1/chapters"),
        &admin,
        Some(json!({"name": "Vejle", "timezone": "Europe/Copenhagen"})),
        None,
    )
    .await;
    assert_eq!(st, 201, "{ch}");
    let chapter = ch["chapter_id"].as_str().unwrap().to_owned();
    let ca = token(&["--role", "chapter_admin", "--chapter", &chapter]);
    let (st, home) = call(
        &http,
        reqwest::Method::POST,
        &format!("{base}/v1/carehomes"),
        &ca,
        Some(json!({"chapter_id": chapter, "name": "Fjordhuset", "address": "Fjordvej 9",
                    "ride_hours": [{"weekday": "monday", "opens": "09:00", "closes": "17:00"}],
                    "turnaround_minutes": 15, "requires_confirmation": false})),
        None,
    )
    .await;
    assert_eq!(st, 201, "{home}");
    let home = home["carehome_id"].as_str().unwrap().to_owned();
    let resident = json!({"display_name": "Kirstine Bækgaard-Sørensen", "notes": "hjertemedicin kl. 12",
                          "consent": {"given_by": "guardian", "given_at": "2026-11-01T10:00:00Z", "scope": ["rides"]}});
    let resp = http
        .post(format!("{base}/v1/carehomes/{home}/residents"))
        .bearer_auth(&ca)
        .json(&resident)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let trace_id = resp.headers()["x-trace-id"].to_str().unwrap().to_owned();
    // Secrets: an invitation code redeemed, an API key issued and used.
    let (st, inv) = call(
        &http,
        reqwest::Method::POST,
        &format!("{base}/v1/invitations"),
        &admin,
        Some(json!({"role": "chapter_admin", "chapter_id": chapter})),
        None,
    )
    .await;
    assert_eq!(st, 201, "{inv}");
    let code = inv["code"].as_str().unwrap().to_owned();
    let redeemer = token(&["--role", "pilot", "--pilot", &uuid::Uuid::now_v7().to_string()]);
    let redeemed = http
        .post(format!("{base}/v1/invitations/redeem"))
        .bearer_auth(&redeemer)
        .json(&json!({"code": code}))
        .send()
        .await
        .unwrap();
    assert!(redeemed.status().as_u16() < 500, "{}", redeemed.status());
    let (st, key) = call(
        &http,
        reqwest::Method::POST,
        &format!("{base}/v1/api-keys"),
        &admin,
        Some(json!({"name": "reports", "chapter_id": chapter})),
        None,
    )
    .await;
    assert_eq!(st, 201, "{key}");
    let key = key["key"].as_str().unwrap().to_owned();
    let used = http.get(format!("{base}/v1/carehomes?chapter_id={chapter}")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(used.status(), 200);
    signal(&child, "-TERM");
    assert!(exit_status(&mut child).await.success());

    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    assert!(!lines.is_empty());
    // The request's access line carries its trace id (in its span's fields).
    let answered = lines.iter().find(|l| {
        l["fields"]["message"] == "answered"
            && (l["span"]["trace_id"] == trace_id.as_str()
                || l["spans"].as_array().is_some_and(|s| s.iter().any(|sp| sp["trace_id"] == trace_id.as_str())))
    });
    let answered = answered.unwrap_or_else(|| panic!("an access line with trace {trace_id}:\n{text}"));
    assert_eq!(answered["fields"]["status"], 201);
    assert!(answered["span"]["span_id"].as_str().is_some_and(|s| s.len() == 16), "{answered}");
    // Lines logged inside an RPC carry the same trace through the RPC's span.
    assert!(
        lines.iter().all(|l| l["span"]["trace_id"].as_str().is_none_or(|t| t.len() == 32)),
        "trace ids are W3C ids"
    );
    for personal in ["Kirstine", "Bækgaard", "hjertemedicin"] {
        assert!(!text.contains(personal), "the log carries personal data ({personal})");
    }
    for (what, secret) in [("an invitation code", &code[4..]), ("an API key", &key[3..])] {
        assert!(!text.contains(secret), "the log carries {what}");
    }
    // Nor does any database file of the data directory.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if let Ok(bytes) = std::fs::read(&path) {
            for (what, secret) in [("an invitation code", &code[4..]), ("an API key", &key[3..])] {
                let needle = secret.as_bytes();
                assert!(!bytes.windows(needle.len()).any(|w| w == needle), "{} holds {what}", path.display());
            }
        }
    }
}

/// `samskab run booking` on SQLite in `dir`, its peers on the given ports.
fn booking_process(dir: &Path, port: u16, carehome: u16, volunteer: u16) -> Component {
    run_component(
        dir,
        &[
            "booking".into(),
            "--database-url".into(),
            format!("sqlite://{}", dir.join("booking.db").display()),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--carehome-url".into(),
            format!("http://127.0.0.1:{carehome}"),
            "--volunteer-url".into(),
            format!("http://127.0.0.1:{volunteer}"),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_booking_process_mid_burst_loses_and_doubles_nothing() {
    let dir: PathBuf = tempfile::tempdir().unwrap().keep();
    let [carehome, volunteer, booking, gateway] = [free_port(), free_port(), free_port(), free_port()];
    let sqlite = |c: &str| format!("sqlite://{}", dir.join(format!("{c}.db")).display());
    let grpc = |p: u16| format!("http://127.0.0.1:{p}");
    let _peers = [
        run_component(
            &dir,
            &[
                "carehome".into(),
                "--database-url".into(),
                sqlite("carehome"),
                "--listen".into(),
                format!("127.0.0.1:{carehome}"),
            ],
        ),
        run_component(
            &dir,
            &[
                "volunteer".into(),
                "--database-url".into(),
                sqlite("volunteer"),
                "--listen".into(),
                format!("127.0.0.1:{volunteer}"),
            ],
        ),
        run_component(
            &dir,
            &[
                "gateway".into(),
                "--database-url".into(),
                sqlite("gateway"),
                "--listen".into(),
                format!("127.0.0.1:{gateway}"),
                "--booking-url".into(),
                grpc(booking),
                "--carehome-url".into(),
                grpc(carehome),
                "--volunteer-url".into(),
                grpc(volunteer),
            ],
        ),
    ];
    let mut booking_proc = booking_process(&dir, booking, carehome, volunteer);
    wait_ready(gateway).await;
    let token = |args: &[&str]| shared_token(&dir, args);
    let http = client(Duration::from_secs(30));
    let base = format!("http://127.0.0.1:{gateway}");
    let post = {
        let (http, base) = (http.clone(), base.clone());
        move |path: String, token: String, body: Value, key: Option<String>| {
            let (http, url) = (http.clone(), format!("{base}{path}"));
            async move { call(&http, reqwest::Method::POST, &url, &token, Some(body), key.as_deref()).await }
        }
    };
    let (st, ch) = post(
        "/v1/chapters".into(),
        token(&["--role", "admin"]),
        json!({"name": "Horsens", "timezone": "Europe/Copenhagen"}),
        None,
    )
    .await;
    assert_eq!(st, 201, "{ch}");
    let chapter = ch["chapter_id"].as_str().unwrap().to_owned();
    let ca = token(&["--role", "chapter_admin", "--chapter", &chapter]);
    let days = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
    let (st, home) = post(
        "/v1/carehomes".into(),
        ca.clone(),
        json!({"chapter_id": chapter, "name": "Bakkehuset", "address": "Bakken 3",
               "ride_hours": days.iter().map(|d| json!({"weekday": d, "opens": "06:00", "closes": "22:00"})).collect::<Vec<_>>(),
               "turnaround_minutes": 15, "requires_confirmation": false}),
        None,
    )
    .await;
    assert_eq!(st, 201, "{home}");
    let home = home["carehome_id"].as_str().unwrap().to_owned();
    let (_, bike) =
        post(format!("/v1/carehomes/{home}/bikes"), ca.clone(), json!({"name": "Cykel", "seats": 2}), None).await;
    let bike = bike["bike_id"].as_str().unwrap().to_owned();
    let (_, p) =
        post("/v1/pilots".into(), ca.clone(), json!({"chapter_id": chapter, "display_name": "Pilot"}), None).await;
    let pilot = p["pilot_id"].as_str().unwrap().to_owned();
    let (st, _) = post(
        format!("/v1/pilots/{pilot}/qualifications"),
        ca.clone(),
        json!({"qualified_on": "2026-01-01", "valid_until": "2028-12-31"}),
        None,
    )
    .await;
    assert_eq!(st, 200);
    let pt = token(&["--role", "pilot", "--pilot", &pilot]);
    let body = |day: i64| {
        let start = chrono::DateTime::parse_from_rfc3339("2027-03-01T09:00:00Z").unwrap() + chrono::Duration::days(day);
        json!({"bike_id": bike, "pilot_id": pilot, "start": start, "duration_minutes": 60, "resident_ids": []})
    };
    // Booking learns of the trishaw and the qualification from its peers' feeds.
    testkit::eventually("booking to learn the world", Duration::from_secs(60), || async {
        let (st, v) = post("/v1/rides".into(), pt.clone(), body(0), Some("warm-up".into())).await;
        if st == 201 { Ok(()) } else { Err(format!("{st} {v}")) }
    })
    .await;

    let mut acknowledged: BTreeMap<String, String> = BTreeMap::new();
    let mut keys: Vec<(String, Value)> = Vec::new();
    for round in 0..3i64 {
        let burst: Vec<(String, Value)> =
            (1 + round * 12..1 + (round + 1) * 12).map(|d| (format!("k-{d}"), body(d))).collect();
        let mut tasks = tokio::task::JoinSet::new();
        for (i, (key, b)) in burst.iter().cloned().enumerate() {
            let post = post.clone();
            let pt = pt.clone();
            tasks.spawn(async move {
                tokio::time::sleep(Duration::from_millis(20 * i as u64)).await;
                let (st, v) = post("/v1/rides".into(), pt, b, Some(key.clone())).await;
                (key, st, v)
            });
        }
        let mut acked = 0;
        while let Some(r) = tasks.join_next().await {
            let (key, st, v) = r.unwrap();
            match st {
                201 => {
                    acknowledged.insert(key, v["ride_id"].as_str().unwrap().to_owned());
                    acked += 1;
                }
                // While booking is down the gateway answers 503 (or the call is cut).
                503 | 0 => {}
                other => panic!("only success or unavailability while booking dies: {other} {v}"),
            }
            if acked == 4 && booking_proc.0.id().is_some() {
                signal(&booking_proc.0, "-KILL");
                let _ = booking_proc.0.wait().await;
            }
        }
        assert!(acked >= 4, "round {round}: the burst was cut after {acked} acknowledged");
        keys.extend(burst);
        // Booking comes back; every client retries with its key until it is answered.
        booking_proc = booking_process(&dir, booking, carehome, volunteer);
        for (key, b) in &keys {
            let until = Instant::now() + Duration::from_secs(60);
            let v = loop {
                let (st, v) = post("/v1/rides".into(), pt.clone(), b.clone(), Some(key.clone())).await;
                if st == 201 {
                    break v;
                }
                // Unavailable while booking restarts; in flight while the gateway still waits
                // on the attempt the kill cut off: both are answers a client retries.
                let retry = st == 503 || st == 0 || (st == 409 && v["code"] == "idempotency-in-flight");
                assert!(retry, "{key}: {st} {v}");
                assert!(Instant::now() < until, "{key}: booking did not come back");
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            if let Some(id) = acknowledged.get(key) {
                assert_eq!(v["ride_id"].as_str(), Some(id.as_str()), "{key} keeps its original ride");
            }
            acknowledged.insert(key.clone(), v["ride_id"].as_str().unwrap().to_owned());
        }
    }
    // Exactly one ride per key: read back every acknowledged ride, and count the pilot's.
    // (Lists may lag the last write by a moment: wait until it has caught up, then count.)
    let list = format!("{base}/v1/rides?pilot_id={pilot}&limit=500");
    let rides = testkit::eventually("the list to show every ride", Duration::from_secs(20), || async {
        let (st, rides) = call(&http, reqwest::Method::GET, &list, &pt, None, None).await;
        assert_eq!(st, 200, "{rides}");
        let n = rides["items"].as_array().map_or(0, Vec::len);
        if n > keys.len() { Ok(rides) } else { Err(format!("{n} rides listed, {} keys: {rides}", keys.len())) }
    })
    .await;
    let ids: BTreeSet<&str> = rides["items"].as_array().unwrap().iter().filter_map(|r| r["ride_id"].as_str()).collect();
    assert_eq!(ids.len(), keys.len() + 1, "one ride per key (and the warm-up): {rides}");
    for id in acknowledged.values() {
        assert!(ids.contains(id.as_str()), "acknowledged ride {id} survived");
    }
}

/// `samskab token`: a fresh random subject unless one is given, 12 hours by default and at
/// most 720, and an integrator names its chapter or `--network` (never silently both or none).
#[test]
fn local_tokens_are_minted_with_a_random_subject_and_an_explicit_scope() {
    let dir = tempfile::tempdir().unwrap();
    let token = |args: &[&str]| {
        let out = std::process::Command::new(BIN)
            .arg("token")
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .env("SAMSKAB_LOG", "warn")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).split_whitespace().last().unwrap_or_default().to_owned();
        (out.status.success(), text, String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let claims = |jwt: &str| -> serde_json::Value {
        use base64::Engine;
        let part = jwt.split('.').nth(1).expect("a JWT");
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    };
    let (ok, a, _) = token(&["--role", "admin"]);
    let (_, b, _) = token(&["--role", "admin"]);
    assert!(ok);
    let (a, b) = (claims(&a), claims(&b));
    assert_ne!(a["sub"], b["sub"], "two admins are two people");
    assert_ne!(a["sub"], "admin");
    assert_eq!(a["exp"].as_i64().unwrap() - a["iat"].as_i64().unwrap(), 12 * 3600);
    let (ok, _, err) = token(&["--role", "integrator"]);
    assert!(!ok && err.contains("--network"), "{err}");
    let (ok, network, _) = token(&["--role", "integrator", "--network"]);
    assert!(ok);
    assert_eq!(claims(&network)["network"], true);
    let (ok, _, _) = token(&["--role", "admin", "--network"]);
    assert!(!ok, "--network is an integrator's");
    let (ok, _, _) = token(&["--role", "admin", "--ttl-hours", "721"]);
    assert!(!ok, "at most 720 hours");
    let (ok, given, _) = token(&["--role", "admin", "--sub", "u-42", "--ttl-hours", "720"]);
    assert!(ok);
    assert_eq!(claims(&given)["sub"], "u-42");
}

/// The TCP ports `pid` listens on and the Unix sockets it has bound, from its open file
/// descriptors matched against the kernel's socket tables (Linux `/proc`).
fn listening(pid: u32) -> (BTreeSet<u16>, Vec<String>) {
    let inodes: BTreeSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the process's descriptors")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| l.to_str()?.strip_prefix("socket:[")?.strip_suffix(']').map(str::to_owned))
        .collect();
    let mut ports = BTreeSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        for line in std::fs::read_to_string(table).unwrap_or_default().lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address st ... inode: state 0A is LISTEN.
            if f.len() > 9 && f[3] == "0A" && inodes.contains(f[9]) {
                let port = f[1].rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok()).unwrap();
                ports.insert(port);
            }
        }
    }
    let unix = std::fs::read_to_string("/proc/net/unix")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f.len() > 7 && inodes.contains(f[6])).then(|| f.get(7).unwrap_or(&"(unnamed)").to_string())
        })
        .collect();
    (ports, unix)
}

/// An attacker on the same host lists listening ports (`ss -ltn`) to find the services'
/// gRPC: the all-in-one has none to find. Its process listens on the REST port only and
/// has bound no Unix socket; its parts talk in memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_all_in_one_listens_on_the_rest_port_only() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (child, _) = serve(dir.path(), port, false).await;
    // The parts answer each other: a chapter made through the gateway is read back.
    let token = std::process::Command::new(BIN)
        .args(["token", "--role", "admin", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let token = String::from_utf8(token.stdout).unwrap().split_whitespace().last().unwrap().to_owned();
    let http = client(Duration::from_secs(30));
    let base = format!("http://127.0.0.1:{port}");
    let body = json!({"name": "Vejle", "timezone": "Europe/Copenhagen"});
    let (st, ch) = call(&http, reqwest::Method::POST, &format!("{base}/v1/chapters"), &token, Some(body), None).await;
    assert_eq!(st, 201, "{ch}");
    let pid = child.id().expect("running");
    let (ports, unix) = listening(pid);
    assert_eq!(ports, BTreeSet::from([port]), "the process listens on the REST port and nothing else");
    assert!(unix.is_empty(), "no Unix socket bound: {unix:?}");
}

/// `samskab run COMPONENT ARGS` with exactly `env` as its key variables; its exit status and
/// stderr once it exits (or `None` if it is still running after `wait`: it started).
async fn start_with_keys(component: &str, dir: &Path, env: &[(&str, &str)], wait: Duration) -> Option<(bool, String)> {
    let mut cmd = Command::new(BIN);
    cmd.args(["run", component, "--database-url"])
        .arg(format!("sqlite://{}", dir.join(format!("{component}.db")).display()))
        .args(["--listen", &format!("127.0.0.1:{}", free_port()), "--data-dir"])
        .arg(dir)
        .env("SAMSKAB_LOG", "warn")
        .env(PLAINTEXT.0, PLAINTEXT.1)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for var in [
        "SAMSKAB_MASTER_KEY",
        "SAMSKAB_MASTER_KEY_FILE",
        "SAMSKAB_JWT_KEYS",
        "SAMSKAB_JWT_SECRET",
        "SAMSKAB_PERSON_KEY",
    ] {
        cmd.env_remove(var);
    }
    let child = cmd.envs(env.iter().copied()).spawn().expect("samskab runs");
    match tokio::time::timeout(wait, child.wait_with_output()).await {
        Ok(out) => {
            let out = out.expect("output");
            Some((out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned()))
        }
        Err(_) => None,
    }
}

/// Weak, published, empty or missing keys stop a component at start with a message that
/// names the variable; a component run on its own never makes a key up; one without TLS
/// settings refuses to start unless told `--insecure-plaintext`; `samskab keys` writes
/// keys it starts with.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn components_refuse_weak_published_empty_or_missing_keys() {
    let compose_key = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    let good = "7c1e4b9a2f6d08e35a7b91c4d2e6f03819ab5c7e2d4f6a8b0c1e3d5f7a9b2c4d";
    // (component, key variables, what the refusal says)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        ("carehome", &[("SAMSKAB_MASTER_KEY", compose_key)], "published with Samskab"),
        ("carehome", &[("SAMSKAB_MASTER_KEY", " ")], "SAMSKAB_MASTER_KEY is set but empty"),
        ("carehome", &[("SAMSKAB_MASTER_KEY_FILE", "")], "SAMSKAB_MASTER_KEY_FILE is set but empty"),
        ("carehome", &[("SAMSKAB_MASTER_KEY", &"f".repeat(64))], "repeated"),
        ("carehome", &[("SAMSKAB_MASTER_KEY", "0123456789abcdef")], "shorter than 32"),
        ("carehome", &[("SAMSKAB_MASTER_KEY", &"ab".repeat(40))], "32 bytes"),
        ("carehome", &[], "no master key"),
        (
            "carehome",
            &[("SAMSKAB_MASTER_KEY", good), ("SAMSKAB_INSECURE_PLAINTEXT", "false")],
            "no mutual TLS settings",
        ),
        (
            "gateway",
            &[
                ("SAMSKAB_MASTER_KEY", good),
                ("SAMSKAB_JWT_SECRET", "k1=5e0c9b7a1d3f4e6a8c2b9d7f1e3a5c7b"),
                ("SAMSKAB_PERSON_KEY", "d41f6a2c8e0b7d9a3c5e1f7b9d2a4c6e8f0b1d3a5c7e9f2b4d6a8c0e1f3b5d7a"),
                ("SAMSKAB_INSECURE_PLAINTEXT", "false"),
            ],
            "no mutual TLS settings",
        ),
        (
            "gateway",
            &[("SAMSKAB_MASTER_KEY", good), ("SAMSKAB_JWT_SECRET", "k1=laptop-only-secret-of-at-least-32-characters")],
            "published with Samskab",
        ),
        ("gateway", &[("SAMSKAB_MASTER_KEY", good), ("SAMSKAB_JWT_KEYS", "")], "SAMSKAB_JWT_KEYS is set but empty"),
        (
            "gateway",
            &[
                ("SAMSKAB_MASTER_KEY", good),
                ("SAMSKAB_JWT_SECRET", "k1=5e0c9b7a1d3f4e6a8c2b9d7f1e3a5c7b"),
                ("SAMSKAB_PERSON_KEY", "1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100"),
            ],
            "SAMSKAB_PERSON_KEY",
        ),
        (
            "gateway",
            &[("SAMSKAB_MASTER_KEY", good), ("SAMSKAB_JWT_SECRET", "k1=5e0c9b7a1d3f4e6a8c2b9d7f1e3a5c7b")],
            "no person key",
        ),
    ];
    for (component, env, says) in cases {
        let dir = tempfile::tempdir().unwrap();
        let got = start_with_keys(component, dir.path(), env, Duration::from_secs(60)).await;
        let Some((ok, stderr)) = got else { panic!("{component} with {env:?} started") };
        assert!(!ok && stderr.contains(says), "{component} with {env:?}: expected {says:?} in: {stderr}");
        for file in ["master.key", "jwt.keys", "person.key"] {
            assert!(!dir.path().join(file).exists(), "{component} with {env:?} made {file} up");
        }
    }

    // `samskab keys` writes the three keys (0700, 0600), keeps them on a second run, and a
    // component started on that directory serves.
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let write = || std::process::Command::new(BIN).args(["keys", "--out"]).arg(&keys).output().unwrap();
    let first = write();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let read = |f: &str| std::fs::read_to_string(keys.join(f)).unwrap();
    let before: Vec<String> = ["master.key", "jwt.keys", "person.key"].iter().map(|f| read(f)).collect();
    let mode = |p: &Path| std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions()) & 0o777;
    assert_eq!(mode(&keys), 0o700);
    for f in ["master.key", "jwt.keys", "person.key"] {
        assert_eq!(mode(&keys.join(f)), 0o600, "{f}");
    }
    let again = write();
    assert!(String::from_utf8_lossy(&again.stdout).contains("kept"), "a second run keeps the keys");
    let after: Vec<String> = ["master.key", "jwt.keys", "person.key"].iter().map(|f| read(f)).collect();
    assert_eq!(before, after);
    let serving = start_with_keys("gateway", &keys, &[], Duration::from_secs(10)).await;
    assert_eq!(serving, None, "a gateway on the written keys serves");
}

/// The embedded default's data directory is private (0700, files 0600, tightened when it
/// existed with wider modes), and a lost `master.key` is an error, never replaced by a new
/// key that would leave every sealed field unreadable.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_data_directory_is_private_and_a_lost_master_key_is_not_replaced() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(data.join("notes.txt"), "left here by hand").unwrap();
    std::fs::set_permissions(data.join("notes.txt"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let port = free_port();
    let (mut child, _) = serve(&data, port, false).await;
    let token = std::process::Command::new(BIN).args(["token", "--role", "admin", "--data-dir"]).arg(&data).output();
    let token = String::from_utf8(token.unwrap().stdout).unwrap().split_whitespace().last().unwrap().to_owned();
    let http = client(Duration::from_secs(30));
    let base = format!("http://127.0.0.1:{port}");
    let post = |path: &str, body: Value| {
        let url = format!("{base}{path}");
        let (http, token) = (http.clone(), token.clone());
        async move { call(&http, reqwest::Method::POST, &url, &token, Some(body), None).await }
    };
    let (st, ch) = post("/v1/chapters", json!({"name": "Vejle", "timezone": "Europe/Copenhagen"})).await;
    assert_eq!(st, 201, "{ch}");
    let (st, p) = post("/v1/pilots", json!({"chapter_id": ch["chapter_id"], "display_name": "Ærø Østergård"})).await;
    assert_eq!(st, 201, "{p}");

    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let keys = dir.path().join("data.keys");
    for d in [&data, &keys] {
        assert_eq!(mode(d), 0o700, "{}", d.display());
        let files: Vec<PathBuf> =
            std::fs::read_dir(d).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
        assert!(files.len() > 4, "{files:?}");
        for f in &files {
            assert_eq!(mode(f), 0o600, "{}", f.display());
        }
    }
    // The master keys and the ledger live apart from the databases, one key per component.
    assert!(!data.join("master.key").exists() && !data.join("erasure-ledger.db").exists());
    let read = |c: &str| std::fs::read_to_string(keys.join(format!("master-{c}.key"))).unwrap();
    let all: BTreeSet<String> = ["carehome", "volunteer", "booking", "gateway"].iter().map(|c| read(c)).collect();
    assert_eq!(all.len(), 4, "each component has a key of its own");
    assert!(keys.join("erasure-ledger.db").exists());
    signal(&child, "-TERM");
    assert!(exit_status(&mut child).await.success());

    // The volunteer key lost: serve refuses, says what to do, and makes no new key.
    std::fs::remove_file(keys.join("master-volunteer.key")).unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--listen", &format!("127.0.0.1:{}", free_port()), "--data-dir"])
        .arg(&data)
        .env_remove("SAMSKAB_MASTER_KEY")
        .env_remove("SAMSKAB_MASTER_KEY_FILE")
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out).await.expect("serve exits").unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("restore"), "{stderr}");
    assert!(!keys.join("master-volunteer.key").exists() && !data.join("master.key").exists(), "no new master key");
}

/// A data directory written before the key directory existed (checked in under
/// `tests/fixtures/`): at the first start its master key and erasure ledger move out of it,
/// the one key becoming every component's; the sealed data still opens; `samskab
/// rotate-master-key` then gives each component its own, and the data still opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_data_directory_of_the_previous_release_is_upgraded() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/data-dir-2026-12-06");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    for entry in std::fs::read_dir(&fixture).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), data.join(entry.file_name())).unwrap();
    }
    let old_key = std::fs::read_to_string(data.join("master.key")).unwrap();
    let pilot = "1c788942-b71e-7f50-9279-06e128a9ed76";
    let keys = dir.path().join("data.keys");
    let read = |c: &str| std::fs::read_to_string(keys.join(format!("master-{c}.key"))).unwrap();
    let components = ["carehome", "volunteer", "booking", "gateway"];
    let pilot_name = |port: u16| {
        let data = data.clone();
        async move {
            let token =
                std::process::Command::new(BIN).args(["token", "--role", "admin", "--data-dir"]).arg(&data).output();
            let token = String::from_utf8(token.unwrap().stdout).unwrap().split_whitespace().last().unwrap().to_owned();
            let http = client(Duration::from_secs(30));
            let url = format!("http://127.0.0.1:{port}/v1/pilots/{pilot}");
            let (st, p) = call(&http, reqwest::Method::GET, &url, &token, None, None).await;
            assert_eq!(st, 200, "{p}");
            p["display_name"].as_str().unwrap_or_default().to_owned()
        }
    };

    let port = free_port();
    let (mut child, _) = serve(&data, port, false).await;
    assert_eq!(pilot_name(port).await, "Ærø Østergård", "the sealed name opens after the move");
    assert!(!data.join("master.key").exists() && !data.join("erasure-ledger.db").exists(), "moved out");
    for c in components {
        assert_eq!(read(c), old_key, "{c} starts with the old shared key");
    }
    assert!(keys.join("erasure-ledger.db").exists());
    signal(&child, "-TERM");
    assert!(exit_status(&mut child).await.success());

    let out = std::process::Command::new(BIN).args(["rotate-master-key", "--data-dir"]).arg(&data).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rotated: BTreeSet<String> = components.iter().map(|c| read(c)).collect();
    assert_eq!(rotated.len(), 4, "each component has its own key now");
    assert!(!rotated.contains(&old_key));
    let port = free_port();
    let (mut child, _) = serve(&data, port, false).await;
    assert_eq!(pilot_name(port).await, "Ærø Østergård", "the sealed name opens under the new key");
    signal(&child, "-TERM");
    assert!(exit_status(&mut child).await.success());
}

//! Free text an older release stored in clear, sealed in place by `samskab migrate`, on a
//! data directory that release wrote (`tests/fixtures/data-dir-2026-12-07`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::binary::{call, exit_status, serve, signal};
use crate::support::{BIN, client, free_port};

/// In every free text of the fixture.
const PHRASE: &str = "PEDAL-GHOST-7731";
/// The fixture's objects (its README).
const HOME: &str = "5d0c96de-2563-735d-878e-85f6944ccf86";
const BIKE: &str = "9e416c67-e3a4-773f-a9bf-4305d7552e32";
const RETIRED: &str = "364d7b1d-5fa0-7b68-b33c-124646ed9e18";

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
}

/// The files under `dir` whose bytes hold the phrase.
fn holding_phrase(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            found.extend(holding_phrase(&p));
        } else {
            // A SQLite -wal or -shm file a closing connection removes meanwhile holds nothing.
            let bytes = match std::fs::read(&p) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                read => read.unwrap(),
            };
            if bytes.windows(PHRASE.len()).any(|w| w == PHRASE.as_bytes()) {
                found.push(p);
            }
        }
    }
    found
}

fn migrate(data: &Path) -> String {
    let out = std::process::Command::new(BIN).args(["migrate", "--data-dir"]).arg(data).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

async fn rewrites(data: &Path) -> Vec<eventlog::RewriteEntry> {
    let store =
        eventlog::EventStore::connect(&format!("sqlite://{}", data.join("carehome.db").display())).await.unwrap();
    let entries = store.rewrites().await.unwrap();
    store.close().await;
    entries
}

/// The fixture holds the phrase in clear (so this test can fail). After `samskab migrate`:
/// no file of the data directory or the key directory holds it, one audit entry names the
/// rewritten events, every call still opens the text, the feed holds neither the text nor
/// a ciphertext, and a second migrate finds nothing to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clear_free_text_of_an_older_release_is_sealed_by_migrate() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    let dir = tempfile::tempdir().unwrap();
    let (data, keys) = (dir.path().join("data"), dir.path().join("data.keys"));
    copy_dir(&fixtures.join("data-dir-2026-12-07"), &data);
    copy_dir(&fixtures.join("data-dir-2026-12-07.keys"), &keys);
    std::fs::remove_file(data.join("README.md")).unwrap();
    let before = holding_phrase(&data);
    assert!(before.iter().any(|p| p.ends_with("carehome.db")), "the old release wrote it in clear: {before:?}");

    let printed = migrate(&data);
    assert!(printed.contains("sealed the free text of"), "{printed}");
    assert_eq!(holding_phrase(&data), Vec::<PathBuf>::new(), "no file of the data directory holds the text");
    assert_eq!(holding_phrase(&keys), Vec::<PathBuf>::new());
    let entries = rewrites(&data).await;
    assert_eq!(entries.len(), 1, "one audit entry: {entries:?}");
    let types: Vec<&str> =
        entries[0].events.as_array().unwrap().iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    for t in ["BikeIssueReported", "BikeTakenOutOfService", "BikeRetired", "CareHomeClosed"] {
        assert!(types.contains(&t), "{t} in {types:?}");
    }
    assert_eq!(entries[0].event_count as usize, types.len());
    assert!(!format!("{entries:?}").contains(PHRASE));

    let port = free_port();
    let (mut child, _) = serve(&data, port, false).await;
    let token = std::process::Command::new(BIN).args(["token", "--role", "admin", "--data-dir"]).arg(&data).output();
    let token = String::from_utf8(token.unwrap().stdout).unwrap().split_whitespace().last().unwrap().to_owned();
    let http = client(Duration::from_secs(30));
    let get = |path: String| {
        let (http, token) = (http.clone(), token.clone());
        async move {
            let (st, body) =
                call(&http, reqwest::Method::GET, &format!("http://127.0.0.1:{port}{path}"), &token, None, None).await;
            assert_eq!(st, 200, "{path}: {body}");
            body
        }
    };
    let bike = get(format!("/v1/bikes/{BIKE}")).await;
    assert_eq!(bike["out_of_service_reason"], format!("{PHRASE} battery stolen"), "{bike}");
    let retired = get(format!("/v1/bikes/{RETIRED}")).await;
    assert_eq!(retired["out_of_service_reason"], format!("{PHRASE} frame cracked after the fall"), "{retired}");
    let log = get(format!("/v1/bikes/{BIKE}/maintenance")).await.to_string();
    assert!(log.contains(&format!("{PHRASE}: Jens broke the left pedal")), "{log}");
    assert!(!log.contains("sealed:"), "{log}");
    let home = get(format!("/v1/carehomes/{HOME}")).await;
    assert!(home.to_string().contains(&format!("{PHRASE} norovirus outbreak on floor 2")), "{home}");
    let mut feed = String::new();
    let mut cursor = String::new();
    loop {
        let after = if cursor.is_empty() { String::new() } else { format!("&cursor={cursor}") };
        let page = get(format!("/v1/events?limit=500{after}")).await;
        let items = page["items"].as_array().unwrap();
        if items.is_empty() {
            break;
        }
        feed.push_str(&page.to_string());
        cursor = page["next_cursor"].as_str().unwrap().to_owned();
    }
    assert!(feed.contains("BikeIssueReported") && feed.contains("CareHomeClosed"), "{feed}");
    assert!(!feed.contains(PHRASE) && !feed.contains("sealed:"), "{feed}");
    signal(&child, "-TERM");
    assert!(exit_status(&mut child).await.success());

    let again = migrate(&data);
    assert!(!again.contains("sealed the free text"), "nothing left to seal: {again}");
    assert_eq!(holding_phrase(&data), Vec::<PathBuf>::new());
    assert_eq!(rewrites(&data).await.len(), 1);
}

/// Deliveries still queued for a webhook hold the feed's item as it will be sent: a
/// migration that sealed a field removes it from them too.
#[tokio::test]
async fn queued_webhook_deliveries_lose_a_sealed_field() {
    use eventlog::Arg;
    let dir = tempfile::tempdir().unwrap();
    let store =
        eventlog::EventStore::connect(&format!("sqlite://{}", dir.path().join("gateway.db").display())).await.unwrap();
    gateway::migrate(&store).await.unwrap();
    let item = |reason: &str| {
        serde_json::json!({"event_id": "e1", "type": "BikeRetired", "data": {"bike_id": "b", "reason": reason}})
            .to_string()
    };
    let (kept, cleaned) = (item("stays"), item(PHRASE));
    store
        .transaction(move |tx| {
            Box::pin(async move {
                for (event, body) in [("e0", kept), ("e1", cleaned)] {
                    tx.execute(
                        "INSERT INTO gateway_webhook_queue (webhook_id, event_id, seq, stream, attempts, \
                         next_attempt_at, first_failed_at, item) VALUES ('w', $1, 0, 'bike-b', 0, 0, 0, $2)",
                        &[Arg::from(event), Arg::Text(body)],
                    )
                    .await?;
                }
                Ok(())
            })
        })
        .await
        .unwrap();
    let n = gateway::webhooks::drop_queued_fields(&store, &[("e1".into(), "reason".into())]).await.unwrap();
    assert_eq!(n, 1);
    let rows: Vec<(String, String)> =
        store.fetch_rows("SELECT event_id, item FROM gateway_webhook_queue ORDER BY event_id", &[]).await.unwrap();
    let items: Vec<Value> = rows.iter().map(|(_, i)| serde_json::from_str(i).unwrap()).collect();
    assert_eq!(items[0]["data"]["reason"], "stays", "another event's field is left alone");
    assert_eq!(items[1]["data"], serde_json::json!({"bike_id": "b"}));
}

//! Personal data never in clear, and erasure that holds: a resident and a pilot named
//! `Ærø Østergård` (with a unique e-mail, notes, stories, addresses and a note) go through
//! rides in all three services; then every database file (SQLite WAL included) or every
//! PostgreSQL table and the server's statement log, every event feed, and the captured
//! logs and spans are scanned for those values in clear, in base64, in hex and
//! JSON-escaped. Then both are erased, every read model rebuilt from the log, and the scan
//! repeated: nothing opens any more, and the ride statistics are what they were.

use std::sync::{Arc, Mutex, OnceLock};

use crate::common::*;
use base64::Engine;
use samskab_proto::booking::v1 as bpb;
use samskab_proto::carehome::v1 as cpb;
use samskab_proto::common::v1 as feedpb;
use samskab_proto::volunteer::v1 as vpb;
use uuid::Uuid;

/// Everything the services log, at every level, with span fields.
fn captured() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_span_events(
                tracing_subscriber::fmt::format::FmtSpan::NEW | tracing_subscriber::fmt::format::FmtSpan::CLOSE,
            )
            .with_ansi(false)
            .with_writer(move || Capture(writer.clone()))
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        buf
    })
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The ways a value could leak: in clear, base64 at every alignment, hex, JSON-escaped.
fn forms(value: &str) -> Vec<Vec<u8>> {
    let b = value.as_bytes();
    let mut out = vec![b.to_vec(), hex::encode(b).into_bytes(), hex::encode_upper(b).into_bytes()];
    let escaped: String =
        value.chars().map(|c| if c.is_ascii() { c.to_string() } else { format!("\\u{:04x}", c as u32) }).collect();
    out.push(escaped.into_bytes());
    let b64 = base64::engine::general_purpose::STANDARD;
    for pad in 0..3 {
        let mut padded = vec![b'x'; pad];
        padded.extend_from_slice(b);
        let enc = b64.encode(&padded);
        // Drop the characters that depend on what precedes or follows the value.
        let start = (pad * 4).div_ceil(3);
        let end = enc.trim_end_matches('=').len().saturating_sub(3);
        if end > start + 8 {
            out.push(enc.as_bytes()[start..end].to_vec());
        }
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

struct Secrets(Vec<String>);

impl Secrets {
    fn assert_absent(&self, place: &str, bytes: &[u8]) {
        for s in &self.0 {
            for f in forms(s) {
                assert!(!find(bytes, &f), "{place} holds {s:?} (as {:?})", String::from_utf8_lossy(&f));
            }
        }
    }
}

async fn scan_databases(w: &World, secrets: &Secrets) {
    if w.db.backend == testkit::Backend::Sqlite {
        for entry in std::fs::read_dir(w.db.dir()).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            secrets.assert_absent(&path.display().to_string(), &bytes);
        }
        return;
    }
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(w.db.server_url().unwrap()).await.unwrap();
    let schema = w.db.schema.clone().unwrap();
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_schema::text, table_name::text FROM information_schema.tables WHERE table_schema LIKE $1",
    )
    .bind(format!("{schema}%"))
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert!(tables.len() >= 12, "every service's tables are scanned: {tables:?}");
    for (s, t) in tables {
        let sql = format!("SELECT string_agg(x::text, E'\\n') FROM \"{s}\".\"{t}\" x");
        let dump: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(&mut conn).await.unwrap();
        secrets.assert_absent(&format!("table {s}.{t}"), dump.unwrap_or_default().as_bytes());
    }
    let dir = std::env::var("SAMSKAB_PG_DIR")
        .expect("SAMSKAB_PG_DIR names the test server's directory (scripts/test sets it)");
    let log = std::fs::read(format!("{dir}/server.log")).expect("the server log");
    let ours = schema.as_bytes();
    assert!(find(&log, ours), "the statement log holds this test's statements");
    secrets.assert_absent("the PostgreSQL statement log", &log);
}

async fn scan_feeds(w: &World, secrets: &Secrets) {
    let urls = [
        w.carehome_addr.to_string(),
        w.volunteer_url().trim_start_matches("http://").to_owned(),
        w.booking_server.addr.to_string(),
    ];
    for url in urls {
        let mut feed = feedpb::event_feed_client::EventFeedClient::new(
            servicekit::client::channel(&format!("http://{url}")).unwrap(),
        );
        let mut after = String::new();
        loop {
            let page = feed
                .read_events(feedpb::ReadEventsRequest { after: after.clone(), limit: 1000, ..Default::default() })
                .await;
            let page = page.unwrap().into_inner();
            for e in &page.events {
                assert!(!e.data_json.contains("sealed:"), "feed carries ciphertext: {}", e.data_json);
                secrets.assert_absent("an event feed", format!("{e:?}").as_bytes());
            }
            if page.next_cursor == after {
                break;
            }
            after = page.next_cursor;
        }
    }
}

async fn stats(w: &World, chapter: Uuid) -> (usize, usize, f64, u32) {
    let mut booking = w.booking.clone();
    let list =
        booking.list_rides(bpb::ListRidesRequest { chapter_id: chapter.to_string(), limit: 500, ..Default::default() });
    let rides = list.await.unwrap().into_inner().rides;
    let completed: Vec<_> = rides.iter().filter(|r| r.status == "completed").collect();
    (
        rides.len(),
        completed.len(),
        completed.iter().map(|r| r.distance_km).sum(),
        completed.iter().map(|r| r.duration_minutes).sum(),
    )
}

#[test]
fn the_scanner_finds_a_value_in_every_form() {
    let secrets = Secrets(vec!["Ærø Østergård".into()]);
    let b64 = base64::engine::general_purpose::STANDARD;
    for haystack in [
        "x Ærø Østergård y".as_bytes().to_vec(),
        "{\"name\":\"\\u00c6r\\u00f8 \\u00d8sterg\\u00e5rd\"}".as_bytes().to_vec(),
        hex::encode("__Ærø Østergård__").into_bytes(),
        b64.encode("a Ærø Østergård b").into_bytes(),
        b64.encode("ab Ærø Østergård").into_bytes(),
        b64.encode("Ærø Østergård!").into_bytes(),
    ] {
        let found = std::panic::catch_unwind(|| secrets.assert_absent("test", &haystack)).is_err();
        assert!(found, "not found in {:?}", String::from_utf8_lossy(&haystack));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_personal_data_is_never_in_clear_and_erasure_holds() {
    personal_data_is_never_in_clear_and_erasure_holds(testkit::TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_personal_data_is_never_in_clear_and_erasure_holds() {
    let Some(db) = testkit::TestDb::postgres() else { return };
    personal_data_is_never_in_clear_and_erasure_holds(db).await;
}

async fn personal_data_is_never_in_clear_and_erasure_holds(db: testkit::TestDb) {
    let logs = captured();
    // On PostgreSQL, every statement of this test (and its parameters) goes to the server log.
    let options = if db.backend == testkit::Backend::Postgres { "&options=-c%20log_statement%3Dall" } else { "" };
    let mut w = World::start(db, keystore::MasterKey::generate(), options).await;
    let unique = Uuid::new_v4().simple().to_string();
    let name = "Ærø Østergård".to_owned();
    let email = format!("aero.{unique}@example.org");
    let secrets = Secrets(vec![
        name.clone(),
        email.clone(),
        format!("+45 {:08}", Uuid::new_v4().as_u128() % 100_000_000),
        format!("elsker havnen {unique}"),
        format!("Vi kørte til skoven {unique}"),
        format!("Østergade {unique} 12"),
        format!("Lægehuset {unique}"),
        format!("forkølet {unique}"),
    ]);

    let chapter = w.chapter().await;
    let home = w.home(chapter, false).await;
    let bike = w.bike(home, 2).await;
    let resident: Uuid = w
        .carehome
        .admit_resident(cpb::AdmitResidentRequest {
            context: ctx_as("coordinator"),
            carehome_id: home.to_string(),
            display_name: name.clone(),
            notes: secrets.0[3].clone(),
            consent: Some(cpb::Consent {
                given_by: "resident".into(),
                given_at: "2026-11-01T10:00:00Z".into(),
                scope: vec!["rides".into(), "stories".into()],
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .resident_id
        .parse()
        .unwrap();
    let pilot: Uuid = w
        .volunteer
        .register_pilot(vpb::RegisterPilotRequest {
            context: ctx(),
            chapter_id: chapter.to_string(),
            display_name: name.clone(),
            email,
            phone: secrets.0[2].clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .pilot_id
        .parse()
        .unwrap();
    w.volunteer
        .qualify_pilot(vpb::QualifyPilotRequest {
            context: ctx(),
            pilot_id: pilot.to_string(),
            qualification: Some(vpb::Qualification {
                bike_type: String::new(),
                qualified_on: "2026-01-01".into(),
                valid_until: "2028-12-31".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    w.settle().await;
    // Two completed rides with stories, a functional round trip, a cancelled ride with a note.
    for (day, story) in [("2027-05-03", &secrets.0[4]), ("2027-05-04", &secrets.0[4])] {
        let ride = w.book(bike, pilot, &format!("{day}T08:00:00Z"), 60, &[resident]).await.unwrap();
        w.booking
            .start_ride(bpb::RideCommandRequest {
                context: ctx_as("pilot"),
                ride_id: ride.ride_id.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        w.booking
            .complete_ride(bpb::CompleteRideRequest {
                context: ctx_as("pilot"),
                ride_id: ride.ride_id.clone(),
                ended_at: ts(&format!("{day}T08:55:00Z")),
                distance_km: 7.5,
                bike_condition: "ok".into(),
                story: story.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let mut functional = w.book_req(bike, pilot, "2027-05-05T08:00:00Z", 45, &[resident]);
    functional.kind = "functional".into();
    functional.pickup = secrets.0[5].clone();
    functional.dropoff = secrets.0[6].clone();
    let legs = w.booking.book_ride(functional).await.unwrap().into_inner();
    let cancelled = w.book(bike, pilot, "2027-05-06T08:00:00Z", 60, &[resident]).await.unwrap();
    w.booking
        .cancel_ride(bpb::CancelRideRequest {
            context: ctx(),
            ride_id: cancelled.ride_id.clone(),
            reason: "rider".into(),
            note: secrets.0[7].clone(),
        })
        .await
        .unwrap();
    // Reads show the data to those who may see it.
    assert_eq!(w.ride(&legs.ride.as_ref().unwrap().ride_id).await.functional.unwrap().pickup, secrets.0[5]);
    let export =
        w.booking.export_rides(bpb::ExportRidesRequest { resident_id: resident.to_string(), pilot_id: String::new() });
    let export = export.await.unwrap().into_inner().json;
    assert!(export.contains(&secrets.0[4]) && export.contains(&secrets.0[7]), "the access export opens everything");

    // The rides read model lags the log a moment: wait until it shows both completed rides.
    let before =
        testkit::eventually("the completed rides in the rides read model", testkit::DEFAULT_TIMEOUT, || async {
            let got = stats(&w, chapter).await;
            if (got.1, got.2, got.3) == (2, 15.0, 120) { Ok(got) } else { Err(format!("{got:?}")) }
        })
        .await;
    assert_eq!((before.1, before.2, before.3), (2, 15.0, 120));
    scan_databases(&w, &secrets).await;
    scan_feeds(&w, &secrets).await;
    secrets.assert_absent("the captured logs and spans", &logs.lock().unwrap());

    // Erase both; rebuild every read model from the log.
    let erased = w.carehome.erase_resident(cpb::ResidentCommandRequest {
        context: ctx_as("coordinator"),
        resident_id: resident.to_string(),
    });
    assert!(erased.await.unwrap().into_inner().erased);
    let erased = w.volunteer.erase_pilot(vpb::PilotCommandRequest { context: ctx(), pilot_id: pilot.to_string() });
    assert!(erased.await.unwrap().into_inner().erased);
    w.settle().await;
    let booking = w.server.booking().clone();
    for _ in 0..3 {
        booking.work_outbox().await.unwrap();
    }
    for store in [&w.carehome_store, &w.volunteer_store, &w.booking_store] {
        store
            .transaction(|tx| {
                Box::pin(async move {
                    for sql in [
                        "DELETE FROM eventlog_checkpoints WHERE consumer NOT LIKE 'booking_facts_%'",
                        "DELETE FROM booking_rides",
                        "DELETE FROM booking_ride_riders",
                        "DELETE FROM booking_ride_requests",
                        "DELETE FROM volunteer_pilots",
                        "DELETE FROM carehome_residents",
                        "DELETE FROM carehome_bikes",
                        "DELETE FROM carehome_carehomes",
                        "DELETE FROM carehome_chapters",
                    ] {
                        // Each service's database holds only its own tables.
                        let _ = tx.execute(sql, &[]).await;
                    }
                    Ok(())
                })
            })
            .await
            .ok();
    }
    let mut w = w.reopen().await;
    w.settle().await;
    // The rebuild runs behind the reopened services: wait until the figures are back.
    let after = testkit::eventually("the rebuilt rides read model", testkit::DEFAULT_TIMEOUT, || async {
        let got = stats(&w, chapter).await;
        if got == before { Ok(got) } else { Err(format!("{got:?}, before erasure {before:?}")) }
    })
    .await;
    assert_eq!(after, before, "ride counts, kilometres and minutes survive erasure and a rebuild");
    let r = w.carehome.get_resident(cpb::IdRequest { id: resident.to_string() }).await.unwrap().into_inner();
    assert!(r.erased && r.display_name.is_empty() && r.notes.is_empty());
    let p = w.volunteer.get_pilot(vpb::GetPilotRequest { pilot_id: pilot.to_string() }).await.unwrap().into_inner();
    assert!(p.erased && p.display_name.is_empty() && p.email.is_empty());
    for ride in [&legs.ride.as_ref().unwrap().ride_id, &cancelled.ride_id] {
        let r = w.ride(ride).await;
        assert!(r.story.is_empty() && r.cancel_note.is_empty(), "a ride's key dies with its pilot and riders");
        assert!(r.functional.is_none_or(|f| f.pickup.is_empty() && f.dropoff.is_empty()));
    }
    let export =
        w.booking.export_rides(bpb::ExportRidesRequest { resident_id: resident.to_string(), pilot_id: String::new() });
    secrets.assert_absent("the access export after erasure", export.await.unwrap().into_inner().json.as_bytes());
    scan_databases(&w, &secrets).await;
    scan_feeds(&w, &secrets).await;
    secrets.assert_absent("the captured logs and spans", &logs.lock().unwrap());
}

//! Erasure that reaches everything, when a service is down on the way (issue 17, item 3):
//! the gateway has booking forget the resident's rides and requests before care-home erases
//! the resident. With booking's process killed, the erasure is 503 and erases nothing (the
//! resident still reads back); once booking is back, a retry with the same
//! `Idempotency-Key` completes it, and the request's note naming the resident is unreadable
//! at the retry's answer, without waiting.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::binary::{Component, call, run_component, wait_ready};
use crate::support::{client, free_port, shared_token};

fn booking(dir: &Path, port: u16, carehome: u16, volunteer: u16) -> Component {
    let grpc = |p: u16| format!("http://127.0.0.1:{p}");
    run_component(
        dir,
        &[
            "booking".into(),
            "--database-url".into(),
            format!("sqlite://{}", dir.join("booking.db").display()),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--carehome-url".into(),
            grpc(carehome),
            "--volunteer-url".into(),
            grpc(volunteer),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_erasure_that_fails_on_the_way_is_503_and_a_retry_with_its_key_completes_it() {
    let dir: PathBuf = tempfile::tempdir().unwrap().keep();
    let [carehome, volunteer, booking_port, gateway] = [free_port(), free_port(), free_port(), free_port()];
    let sqlite = |c: &str| format!("sqlite://{}", dir.join(format!("{c}.db")).display());
    let grpc = |p: u16| format!("http://127.0.0.1:{p}");
    let component = |name: &str, port: u16| {
        run_component(
            &dir,
            &[name.into(), "--database-url".into(), sqlite(name), "--listen".into(), format!("127.0.0.1:{port}")],
        )
    };
    let _peers = [component("carehome", carehome), component("volunteer", volunteer)];
    let mut booking_proc = booking(&dir, booking_port, carehome, volunteer);
    let _gateway = run_component(
        &dir,
        &[
            "gateway".into(),
            "--database-url".into(),
            sqlite("gateway"),
            "--listen".into(),
            format!("127.0.0.1:{gateway}"),
            "--booking-url".into(),
            grpc(booking_port),
            "--carehome-url".into(),
            grpc(carehome),
            "--volunteer-url".into(),
            grpc(volunteer),
        ],
    );
    wait_ready(gateway).await;
    let http = client(Duration::from_secs(30));
    let base = format!("http://127.0.0.1:{gateway}");
    let token = |args: &[&str]| shared_token(&dir, args);
    let admin = token(&["--role", "admin"]);
    let post = |path: String, token: String, body: Value, key: Option<String>| {
        let (http, url) = (http.clone(), format!("{base}{path}"));
        async move { call(&http, reqwest::Method::POST, &url, &token, Some(body), key.as_deref()).await }
    };
    let get = |path: String, token: String| {
        let (http, url) = (http.clone(), format!("{base}{path}"));
        async move { call(&http, reqwest::Method::GET, &url, &token, None, None).await }
    };
    let (st, ch) =
        post("/v1/chapters".into(), admin, json!({"name": "Horsens", "timezone": "Europe/Copenhagen"}), None).await;
    assert_eq!(st, 201, "{ch}");
    let chapter = ch["chapter_id"].as_str().unwrap().to_owned();
    let ca = token(&["--role", "chapter_admin", "--chapter", &chapter]);
    let days = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
    let (st, home) = post(
        "/v1/carehomes".into(),
        ca.clone(),
        json!({"chapter_id": chapter, "name": "Bøgely", "address": "Bøgevej 3",
               "ride_hours": days.iter().map(|d| json!({"weekday": d, "opens": "09:00", "closes": "17:00"})).collect::<Vec<_>>(),
               "turnaround_minutes": 15, "requires_confirmation": false}),
        None,
    )
    .await;
    assert_eq!(st, 201, "{home}");
    let home = home["carehome_id"].as_str().unwrap().to_owned();
    let consent = json!({"given_by": "relative", "given_at": "2026-11-01T10:00:00Z", "scope": ["rides"]});
    let (st, r) = post(
        format!("/v1/carehomes/{home}/residents"),
        ca.clone(),
        json!({"display_name": "Ingrid Kæmpe", "consent": consent}),
        None,
    )
    .await;
    assert_eq!(st, 201, "{r}");
    let resident = r["resident_id"].as_str().unwrap().to_owned();
    // A ride request naming her, with a note about her (sealed under the request's key).
    let note = "Ingrid wants to see the fjord";
    let request = json!({"carehome_id": home, "resident_ids": [resident], "duration_minutes": 60, "note": note,
        "window": {"from": "2027-06-01T07:00:00Z", "to": "2027-06-01T12:00:00Z"}});
    let made = testkit::eventually("booking to learn the resident", Duration::from_secs(60), || {
        let (post, ca, request) = (&post, ca.clone(), request.clone());
        async move {
            let (st, v) = post("/v1/ride-requests".into(), ca, request, None).await;
            if st == 201 { Ok(v) } else { Err(format!("{st} {v}")) }
        }
    })
    .await;
    let request_id = made["ride_request_id"].as_str().unwrap().to_owned();
    let (st, read) = get(format!("/v1/ride-requests/{request_id}"), ca.clone()).await;
    assert_eq!((st, read["note"].as_str()), (200, Some(note)), "{read}");

    // Booking is down: the erasure is 503 and erases nothing.
    booking_proc.0.kill().await.unwrap();
    let key = "erase-ingrid-1".to_owned();
    let erasure = format!("/v1/residents/{resident}/erasure");
    let (st, failed) = post(erasure.clone(), ca.clone(), json!({}), Some(key.clone())).await;
    assert_eq!((st, failed["code"].as_str()), (503, Some("unavailable")), "{failed}");
    let (st, still) = get(format!("/v1/residents/{resident}"), ca.clone()).await;
    assert_eq!((st, still["display_name"].as_str()), (200, Some("Ingrid Kæmpe")), "nothing erased: {still}");

    // Booking is back: the same key completes the erasure, and at its answer the note is gone.
    booking_proc = booking(&dir, booking_port, carehome, volunteer);
    let done = testkit::eventually("the retried erasure", Duration::from_secs(60), || {
        let (post, ca, erasure, key) = (&post, ca.clone(), erasure.clone(), key.clone());
        async move {
            let (st, v) = post(erasure, ca, json!({}), Some(key)).await;
            if st == 200 { Ok(v) } else { Err(format!("{st} {v}")) }
        }
    })
    .await;
    assert_eq!(done["erased"], true, "{done}");
    let (st, read) = get(format!("/v1/ride-requests/{request_id}"), ca.clone()).await;
    assert_eq!(st, 200, "{read}");
    assert!(!read.to_string().contains("fjord"), "the request's key is gone: {read}");
    let (st, gone) = get(format!("/v1/residents/{resident}"), ca.clone()).await;
    assert_eq!((st, gone["erased"].as_bool(), gone.get("display_name")), (200, Some(true), None), "{gone}");
    drop(booking_proc);
}

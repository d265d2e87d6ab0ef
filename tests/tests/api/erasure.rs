//! Erasure that reaches everything (issue 17, item 3), over HTTP, both backends: erasing a
//! resident destroys the key of every ride they were ever on the roster of, also one they
//! were taken off before it happened, before the erasure's answer; the resident's access
//! export lists such a ride while they are alive.

use e2e::System;
use gateway::Role;
use serde_json::json;

testkit::both_backends!(setup = e2e::System::start;
    erasing_a_resident_reaches_rides_they_were_taken_off,
);

async fn erasing_a_resident_reaches_rides_they_were_taken_off(s: System) {
    let w = s.world().await;
    let coord = s.token(Role::Coordinator(w.home));
    let (r0, r1) = (w.residents[0], w.residents[1]);
    let body = json!({"bike_id": w.bike, "pilot_id": w.pilot, "start": "2027-05-03T08:00:00Z",
        "duration_minutes": 60, "resident_ids": [r0, r1]});
    let ride = s.post("/v1/rides", &coord, body).await.expect(201).str("ride_id");
    let path = format!("/v1/rides/{ride}");
    // r0 is taken off; later the ride is cancelled with a note about r0.
    s.delete(&format!("{path}/roster/{r0}"), &coord).await.expect(200);
    let note = "Ærø's daughter called: hip surgery";
    s.post(&format!("{path}/cancel"), &coord, json!({"reason": "rider", "note": note})).await.expect(200);
    assert_eq!(s.get(&path, &coord).await.expect(200).body["cancel_note"], note);
    // r0's access export lists the ride they were taken off.
    let export = s.get(&format!("/v1/residents/{r0}/export"), &coord).await.expect(200);
    let rides = export.body["rides"]["rides"].as_array().cloned().unwrap_or_default();
    assert!(rides.iter().any(|r| r["ride_id"] == ride.as_str()), "{}", export.body["rides"]);

    // The erasure's answer comes after the ride's key is gone: no waiting.
    s.post(&format!("/v1/residents/{r0}/erasure"), &coord, json!({})).await.expect(200);
    let read = s.get(&path, &coord).await.expect(200);
    assert!(read.body.get("cancel_note").is_none_or(|n| n.is_null()), "{}", read.body);
    assert!(!read.body.to_string().contains("hip surgery"), "{}", read.body);
    let rides = s.get(&format!("/v1/rides?carehome_id={}", w.home), &coord).await.expect(200);
    assert!(!rides.body.to_string().contains("hip surgery"));
    // The other rider and the ride itself are still there.
    assert_eq!(read.body["riders"][0]["resident_id"], r1.to_string());
}

//! Waitlists over HTTP on the whole system, both backends (api.md → *Scheduling*): a
//! coordinator puts a resident on a full ride's waitlist (409 `seat-free` while a seat is
//! free; the ride's pilot may not), the ride shows `waitlist`, a rider taken off gives the
//! seat to the first waiting resident in the same change, and the ride's pilot is told
//! (`waitlist.promoted`) with the riders as a count.

use e2e::System;
use gateway::Role;
use serde_json::json;

testkit::both_backends!(setup = e2e::System::start; a_freed_seat_goes_to_the_first_waiting_resident_and_the_pilot_is_told);

async fn a_freed_seat_goes_to_the_first_waiting_resident_and_the_pilot_is_told(s: System) {
    let w = s.world().await;
    let (r0, r1) = (w.residents[0], w.residents[1]);
    let (r2, r3) = (s.resident(w.home).await, s.resident(w.home).await);
    let coord = s.token(Role::Coordinator(w.home));
    let pilot = s.token(Role::Pilot(w.pilot));
    let book = |day: u32, riders: Vec<uuid::Uuid>| {
        json!({"bike_id": w.bike, "pilot_id": w.pilot, "start": format!("2027-05-{day:02}T08:00:00Z"),
            "duration_minutes": 60, "resident_ids": riders})
    };
    let full = s.post("/v1/rides", &coord, book(3, vec![r0, r1])).await.expect(201).str("ride_id");
    let roomy = s.post("/v1/rides", &coord, book(4, vec![r0])).await.expect(201).str("ride_id");

    let free = s.post(&format!("/v1/rides/{roomy}/waitlist"), &coord, json!({"resident_id": r2})).await.expect(409);
    assert_eq!(free.str("code"), "seat-free");
    s.post(&format!("/v1/rides/{full}/waitlist"), &pilot, json!({"resident_id": r2})).await.expect(403);
    for r in [r2, r3] {
        // Booking learns of a new resident from the care home a moment later.
        testkit::eventually("booking to know the resident", testkit::DEFAULT_TIMEOUT, || async {
            let body = json!({"resident_id": r});
            s.post(&format!("/v1/rides/{full}/waitlist"), &coord, body).await.status == 200
        })
        .await;
    }
    let shown = s.get(&format!("/v1/rides/{full}"), &coord).await.expect(200);
    assert_eq!(shown.body["waitlist"], json!([r2, r3]), "first in line first");
    s.delete(&format!("/v1/rides/{full}/waitlist/{r3}"), &coord).await.expect(200);
    s.delete(&format!("/v1/rides/{full}/waitlist/{r3}"), &coord).await.expect(404);

    let after = s.delete(&format!("/v1/rides/{full}/roster/{r0}"), &coord).await.expect(200);
    let riders: Vec<&str> =
        after.body["riders"].as_array().unwrap().iter().map(|r| r["resident_id"].as_str().unwrap()).collect();
    assert_eq!(riders, [r1.to_string(), r2.to_string()], "the freed seat went to the first in line");
    assert_eq!(after.body["waitlist"], json!([]));

    let notice = testkit::eventually("waitlist.promoted in the pilot's inbox", testkit::DEFAULT_TIMEOUT, || async {
        let r = s.get("/v1/me/notifications", &pilot).await.expect(200);
        r.body["items"].as_array().and_then(|items| items.iter().find(|n| n["kind"] == "waitlist.promoted").cloned())
    })
    .await;
    assert_eq!(notice["links"]["ride_id"], json!(full));
    let name = s.get(&format!("/v1/residents/{r2}"), &coord).await.expect(200).str("display_name");
    assert!(!notice.to_string().contains(&name), "no resident is named: {notice}");
}

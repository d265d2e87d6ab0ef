//! Pilots racing over REST to claim one ride request, on both backends: exactly one 2xx,
//! every other pilot a 409 `illegal-transition`, and one ride booked for it. Each pilot
//! brings a trishaw and a slot of their own, so only the request itself is contested.

use e2e::System;
use gateway::Role;
use serde_json::json;

testkit::both_backends!(setup = e2e::System::start; thirty_two_pilots_claiming_one_request_get_one_success_and_conflicts);

async fn thirty_two_pilots_claiming_one_request_get_one_success_and_conflicts(s: System) {
    let w = s.world().await;
    let admin = s.token(Role::ChapterAdmin(w.chapter));
    let mut crews = vec![(w.pilot, w.bike)];
    for _ in 1..32 {
        crews.push((s.pilot(w.chapter).await, s.bike(w.chapter, w.home, 2).await));
    }
    s.quiet().await; // booking knows every pilot and trishaw
    let body = json!({"carehome_id": w.home, "resident_ids": [w.residents[0]], "duration_minutes": 15,
        "window": {"from": "2027-05-03T07:00:00Z", "to": "2027-05-03T15:00:00Z"}});
    let request = s.post("/v1/ride-requests", &s.token(Role::Coordinator(w.home)), body).await.expect(201);
    let path = format!("/v1/ride-requests/{}/claim", request.str("ride_request_id"));
    let first: chrono::DateTime<chrono::Utc> = "2027-05-03T07:00:00Z".parse().unwrap();
    let claims = crews.iter().enumerate().map(|(i, (pilot, bike))| {
        let (path, token) = (path.clone(), s.token(Role::Pilot(*pilot)));
        let start = first + chrono::Duration::minutes(15 * i as i64);
        let body = json!({"bike_id": bike, "start": start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)});
        let s = &s;
        async move { (*pilot, s.post(&path, &token, body).await) }
    });
    let answers = futures_util::future::join_all(claims).await;
    let winners: Vec<_> = answers.iter().filter(|(_, r)| r.status.is_success()).collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one claim succeeds: {:?}",
        answers.iter().map(|(_, r)| r.status).collect::<Vec<_>>()
    );
    for (_, r) in answers.iter().filter(|(_, r)| !r.status.is_success()) {
        assert_eq!(r.status.as_u16(), 409, "a losing claim is a conflict: {}", r.body);
        assert_eq!(r.code(), "illegal-transition", "{}", r.body);
    }
    let (pilot, won) = winners[0];
    assert_eq!(won.body["ride"]["pilot_id"], json!(pilot));
    let now = s.get(&format!("/v1/ride-requests/{}", request.str("ride_request_id")), &admin).await.expect(200);
    assert_eq!((now.str("status"), now.body["pilot_id"].clone()), ("claimed".to_owned(), json!(pilot)));
    assert_eq!(now.body["ride_id"], won.body["ride"]["ride_id"]);
}

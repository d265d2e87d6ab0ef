//! Cascades (weather days here; closures, grounding and suspensions share the path) must
//! never miss a ride that was acknowledged before they ran. On PostgreSQL a transaction
//! left open anywhere in the cluster holds the readable head back; the cascade then waits,
//! and refuses with 503 rather than answer from a read model that lacks the ride.

use e2e::System;
use gateway::Role;
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_weather_day_never_misses_a_just_booked_ride_behind_an_open_transaction() {
    let Some(db) = testkit::TestDb::postgres() else { return };
    let server = db.server_url().expect("server url").to_owned();
    let s = System::start(db).await;
    let w = s.world().await;
    let pilot = s.token(Role::Pilot(w.pilot));
    let admin = s.token(Role::ChapterAdmin(w.chapter));
    let book = |start: &'static str| json!({"bike_id": w.bike, "pilot_id": w.pilot, "start": start, "duration_minutes": 60, "resident_ids": []});
    s.post("/v1/rides", &pilot, book("2027-05-03T08:00:00Z")).await.expect(201);

    // Another client of the cluster opens a transaction (with a transaction id) and idles.
    use sqlx::Connection;
    let mut other = sqlx::PgConnection::connect(&server).await.unwrap();
    sqlx::query("BEGIN").execute(&mut other).await.unwrap();
    sqlx::query("SELECT pg_current_xact_id()").execute(&mut other).await.unwrap();

    // A ride is booked (acknowledged) while that transaction is open.
    let late = s.post("/v1/rides", &pilot, book("2027-05-03T11:00:00Z")).await.expect(201);
    let weather = s
        .post(&format!("/v1/chapters/{}/weather-cancellations", w.chapter), &admin, json!({"date": "2027-05-03"}))
        .await;
    if weather.status == 200 {
        // Whatever it answers, it must not have left an acknowledged ride of the day behind.
        let got = s.get(&format!("/v1/rides/{}", late.str("ride_id")), &pilot).await.expect(200);
        assert_eq!(got.str("status"), "cancelled", "a weather day missed a ride: {}", weather.body);
    } else {
        assert_eq!((weather.status.as_u16(), weather.code()), (503, "unavailable"), "{}", weather.body);
    }

    // Once the other transaction ends, the day is cancelled completely.
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    let weather = s
        .post(&format!("/v1/chapters/{}/weather-cancellations", w.chapter), &admin, json!({"date": "2027-05-03"}))
        .await
        .expect(200);
    // The list is a read model: it shows the cancellations a moment after they commit.
    let path = format!("/v1/rides?carehome_id={}&from=2027-05-03T00:00:00Z&to=2027-05-04T00:00:00Z", w.home);
    let statuses =
        testkit::eventually("both rides of the day cancelled in the list", testkit::DEFAULT_TIMEOUT, || async {
            let rides = s.get(&path, &admin).await.expect(200);
            let statuses: Vec<String> = rides.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["status"].as_str().unwrap().to_owned())
                .collect();
            if statuses == ["cancelled", "cancelled"] {
                Ok(statuses)
            } else {
                Err(format!("{statuses:?}; {}", weather.body))
            }
        })
        .await;
    assert_eq!(statuses, ["cancelled", "cancelled"], "{}", weather.body);
}

testkit::both_backends!(setup = e2e::System::start; a_weather_days_if_match_is_the_chapters);

/// `If-Match` on a weather day names the chapter's version, which the gateway checks; it is
/// not the version of the day's own stream in booking, so asking again for a day already
/// called off, with the chapter's current ETag, answers 200 (nothing more to cancel).
async fn a_weather_days_if_match_is_the_chapters(s: System) {
    let w = s.world().await;
    let admin = s.token(Role::ChapterAdmin(w.chapter));
    let chapter = s.get(&format!("/v1/chapters/{}", w.chapter), &admin).await.expect(200);
    let etag = chapter.header("etag").expect("an ETag");
    let path = format!("/v1/chapters/{}/weather-cancellations", w.chapter);
    let ask = |tag: String| {
        let (path, admin) = (path.clone(), admin.clone());
        let s = &s;
        async move {
            s.call_with(Method::POST, &path, Some(&admin), Some(json!({"date": "2027-06-01"})), &[("If-Match", &tag)])
                .await
        }
    };
    ask(etag.clone()).await.expect(200);
    let again = ask(etag.clone()).await.expect(200);
    assert_eq!(again.body["cancelled"], 0, "the day was called off already: {}", again.body);
    let stale = ask("\"999\"".to_owned()).await.expect(412);
    assert_eq!(stale.header("etag"), Some(etag), "the chapter's ETag, not the day's");
}

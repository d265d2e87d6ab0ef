//! Care homes over gRPC: registration, ride hours, closures, validation, and the lists
//! every kind of object shares (read model, cursor paging).

use samskab_proto::carehome::v1 as pb;
use servicekit::ErrorCode;
use testkit::TestDb;
use tonic::Code;

use crate::harness::*;

fn hours(weekday: &str, opens: &str, closes: &str) -> pb::RideHours {
    pb::RideHours { weekday: weekday.into(), opens: opens.into(), closes: closes.into() }
}

pub async fn a_care_home_is_registered_with_ride_hours_and_closures(db: TestDb) {
    let mut app = spawn_app(db).await;
    let c = chapter(&mut app).await;
    let home = carehome(&mut app, &c.chapter_id).await;
    assert_eq!(home.chapter_id, c.chapter_id);
    assert_eq!((home.timezone.as_str(), home.effective_timezone.as_str()), ("", "Europe/Copenhagen"));
    assert_eq!(home.ride_hours, vec![hours("monday", "09:00", "16:00")]);
    assert_eq!((home.turnaround_minutes, home.requires_confirmation, home.version), (15, false, 1));
    assert!(!home.pilots_choose_riders, "pilots do not choose riders unless the home says so");

    let mut req = carehome_request(&c.chapter_id);
    req.timezone = "Atlantic/Faroe".into();
    req.turnaround_minutes = 0;
    req.requires_confirmation = true;
    req.pilots_choose_riders = true;
    let faroe = app.client.register_care_home(req).await.unwrap().into_inner();
    assert_eq!(faroe.effective_timezone, "Atlantic/Faroe");
    assert_eq!((faroe.turnaround_minutes, faroe.requires_confirmation, faroe.pilots_choose_riders), (0, true, true));

    let new_hours = vec![hours("saturday", "10:00", "12:00"), hours("saturday", "13:00", "16:30")];
    let req = pb::ChangeRideHoursRequest {
        context: cx(&key()),
        carehome_id: home.carehome_id.clone(),
        ride_hours: new_hours.clone(),
    };
    let changed = app.client.change_ride_hours(req).await.unwrap().into_inner();
    assert_eq!((changed.ride_hours, changed.version), (new_hours.clone(), 2));

    let closure = pb::Closure {
        from: "2027-03-01".into(),
        to: "2027-03-08".into(),
        reason: "outbreak".into(),
        ..Default::default()
    };
    let req = pb::CloseCareHomeRequest {
        context: cx(&key()),
        carehome_id: home.carehome_id.clone(),
        closure: Some(closure.clone()),
    };
    let closed = app.client.close_care_home(req).await.unwrap().into_inner();
    // A closure's id is the id of the event that recorded it.
    let closure_id: uuid::Uuid = closed.closures[0].closure_id.parse().expect("a closure id");
    let closure = pb::Closure { closure_id: closure_id.to_string(), ..closure };
    assert_eq!((closed.closures, closed.version), (vec![closure.clone()], 3));

    let got = app.client.get_care_home(pb::IdRequest { id: home.carehome_id.clone() }).await.unwrap().into_inner();
    assert_eq!((got.ride_hours, got.closures, got.version), (new_hours, vec![closure.clone()], 3));
    assert_eq!(
        stream_types(&app, &format!("carehome-{}", home.carehome_id)).await,
        ["CareHomeRegistered", "RideHoursChanged", "CareHomeClosed"]
    );

    // Lifting names the closure by its id; again changes nothing; an unknown id is 404.
    let lift = |closure_id: String| pb::LiftClosureRequest {
        context: cx(&key()),
        carehome_id: home.carehome_id.clone(),
        closure_id,
    };
    let lifted = app.client.lift_closure(lift(closure.closure_id.clone())).await.unwrap().into_inner();
    assert_eq!((lifted.closures.len(), lifted.version), (0, 4));
    let again = app.client.lift_closure(lift(closure.closure_id.clone())).await.unwrap().into_inner();
    assert_eq!(again.version, 4, "lifting twice writes nothing");
    let unknown = app.client.lift_closure(lift(uuid::Uuid::new_v4().to_string())).await.unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
}

pub async fn care_home_fields_are_validated_and_a_missing_chapter_is_not_found(db: TestDb) {
    let mut app = spawn_app(db).await;
    let c = chapter(&mut app).await;
    let mut req = carehome_request(&c.chapter_id);
    req.ride_hours = vec![hours("monday", "9:00", "16:00")];
    assert_invalid(app.client.register_care_home(req).await, "/ride_hours/0/opens");
    let mut req = carehome_request(&c.chapter_id);
    req.turnaround_minutes = 241;
    assert_invalid(app.client.register_care_home(req).await, "/turnaround_minutes");
    let mut req = carehome_request(&c.chapter_id);
    req.name = " ".into();
    assert_invalid(app.client.register_care_home(req).await, "/name");

    let home = carehome(&mut app, &c.chapter_id).await;
    let req = pb::ChangeRideHoursRequest {
        context: cx(&key()),
        carehome_id: home.carehome_id.clone(),
        ride_hours: vec![hours("friday", "09:00", "12:00"), hours("friday", "11:00", "13:00")],
    };
    assert_invalid(app.client.change_ride_hours(req).await, "/ride_hours/1");
    let closure = pb::Closure {
        from: "2027-03-08".into(),
        to: "2027-03-01".into(),
        reason: "outbreak".into(),
        ..Default::default()
    };
    let req = pb::CloseCareHomeRequest { context: cx(&key()), carehome_id: home.carehome_id, closure: Some(closure) };
    assert_invalid(app.client.close_care_home(req).await, "/to");

    let req = carehome_request(&uuid::Uuid::now_v7().to_string());
    assert_refused(app.client.register_care_home(req).await, Code::NotFound, ErrorCode::NotFound);
}

pub async fn lists_page_by_cursor_and_refuse_oversized_pages(db: TestDb) {
    let mut app = spawn_app(db).await;
    let c = chapter(&mut app).await;
    let home = carehome(&mut app, &c.chapter_id).await;
    let mut created = Vec::new();
    for _ in 0..5 {
        created.push(bike(&mut app, &home.carehome_id).await.bike_id);
    }
    created.sort();

    let parent = home.carehome_id.clone();
    testkit::eventually("the five trishaws in the list", testkit::DEFAULT_TIMEOUT, || {
        let (mut client, parent) = (app.client.clone(), parent.clone());
        async move {
            let req = pb::ListRequest { parent_id: parent, limit: 0, cursor: String::new() };
            let all = client.list_bikes(req).await.unwrap().into_inner();
            (all.bikes.len() == 5).then_some(())
        }
    })
    .await;

    let mut seen = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let req = pb::ListRequest { parent_id: parent.clone(), limit: 2, cursor: cursor.clone() };
        let page = app.client.list_bikes(req).await.unwrap().into_inner();
        pages += 1;
        assert!(page.bikes.len() <= 2);
        seen.extend(page.bikes.iter().map(|b| b.bike_id.clone()));
        assert!(page.bikes.iter().all(|b| b.chapter_id == c.chapter_id && b.version == 1));
        if page.next_cursor.is_empty() {
            break;
        }
        cursor = page.next_cursor;
    }
    assert_eq!((seen, pages), (created, 3));

    let listed = testkit::eventually("the care home in the chapter's list", testkit::DEFAULT_TIMEOUT, || {
        let (mut client, id) = (app.client.clone(), c.chapter_id.clone());
        async move {
            let r = client.list_care_homes(pb::ListRequest { parent_id: id, ..Default::default() }).await.unwrap();
            let homes = r.into_inner().carehomes;
            (!homes.is_empty()).then_some(homes)
        }
    })
    .await;
    assert_eq!(listed[0].effective_timezone, "Europe/Copenhagen");

    let req = pb::ListRequest { parent_id: parent.clone(), limit: 501, cursor: String::new() };
    assert_invalid(app.client.list_bikes(req).await, "/limit");
    let req = pb::ListRequest { parent_id: parent, limit: 10, cursor: "page-2".into() };
    assert_invalid(app.client.list_bikes(req).await, "/cursor");
}

async fn list_all(app: &App, carehome_id: &str) -> (Vec<pb::Bike>, Vec<pb::Resident>) {
    let req = || pb::ListRequest { parent_id: carehome_id.to_owned(), ..Default::default() };
    let bikes = app.client.clone().list_bikes(req()).await.unwrap().into_inner().bikes;
    let residents = app.client.clone().list_residents(req()).await.unwrap().into_inner().residents;
    (bikes, residents)
}

pub async fn the_read_model_rebuilds_from_the_log_to_the_same_lists(db: TestDb) {
    let mut app = spawn_app(db).await;
    let c = chapter(&mut app).await;
    let home = carehome(&mut app, &c.chapter_id).await;
    let grounded = bike(&mut app, &home.carehome_id).await;
    bike(&mut app, &home.carehome_id).await;
    let req = pb::BikeServiceRequest {
        context: cx(&key()),
        bike_id: grounded.bike_id,
        reason: "puncture".into(),
        ..Default::default()
    };
    app.client.take_bike_out_of_service(req).await.unwrap();
    resident(&mut app, &home.carehome_id, "Karen").await;
    let before = testkit::eventually(
        "the read model to show the trishaw out of service and the resident",
        testkit::DEFAULT_TIMEOUT,
        || async {
            let (bikes, residents) = list_all(&app, &home.carehome_id).await;
            let caught_up = bikes.iter().any(|b| b.status == "out_of_service") && residents.len() == 1;
            caught_up.then_some((bikes, residents))
        },
    )
    .await;

    // Forget the read model and its checkpoint: the running projection notices at the
    // next event and replays the whole log.
    app.store
        .transaction(|tx| {
            Box::pin(async move {
                for sql in [
                    "DELETE FROM carehome_chapters",
                    "DELETE FROM carehome_carehomes",
                    "DELETE FROM carehome_bikes",
                    "DELETE FROM carehome_residents",
                ] {
                    tx.execute(sql, &[]).await?;
                }
                tx.delete_checkpoint(carehome::readmodel::PROJECTION_NAME).await
            })
        })
        .await
        .unwrap();
    let newest = bike(&mut app, &home.carehome_id).await;
    let (mut bikes, residents) =
        testkit::eventually("the read model to list the three trishaws", testkit::DEFAULT_TIMEOUT, || async {
            let (bikes, residents) = list_all(&app, &home.carehome_id).await;
            (bikes.len() == 3).then_some((bikes, residents))
        })
        .await;
    bikes.retain(|b| b.bike_id != newest.bike_id);
    assert_eq!((bikes, residents), before, "the rebuilt read model gives the same answer");
}

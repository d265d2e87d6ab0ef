//! Coordinators over gRPC: assigned in order, removed, no-ops that write nothing, the read
//! model and the feed, validation, If-Match and idempotent retries.

use std::time::Duration;

use samskab_proto::carehome::v1 as pb;
use samskab_proto::common::v1::{CommandContext, SubscribeRequest};
use servicekit::ErrorCode;
use testkit::TestDb;
use tokio_stream::StreamExt;
use tonic::Code;

use crate::harness::*;

fn req(context: Option<CommandContext>, carehome_id: &str, user_id: &str) -> pb::CoordinatorRequest {
    pb::CoordinatorRequest { context, carehome_id: carehome_id.into(), user_id: user_id.into() }
}

async fn a_home(app: &mut App) -> pb::CareHome {
    let c = chapter(app).await;
    carehome(app, &c.chapter_id).await
}

pub async fn coordinators_are_assigned_in_order_and_removed(db: TestDb) {
    let mut app = spawn_app(db).await;
    let home = a_home(&mut app).await;
    let id = home.carehome_id.as_str();
    assert!(home.coordinator_ids.is_empty());

    let one = app.client.assign_coordinator(req(cx(&key()), id, "user-b")).await.unwrap().into_inner();
    assert_eq!((one.coordinator_ids.clone(), one.version), (vec!["user-b".to_owned()], 2));
    let two = app.client.assign_coordinator(req(cx(&key()), id, "user-a")).await.unwrap().into_inner();
    assert_eq!((two.coordinator_ids.clone(), two.version), (vec!["user-b".to_owned(), "user-a".to_owned()], 3));
    let again = app.client.assign_coordinator(req(cx(&key()), id, "user-b")).await.unwrap().into_inner();
    assert_eq!(again, two, "assigning someone already assigned changes nothing");

    let removed = app.client.remove_coordinator(req(cx(&key()), id, "user-b")).await.unwrap().into_inner();
    assert_eq!((removed.coordinator_ids.clone(), removed.version), (vec!["user-a".to_owned()], 4));
    let again = app.client.remove_coordinator(req(cx(&key()), id, "user-b")).await.unwrap().into_inner();
    assert_eq!(again, removed, "removing someone not assigned changes nothing");
    let back = app.client.assign_coordinator(req(cx(&key()), id, "user-b")).await.unwrap().into_inner();
    assert_eq!(back.coordinator_ids, ["user-a", "user-b"], "a reassigned coordinator comes last");

    let got = app.client.get_care_home(pb::IdRequest { id: id.into() }).await.unwrap().into_inner();
    assert_eq!(got, back);
    assert_eq!(
        stream_types(&app, &format!("carehome-{id}")).await,
        [
            "CareHomeRegistered",
            "CoordinatorAssigned",
            "CoordinatorAssigned",
            "CoordinatorRemoved",
            "CoordinatorAssigned"
        ]
    );

    let listed = testkit::eventually("the care home at version 5 in the list", testkit::DEFAULT_TIMEOUT, || {
        let (mut client, chapter_id) = (app.client.clone(), home.chapter_id.clone());
        async move {
            let r = client.list_care_homes(pb::ListRequest { parent_id: chapter_id, ..Default::default() }).await;
            let homes = r.unwrap().into_inner().carehomes;
            homes.into_iter().find(|h| h.version == 5)
        }
    })
    .await;
    assert_eq!(listed, back, "the read model holds the coordinators too");
}

pub async fn coordinator_events_reach_the_feed_in_the_chapter(db: TestDb) {
    let mut app = spawn_app(db).await;
    let home = a_home(&mut app).await;
    let id = home.carehome_id.as_str();
    app.client.assign_coordinator(req(cx(&key()), id, "user-7f3a")).await.unwrap();
    app.client.remove_coordinator(req(cx(&key()), id, "user-7f3a")).await.unwrap();

    let mut stream = app.feed.subscribe(SubscribeRequest::default()).await.unwrap().into_inner();
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let next = tokio::time::timeout(Duration::from_secs(5), stream.next()).await.expect("the feed went quiet");
        seen.push(next.expect("the feed ended").unwrap());
    }
    let types: Vec<&str> = seen.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["ChapterRegistered", "CareHomeRegistered", "CoordinatorAssigned", "CoordinatorRemoved"]);
    for e in &seen[2..] {
        assert_eq!(e.tenant, home.chapter_id, "{} belongs to the chapter", e.event_type);
        let data: serde_json::Value = serde_json::from_str(&e.data_json).unwrap();
        assert_eq!(data, serde_json::json!({"carehome_id": id, "user_id": "user-7f3a"}));
    }
}

pub async fn coordinator_requests_are_validated_and_a_missing_care_home_is_not_found(db: TestDb) {
    let mut app = spawn_app(db).await;
    let home = a_home(&mut app).await;
    let id = home.carehome_id.as_str();
    let too_long = "u".repeat(129);
    for bad in ["", " ", "user a", " user-a", "user\u{0}a", too_long.as_str()] {
        assert_invalid(app.client.assign_coordinator(req(cx(&key()), id, bad)).await, "/user_id");
        assert_invalid(app.client.remove_coordinator(req(cx(&key()), id, bad)).await, "/user_id");
    }
    let longest = "u".repeat(128);
    let ok = app.client.assign_coordinator(req(cx(&key()), id, &longest)).await.unwrap().into_inner();
    assert_eq!(ok.coordinator_ids, [longest]);

    assert_invalid(app.client.assign_coordinator(req(cx(&key()), "home-1", "user-a")).await, "/carehome_id");
    let unknown = uuid::Uuid::now_v7().to_string();
    for r in [
        app.client.assign_coordinator(req(cx(&key()), &unknown, "user-a")).await,
        app.client.remove_coordinator(req(cx(&key()), &unknown, "user-a")).await,
    ] {
        assert_refused(r, Code::NotFound, ErrorCode::NotFound);
    }
    assert_eq!(stream_types(&app, &format!("carehome-{id}")).await, ["CareHomeRegistered", "CoordinatorAssigned"]);
}

pub async fn if_match_and_retries_apply_to_coordinator_commands(db: TestDb) {
    let mut app = spawn_app(db).await;
    let home = a_home(&mut app).await;
    let id = home.carehome_id.as_str();

    for r in [
        app.client.assign_coordinator(req(cx_at(&key(), 2), id, "user-a")).await,
        app.client.remove_coordinator(req(cx_at(&key(), 2), id, "user-a")).await,
    ] {
        let (code, e) = refused(r);
        assert_eq!((code, e.code), (Code::FailedPrecondition, ErrorCode::PreconditionFailed));
        assert_eq!(e.metadata.get("current_version").map(String::as_str), Some("1"));
    }
    let k = key();
    let first = app.client.assign_coordinator(req(cx_at(&k, 1), id, "user-a")).await.unwrap().into_inner();
    assert_eq!(first.version, 2);
    let retried = app.client.assign_coordinator(req(cx_at(&k, 1), id, "user-a")).await.unwrap().into_inner();
    assert_eq!(retried, first, "a retry finds its original outcome, not a stale version");

    let stale = app.client.remove_coordinator(req(cx_at(&key(), 1), id, "user-a")).await;
    assert_refused(stale, Code::FailedPrecondition, ErrorCode::PreconditionFailed);
    let noop = app.client.assign_coordinator(req(cx_at(&key(), 1), id, "user-a")).await;
    assert_refused(noop, Code::FailedPrecondition, ErrorCode::PreconditionFailed);
    let removed = app.client.remove_coordinator(req(cx_at(&key(), 2), id, "user-a")).await.unwrap().into_inner();
    assert_eq!((removed.coordinator_ids.len(), removed.version), (0, 3));
    assert_eq!(
        stream_types(&app, &format!("carehome-{id}")).await,
        ["CareHomeRegistered", "CoordinatorAssigned", "CoordinatorRemoved"]
    );
}

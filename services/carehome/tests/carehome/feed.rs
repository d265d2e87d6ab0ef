//! The event feed: every event of the service from the start, scoped by chapter, with
//! neither personal data nor ciphertext in any payload.

use std::time::Duration;

use samskab_proto::carehome::v1 as pb;
use samskab_proto::common::v1::SubscribeRequest;
use testkit::TestDb;
use tokio_stream::StreamExt;

use crate::harness::*;

pub async fn the_feed_carries_every_event_without_personal_data(db: TestDb) {
    let mut app = spawn_app(db).await;
    let c = chapter(&mut app).await;
    let home = carehome(&mut app, &c.chapter_id).await;
    let b = bike(&mut app, &home.carehome_id).await;
    let req = pb::ReportBikeIssueRequest {
        context: cx(&key()),
        bike_id: b.bike_id.clone(),
        description: "chain".into(),
        grounding: true,
    };
    app.client.report_bike_issue(req).await.unwrap();
    let r = resident(&mut app, &home.carehome_id, "Ærø Østergård").await;
    app.client
        .erase_resident(pb::ResidentCommandRequest { context: cx(&key()), resident_id: r.resident_id.clone() })
        .await
        .unwrap();

    let expected = [
        "ChapterRegistered",
        "CareHomeRegistered",
        "BikeCommissioned",
        "BikeIssueReported",
        "BikeTakenOutOfService",
        "ResidentAdmitted",
        "ResidentConsentRecorded",
        "ResidentErased",
    ];
    let mut stream = app.feed.subscribe(SubscribeRequest::default()).await.unwrap().into_inner();
    let mut seen = Vec::new();
    while seen.len() < expected.len() {
        let next = tokio::time::timeout(Duration::from_secs(5), stream.next()).await.expect("the feed went quiet");
        seen.push(next.expect("the feed ended").unwrap());
    }
    assert_eq!(seen.iter().map(|e| e.event_type.as_str()).collect::<Vec<_>>(), expected);
    for e in &seen {
        assert_eq!(e.tenant, c.chapter_id, "{} belongs to the chapter", e.event_type);
        assert!(!e.data_json.contains("sealed:"), "{}", e.data_json);
        assert!(!e.data_json.contains("Ærø") && !e.data_json.contains("harbour"), "{}", e.data_json);
        assert_eq!(e.actor.as_ref().map(|a| a.role.as_str()), Some("chapter_admin"));
    }
    let admitted: serde_json::Value = serde_json::from_str(&seen[5].data_json).unwrap();
    assert_eq!(admitted["resident_id"], r.resident_id.as_str());
    assert!(admitted.get("personal").is_none());

    // Resuming from a cursor gives what follows it, and nothing is stored in clear.
    let after = seen[4].cursor.clone();
    let mut resumed = app.feed.subscribe(SubscribeRequest { after, ..Default::default() }).await.unwrap().into_inner();
    let next = tokio::time::timeout(Duration::from_secs(5), resumed.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(next.event_type, "ResidentAdmitted");
    let stored = app.store.read_whole_stream(&format!("resident-{}", r.resident_id)).await.unwrap();
    assert!(stored.iter().all(|e| !e.payload.get().contains("Ærø")));
}

//! The service's boundary. gRPC reflection is off unless switched on, and then lists only
//! the services this server serves (and health), in both v1 and v1alpha. In the all-in-one's in-process transport every connection names its caller,
//! and the method policy refuses what that caller may not call.

use std::collections::BTreeSet;

use eventlog::EventStore;
use keystore::{KeyStore, MasterKey};
use testkit::TestDb;
use tokio::net::TcpListener;
use tonic::transport::Channel;
use tonic_reflection::pb::{v1, v1alpha};

async fn serve(reflection: bool) -> (Channel, tokio::sync::oneshot::Sender<()>, TestDb) {
    let db = TestDb::sqlite();
    let store = EventStore::connect(&db.url).await.unwrap();
    let keys = KeyStore::connect(&store, MasterKey::generate()).await.unwrap();
    let server = carehome::CareHomeServer::start(store, keys).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let routes = server.routes().with_reflection(reflection);
    tokio::spawn(servicekit::server::serve(listener, routes, carehome::SERVICE_NAMES, async move {
        let _ = stopped.await;
    }));
    (servicekit::client::channel(&format!("http://{addr}")).unwrap(), stop, db)
}

async fn list_v1(channel: Channel) -> Result<BTreeSet<String>, tonic::Status> {
    let mut client = v1::server_reflection_client::ServerReflectionClient::new(channel);
    let ask = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut answers = client.server_reflection_info(tokio_stream::iter([ask])).await?.into_inner();
    let answer = answers.message().await?.expect("an answer");
    match answer.message_response {
        Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(l)) => {
            Ok(l.service.into_iter().map(|s| s.name).collect())
        }
        other => panic!("not a list: {other:?}"),
    }
}

async fn list_v1alpha(channel: Channel) -> Result<BTreeSet<String>, tonic::Status> {
    let mut client = v1alpha::server_reflection_client::ServerReflectionClient::new(channel);
    let ask = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1alpha::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut answers = client.server_reflection_info(tokio_stream::iter([ask])).await?.into_inner();
    let answer = answers.message().await?.expect("an answer");
    match answer.message_response {
        Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(l)) => {
            Ok(l.service.into_iter().map(|s| s.name).collect())
        }
        other => panic!("not a list: {other:?}"),
    }
}

#[tokio::test]
async fn reflection_is_off_unless_switched_on() {
    let (channel, _stop, _db) = serve(false).await;
    assert_eq!(list_v1(channel.clone()).await.unwrap_err().code(), tonic::Code::Unimplemented);
    assert_eq!(list_v1alpha(channel).await.unwrap_err().code(), tonic::Code::Unimplemented);
}

#[tokio::test]
async fn switched_on_it_lists_only_what_this_server_serves() {
    let (channel, _stop, _db) = serve(true).await;
    let mut expected: BTreeSet<String> = carehome::SERVICE_NAMES.iter().map(|s| s.to_string()).collect();
    expected.insert("grpc.health.v1.Health".into());
    for got in [list_v1(channel.clone()).await.unwrap(), list_v1alpha(channel.clone()).await.unwrap()] {
        let ours: BTreeSet<String> = got.into_iter().filter(|s| !s.starts_with("grpc.reflection.")).collect();
        assert_eq!(ours, expected, "no other service's API (booking, volunteer) is listed");
    }
}

#[tokio::test]
async fn in_process_callers_get_only_what_the_policy_allows_them() {
    use samskab_proto::carehome::v1::{ListRequest, care_home_service_client::CareHomeServiceClient};
    use samskab_proto::common::v1::{ReadEventsRequest, event_feed_client::EventFeedClient};
    let db = TestDb::sqlite();
    let store = EventStore::connect(&db.url).await.unwrap();
    let keys = KeyStore::connect(&store, MasterKey::generate()).await.unwrap();
    let server = carehome::CareHomeServer::start(store, keys).await.unwrap();
    let spawned = servicekit::server::spawn_in_process("carehome", server.routes(), carehome::SERVICE_NAMES);
    let as_ = |caller: &str| servicekit::client::channel(&servicekit::inproc::url_for(&spawned.url(), caller)).unwrap();
    let residents = |channel| async move {
        let list = ListRequest { parent_id: String::new(), limit: 10, cursor: String::new() };
        CareHomeServiceClient::new(channel).list_residents(list).await
    };
    let feed = |channel| async move {
        EventFeedClient::new(channel).read_events(ReadEventsRequest { limit: 10, ..Default::default() }).await
    };
    // The gateway may query; booking, an unnamed caller, or a stranger may not.
    assert_ne!(residents(as_("gateway")).await.err().map(|e| e.code()), Some(tonic::Code::PermissionDenied));
    for caller in ["booking", "", "intruder"] {
        let refused = residents(as_(caller)).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{caller:?}: {refused:?}");
    }
    // Booking reads the feed; care-home itself and volunteer do not.
    feed(as_("booking")).await.unwrap();
    assert_eq!(feed(as_("volunteer")).await.unwrap_err().code(), tonic::Code::PermissionDenied);
    spawned.stop().await;
}

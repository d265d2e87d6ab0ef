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

/// Who may sign in as whom stays out of every feed reader's view but notify's: the gateway
/// and booking asking for the internal events get the feed without them.
#[tokio::test]
async fn only_notify_reads_the_internal_events() {
    use samskab_proto::common::v1::{
        IssueInvitationRequest, ReadEventsRequest, access_client::AccessClient, event_feed_client::EventFeedClient,
    };
    let db = TestDb::sqlite();
    let store = EventStore::connect(&db.url).await.unwrap();
    let keys = KeyStore::connect(&store, MasterKey::generate()).await.unwrap();
    let server = carehome::CareHomeServer::start(store, keys).await.unwrap();
    let spawned = servicekit::server::spawn_in_process("carehome", server.routes(), carehome::SERVICE_NAMES);
    let as_ = |caller: &str| servicekit::client::channel(&servicekit::inproc::url_for(&spawned.url(), caller)).unwrap();
    let issue = IssueInvitationRequest {
        context: Some(samskab_proto::common::v1::CommandContext {
            idempotency_key: uuid::Uuid::new_v4().to_string(),
            actor: Some(samskab_proto::common::v1::Actor { id: "admin".into(), role: "admin".into() }),
            ..Default::default()
        }),
        role: "admin".into(),
        ..Default::default()
    };
    AccessClient::new(as_("gateway")).issue_invitation(issue).await.unwrap();
    let types = |caller: &'static str| {
        let channel = as_(caller);
        async move {
            let req = ReadEventsRequest { limit: 100, with_internal: true, ..Default::default() };
            let page = EventFeedClient::new(channel).read_events(req).await.unwrap().into_inner();
            page.events.into_iter().map(|e| e.event_type).collect::<Vec<_>>()
        }
    };
    assert_eq!(types("notify").await, vec!["InvitationIssued".to_owned()]);
    for caller in ["gateway", "booking"] {
        assert_eq!(types(caller).await, Vec::<String>::new(), "{caller} asked for the internal events");
    }
    spawned.stop().await;
}

/// Over TCP with mutual TLS (a CA made for this test, `servicekit::tls::DevCa`): a caller
/// without a certificate of the CA gets no connection; the booking certificate may read
/// the feed and is refused a query (`PERMISSION_DENIED`); the gateway's may query; a
/// certificate of another CA, or a plaintext client, gets nothing.
#[tokio::test]
async fn over_tcp_only_certificates_of_the_ca_get_in_and_only_to_what_the_policy_allows() {
    use samskab_proto::carehome::v1::{ListRequest, care_home_service_client::CareHomeServiceClient};
    use samskab_proto::common::v1::{ReadEventsRequest, event_feed_client::EventFeedClient};
    use servicekit::tls::{DevCa, client_config, component_name, reload::Reloading};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = DevCa::generate().unwrap();
    let db = TestDb::sqlite();
    let store = EventStore::connect(&db.url).await.unwrap();
    let keys = KeyStore::connect(&store, MasterKey::generate()).await.unwrap();
    let server = carehome::CareHomeServer::start(store, keys).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let routes = server.routes().with_tls(Reloading::fixed(&ca.issue("carehome").unwrap(), ca.cert_pem()).unwrap());
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(servicekit::server::serve(listener, routes, carehome::SERVICE_NAMES, async move {
        let _ = stopped.await;
    }));
    let url = format!("https://{addr}");
    let as_ = |tls| servicekit::client::channel_tls(&url, tls).unwrap();
    let residents = |channel| async move {
        let list = ListRequest { parent_id: String::new(), limit: 10, cursor: String::new() };
        CareHomeServiceClient::new(channel).list_residents(list).await.map(drop)
    };
    let feed = |channel| async move {
        EventFeedClient::new(channel).read_events(ReadEventsRequest { limit: 10, ..Default::default() }).await.map(drop)
    };
    let gateway = ca.issue("gateway").unwrap();
    let booking = ca.issue("booking").unwrap();
    // The gateway's call gets through to the service, which answers it (this parent is
    // not a UUID, so: INVALID_ARGUMENT, from the service itself).
    let answered = residents(as_(client_config(&gateway, ca.cert_pem(), "carehome"))).await.unwrap_err();
    assert_eq!(answered.code(), tonic::Code::InvalidArgument, "{answered:?}");
    let refused = residents(as_(client_config(&booking, ca.cert_pem(), "carehome"))).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    feed(as_(client_config(&booking, ca.cert_pem(), "carehome"))).await.unwrap();

    // No certificate, another CA's, or no TLS at all: no call gets through.
    let anonymous = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(ca.cert_pem()))
        .domain_name(component_name("carehome"));
    let other = DevCa::generate().unwrap();
    let stranger = client_config(&other.issue("gateway").unwrap(), ca.cert_pem(), "carehome");
    for (who, channel) in [("no certificate", as_(anonymous)), ("another CA", as_(stranger))] {
        let refused = residents(channel).await.unwrap_err();
        assert_ne!(refused.code(), tonic::Code::Ok, "{who}");
    }
    let plaintext = servicekit::client::channel(&format!("http://{addr}")).unwrap();
    assert!(residents(plaintext.clone()).await.is_err() && feed(plaintext).await.is_err(), "plaintext");
}

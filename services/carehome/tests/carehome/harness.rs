//! The test harness: a care-home server on port 0 with a fresh database, typed clients,
//! command contexts and helpers that create the objects most tests need.

use eventlog::EventStore;
use keystore::{KeyStore, MasterKey};
use samskab_proto::carehome::v1::{self as pb, care_home_service_client::CareHomeServiceClient};
use samskab_proto::common::v1::{Actor, CommandContext, event_feed_client::EventFeedClient};
use servicekit::{ErrorCode, RemoteError};
use testkit::TestDb;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::Channel;

/// A running service and clients of it.
pub struct App {
    pub client: CareHomeServiceClient<Channel>,
    pub feed: EventFeedClient<Channel>,
    pub channel: Channel,
    pub store: EventStore,
    pub keys: KeyStore,
    _stop: oneshot::Sender<()>,
    _db: TestDb,
}

/// Starts the service on a fresh database.
pub async fn spawn_app(db: TestDb) -> App {
    let store = EventStore::connect(&db.url).await.expect("store");
    let keys = KeyStore::connect(&store, MasterKey::generate()).await.expect("keys");
    let server = carehome::CareHomeServer::start(store.clone(), keys.clone()).await.expect("start");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(servicekit::server::serve(listener, server.routes(), carehome::SERVICE_NAMES, async move {
        let _ = stopped.await;
    }));
    let channel = servicekit::client::channel(&format!("http://{addr}")).expect("channel");
    App {
        client: CareHomeServiceClient::new(channel.clone()),
        feed: EventFeedClient::new(channel.clone()),
        channel,
        store,
        keys,
        _stop: stop,
        _db: db,
    }
}

/// A command context with an idempotency key, as a chapter admin.
pub fn cx(key: &str) -> Option<CommandContext> {
    cx_at(key, 0)
}

/// A command context that expects the object at `version` (If-Match).
pub fn cx_at(key: &str, version: u64) -> Option<CommandContext> {
    Some(CommandContext {
        idempotency_key: key.to_owned(),
        actor: Some(Actor { id: "user-7f3a".into(), role: "chapter_admin".into() }),
        correlation_id: String::new(),
        expected_version: version,
    })
}

/// A fresh idempotency key.
pub fn key() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// What a refused call said.
pub fn refused<T: std::fmt::Debug>(r: Result<tonic::Response<T>, tonic::Status>) -> (tonic::Code, RemoteError) {
    let status = r.expect_err("the call should be refused");
    (status.code(), RemoteError::from_status(&status))
}

/// Asserts an INVALID_ARGUMENT naming `field` first.
pub fn assert_invalid<T: std::fmt::Debug>(r: Result<tonic::Response<T>, tonic::Status>, field: &str) {
    let (code, e) = refused(r);
    assert_eq!(code, tonic::Code::InvalidArgument, "{e:?}");
    assert_eq!(e.code, ErrorCode::Validation);
    assert_eq!(e.fields.first().map(|f| f.field.as_str()), Some(field), "{e:?}");
}

/// Asserts a refusal with a stable code.
pub fn assert_refused<T: std::fmt::Debug>(
    r: Result<tonic::Response<T>, tonic::Status>,
    grpc: tonic::Code,
    code: ErrorCode,
) {
    let (g, e) = refused(r);
    assert_eq!((g, e.code), (grpc, code), "{e:?}");
}

/// Registers a chapter in Copenhagen's zone.
pub async fn chapter(app: &mut App) -> pb::Chapter {
    let req = pb::RegisterChapterRequest {
        context: cx(&key()),
        name: "Lyngby-Taarbæk".into(),
        timezone: "Europe/Copenhagen".into(),
        settings: None,
    };
    app.client.register_chapter(req).await.expect("chapter").into_inner()
}

/// A care-home registration in `chapter_id`.
pub fn carehome_request(chapter_id: &str) -> pb::RegisterCareHomeRequest {
    pb::RegisterCareHomeRequest {
        context: cx(&key()),
        chapter_id: chapter_id.to_owned(),
        name: "Solgården".into(),
        address: "Strandvejen 1, 2800 Lyngby".into(),
        timezone: String::new(),
        ride_hours: vec![pb::RideHours { weekday: "monday".into(), opens: "09:00".into(), closes: "16:00".into() }],
        turnaround_minutes: 15,
        requires_confirmation: false,
        pilots_choose_riders: false,
    }
}

/// Registers a care home in `chapter_id`.
pub async fn carehome(app: &mut App, chapter_id: &str) -> pb::CareHome {
    app.client.register_care_home(carehome_request(chapter_id)).await.expect("care home").into_inner()
}

/// Commissions a two-seat trishaw at `carehome_id`.
pub async fn bike(app: &mut App, carehome_id: &str) -> pb::Bike {
    let req = pb::CommissionBikeRequest {
        context: cx(&key()),
        carehome_id: carehome_id.to_owned(),
        name: "Rosa".into(),
        bike_type: String::new(),
        seats: 2,
    };
    app.client.commission_bike(req).await.expect("bike").into_inner()
}

/// A consent given by a relative for rides.
pub fn consent() -> pb::Consent {
    pb::Consent {
        given_by: "relative".into(),
        given_at: "2027-01-05T10:00:00+01:00".into(),
        scope: vec!["rides".into()],
    }
}

/// Admits a resident called `name` at `carehome_id`.
pub async fn resident(app: &mut App, carehome_id: &str, name: &str) -> pb::Resident {
    let req = pb::AdmitResidentRequest {
        context: cx(&key()),
        carehome_id: carehome_id.to_owned(),
        display_name: name.to_owned(),
        notes: "Loves the harbour; uses a walker".into(),
        consent: Some(consent()),
    };
    app.client.admit_resident(req).await.expect("resident").into_inner()
}

/// The event types of one stream, in order.
pub async fn stream_types(app: &App, stream: &str) -> Vec<String> {
    app.store.read_whole_stream(stream).await.expect("read").into_iter().map(|e| e.event_type).collect()
}

//! Samskab's care-home service: chapters and their settings, care homes and their ride
//! hours, trishaws and their service status, residents and their consent, served over gRPC
//! with the service's event feed. Residents' names and notes are sealed with their own key.

#![warn(missing_docs)]

pub mod access;
pub mod audit;
pub mod commands;
pub mod grpc;
pub mod readmodel;
pub mod reseal;
pub mod validation;

pub use commands::{bikes, carehomes, chapters, people, residents};

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use eventlog::EventStore;
use keystore::KeyStore;
use samskab_proto::carehome::v1::care_home_service_server::CareHomeServiceServer;
use servicekit::feed::Feed;
use tokio::net::TcpListener;

pub use grpc::Handlers;

/// The fully qualified names of the gRPC services this server offers.
pub const SERVICE_NAMES: &[&str] =
    &["samskab.carehome.v1.CareHomeService", "samskab.common.v1.EventFeed", "samskab.common.v1.Access"];

/// Errors starting or running the service.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The event store failed.
    #[error(transparent)]
    Store(#[from] eventlog::Error),
    /// The key store failed.
    #[error(transparent)]
    Keys(#[from] keystore::Error),
    /// Serving failed.
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
    /// Binding the address or creating the data directory failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A started care-home service (read model migrated, projection running), ready to serve.
#[derive(Clone)]
pub struct CareHomeServer {
    handlers: Handlers,
    store: EventStore,
}

impl CareHomeServer {
    /// Migrates the read model and starts its projection (restarted after a failure).
    pub async fn start(store: EventStore, keys: KeyStore) -> Result<Self, StartError> {
        readmodel::migrate(&store).await?;
        let projection_store = store.clone();
        tokio::spawn(async move {
            loop {
                let r = eventlog::run_projection(projection_store.clone(), Arc::new(readmodel::ReadModel)).await;
                tracing::error!(error = ?r.err(), "care-home read model stopped; restarting");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        Ok(CareHomeServer { handlers: Handlers::new(store.clone(), keys), store })
    }

    /// The service's routes: the care-home service and its event feed.
    pub fn routes(&self) -> servicekit::server::ServiceRoutes {
        let stop = servicekit::server::Stop::new();
        let routes = tonic::service::Routes::new(CareHomeServiceServer::new(self.handlers.clone()))
            .add_service(Feed::new(self.store.clone(), access::INTERNAL, stop.clone()).into_server())
            .add_service(access::StaffAccess::new(self.store.clone()).into_server())
            .add_service(
                servicekit::audit::AuditLog::new(self.store.clone(), audit::stream_of, audit::summary).into_server(),
            );
        let probe = Some(servicekit::server::store_probe(self.store.clone()));
        servicekit::server::ServiceRoutes { routes, stop, probe, reflection: false, tls: None }
    }

    /// The handlers (for in-process use).
    pub fn handlers(&self) -> &Handlers {
        &self.handlers
    }
}

/// How the service binary is configured (every flag also an environment variable).
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Database of the care-home service: `sqlite://path` or `postgres://...` (`?schema=` to share a server).
    #[arg(
        long = "database-url",
        env = "SAMSKAB_CAREHOME_DATABASE_URL",
        default_value = "sqlite://samskab-data/carehome.db"
    )]
    pub database_url: String,
    /// Address to serve gRPC on.
    #[arg(long, env = "SAMSKAB_CAREHOME_LISTEN", default_value = "127.0.0.1:50053")]
    pub listen: SocketAddr,
    /// Master key and erasure ledger.
    #[command(flatten)]
    pub keys: servicekit::bootstrap::KeyConfig,
    /// The gRPC server (reflection).
    #[command(flatten)]
    pub grpc: servicekit::server::GrpcConfig,
    /// Mutual TLS with the other components.
    #[command(flatten)]
    pub tls: servicekit::tls::TlsConfig,
}

/// Creates the directory of a SQLite database file (SQLite creates the file, not its directory).
fn create_sqlite_dir(url: &str) -> std::io::Result<()> {
    let Some(rest) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) else { return Ok(()) };
    let path = Path::new(rest.split('?').next().unwrap_or_default());
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir),
        _ => Ok(()),
    }
}

/// Runs the service until `shutdown` resolves.
pub async fn run(config: Config, shutdown: impl std::future::Future<Output = ()> + Send) -> Result<(), StartError> {
    create_sqlite_dir(&config.database_url)?;
    let store = EventStore::connect(&config.database_url).await?;
    let keys = servicekit::bootstrap::key_store(&store, &config.keys).await?;
    let server = CareHomeServer::start(store, keys).await?;
    let listener = TcpListener::bind(config.listen).await?;
    tracing::info!(listen = %config.listen, "care-home service serving");
    let routes = server.routes().with_reflection(config.grpc.reflection).secured(&config.tls)?;
    servicekit::server::serve(listener, routes, SERVICE_NAMES, shutdown).await?;
    Ok(())
}

/// Rebuilds the service's read models from its log (`samskab rebuild-projections`): empties
/// them and replays every event; `progress` gets (events applied, head position). Run it
/// while the service is stopped.
pub async fn rebuild(store: &EventStore, progress: impl Fn(u64, u64)) -> Result<u64, eventlog::Error> {
    readmodel::migrate(store).await?;
    eventlog::rebuild_projection(
        store,
        std::sync::Arc::new(readmodel::ReadModel),
        &[
            "DELETE FROM carehome_chapters",
            "DELETE FROM carehome_carehomes",
            "DELETE FROM carehome_bikes",
            "DELETE FROM carehome_residents",
        ],
        progress,
    )
    .await
}

/// Applies the service's read-model migrations (the log's own apply when a store opens).
pub async fn migrate(store: &EventStore) -> Result<(), eventlog::Error> {
    readmodel::migrate(store).await
}

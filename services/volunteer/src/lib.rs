//! Samskab's volunteer service: pilots, their qualifications per trishaw type, status and
//! availability, served over gRPC with the service's event feed. Pilots' names, e-mails
//! and phones are sealed with each pilot's own key.

pub mod access;
pub mod audit;
pub mod commands;
pub mod grpc;
pub mod readmodel;

use std::net::SocketAddr;
use std::sync::Arc;

use eventlog::EventStore;
use keystore::KeyStore;
use samskab_proto::volunteer::v1::volunteer_service_server::VolunteerServiceServer;
use servicekit::feed::Feed;
use tokio::net::TcpListener;

pub use commands::pilots;
pub use grpc::Volunteer;

/// The fully qualified names of the gRPC services this server offers.
pub const SERVICE_NAMES: &[&str] =
    &["samskab.volunteer.v1.VolunteerService", "samskab.common.v1.EventFeed", "samskab.common.v1.Access"];

/// Errors starting the service.
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
    /// Binding the address failed.
    #[error("cannot listen: {0}")]
    Listen(#[from] std::io::Error),
}

/// A started volunteer service (migrated, projection running), ready to serve.
#[derive(Clone)]
pub struct VolunteerServer {
    handlers: Volunteer,
    store: EventStore,
}

impl VolunteerServer {
    /// Migrates the read model and starts its projection.
    pub async fn start(store: EventStore, keys: KeyStore) -> Result<Self, StartError> {
        store.migrate("volunteer_migrations", sqlx::migrate!("./migrations"), sqlx::migrate!("./migrations")).await?;
        let projection_store = store.clone();
        tokio::spawn(async move {
            loop {
                let r = eventlog::run_projection(projection_store.clone(), Arc::new(readmodel::PilotsProjection)).await;
                tracing::error!(error = ?r.err(), "pilots projection stopped; restarting");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        });
        Ok(VolunteerServer { handlers: Volunteer::new(store.clone(), keys), store })
    }

    /// The service's routes: the volunteer service and its event feed.
    pub fn routes(&self) -> servicekit::server::ServiceRoutes {
        let stop = servicekit::server::Stop::new();
        let routes = tonic::service::Routes::new(VolunteerServiceServer::new(self.handlers.clone()))
            .add_service(Feed::new(self.store.clone(), access::INTERNAL, stop.clone()).into_server())
            .add_service(access::PilotAccess::new(self.store.clone()).into_server())
            .add_service(
                servicekit::audit::AuditLog::new(self.store.clone(), audit::stream_of, audit::summary).into_server(),
            );
        let probe = Some(servicekit::server::store_probe(self.store.clone()));
        servicekit::server::ServiceRoutes { routes, stop, probe, reflection: false, tls: None }
    }

    /// The handlers (for in-process use).
    pub fn handlers(&self) -> &Volunteer {
        &self.handlers
    }
}

/// How the service binary is configured.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Database of the volunteer service: `sqlite://path` or `postgres://...` (`?schema=` to share a server).
    #[arg(
        long = "database-url",
        env = "SAMSKAB_VOLUNTEER_DATABASE_URL",
        default_value = "sqlite://samskab-data/volunteer.db"
    )]
    pub database_url: String,
    /// Address to serve gRPC on.
    #[arg(long, env = "SAMSKAB_VOLUNTEER_LISTEN", default_value = "127.0.0.1:50052")]
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

/// Runs the service until `shutdown` resolves.
pub async fn run(config: Config, shutdown: impl std::future::Future<Output = ()> + Send) -> Result<(), StartError> {
    let store = EventStore::connect(&config.database_url).await?;
    let keys = servicekit::bootstrap::key_store(&store, &config.keys).await?;
    let server = VolunteerServer::start(store, keys).await?;
    let listener = TcpListener::bind(config.listen).await?;
    tracing::info!(listen = %config.listen, "volunteer service serving");
    let routes = server.routes().with_reflection(config.grpc.reflection).secured(&config.tls)?;
    servicekit::server::serve(listener, routes, SERVICE_NAMES, shutdown).await?;
    Ok(())
}

/// Rebuilds the service's read models from its log (`samskab rebuild-projections`): empties
/// them and replays every event; `progress` gets (events applied, head position). Run it
/// while the service is stopped.
pub async fn rebuild(store: &EventStore, progress: impl Fn(u64, u64)) -> Result<u64, eventlog::Error> {
    store.migrate("volunteer_migrations", sqlx::migrate!("./migrations"), sqlx::migrate!("./migrations")).await?;
    eventlog::rebuild_projection(
        store,
        std::sync::Arc::new(readmodel::PilotsProjection),
        &["DELETE FROM volunteer_pilots"],
        progress,
    )
    .await
}

/// Applies the service's read-model migrations (the log's own apply when a store opens).
pub async fn migrate(store: &EventStore) -> Result<(), eventlog::Error> {
    store.migrate("volunteer_migrations", sqlx::migrate!("./migrations"), sqlx::migrate!("./migrations")).await?;
    Ok(())
}

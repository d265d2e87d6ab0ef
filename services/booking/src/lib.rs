//! Samskab's booking service: rides of three kinds and their life cycle, rosters, ride
//! requests, weather days and free-slot availability, over gRPC with its event feed. Every
//! invariant of the domain is enforced in its write path; facts owned by the care-home and
//! volunteer services arrive by following their feeds (see `docs/booking.md`).

pub mod asof;
pub mod audit;
pub mod availability;
pub mod candidates;
pub mod cascades;
pub mod commands;
pub mod facts;
pub mod grpc;
mod grpc_series;
pub mod history;
pub mod offers;
pub mod readmodel;
pub mod requests;
pub mod rides;
pub mod rules;
pub mod schedule;
pub mod scheduling;
pub mod series;
pub mod service;
pub mod stats;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use eventlog::EventStore;
use keystore::KeyStore;
use samskab_proto::booking::v1::booking_service_server::BookingServiceServer;
use samskab_proto::common::v1::event_feed_client::EventFeedClient;
use servicekit::feed::Feed;
use servicekit::remote::{FollowStatus, follow};
use tokio::sync::{Notify, watch};

pub use service::Booking;

/// How often open requests are checked for a window that has passed (every second in a
/// `test-clock` build, so that a test that moves the clock sees them expire at once).
const EXPIRY_SWEEP: Duration =
    if servicekit::clock::is_test_clock() { Duration::from_secs(1) } else { Duration::from_secs(30) };

/// The fully qualified names of the gRPC services this server offers.
pub const SERVICE_NAMES: &[&str] = &["samskab.booking.v1.BookingService", "samskab.common.v1.EventFeed"];

/// Errors starting the service.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The event store failed.
    #[error(transparent)]
    Store(#[from] eventlog::Error),
    /// The key store failed.
    #[error(transparent)]
    Keys(#[from] keystore::Error),
    /// A peer's address is malformed, or serving failed.
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
    /// Binding the address failed.
    #[error("cannot listen: {0}")]
    Listen(#[from] std::io::Error),
}

/// Where booking finds its peers.
#[derive(Debug, Clone)]
pub struct Peers {
    /// The care-home service (`http://host:port`).
    pub carehome_url: String,
    /// The volunteer service.
    pub volunteer_url: String,
    /// Mutual TLS with them (none: plain text or in-process).
    pub tls: servicekit::tls::TlsConfig,
}

/// A started booking service: migrated, following its peers, ready to serve.
#[derive(Clone)]
pub struct BookingServer {
    booking: Booking,
    /// Status of the care-home feed follower.
    pub carehome_feed: watch::Receiver<FollowStatus>,
    /// Status of the volunteer feed follower.
    pub volunteer_feed: watch::Receiver<FollowStatus>,
}

impl BookingServer {
    /// Migrates, starts the projections, the feed followers and the cascade worker.
    pub async fn start(store: EventStore, keys: KeyStore, peers: Peers) -> Result<Self, StartError> {
        store.migrate("booking_migrations", sqlx::migrate!("./migrations"), sqlx::migrate!("./migrations")).await?;
        let booking = Booking::new(store.clone(), keys);
        let s = store.clone();
        servicekit::server::forever("rides projection", move || {
            let s = s.clone();
            async move { eventlog::run_projection(s, Arc::new(readmodel::RidesProjection)).await.map_err(|e| e.to_string()) }
        });
        let s = store.clone();
        servicekit::server::forever("ride series projection", move || {
            let s = s.clone();
            async move {
                eventlog::run_projection(s, Arc::new(scheduling::SeriesProjection)).await.map_err(|e| e.to_string())
            }
        });
        let s = store.clone();
        servicekit::server::forever("stats snapshots", move || {
            let s = s.clone();
            async move { asof::snapshotter(s).await.map_err(|e| e.to_string()) }
        });
        let kick = Arc::new(Notify::new());
        let (carehome_tx, carehome_feed) = watch::channel(FollowStatus::default());
        let (volunteer_tx, volunteer_feed) = watch::channel(FollowStatus::default());
        let channel = |url: &str, server: &str| peers.tls.channel(url, server).map_err(std::io::Error::other);
        let carehome = EventFeedClient::new(channel(&peers.carehome_url, "carehome")?);
        let volunteer = EventFeedClient::new(channel(&peers.volunteer_url, "volunteer")?);
        tokio::spawn(follow(
            store.clone(),
            carehome,
            Arc::new(facts::CareHomeFacts { kick: kick.clone() }),
            carehome_tx,
        ));
        tokio::spawn(follow(
            store.clone(),
            volunteer.clone(),
            Arc::new(facts::VolunteerFacts { kick: kick.clone() }),
            volunteer_tx,
        ));
        // A second follower of the volunteer feed, for availability only: it gives pilot
        // facts stored before booking learnt availability their declarations.
        let (backfill_tx, _) = watch::channel(FollowStatus::default());
        tokio::spawn(follow(store.clone(), volunteer, Arc::new(facts::AvailabilityBackfill), backfill_tx));
        let b = booking.clone();
        let k = kick.clone();
        servicekit::server::forever("cascades", move || {
            let (b, k) = (b.clone(), k.clone());
            async move {
                loop {
                    if b.work_outbox().await.map_err(|e| e.to_string())? == 0 {
                        tokio::select! {
                            _ = k.notified() => {}
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                    }
                }
            }
        });
        let b = booking.clone();
        servicekit::server::forever("ride request expiry", move || {
            let b = b.clone();
            async move {
                loop {
                    let now = servicekit::clock::now().timestamp_micros();
                    for id in readmodel::expired_requests(&b.store, now).await.map_err(|e| e.to_string())? {
                        let ctx = servicekit::CommandCtx::system(id, "expire");
                        b.expire(&ctx, id).await.map_err(|e| e.to_string())?;
                    }
                    tokio::time::sleep(EXPIRY_SWEEP).await;
                }
            }
        });
        // Ride series: booked up to the horizon at start, then daily at 02:00 local.
        let b = booking.clone();
        servicekit::server::forever("ride series", move || scheduling::run_sweep(b.clone()));
        // Ride requests: offered at posting, then a round every 24 h (docs/booking.md).
        let b = booking.clone();
        servicekit::server::forever("ride request offers", move || offers::run_sweep(b.clone()));
        Ok(BookingServer { booking, carehome_feed, volunteer_feed })
    }

    /// The service's routes: the booking service and its event feed.
    pub fn routes(&self) -> servicekit::server::ServiceRoutes {
        let stop = servicekit::server::Stop::new();
        let routes = tonic::service::Routes::new(BookingServiceServer::new(self.booking.clone()))
            .add_service(
                Feed::new(self.booking.store.clone(), domain::events::INTERNAL_EVENT_TYPES, stop.clone()).into_server(),
            )
            .add_service(
                servicekit::audit::AuditLog::new(self.booking.store.clone(), audit::stream_of, audit::summary)
                    .into_server(),
            );
        // Healthy while its store answers; the subscriptions entry says whether both peers'
        // feeds are connected (bookings go on from the read models while one is not).
        let feeds = vec![self.carehome_feed.clone(), self.volunteer_feed.clone()];
        let probe = servicekit::server::followers_probe(self.booking.store.clone(), feeds);
        servicekit::server::ServiceRoutes { routes, stop, probe: Some(probe), reflection: false, tls: None }
    }

    /// The handlers (for in-process use).
    pub fn booking(&self) -> &Booking {
        &self.booking
    }
}

/// How the service binary is configured.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Database of the booking service: `sqlite://path` or `postgres://...` (`?schema=` to share a server).
    #[arg(
        long = "database-url",
        env = "SAMSKAB_BOOKING_DATABASE_URL",
        default_value = "sqlite://samskab-data/booking.db"
    )]
    pub database_url: String,
    /// Address to serve gRPC on.
    #[arg(long, env = "SAMSKAB_BOOKING_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// The care-home service's address.
    #[arg(long = "carehome-url", env = "SAMSKAB_CAREHOME_URL", default_value = "http://127.0.0.1:50053")]
    pub carehome_url: String,
    /// The volunteer service's address.
    #[arg(long = "volunteer-url", env = "SAMSKAB_VOLUNTEER_URL", default_value = "http://127.0.0.1:50052")]
    pub volunteer_url: String,
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
    let peers = Peers {
        carehome_url: config.carehome_url.clone(),
        volunteer_url: config.volunteer_url.clone(),
        tls: config.tls.clone(),
    };
    let server = BookingServer::start(store, keys, peers).await?;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    tracing::info!(listen = %config.listen, "booking service serving");
    let routes = server.routes().with_reflection(config.grpc.reflection).secured(&config.tls)?;
    servicekit::server::serve(listener, routes, SERVICE_NAMES, shutdown).await?;
    Ok(())
}

/// Rebuilds the service's read models from its log (`samskab rebuild-projections`): empties
/// them and replays every event; `progress` gets (events applied, head position). Run it
/// while the service is stopped. Each read model is rebuilt in one transaction, so a failed
/// or killed rebuild leaves the one it found.
pub async fn rebuild(store: &EventStore, progress: impl Fn(u64, u64)) -> Result<u64, eventlog::Error> {
    rebuild_paged(store, eventlog::REBUILD_PAGE, REBUILD_HOLD, progress).await
}

/// Rides and requests a rebuild holds in memory between pages at most (a ride is ~2 KB
/// there; a history's open rides are a few weeks of bookings).
pub const REBUILD_HOLD: usize = 50_000;

/// [`rebuild`] in pages of `page` events, holding at most `hold` rides and requests between
/// pages (tests cut a small log into many pages).
pub async fn rebuild_paged(
    store: &EventStore,
    page: usize,
    hold: usize,
    progress: impl Fn(u64, u64),
) -> Result<u64, eventlog::Error> {
    store.migrate("booking_migrations", sqlx::migrate!("./migrations"), sqlx::migrate!("./migrations")).await?;
    let rides = eventlog::rebuild_projection_paged(
        store,
        std::sync::Arc::new(readmodel::RidesRebuild::new(hold)),
        &[
            "DELETE FROM booking_rides",
            "DELETE FROM booking_ride_riders",
            "DELETE FROM booking_ride_requests",
            "DELETE FROM booking_stats_snapshots",
        ],
        page,
        &progress,
    )
    .await?;
    let series = eventlog::rebuild_projection_paged(
        store,
        std::sync::Arc::new(scheduling::SeriesProjection),
        &["DELETE FROM booking_series"],
        page,
        &progress,
    )
    .await?;
    Ok(rides + series)
}

/// Applies the service's read-model migrations (the log's own apply when a store opens).
pub async fn migrate(store: &EventStore) -> Result<(), eventlog::Error> {
    store.migrate("booking_migrations", sqlx::migrate!("./migrations"), sqlx::migrate!("./migrations")).await?;
    Ok(())
}

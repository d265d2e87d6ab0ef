//! Samskab's notify service: who is told what, when. It follows the care-home and booking
//! feeds, decides each notice once per (kind, occasion, recipient, channel) when it falls
//! due (for whoever it concerns then), records the decisions in its own log and keeps every
//! person's inbox. Its events never reach the integrator feed (it serves no feed).
//! docs/notifications.md lists the kinds.

pub mod decider;
pub mod deliver;
pub mod facts;
pub mod grpc;
pub mod inbox;
pub mod mail;
pub mod metrics;
pub mod notices;
pub mod people;
pub mod push;
pub mod quiet;
pub mod sms;
pub mod subscriptions;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use eventlog::EventStore;
use samskab_proto::common::v1::event_feed_client::EventFeedClient;
use samskab_proto::notify::v1::notify_service_server::NotifyServiceServer;
use samskab_proto::volunteer::v1::volunteer_service_client::VolunteerServiceClient;
use servicekit::remote::{FollowStatus, follow};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use grpc::Notify;

/// The fully qualified names of the gRPC services this server offers.
pub const SERVICE_NAMES: &[&str] = &["samskab.notify.v1.NotifyService"];

/// How often the decider looks for what fell due.
pub const TICK: Duration = Duration::from_millis(500);

/// The longest the decider waits at its start for the feeds to catch up (a peer that is
/// down must not keep every notice back).
pub const CATCH_UP_WAIT: Duration = Duration::from_secs(30);

/// Waits until every feed has applied what it held when it connected, or
/// [`CATCH_UP_WAIT`]: the decider decides on facts as they are, not as they were when
/// notify stopped (a ride cancelled, a request claimed while it was down).
async fn caught_up(mut feeds: [watch::Receiver<FollowStatus>; 3]) {
    let all = async {
        for f in &mut feeds {
            if f.wait_for(|s| s.caught_up).await.is_err() {
                return;
            }
        }
    };
    if tokio::time::timeout(CATCH_UP_WAIT, all).await.is_err() {
        tracing::warn!("the feeds did not catch up in time; deciding notices on what is known");
    }
}

/// Errors starting the service.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The event store failed.
    #[error(transparent)]
    Store(#[from] eventlog::Error),
    /// Serving failed.
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
    /// The key store failed.
    #[error(transparent)]
    Keys(#[from] keystore::Error),
    /// E-mail or SMS is misconfigured.
    #[error(transparent)]
    Mail(#[from] mail::SendError),
    /// Binding the address failed.
    #[error("cannot listen: {0}")]
    Listen(#[from] std::io::Error),
}

/// The services notify follows.
#[derive(Debug, Clone)]
pub struct Peers {
    /// The care-home service (`http://host:port`).
    pub carehome_url: String,
    /// The booking service.
    pub booking_url: String,
    /// The volunteer service.
    pub volunteer_url: String,
    /// Mutual TLS with them (none: plain text or in-process).
    pub tls: servicekit::tls::TlsConfig,
}

/// A started notify service: migrated, following its peers, deciding, ready to serve.
#[derive(Clone)]
pub struct NotifyServer {
    handlers: Notify,
    /// Status of the care-home feed follower.
    pub carehome_feed: watch::Receiver<FollowStatus>,
    /// Status of the booking feed follower.
    pub booking_feed: watch::Receiver<FollowStatus>,
    /// Status of the volunteer feed follower.
    pub volunteer_feed: watch::Receiver<FollowStatus>,
}

/// Where notices go besides the inbox; e-mail or SMS left out records its notices once as
/// `not-configured`. Web Push needs nothing outside (its key pair is made on first start).
#[derive(Debug, Clone, Default)]
pub struct Outbound {
    /// E-mail.
    pub mailer: Option<mail::Mailer>,
    /// SMS.
    pub sms: Option<sms::SmsSender>,
    /// Web Push.
    pub push: push::PushConfig,
}

impl Outbound {
    /// The channels `mail`, `sms` and `push` configure; the VAPID subject defaults to the
    /// sender address of e-mail.
    pub fn from_config(
        mail: &mail::MailConfig,
        sms: &sms::SmsConfig,
        push: &push::PushConfig,
    ) -> Result<Self, mail::SendError> {
        let mut push = push.clone();
        if push.subject.as_deref().is_none_or(str::is_empty) {
            push.subject = Some(mail::vapid_subject_of(&mail.from));
        }
        Ok(Outbound { mailer: mail::Mailer::from_config(mail)?, sms: sms::SmsSender::from_config(sms)?, push })
    }
}

impl NotifyServer {
    /// [`NotifyServer::start_with`] sending e-mail only (through `mailer`, if any).
    pub async fn start(
        store: EventStore,
        keys: keystore::KeyStore,
        peers: Peers,
        mailer: Option<mail::Mailer>,
    ) -> Result<Self, StartError> {
        Self::start_with(store, keys, peers, Outbound { mailer, ..Outbound::default() }).await
    }

    /// Migrates, starts the inbox projection, the feed followers, the decider and the
    /// sender (through `outbound`).
    pub async fn start_with(
        store: EventStore,
        keys: keystore::KeyStore,
        peers: Peers,
        outbound: Outbound,
    ) -> Result<Self, StartError> {
        migrate(&store).await?;
        let vapid = push::Vapid::load_or_generate(&store, &keys).await?;
        let subject = outbound.push.subject.clone().unwrap_or_else(|| "mailto:noreply@samskab.invalid".into());
        let pusher = push::Pusher::new(vapid, subject, outbound.push.allow_loopback);
        let s = store.clone();
        servicekit::server::forever("inbox projection", move || {
            let s = s.clone();
            async move { eventlog::run_projection(s, Arc::new(inbox::Inbox)).await.map_err(|e| e.to_string()) }
        });
        let (carehome_tx, carehome_feed) = watch::channel(FollowStatus::default());
        let (booking_tx, booking_feed) = watch::channel(FollowStatus::default());
        let (volunteer_tx, volunteer_feed) = watch::channel(FollowStatus::default());
        let channel = |url: &str, server: &str| peers.tls.channel(url, server).map_err(std::io::Error::other);
        let carehome = EventFeedClient::new(channel(&peers.carehome_url, "carehome")?);
        let booking = EventFeedClient::new(channel(&peers.booking_url, "booking")?);
        let volunteer_channel = channel(&peers.volunteer_url, "volunteer")?;
        let volunteer = EventFeedClient::new(volunteer_channel.clone());
        tokio::spawn(follow(store.clone(), carehome, Arc::new(facts::CareHomeFacts), carehome_tx));
        tokio::spawn(follow(store.clone(), booking, Arc::new(facts::Rides), booking_tx));
        tokio::spawn(follow(store.clone(), volunteer, Arc::new(facts::Pilots), volunteer_tx));
        let s = store.clone();
        let feeds = [carehome_feed.clone(), booking_feed.clone(), volunteer_feed.clone()];
        servicekit::server::forever("decider", move || {
            let (s, feeds) = (s.clone(), feeds.clone());
            async move {
                caught_up(feeds).await;
                loop {
                    let look = decider::tick(&s, servicekit::clock::now()).await.map_err(|e| e.to_string())?;
                    // A backlog is worked off look after look, reminders first in each.
                    if look.more {
                        tokio::task::yield_now().await;
                    } else {
                        tokio::time::sleep(TICK).await;
                    }
                }
            }
        });
        let sender = deliver::Sender {
            store: store.clone(),
            keys: keys.clone(),
            mailer: outbound.mailer,
            sms: outbound.sms,
            pusher: pusher.clone(),
            volunteer: Some(VolunteerServiceClient::new(volunteer_channel)),
        };
        servicekit::server::forever("sender", move || {
            let sender = sender.clone();
            async move {
                loop {
                    sender.round(servicekit::clock::now()).await.map_err(|e| e.to_string())?;
                    tokio::time::sleep(TICK).await;
                }
            }
        });
        Ok(NotifyServer { handlers: Notify { store, keys, pusher }, carehome_feed, booking_feed, volunteer_feed })
    }

    /// The service's routes.
    pub fn routes(&self) -> servicekit::server::ServiceRoutes {
        let stop = servicekit::server::Stop::new();
        let routes = tonic::service::Routes::new(NotifyServiceServer::new(self.handlers.clone()));
        let feeds = vec![self.carehome_feed.clone(), self.booking_feed.clone(), self.volunteer_feed.clone()];
        let probe = servicekit::server::followers_probe(self.handlers.store.clone(), feeds);
        servicekit::server::ServiceRoutes { routes, stop, probe: Some(probe), reflection: false, tls: None }
    }

    /// The handlers (for in-process use).
    pub fn handlers(&self) -> &Notify {
        &self.handlers
    }
}

/// How the service binary is configured.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Database of the notify service: `sqlite://path` or `postgres://...` (`?schema=` to share a server).
    #[arg(
        long = "database-url",
        env = "SAMSKAB_NOTIFY_DATABASE_URL",
        default_value = "sqlite://samskab-data/notify.db"
    )]
    pub database_url: String,
    /// Address to serve gRPC on.
    #[arg(long, env = "SAMSKAB_NOTIFY_LISTEN", default_value = "127.0.0.1:50054")]
    pub listen: SocketAddr,
    /// The care-home service's address.
    #[arg(long = "carehome-url", env = "SAMSKAB_CAREHOME_URL", default_value = "http://127.0.0.1:50053")]
    pub carehome_url: String,
    /// The booking service's address.
    #[arg(long = "booking-url", env = "SAMSKAB_BOOKING_URL", default_value = "http://127.0.0.1:50051")]
    pub booking_url: String,
    /// The volunteer service's address (pilots' links to persons, and their record's
    /// e-mail address, asked for at send time).
    #[arg(long = "volunteer-url", env = "SAMSKAB_VOLUNTEER_URL", default_value = "http://127.0.0.1:50052")]
    pub volunteer_url: String,
    /// Master key and erasure ledger (contact details are sealed under each person's key).
    #[command(flatten)]
    pub keys: servicekit::bootstrap::KeyConfig,
    /// E-mail (SMTP).
    #[command(flatten)]
    pub mail: mail::MailConfig,
    /// SMS (an HTTP provider).
    #[command(flatten)]
    pub sms: sms::SmsConfig,
    /// Web Push.
    #[command(flatten)]
    pub push: push::PushConfig,
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
    let outbound = Outbound::from_config(&config.mail, &config.sms, &config.push)?;
    let peers = Peers {
        carehome_url: config.carehome_url,
        booking_url: config.booking_url,
        volunteer_url: config.volunteer_url,
        tls: config.tls.clone(),
    };
    let server = NotifyServer::start_with(store, keys, peers, outbound).await?;
    let listener = TcpListener::bind(config.listen).await?;
    tracing::info!(listen = %config.listen, "notify service serving");
    let routes = server.routes().with_reflection(config.grpc.reflection).secured(&config.tls)?;
    servicekit::server::serve(listener, routes, SERVICE_NAMES, shutdown).await?;
    Ok(())
}

/// Rebuilds the inbox from notify's log (`samskab rebuild-projections`): empties it and
/// replays every decision and reading; `progress` gets (events applied, head position).
/// The facts followed from other services' feeds are not rebuilt here (they are copies of
/// other logs). Run it while the service is stopped.
pub async fn rebuild(store: &EventStore, progress: impl Fn(u64, u64)) -> Result<u64, eventlog::Error> {
    migrate(store).await?;
    const TABLES: &[&str] = &[
        "DELETE FROM notify_inbox",
        "DELETE FROM notify_outbox",
        "DELETE FROM notify_deliveries",
        "DELETE FROM notify_contacts",
        "DELETE FROM notify_preferences",
        "DELETE FROM notify_push_subscriptions",
        "DELETE FROM notify_erased WHERE recipient LIKE 'person:%'",
    ];
    eventlog::rebuild_projection(store, Arc::new(inbox::Inbox), TABLES, progress).await
}

/// Applies the service's migrations (the log's own apply when a store opens).
pub async fn migrate(store: &EventStore) -> Result<(), eventlog::Error> {
    store.migrate("notify_migrations", sqlx::migrate!("./migrations"), sqlx::migrate!("./migrations")).await
}

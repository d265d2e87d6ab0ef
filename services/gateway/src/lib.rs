//! Samskab's REST gateway: the only public door. It authenticates callers, checks every
//! object against the caller's scope, validates input, applies idempotency and rate
//! limits, and translates to the services' gRPC. It keeps no domain state, only
//! idempotency records in a small database of its own.

pub mod auth;
#[cfg(test)]
mod boundaries;
pub mod calendar_tokens;
pub mod caller;
pub mod clients;
pub mod extract;
pub mod feed;
pub mod http;
pub mod ical;
pub mod idempotency;
pub mod oidc;
pub mod openapi;
pub mod ops;
pub mod problem;
pub mod routes;
pub mod serve;
pub mod streams;
pub mod views;
pub mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use eventlog::EventStore;
use keystore::KeyStore;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::TimeoutLayer;

pub use auth::{Claims, Keys, Role};
pub use clients::{Clients, ServiceUrls};

/// What every handler can reach, behind one `Arc`: axum clones the state for every
/// extractor of every request, and a clone is one reference count rather than a dozen
/// channels, pools and caches (issue 22).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The gateway's shared state (reached through [`AppState`]).
pub struct Shared {
    /// The services.
    pub clients: Clients,
    /// Token keys.
    pub keys: Arc<Keys>,
    /// Whether Samskab's own tokens are accepted.
    pub local_tokens: bool,
    /// The trusted OpenID Connect issuers.
    pub oidc: Arc<oidc::Verifier>,
    /// People's role grants, cached briefly.
    pub grants: Arc<caller::GrantCache>,
    /// Checks remembered credentials (webhooks, calendar tokens) and reads grants.
    pub credentials: caller::Credentials,
    /// The gateway's key store (erasures are recorded in its ledger).
    pub keystore: KeyStore,
    /// Checked API keys, cached briefly.
    pub api_keys: Arc<caller::ApiKeyCache>,
    /// Failed invitation redemptions per person.
    pub redemption_failures: Arc<routes::people::RedemptionFailures>,
    /// Caller scope lookups, cached briefly.
    pub scopes: Arc<caller::ScopeCache>,
    /// Idempotency records.
    pub idempotency: idempotency::Idempotency,
    /// Calendar tokens.
    pub calendar_tokens: calendar_tokens::CalendarTokens,
    /// Rate limits.
    pub limiter: Arc<http::Limiter>,
    /// The lower limit of the expensive reads ([`http::is_expensive`]).
    pub expensive: Arc<http::Limiter>,
    /// The reverse proxies whose forwarded addresses are believed.
    pub proxies: http::TrustedProxies,
    /// Readiness probes of the services.
    pub ops: Arc<ops::Ops>,
    /// The merged event feed.
    pub feed: feed::FeedReader,
    /// The open event streams: their limits and their shared poller.
    pub streams: Arc<streams::Streams>,
    /// The longest an event stream stays open (seconds).
    pub stream_max_seconds: u64,
    /// Webhooks and their dispatcher.
    pub webhooks: webhooks::Webhooks,
    /// Triggered when the gateway stops: ends event streams and the webhook dispatcher.
    pub stop: servicekit::server::Stop,
}

/// Tuning of the HTTP layer.
#[derive(Debug, Clone, clap::Args)]
pub struct HttpConfig {
    /// Requests per minute per token (all of them allowed as a burst).
    #[arg(long = "rate-limit-per-minute", env = "SAMSKAB_RATE_LIMIT_PER_MINUTE", default_value_t = 6000)]
    pub rate_limit_per_minute: u32,
    /// Origins allowed by CORS (comma-separated; none by default).
    #[arg(long = "cors-origins", env = "SAMSKAB_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Seconds a request may take to arrive and be answered before it gets 408.
    #[arg(long = "request-timeout-secs", env = "SAMSKAB_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,
    /// Milliseconds a caller's scope (a pilot's chapter and status, a coordinator's
    /// chapter) is cached before it is read again; 0 reads it on every request.
    #[arg(long = "scope-cache-ms", env = "SAMSKAB_SCOPE_CACHE_MS", default_value_t = 2000)]
    pub scope_cache_ms: u64,
    /// Samskab's own signed tokens (`samskab token`): `on` or `off`. For the embedded
    /// default, development and tests. Default: on, unless an OpenID Connect issuer is
    /// configured.
    #[arg(long = "auth-local-tokens", env = "SAMSKAB_AUTH_LOCAL_TOKENS", value_parser = ["on", "off"])]
    pub local_tokens: Option<String>,
    /// Sign-in at OpenID Connect providers.
    #[command(flatten)]
    pub oidc: oidc::OidcConfig,
    /// Webhook delivery.
    #[command(flatten)]
    pub webhooks: webhooks::WebhookConfig,
    /// The reverse proxies in front of the gateway (comma-separated addresses or CIDR
    /// ranges, e.g. `10.0.0.0/8`). Only from them is an incoming `traceparent`'s sampled
    /// flag taken; anyone else's trace id is continued, and whether it is recorded is this
    /// gateway's sampler's decision. None by default.
    #[arg(long = "trusted-proxies", env = "SAMSKAB_TRUSTED_PROXIES", value_delimiter = ',', value_parser = http::parse_proxy)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Seconds a client may take to send a request's headers before its connection is
    /// closed (a slow client holds nothing for long).
    #[arg(long = "header-read-timeout-secs", env = "SAMSKAB_HEADER_READ_TIMEOUT_SECS", default_value_t = 10)]
    pub header_read_timeout_secs: u64,
    /// Connections the REST listener keeps open at once; more wait until one closes.
    #[arg(long = "max-connections", env = "SAMSKAB_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
    /// Requests per minute per caller to the expensive reads (statistics as of a past day,
    /// the network's statistics), on top of the general limit.
    #[arg(
        long = "expensive-rate-limit-per-minute",
        env = "SAMSKAB_EXPENSIVE_RATE_LIMIT_PER_MINUTE",
        default_value_t = 60
    )]
    pub expensive_rate_limit_per_minute: u32,
    /// Serve the operations endpoints (`/healthz`, `/readyz`, `/metrics`) on this address
    /// instead of the REST listener (unset: on the REST listener).
    #[arg(long = "ops-listen", env = "SAMSKAB_OPS_LISTEN")]
    pub ops_listen: Option<SocketAddr>,
    /// Event streams (`/v1/events/stream`) one caller may hold open at once; more get 429.
    #[arg(long = "streams-per-caller", env = "SAMSKAB_STREAMS_PER_CALLER", default_value_t = 10)]
    pub streams_per_caller: usize,
    /// Event streams the gateway holds open in all; more get 429.
    #[arg(long = "streams-total", env = "SAMSKAB_STREAMS_TOTAL", default_value_t = 1000)]
    pub streams_total: usize,
    /// Seconds an event stream stays open at most (its client then reconnects with
    /// `Last-Event-ID`); a client's shorter `max_seconds` wins.
    #[arg(long = "stream-max-seconds", env = "SAMSKAB_STREAM_MAX_SECONDS", default_value_t = 3600)]
    pub stream_max_seconds: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            rate_limit_per_minute: 6000,
            cors_origins: Vec::new(),
            request_timeout_secs: 30,
            scope_cache_ms: 2000,
            local_tokens: None,
            oidc: oidc::OidcConfig::default(),
            webhooks: webhooks::WebhookConfig::default(),
            trusted_proxies: Vec::new(),
            header_read_timeout_secs: 10,
            max_connections: 4096,
            expensive_rate_limit_per_minute: 60,
            ops_listen: None,
            streams_per_caller: 10,
            streams_total: 1000,
            stream_max_seconds: 3600,
        }
    }
}

impl HttpConfig {
    /// Whether Samskab's own tokens are accepted: as configured, else only where no OpenID
    /// Connect issuer is.
    pub fn local_tokens_on(&self) -> bool {
        match self.local_tokens.as_deref() {
            Some(v) => v == "on",
            None => self.oidc.issuers.trim().is_empty(),
        }
    }
}

/// Opens the gateway's own database (idempotency records) and builds its state.
pub async fn state(
    store: EventStore,
    keys_store: KeyStore,
    keys: Keys,
    clients: Clients,
    http: &HttpConfig,
) -> Result<AppState, eventlog::Error> {
    // reqwest is linked with rustls and no default provider: install one before any
    // client of this process is built (webhook deliveries, and whoever embeds the gateway).
    let _ = rustls::crypto::ring::default_provider().install_default();
    migrate(&store).await?;
    let feed = feed::FeedReader::new(&clients);
    let stop = servicekit::server::Stop::new();
    let grants: Arc<caller::GrantCache> = Arc::default();
    let credentials = caller::Credentials::new(clients.clone(), grants.clone());
    let webhooks = webhooks::Webhooks::new(
        store.clone(),
        keys_store.clone(),
        feed.clone(),
        http.webhooks.clone(),
        credentials.clone(),
    );
    webhooks.spawn(stop.clone());
    let calendar_tokens = calendar_tokens::CalendarTokens::new(store.clone());
    let limiter = http::Limiter::new(http.rate_limit_per_minute);
    let expensive = http::Limiter::new(http.expensive_rate_limit_per_minute);
    // Buckets that are full again are forgotten every minute: the limiters' memory holds
    // only the callers of the last minute.
    let (pruned, stopping) = ([limiter.clone(), expensive.clone()], stop.stopped());
    tokio::spawn(async move {
        let prune = async {
            loop {
                tokio::time::sleep(Duration::from_secs(60)).await;
                pruned.iter().for_each(|l| l.prune());
            }
        };
        tokio::select! { () = prune => {}, () = stopping => {} }
    });
    let keystore = keys_store.clone();
    let idempotency = idempotency::Idempotency::new(store, keys_store);
    idempotency.release_orphans().await?;
    let expiring = idempotency.clone();
    tokio::spawn(async move {
        loop {
            if let Err(e) = expiring.expire().await {
                tracing::warn!(error = %e, "could not expire idempotency keys");
            }
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    });
    Ok(AppState(Arc::new(Shared {
        ops: Arc::new(ops::Ops::new(clients.clone())),
        clients,
        keys: Arc::new(keys),
        local_tokens: http.local_tokens_on(),
        oidc: Arc::new(
            oidc::Verifier::new(&http.oidc)
                .map_err(|e| eventlog::Error::Handler(format!("SAMSKAB_OIDC_ISSUERS: {e}")))?,
        ),
        grants,
        credentials,
        redemption_failures: Arc::default(),
        api_keys: Arc::default(),
        keystore,
        scopes: Arc::new(caller::ScopeCache::new(Duration::from_millis(http.scope_cache_ms))),
        idempotency,
        calendar_tokens,
        limiter: limiter.clone(),
        expensive: expensive.clone(),
        proxies: http::TrustedProxies(Arc::new(http.trusted_proxies.clone())),
        streams: streams::Streams::new(
            feed.clone(),
            streams::Limits { per_caller: http.streams_per_caller.max(1), total: http.streams_total.max(1) },
        ),
        stream_max_seconds: http.stream_max_seconds,
        feed,
        webhooks,
        stop,
    })))
}

/// Applies the gateway's migrations (idempotency records).
pub async fn migrate(store: &EventStore) -> Result<(), eventlog::Error> {
    store.migrate("gateway_migrations", sqlx::migrate!("./migrations"), sqlx::migrate!("./migrations")).await
}

/// The whole HTTP application.
pub fn app(state: AppState, cfg: &HttpConfig) -> Router {
    let (api, doc) = routes::api().split_for_parts();
    let doc = openapi::finish(doc);
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(cfg.cors_origins.iter().filter_map(|o| o.parse().ok())))
        .allow_methods([
            axum::http::Method::GET,
            axum::http::Method::POST,
            axum::http::Method::PUT,
            axum::http::Method::DELETE,
        ])
        .allow_headers([
            axum::http::header::AUTHORIZATION,
            axum::http::header::CONTENT_TYPE,
            axum::http::header::IF_MATCH,
            axum::http::header::ACCEPT_LANGUAGE,
            axum::http::HeaderName::from_static("idempotency-key"),
            axum::http::HeaderName::from_static(caller::ROLE_GRANT_HEADER),
        ])
        .expose_headers([
            axum::http::header::ETAG,
            axum::http::header::LOCATION,
            axum::http::HeaderName::from_static("x-trace-id"),
            axum::http::HeaderName::from_static("ratelimit-limit"),
            axum::http::HeaderName::from_static("ratelimit-remaining"),
            axum::http::HeaderName::from_static("ratelimit-reset"),
        ]);
    let ops = match cfg.ops_listen {
        None => ops::probes(),
        Some(_) => Router::new(),
    };
    Router::new()
        .merge(api)
        .merge(ops::docs(doc))
        .merge(ops)
        .layer(axum::middleware::from_fn_with_state(state.clone(), idempotency::middleware))
        .layer(axum::middleware::from_fn_with_state(state.clone(), http::rate_limit))
        .layer(DefaultBodyLimit::max(extract::MAX_BODY))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(cfg.request_timeout_secs),
        ))
        .layer(cors)
        .layer(axum::middleware::from_fn_with_state(
            http::TrustedProxies(Arc::new(cfg.trusted_proxies.clone())),
            http::trace_and_language,
        ))
        .with_state(state)
}

/// The operations endpoints alone, for `SAMSKAB_OPS_LISTEN`.
pub fn ops_app(state: AppState) -> Router {
    ops::probes().with_state(state)
}

/// Serves `app` on `listener` and, when `cfg.ops_listen` is set, the operations endpoints
/// there, until `shutdown`; then triggers `state.stop` (event streams and the webhook
/// dispatcher end) and drains.
pub async fn serve_http(
    listener: tokio::net::TcpListener,
    state: AppState,
    cfg: &HttpConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), std::io::Error> {
    let limits = serve::Limits::of(cfg);
    let stop = state.stop.clone();
    let ops = match cfg.ops_listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            tracing::info!(listen = %addr, "operations endpoints serving");
            let stopped = stop.stopped();
            Some(tokio::spawn(serve::serve(listener, ops_app(state.clone()), limits, stopped)))
        }
        None => None,
    };
    let app = app(state, cfg);
    serve::serve(listener, app, limits, async move {
        shutdown.await;
        stop.trigger();
    })
    .await?;
    if let Some(ops) = ops {
        ops.await.map_err(std::io::Error::other)??;
    }
    Ok(())
}

/// How the gateway binary is configured.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address to serve HTTP on.
    #[arg(long, env = "SAMSKAB_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The gateway's database (idempotency records): `sqlite://path` or `postgres://...`.
    #[arg(
        long = "database-url",
        env = "SAMSKAB_GATEWAY_DATABASE_URL",
        default_value = "sqlite://samskab-data/gateway.db"
    )]
    pub database_url: String,
    /// The booking service.
    #[arg(long = "booking-url", env = "SAMSKAB_BOOKING_URL", default_value = "http://127.0.0.1:50051")]
    pub booking_url: String,
    /// The care-home service.
    #[arg(long = "carehome-url", env = "SAMSKAB_CAREHOME_URL", default_value = "http://127.0.0.1:50053")]
    pub carehome_url: String,
    /// The volunteer service.
    #[arg(long = "volunteer-url", env = "SAMSKAB_VOLUNTEER_URL", default_value = "http://127.0.0.1:50052")]
    pub volunteer_url: String,
    /// The notify service (none: `/v1/me/notifications` answers 503).
    #[arg(long = "notify-url", env = "SAMSKAB_NOTIFY_URL")]
    pub notify_url: Option<String>,
    /// HTTP tuning.
    #[command(flatten)]
    pub http: HttpConfig,
    /// Master key, erasure ledger, data directory (also where a generated JWT secret lives).
    #[command(flatten)]
    pub keys: servicekit::bootstrap::KeyConfig,
    /// Mutual TLS with the services.
    #[command(flatten)]
    pub tls: servicekit::tls::TlsConfig,
}

/// Errors starting the gateway.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] eventlog::Error),
    /// The key store failed.
    #[error(transparent)]
    Keys(#[from] keystore::Error),
    /// A service address is malformed.
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
    /// The token keys are unusable.
    #[error("token keys: {0}")]
    Tokens(String),
    /// Binding or serving failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Runs the gateway until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let store = EventStore::connect(&config.database_url).await?;
    let keys_store = servicekit::bootstrap::key_store(&store, &config.keys).await?;
    let tokens = Keys::load(&config.keys.data_dir, config.keys.generate).map_err(StartError::Tokens)?;
    let urls = ServiceUrls {
        booking: config.booking_url.clone(),
        carehome: config.carehome_url.clone(),
        volunteer: config.volunteer_url.clone(),
        notify: config.notify_url.clone(),
    };
    let clients = Clients::connect_with(&urls, &config.tls).map_err(std::io::Error::other)?;
    let state = state(store, keys_store, tokens, clients, &config.http).await?;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    tracing::info!(listen = %config.listen, "gateway serving");
    serve_http(listener, state, &config.http, shutdown).await?;
    Ok(())
}

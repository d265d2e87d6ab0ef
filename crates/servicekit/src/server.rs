//! Serving a service: its own routes plus the event feed, the standard gRPC health and
//! reflection services, a span per call that continues the caller's W3C trace, and a
//! clean stop on shutdown.

use std::future::Future;
use std::time::Duration;

use opentelemetry::trace::TraceContextExt;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic::transport::server::Connected;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The health reporter of a running server, to flip services to NOT_SERVING when their
/// store fails.
#[derive(Clone)]
pub struct Health {
    reporter: HealthReporter,
    names: Vec<&'static str>,
}

impl Health {
    /// Marks every service of the server as serving or not.
    pub async fn set(&self, serving: bool) {
        let status = if serving { ServingStatus::Serving } else { ServingStatus::NotServing };
        for n in &self.names {
            self.reporter.set_service_status(*n, status).await;
        }
        self.reporter.set_service_status("", status).await;
    }
}

/// Reads the caller's `traceparent` (a gRPC metadata entry is an HTTP/2 header).
fn parent_context(req: &http::Request<()>) -> opentelemetry::Context {
    struct Headers<'a>(&'a http::HeaderMap);
    impl opentelemetry::propagation::Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(|k| k.as_str()).collect()
        }
    }
    opentelemetry::global::get_text_map_propagator(|p| p.extract(&Headers(req.headers())))
}

fn call_span(req: &http::Request<()>) -> tracing::Span {
    // Named after the method so traces read as `/samskab.booking.v1.BookingService/BookRide`.
    let span = tracing::info_span!(
        "grpc",
        otel.name = %req.uri().path(),
        rpc = %req.uri().path(),
        rpc.system = "grpc",
        rpc.grpc.status_code = tracing::field::Empty,
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
        otel.kind = "server"
    );
    let _ = span.set_parent(parent_context(req));
    // For log lines (JSON logs list their spans' fields).
    let sc = span.context().span().span_context().clone();
    if sc.is_valid() {
        span.record("trace_id", sc.trace_id().to_string().as_str());
        span.record("span_id", sc.span_id().to_string().as_str());
    }
    span
}

/// Tells long-lived streams (event feed subscriptions) that their server is stopping, so
/// that they end and the server can drain.
#[derive(Clone, Debug)]
pub struct Stop(std::sync::Arc<tokio::sync::watch::Sender<bool>>);

impl Default for Stop {
    fn default() -> Self {
        Stop(std::sync::Arc::new(tokio::sync::watch::channel(false).0))
    }
}

impl Stop {
    /// A stop not yet triggered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Triggers it.
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    /// Resolves once triggered.
    pub fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.0.subscribe();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }
}

/// A service's routes and the stop its streams listen to.
pub struct ServiceRoutes {
    /// The gRPC services.
    pub routes: Routes,
    /// Triggered when the server stops.
    pub stop: Stop,
    /// What the health service reports, checked every [`PROBE_EVERY`]; without one the
    /// service is always SERVING.
    pub probe: Option<Probe>,
    /// Whether the server offers gRPC reflection (off unless [`GrpcConfig::reflection`]).
    pub reflection: bool,
    /// Mutual TLS: the server's identity and the CA its callers' certificates must be of,
    /// kept current with their files ([`crate::tls::reload`]); `None`: plain TCP (or
    /// in-process).
    pub tls: Option<std::sync::Arc<crate::tls::reload::Reloading>>,
}

/// Settings of a component's gRPC server.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct GrpcConfig {
    /// Offer gRPC server reflection (v1 and v1alpha), listing only the services this server
    /// serves, for tools such as grpcurl. Off by default: it tells anyone who reaches the
    /// port what the API is.
    #[arg(long = "grpc-reflection", env = "SAMSKAB_GRPC_REFLECTION")]
    pub reflection: bool,
}

impl ServiceRoutes {
    /// The same routes, with reflection on or off.
    pub fn with_reflection(mut self, on: bool) -> Self {
        self.reflection = on;
        self
    }

    /// The same routes over mutual TLS when `tls` is configured; otherwise (only with
    /// `--insecure-plaintext`, else an error) as they are, with a warning that any process
    /// reaching the port may call them.
    pub fn secured(self, tls: &crate::tls::TlsConfig) -> std::io::Result<Self> {
        match tls.reloading().map_err(std::io::Error::other)? {
            Some(t) => Ok(self.with_tls(t)),
            None => {
                tracing::warn!(
                    "--insecure-plaintext: serving gRPC without TLS, any process that reaches this \
                     port may call it (set SAMSKAB_TLS_CERT, SAMSKAB_TLS_KEY and SAMSKAB_TLS_CA)"
                );
                Ok(self)
            }
        }
    }

    /// The same routes, served over mutual TLS.
    pub fn with_tls(mut self, tls: std::sync::Arc<crate::tls::reload::Reloading>) -> Self {
        self.tls = Some(tls);
        self
    }
}

/// What a service's health depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// Its store answers.
    pub store: bool,
    /// Its subscriptions to other services' feeds are connected (None: it has none).
    pub subscriptions: Option<bool>,
}

/// Checks a service's readiness.
pub type Probe = std::sync::Arc<dyn Fn() -> futures_util::future::BoxFuture<'static, Readiness> + Send + Sync>;

/// How often the health service re-checks a service's probe.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);

/// The health entry that reports a service's subscriptions: a service whose peer is down
/// keeps serving from its read models (its overall status stays SERVING), while this entry
/// says NOT_SERVING until the feeds are connected again.
pub const SUBSCRIPTIONS: &str = "samskab.subscriptions";

/// The standard health service.
const HEALTH: &str = "grpc.health.v1.Health";

/// Runs a service's background task (a projection, a follower's worker, a decider) for
/// as long as the process lives: when it fails it is logged and started again a second
/// later.
pub fn forever<F, Fut>(what: &'static str, f: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    tokio::spawn(async move {
        loop {
            if let Err(e) = f().await {
                tracing::error!(task = what, error = %e, "background task failed; restarting");
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    });
}

/// A probe of a store alone.
pub fn store_probe(store: eventlog::EventStore) -> Probe {
    std::sync::Arc::new(move || {
        let store = store.clone();
        Box::pin(async move { Readiness { store: store.head().await.is_ok(), subscriptions: None } })
    })
}

/// Ready while `store` answers; the subscriptions entry says whether every feed follower
/// in `feeds` is connected (a service that follows others' feeds: booking, notify).
pub fn followers_probe(
    store: eventlog::EventStore,
    feeds: Vec<tokio::sync::watch::Receiver<crate::remote::FollowStatus>>,
) -> Probe {
    std::sync::Arc::new(move || {
        let (store, connected) = (store.clone(), feeds.iter().all(|f| f.borrow().connected));
        Box::pin(async move { Readiness { store: store.head().await.is_ok(), subscriptions: Some(connected) } })
    })
}

/// Serves `routes` (the service's own) plus health and reflection on `listener` until
/// `shutdown` resolves; feed subscriptions are ended and in-flight calls finish first
/// (at most [`DRAIN`]). `names` are the fully qualified service names reported as SERVING.
pub async fn serve(
    listener: TcpListener,
    routes: ServiceRoutes,
    names: &[&'static str],
    shutdown: impl Future<Output = ()> + Send,
) -> Result<Health, tonic::transport::Error> {
    serve_incoming(incoming(listener), routes, names, shutdown).await
}

/// [`serve`] on any stream of connections (TCP, in-process).
pub async fn serve_incoming<IO>(
    incoming: impl futures_util::Stream<Item = std::io::Result<IO>> + Send + 'static,
    routes: ServiceRoutes,
    names: &[&'static str],
    shutdown: impl Future<Output = ()> + Send,
) -> Result<Health, tonic::transport::Error>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Connected + Unpin + Send + 'static,
{
    crate::clock::warn_if_movable();
    let ServiceRoutes { routes, stop, probe, reflection, tls } = routes;
    let (reporter, health_service) = tonic_health::server::health_reporter();
    let health = Health { reporter, names: names.to_vec() };
    health.set(true).await;
    if let Some(probe) = probe {
        let (health, stopped) = (health.clone(), stop.stopped());
        tokio::spawn(async move {
            let watch = async {
                let mut last = None;
                loop {
                    let r = probe().await;
                    if last != Some(r) {
                        health.set(r.store).await;
                        if let Some(sub) = r.subscriptions {
                            let status = if sub { ServingStatus::Serving } else { ServingStatus::NotServing };
                            health.reporter.set_service_status(SUBSCRIPTIONS, status).await;
                        }
                        if !r.store {
                            tracing::warn!("the store does not answer: reporting NOT_SERVING");
                        }
                        last = Some(r);
                    }
                    tokio::time::sleep(PROBE_EVERY).await;
                }
            };
            tokio::select! { _ = watch => {}, _ = stopped => {} }
        });
    }
    let shutdown = async move {
        shutdown.await;
        stop.trigger();
    };
    let mut routes = routes.add_service(health_service);
    if reflection {
        let builder = || {
            let mut b = tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(samskab_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .with_service_name(HEALTH);
            for name in names {
                b = b.with_service_name(*name);
            }
            b
        };
        let v1 = builder().build_v1().expect("the descriptor sets are generated by our own build");
        let v1alpha = builder().build_v1alpha().expect("the descriptor sets are generated by our own build");
        routes = routes.add_service(v1).add_service(v1alpha);
    }
    // Unary calls finish within the drain time; feed subscriptions never finish on their
    // own, so after the drain time the remaining connections are dropped.
    let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        let _ = stopping.send(());
    };
    let router = Server::builder()
        .trace_fn(call_span)
        .layer(tower::layer::layer_fn(crate::rpc_metrics::RpcMetrics::new))
        .layer(tower::layer::layer_fn(crate::policy::Policy::new))
        .http2_keepalive_interval(Some(Duration::from_secs(20)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .add_routes(routes);
    // Over TLS the handshake is ours (tonic's reads its certificate once): each new
    // connection gets the certificate the files hold now.
    let server = match tls {
        Some(tls) => futures_util::future::Either::Left(
            router.serve_with_incoming_shutdown(crate::tls::reload::accept(incoming, tls), signal),
        ),
        None => futures_util::future::Either::Right(router.serve_with_incoming_shutdown(incoming, signal)),
    };
    tokio::select! {
        r = server => r?,
        _ = async {
            if stopped.await.is_ok() {
                tokio::time::sleep(DRAIN).await;
            } else {
                std::future::pending::<()>().await;
            }
        } => tracing::debug!("drain time over; dropping open streams"),
    }
    Ok(health)
}

/// Accepted connections with Nagle's algorithm off: small gRPC frames otherwise wait for
/// the peer's delayed ACK (about 40 ms per call).
fn incoming(listener: TcpListener) -> impl futures_util::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use futures_util::StreamExt;
    TcpListenerStream::new(listener).map(|s| {
        let s = s?;
        s.set_nodelay(true)?;
        Ok(s)
    })
}

/// How long a stopping server lets in-flight calls finish.
pub const DRAIN: Duration = Duration::from_secs(2);

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// A server running in a task of this process (the all-in-one binary, tests).
pub struct Spawned {
    /// Where it listens (unspecified for an in-process server).
    pub addr: std::net::SocketAddr,
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Spawned {
    /// The URL of the server: `http://host:port`, or `inproc://...` (see [`crate::inproc`];
    /// callers name themselves with [`crate::inproc::url_for`]).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Stops accepting calls, lets in-flight calls finish, and waits for the server to end.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Serves `routes` on `addr` (port 0: any free port) in a task.
pub async fn spawn(
    addr: std::net::SocketAddr,
    routes: ServiceRoutes,
    names: &'static [&'static str],
) -> std::io::Result<Spawned> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        if let Err(e) = serve(listener, routes, names, shutdown).await {
            tracing::error!(error = %e, %addr, "server failed");
        }
    });
    Ok(Spawned { addr, url: format!("http://{addr}"), stop: Some(stop), task })
}

/// Serves `routes` in a task, reachable only from this process ([`crate::inproc`]): how the
/// all-in-one's parts talk, with no port another local process could reach.
pub fn spawn_in_process(component: &str, routes: ServiceRoutes, names: &'static [&'static str]) -> Spawned {
    let (url, incoming) = crate::inproc::listen(component);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let name = url.clone();
    let task = tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        if let Err(e) = serve_incoming(incoming, routes, names, shutdown).await {
            tracing::error!(error = %e, server = %name, "server failed");
        }
    });
    let addr = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
    Spawned { addr, url, stop: Some(stop), task }
}

//! Operations endpoints, without a token: `/healthz` (the process is up), `/readyz` (every
//! service answers its gRPC health check: store reachable, feeds it follows connected), `/metrics` (Prometheus text of every instrument
//! in the process), `/openapi.json` and `/docs` (interactive documentation served from the
//! binary, no network needed).

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use utoipa::openapi::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::AppState;
use crate::clients::Clients;

/// How long one `/readyz` answer is reused: however often probes and strangers ask, the
/// services are asked at most once per this.
pub const READY_CACHE: Duration = Duration::from_secs(1);

/// What the services answered, and when.
type Answer = (std::time::Instant, Vec<(&'static str, bool)>);

/// Health checks of the services.
pub struct Ops {
    health: Vec<(&'static str, HealthClient<tonic::transport::Channel>)>,
    /// The last answer; held while asking, so that concurrent callers wait for one check
    /// instead of each making their own.
    last: tokio::sync::Mutex<Option<Answer>>,
}

impl Ops {
    /// Over the services' channels, notify's too when this gateway has one (without it,
    /// `/readyz` asks the other three, as before notify existed).
    pub fn new(clients: Clients) -> Self {
        let mut health: Vec<_> = clients.channels().into_iter().map(|(n, c)| (n, HealthClient::new(c))).collect();
        health.extend(clients.notify_channel().map(|c| ("notify", HealthClient::new(c))));
        Ops { health, last: tokio::sync::Mutex::new(None) }
    }

    /// Every service's readiness, asked at most once per [`READY_CACHE`].
    async fn ready(&self) -> Vec<(&'static str, bool)> {
        let mut last = self.last.lock().await;
        if let Some((at, answer)) = &*last
            && at.elapsed() < READY_CACHE
        {
            return answer.clone();
        }
        let answer = self.ask().await;
        *last = Some((std::time::Instant::now(), answer.clone()));
        answer
    }

    async fn ask(&self) -> Vec<(&'static str, bool)> {
        let mut out = Vec::new();
        for (name, client) in &self.health {
            let mut c = client.clone();
            let mut req = tonic::Request::new(HealthCheckRequest { service: String::new() });
            req.set_timeout(Duration::from_secs(2));
            let mut ok = c.check(req).await.is_ok_and(|r| r.into_inner().status == 1);
            // A service that follows other services' feeds reports them under their own
            // entry: ready only once they are connected (an unknown entry: none to follow).
            let mut req =
                tonic::Request::new(HealthCheckRequest { service: servicekit::server::SUBSCRIPTIONS.to_owned() });
            req.set_timeout(Duration::from_secs(2));
            match c.check(req).await {
                Ok(r) => ok &= r.into_inner().status == 1,
                Err(s) if s.code() == tonic::Code::NotFound => {}
                Err(_) => ok = false,
            }
            out.push((*name, ok));
        }
        out
    }
}

async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let checks = state.ops.ready().await;
    let ready = checks.iter().all(|(_, ok)| *ok);
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "not ready" },
        "services": checks.iter().map(|(n, ok)| (n.to_string(), serde_json::Value::Bool(*ok))).collect::<serde_json::Map<_, _>>(),
    });
    (if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, Json(body))
}

async fn metrics() -> impl IntoResponse {
    let text = tokio::task::spawn_blocking(|| telemetry::metrics::metrics().render()).await.unwrap_or_default();
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text)
}

/// The operations routes: probes and metrics (on the REST listener, or on
/// `SAMSKAB_OPS_LISTEN`).
pub fn probes() -> Router<AppState> {
    Router::new()
        .route("/healthz", axum::routing::get(healthz))
        .route("/readyz", axum::routing::get(readyz))
        .route("/metrics", axum::routing::get(metrics))
}

/// The documentation of `doc` (always on the REST listener).
pub fn docs(doc: OpenApi) -> Router<AppState> {
    let json = doc.clone();
    Router::new()
        .route("/openapi.json", axum::routing::get(move || async move { Json(json) }))
        .merge(SwaggerUi::new("/docs").url("/docs/openapi.json", doc))
}

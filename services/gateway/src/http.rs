//! Cross-cutting HTTP behaviour: one span per request continuing the caller's W3C trace
//! and an `x-trace-id` on every response; problems re-rendered in the caller's language;
//! bare errors from the stack (unknown route, 405, timeout, body limit) turned into
//! problem+json; a per-token rate limit with `RateLimit-*` headers and 429 + `Retry-After`.

use std::num::NonZeroU32;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use opentelemetry::trace::TraceContextExt;
use servicekit::ErrorCode;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::AppState;
use crate::caller::Caller;
use crate::problem::{ApiError, Lang};

/// A per-key token bucket.
pub struct Limiter {
    limiter: RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>,
    per_minute: u32,
}

impl Limiter {
    /// `per_minute` requests per minute per token, all of them allowed as a burst.
    pub fn new(per_minute: u32) -> Arc<Limiter> {
        let n = NonZeroU32::new(per_minute.max(1)).expect("non-zero");
        let limiter = RateLimiter::keyed(Quota::per_minute(n)).with_middleware::<StateInformationMiddleware>();
        Arc::new(Limiter { limiter, per_minute: n.get() })
    }

    /// Remaining requests and seconds until the bucket is full again, or seconds to wait.
    fn check(&self, key: &str) -> Result<(u32, u64), u64> {
        match self.limiter.check_key(&key.to_owned()) {
            Ok(snap) => {
                let remaining = snap.remaining_burst_capacity();
                let used = self.per_minute - remaining;
                Ok((remaining, (u64::from(used) * 60).div_ceil(u64::from(self.per_minute))))
            }
            Err(not_until) => Err(not_until.wait_time_from(DefaultClock::default().now()).as_secs().max(1)),
        }
    }
}

fn extract_parent(headers: &HeaderMap) -> opentelemetry::Context {
    struct H<'a>(&'a HeaderMap);
    impl opentelemetry::propagation::Extractor for H<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(|k| k.as_str()).collect()
        }
    }
    opentelemetry::global::get_text_map_propagator(|p| p.extract(&H(headers)))
}

/// The request's W3C trace id: the span's, or, when no tracing subscriber is installed
/// (an embedding without telemetry), the caller's `traceparent` or a fresh random one, so
/// that `x-trace-id` is never the invalid all-zero id.
fn trace_id_of(span: &tracing::Span, headers: &HeaderMap) -> String {
    let sc = span.context().span().span_context().clone();
    if sc.is_valid() {
        return sc.trace_id().to_string();
    }
    let incoming = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split('-').nth(1))
        .filter(|t| t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()) && t.bytes().any(|b| b != b'0'));
    match incoming {
        Some(t) => t.to_ascii_lowercase(),
        None => format!("{:032x}", rand::random::<u128>() | 1),
    }
}

/// The gateway's request instruments (made after the meter provider is installed).
struct HttpMetrics {
    requests: opentelemetry::metrics::Counter<u64>,
    duration: opentelemetry::metrics::Histogram<f64>,
}

fn http_metrics() -> &'static HttpMetrics {
    static M: std::sync::OnceLock<HttpMetrics> = std::sync::OnceLock::new();
    M.get_or_init(|| {
        telemetry::metrics::metrics();
        let meter = opentelemetry::global::meter("samskab-gateway");
        HttpMetrics {
            requests: meter
                .u64_counter("http.server.requests")
                .with_description("REST requests answered, by route, method and status")
                .build(),
            duration: meter
                .f64_histogram("http.server.request.duration")
                .with_unit("s")
                .with_description("Time to answer a REST request, by route, method and status")
                .with_boundaries(telemetry::metrics::LATENCY_BOUNDS.to_vec())
                .build(),
        }
    })
}

/// The outermost layer: a span per request (route, method, status; never bodies),
/// `x-trace-id` on the response, and problems in the caller's language.
pub async fn trace_and_language(req: Request, next: Next) -> Response {
    let route =
        req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned()).unwrap_or_else(|| "unmatched".into());
    let span = tracing::info_span!(
        "http",
        otel.name = %format_args!("{} {route}", req.method()),
        method = %req.method(),
        route = %route,
        status = tracing::field::Empty,
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
        otel.kind = "server"
    );
    let _ = span.set_parent(extract_parent(req.headers()));
    let lang = Lang::from_headers(req.headers());
    let trace_id = trace_id_of(&span, req.headers());
    // For log lines (JSON logs list their spans' fields): the trace and this span.
    span.record("trace_id", trace_id.as_str());
    span.record("span_id", span.context().span().span_context().span_id().to_string().as_str());
    let method = req.method().to_string();
    let started = std::time::Instant::now();
    let resp = next.run(req).instrument(span.clone()).await;
    span.record("status", resp.status().as_u16());
    // Route templates only (never concrete ids), so the label set stays small.
    let attrs = [
        opentelemetry::KeyValue::new("route", route),
        opentelemetry::KeyValue::new("method", method),
        opentelemetry::KeyValue::new("status", i64::from(resp.status().as_u16())),
    ];
    let m = http_metrics();
    m.requests.add(1, &attrs);
    m.duration.record(started.elapsed().as_secs_f64(), &attrs);
    // The access log: route template and status only (never the query string or a body).
    tracing::info!(parent: &span, status = resp.status().as_u16(), ms = started.elapsed().as_millis() as u64, "answered");
    let mut resp = problem_for_bare_errors(resp);
    if lang == Lang::Da
        && let Some(e) = resp.extensions().get::<ApiError>().cloned()
    {
        let kept: Vec<(header::HeaderName, HeaderValue)> = resp
            .headers()
            .iter()
            .filter(|(k, _)| {
                k.as_str().starts_with("ratelimit") || *k == header::ACCESS_CONTROL_ALLOW_ORIGIN || *k == header::VARY
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        resp = e.into_response_in(Lang::Da);
        resp.headers_mut().extend(kept);
    }
    if let Ok(v) = HeaderValue::from_str(&trace_id) {
        resp.headers_mut().insert("x-trace-id", v);
    }
    resp
}

/// Errors produced by the HTTP stack rather than a handler get a problem body too.
fn problem_for_bare_errors(resp: Response) -> Response {
    let status = resp.status();
    let is_problem =
        resp.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return resp;
    }
    let code = match status {
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::REQUEST_TIMEOUT => ErrorCode::Timeout,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::TooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
        StatusCode::UNAUTHORIZED => ErrorCode::Unauthenticated,
        StatusCode::TOO_MANY_REQUESTS => ErrorCode::RateLimited,
        StatusCode::SERVICE_UNAVAILABLE => ErrorCode::Unavailable,
        s if s.is_server_error() => ErrorCode::Internal,
        _ => ErrorCode::Malformed,
    };
    let mut e = ApiError::new(code);
    if status == StatusCode::METHOD_NOT_ALLOWED {
        e = e.detail("this method is not allowed on this resource");
    }
    let mut out = e.clone().into_response();
    // Keep the stack's own status (405 stays 405).
    *out.status_mut() = status;
    let mut body = e.body(Lang::En);
    body.status = status.as_u16();
    *out.body_mut() = Body::from(serde_json::to_vec(&body).unwrap_or_default());
    for (k, v) in resp.headers() {
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
            out.headers_mut().insert(k.clone(), v.clone());
        }
    }
    out
}

/// The per-token rate limit. Requests without a valid token are left to the handler (401).
pub async fn rate_limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    // Operations endpoints (probes, scrapes, docs) are never limited: a kubelet or a
    // Prometheus server polling them must not be told to slow down.
    if !req.uri().path().starts_with("/v1/") {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let key = match Caller::from_request_parts(&mut parts, &state).await {
        Ok(caller) => caller.rate_key(),
        // Without a valid token, by address (tests in process have none).
        Err(_) => parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map_or_else(|| "anonymous".to_owned(), |c| format!("ip:{}", c.0.ip())),
    };
    let req = Request::from_parts(parts, body);
    let limit = state.limiter.per_minute;
    match state.limiter.check(&key) {
        Ok((remaining, reset)) => {
            let mut resp = next.run(req).await;
            let h = resp.headers_mut();
            h.insert("ratelimit-limit", HeaderValue::from(limit));
            h.insert("ratelimit-remaining", HeaderValue::from(remaining));
            h.insert("ratelimit-reset", HeaderValue::from(reset));
            resp
        }
        Err(wait) => {
            let mut e = ApiError::new(ErrorCode::RateLimited);
            e.retry_after = Some(wait);
            let mut resp = e.into_response();
            let h = resp.headers_mut();
            h.insert("ratelimit-limit", HeaderValue::from(limit));
            h.insert("ratelimit-remaining", HeaderValue::from(0u32));
            h.insert("ratelimit-reset", HeaderValue::from(wait));
            resp
        }
    }
}

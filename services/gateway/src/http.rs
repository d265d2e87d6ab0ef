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
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceId};
use servicekit::ErrorCode;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::AppState;
use crate::caller::Caller;
use crate::problem::{ApiError, Lang};

/// Keys a limiter remembers before anonymous callers share one bucket: a flood of
/// addresses cannot grow its memory without bound (pruned every minute).
pub const MAX_LIMITER_KEYS: usize = 100_000;

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

    /// Forgets the keys whose bucket is full again (nothing to remember); run every minute.
    pub fn prune(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Keys remembered.
    pub fn len(&self) -> usize {
        self.limiter.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.limiter.is_empty()
    }

    /// Remaining requests and seconds until the bucket is full again, or seconds to wait.
    fn check(&self, key: &str) -> Result<(u32, u64), u64> {
        // Past the bound, anonymous callers share one bucket until the next pruning.
        let key = if key.starts_with("ip:") && self.limiter.len() >= MAX_LIMITER_KEYS { "ip:overflow" } else { key };
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

/// The proxies whose word the gateway takes (`SAMSKAB_TRUSTED_PROXIES`).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Arc<Vec<ipnet::IpNet>>);

impl TrustedProxies {
    /// Whether `peer` (the connection's address) is one of them.
    pub fn trusts(&self, peer: Option<std::net::IpAddr>) -> bool {
        peer.is_some_and(|ip| self.0.iter().any(|net| net.contains(&ip)))
    }
}

/// An address (a proxy of its own) or a CIDR range.
pub fn parse_proxy(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{s:?} is neither an IP address nor a CIDR range"))
}

/// The caller's trace context. From a trusted proxy as it is; from anyone else the trace
/// id is continued but the sampled flag is this process's sampler's decision (`sampled`),
/// so that the internet cannot make every request of its own recorded.
fn parent_context(headers: &HeaderMap, trusted: bool, sampled: impl Fn(TraceId) -> bool) -> opentelemetry::Context {
    let cx = extract_parent(headers);
    if trusted {
        return cx;
    }
    let sc = cx.span().span_context().clone();
    if !sc.is_valid() {
        return cx;
    }
    let flags = if sampled(sc.trace_id()) { TraceFlags::SAMPLED } else { TraceFlags::default() };
    let ours = SpanContext::new(sc.trace_id(), sc.span_id(), flags, true, sc.trace_state().clone());
    opentelemetry::Context::new().with_remote_span_context(ours)
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
pub async fn trace_and_language(State(proxies): State<TrustedProxies>, req: Request, next: Next) -> Response {
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
    let peer = req.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
    let _ = span.set_parent(parent_context(req.headers(), proxies.trusts(peer), telemetry::root_sampled));
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
        // Without a valid token, by the client's address (tests in process have none):
        // behind a trusted proxy the one it forwarded for.
        Err(_) => {
            let peer = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
            client_address(&parts.headers, peer, &state.proxies)
                .map_or_else(|| "anonymous".to_owned(), |ip| format!("ip:{ip}"))
        }
    };
    // The expensive reads count against a lower limit of their own as well.
    let expensive = is_expensive(parts.uri.path(), parts.uri.query());
    let req = Request::from_parts(parts, body);
    if expensive && let Err(wait) = state.expensive.check(&key) {
        return limited(state.expensive.per_minute, wait);
    }
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
        Err(wait) => limited(limit, wait),
    }
}

/// 429 with `Retry-After` and the limit's headers.
fn limited(limit: u32, wait: u64) -> Response {
    let mut e = ApiError::new(ErrorCode::RateLimited);
    e.retry_after = Some(wait);
    let mut resp = e.into_response();
    let h = resp.headers_mut();
    h.insert("ratelimit-limit", HeaderValue::from(limit));
    h.insert("ratelimit-remaining", HeaderValue::from(0u32));
    h.insert("ratelimit-reset", HeaderValue::from(wait));
    resp
}

/// The reads that cost the services a computation over history: statistics as of a past
/// moment, and the network's statistics.
pub fn is_expensive(path: &str, query: Option<&str>) -> bool {
    path == "/v1/stats/network"
        || (path == "/v1/stats" && query.is_some_and(|q| q.split('&').any(|kv| kv.starts_with("as_of="))))
}

/// The client's address: the connection's peer, or, when the peer is a trusted proxy,
/// the last address in `X-Forwarded-For` that is not one of the trusted proxies (what a
/// client writes there itself comes first and is not believed).
pub fn client_address(
    headers: &HeaderMap,
    peer: Option<std::net::IpAddr>,
    proxies: &TrustedProxies,
) -> Option<std::net::IpAddr> {
    if !proxies.trusts(peer) {
        return peer;
    }
    let forwarded: Vec<std::net::IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    forwarded.into_iter().rev().find(|ip| !proxies.trusts(Some(*ip))).or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(traceparent: &str) -> HeaderMap {
        opentelemetry::global::set_text_map_propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new());
        let mut h = HeaderMap::new();
        h.insert("traceparent", HeaderValue::from_str(traceparent).unwrap());
        h
    }

    fn flags_and_id(cx: &opentelemetry::Context) -> (bool, String) {
        let span = cx.span();
        let sc = span.span_context();
        (sc.is_sampled(), sc.trace_id().to_string())
    }

    const ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    #[test]
    fn only_a_trusted_proxy_decides_whether_a_trace_is_recorded() {
        let sampled = headers(&format!("00-{ID}-00f067aa0ba902b7-01"));
        let unsampled = headers(&format!("00-{ID}-00f067aa0ba902b7-00"));
        // A trusted proxy's flag is taken, either way.
        assert_eq!(flags_and_id(&parent_context(&sampled, true, |_| false)), (true, ID.into()));
        assert_eq!(flags_and_id(&parent_context(&unsampled, true, |_| true)), (false, ID.into()));
        // Anyone else's trace id is continued; whether it is recorded is ours to say.
        assert_eq!(flags_and_id(&parent_context(&sampled, false, |_| false)), (false, ID.into()));
        assert_eq!(flags_and_id(&parent_context(&unsampled, false, |_| true)), (true, ID.into()));
        // No (valid) traceparent: nothing to continue.
        assert!(!parent_context(&headers("garbage"), false, |_| true).span().span_context().is_valid());
    }

    #[test]
    fn the_client_address_is_taken_from_trusted_proxies_only() {
        let proxies = TrustedProxies(Arc::new(vec![parse_proxy("10.0.0.0/8").unwrap()]));
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("1.1.1.1, 203.0.113.7, 10.0.0.2"));
        let ip = |s: &str| Some(s.parse::<std::net::IpAddr>().unwrap());
        // From a trusted proxy: the last address that is not a proxy (a client's own
        // claim, 1.1.1.1, comes first and is passed over).
        assert_eq!(client_address(&h, ip("10.0.0.1"), &proxies), ip("203.0.113.7"));
        // From anyone else the header is not read.
        assert_eq!(client_address(&h, ip("198.51.100.9"), &proxies), ip("198.51.100.9"));
        // Nothing usable forwarded: the proxy itself.
        let empty = HeaderMap::new();
        assert_eq!(client_address(&empty, ip("10.0.0.1"), &proxies), ip("10.0.0.1"));
    }

    #[test]
    fn past_its_bound_the_limiter_lets_anonymous_callers_share_one_bucket() {
        let limiter = Limiter::new(2);
        for i in 0..MAX_LIMITER_KEYS {
            limiter.limiter.check_key(&format!("ip:{i}")).unwrap();
        }
        assert_eq!(limiter.len(), MAX_LIMITER_KEYS);
        // Two new addresses share the overflow bucket (2 a minute): the third call is refused.
        assert!(limiter.check("ip:new-1").is_ok());
        assert!(limiter.check("ip:new-2").is_ok());
        assert!(limiter.check("ip:new-3").is_err());
        assert_eq!(limiter.len(), MAX_LIMITER_KEYS + 1, "only the overflow key was added");
        // A token's key is its own as before.
        assert!(limiter.check("token:a").is_ok());
    }

    #[test]
    fn expensive_reads_are_told_apart() {
        assert!(is_expensive("/v1/stats/network", None));
        assert!(is_expensive("/v1/stats", Some("chapter_id=x&as_of=2026-01-01T00:00:00Z")));
        assert!(!is_expensive("/v1/stats", Some("chapter_id=x")));
        assert!(!is_expensive("/v1/rides", Some("as_of=1")));
    }

    #[test]
    fn trusted_proxies_are_addresses_or_ranges() {
        let p = TrustedProxies(Arc::new(vec![parse_proxy("10.0.0.0/8").unwrap(), parse_proxy("2001:db8::1").unwrap()]));
        assert!(p.trusts(Some("10.1.2.3".parse().unwrap())));
        assert!(p.trusts(Some("2001:db8::1".parse().unwrap())));
        assert!(!p.trusts(Some("2001:db8::2".parse().unwrap())));
        assert!(!p.trusts(Some("192.168.0.1".parse().unwrap())));
        assert!(!p.trusts(None), "in process: no address, no trust");
        assert!(parse_proxy("10.0.0.0/33").is_err());
        assert!(parse_proxy("proxy.example.org").is_err());
    }
}

//! Calling a service: lazily connected channels that survive a peer's restart, a deadline
//! on every call, and the caller's trace context passed on in the metadata.

use std::time::Duration;

use tonic::Request;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

/// The deadline of a call when the caller sets none.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(10);

/// A channel to `url` (`http://host:port`, or `inproc://...` for a server of this process,
/// see [`crate::inproc`]) that connects on first use and reconnects after a failure. No
/// channel-wide timeout: long-lived feeds use the same channels; every unary call sets its
/// own deadline with [`request`].
pub fn channel(url: &str) -> Result<Channel, tonic::transport::Error> {
    let in_process = url.starts_with(crate::inproc::SCHEME);
    let endpoint =
        tuned(Endpoint::from_shared(if in_process { "http://in-process".to_owned() } else { url.to_owned() })?);
    Ok(if in_process { crate::inproc::channel(url, endpoint) } else { endpoint.connect_lazy() })
}

/// Connect timeout and keep-alives of every channel.
fn tuned(endpoint: Endpoint) -> Endpoint {
    endpoint
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true)
}

/// [`channel`] over mutual TLS ([`crate::tls::client_config`]: this component's
/// certificate, the CA, and the component expected behind `url`).
pub fn channel_tls(url: &str, tls: tonic::transport::ClientTlsConfig) -> Result<Channel, tonic::transport::Error> {
    Ok(tuned(Endpoint::from_shared(url.to_owned())?.tls_config(tls)?).connect_lazy())
}

/// [`channel`] whose connections `connector` makes (TLS of its own, see
/// [`crate::tls::reload::Connector`]); an `https://` URL is given to it as `http://`, the
/// connector doing the TLS.
pub fn channel_via(url: &str, connector: crate::tls::reload::Connector) -> Result<Channel, tonic::transport::Error> {
    let url = url.strip_prefix("https://").map_or_else(|| url.to_owned(), |rest| format!("http://{rest}"));
    Ok(tuned(Endpoint::from_shared(url)?).connect_with_connector_lazy(connector))
}

/// A request with a deadline and the current span's `traceparent`.
pub fn request<T>(message: T, deadline: Duration) -> Request<T> {
    let mut req = Request::new(message);
    stamp(&mut req, deadline);
    req
}

/// Sets a deadline (unless the request has one) and the current span's `traceparent` on a
/// request: what [`request`] does, for an interceptor that stamps every call of a client.
pub fn stamp<T>(req: &mut Request<T>, deadline: Duration) {
    if req.metadata().get("grpc-timeout").is_none() {
        req.set_timeout(deadline);
    }
    if let Some(tp) = telemetry::current_traceparent()
        && let Ok(v) = MetadataValue::try_from(tp.as_str())
    {
        req.metadata_mut().insert("traceparent", v);
    }
}

/// The deadline left for an incoming request (from its `grpc-timeout`), to pass on to the
/// calls it makes; `None` when the caller set none.
pub fn remaining_deadline<T>(req: &Request<T>) -> Option<Duration> {
    let v = req.metadata().get("grpc-timeout")?.to_str().ok()?;
    let (num, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = num.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incoming_deadlines_are_read_from_grpc_timeout() {
        let mut req = Request::new(());
        req.metadata_mut().insert("grpc-timeout", MetadataValue::from_static("250m"));
        assert_eq!(remaining_deadline(&req), Some(Duration::from_millis(250)));
        let req = request((), Duration::from_secs(3));
        assert!(req.metadata().get("grpc-timeout").is_some());
    }
}

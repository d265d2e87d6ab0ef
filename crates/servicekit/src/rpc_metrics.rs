//! RPC figures per method on every server: calls by gRPC status and their latency, as
//! OpenTelemetry instruments (shown at the gateway's `/metrics` in the all-in-one, and
//! exported over OTLP where configured).

use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_util::future::BoxFuture;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram};

struct Instruments {
    calls: Counter<u64>,
    duration: Histogram<f64>,
}

fn instruments() -> &'static Instruments {
    static I: OnceLock<Instruments> = OnceLock::new();
    I.get_or_init(|| {
        telemetry::metrics::metrics();
        let meter = opentelemetry::global::meter("samskab-rpc");
        Instruments {
            calls: meter
                .u64_counter("rpc.server.calls")
                .with_description("gRPC calls answered, by method and status")
                .build(),
            duration: meter
                .f64_histogram("rpc.server.duration")
                .with_unit("s")
                .with_description("Time to answer a gRPC call (to the response headers for streams)")
                .with_boundaries(telemetry::metrics::LATENCY_BOUNDS.to_vec())
                .build(),
        }
    })
}

/// The gRPC status of a response: a failed unary call answers "trailers only", with the
/// status in the headers; a successful one carries it in the trailers (so: OK).
fn status_of<B>(resp: &http::Response<B>) -> String {
    let code = resp.headers().get("grpc-status").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<i32>().ok());
    format!("{:?}", tonic::Code::from(code.unwrap_or(0)))
}

/// Wraps a server's routes to count and time every call.
#[derive(Clone, Debug)]
pub struct RpcMetrics<S> {
    inner: S,
}

impl<S> RpcMetrics<S> {
    /// Around `inner`.
    pub fn new(inner: S) -> Self {
        RpcMetrics { inner }
    }
}

impl<S, B, RB> tower::Service<http::Request<B>> for RpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>> + Send,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        // The method path (`/samskab.booking.v1.BookingService/BookRide`): a bounded set.
        let rpc = req.uri().path().to_owned();
        let started = Instant::now();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let result = fut.await;
            let status = match &result {
                Ok(resp) => status_of(resp),
                Err(_) => "Unknown".to_owned(),
            };
            // The call's span (opened by the server's trace_fn around this layer) gets it too.
            tracing::Span::current().record("rpc.grpc.status_code", status.as_str());
            let i = instruments();
            let attrs = [KeyValue::new("rpc", rpc), KeyValue::new("status", status)];
            i.calls.add(1, &attrs);
            i.duration.record(started.elapsed().as_secs_f64(), &attrs);
            result
        })
    }
}

//! Tracing and OpenTelemetry set-up shared by every Samskab binary.
//!
//! - Logs go to stderr, human-readable by default or JSON with `SAMSKAB_LOG_FORMAT=json`
//!   (with the current span's fields), filtered by `SAMSKAB_LOG` (or `RUST_LOG`; default `info`).
//! - Spans always carry W3C trace context, so trace ids exist for responses and events.
//!   They are exported over OTLP/gRPC only when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//!   `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; the other standard `OTEL_*` variables
//!   (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, ...) apply as usual. Without a
//!   collector nothing blocks and nothing is printed; [`Telemetry::shutdown`] flushes with
//!   a bounded wait.

pub mod metrics;

use std::time::Duration;

use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// How long shutdown waits for the last spans to reach a collector.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per event, with trace and span ids.
    Json,
}

impl LogFormat {
    /// From `SAMSKAB_LOG_FORMAT` (`json` or `text`, default `text`).
    pub fn from_env() -> LogFormat {
        match std::env::var("SAMSKAB_LOG_FORMAT").as_deref() {
            Ok("json") => LogFormat::Json,
            _ => LogFormat::Text,
        }
    }
}

/// Keeps the tracer provider alive; flushes and shuts it down when dropped.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    exporting: bool,
}

impl Telemetry {
    /// Whether spans are exported to an OTLP collector.
    pub fn is_exporting(&self) -> bool {
        self.exporting
    }

    /// Flushes pending spans (waiting at most two seconds) and stops exporting.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(p) = self.provider.take() {
            let _ = p.shutdown_with_timeout(FLUSH_TIMEOUT);
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.stop();
    }
}

static SERVICE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The OTel resource: the service name given to [`init`] (or `samskab`), unless
/// `OTEL_SERVICE_NAME` says otherwise (the SDK reads it).
fn resource() -> Resource {
    let name = SERVICE.get().cloned().unwrap_or_else(|| "samskab".to_owned());
    Resource::builder().with_service_name(name).build()
}

fn otlp_endpoint() -> Option<String> {
    ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
}

/// Installs logging and tracing for a binary named `service` (the OTel service name unless
/// `OTEL_SERVICE_NAME` says otherwise). Call once, inside the tokio runtime. A second call
/// in the same process (tests) keeps the first subscriber.
pub fn init(service: &str) -> Telemetry {
    init_with(service, LogFormat::from_env())
}

/// Like [`init`] with an explicit log format.
pub fn init_with(service: &str, format: LogFormat) -> Telemetry {
    opentelemetry::global::set_text_map_propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new());
    SERVICE.get_or_init(|| service.to_owned());
    let resource = resource();
    let mut builder = SdkTracerProvider::builder().with_resource(resource);
    let mut exporting = false;
    if let Some(endpoint) = otlp_endpoint() {
        match opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .with_timeout(FLUSH_TIMEOUT)
            .build()
        {
            Ok(exporter) => {
                builder = builder.with_batch_exporter(exporter);
                exporting = true;
            }
            Err(e) => eprintln!("OTLP export disabled: {e}"),
        }
    }
    let provider = builder.build();
    let tracer = provider.tracer(service.to_owned());
    opentelemetry::global::set_tracer_provider(provider.clone());

    let filter = std::env::var("SAMSKAB_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    // The OTel SDK's own diagnostics stay quiet unless asked for.
    let filter = filter.add_directive("opentelemetry=off".parse().expect("static directive"));
    let fmt = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer().with_writer(std::io::stderr).boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            // Every enclosing span's fields: the request's trace_id and span_id (recorded
            // on the gateway's and each RPC's root span) appear on every line.
            .with_span_list(true)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let otel = tracing_opentelemetry::layer().with_tracer(tracer);
    let installed = tracing_subscriber::registry().with(filter).with(otel).with(fmt).try_init().is_ok();
    Telemetry { provider: installed.then_some(provider), exporting: exporting && installed }
}

/// The W3C trace id (32 hex digits) of the current span, if it is traced.
pub fn current_trace_id() -> Option<String> {
    let cx = tracing::Span::current().context();
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

/// Whether this process's sampler, as configured by `OTEL_TRACES_SAMPLER` and
/// `OTEL_TRACES_SAMPLER_ARG` (read as the SDK reads them), samples a new trace with this id
/// as its root. The REST gateway decides so for a caller whose own sampling flag it does
/// not take (anyone but a trusted proxy): the trace id is continued, the cost is ours to
/// choose.
pub fn root_sampled(trace_id: opentelemetry::trace::TraceId) -> bool {
    static RATIO: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let ratio = *RATIO.get_or_init(|| {
        let arg = std::env::var("OTEL_TRACES_SAMPLER_ARG").ok().and_then(|a| a.trim().parse::<f64>().ok());
        sampler_ratio(std::env::var("OTEL_TRACES_SAMPLER").ok().as_deref(), arg)
    });
    ratio_samples(ratio, trace_id)
}

/// The share of new traces a sampler setting keeps (1.0 when unset or unknown, as the SDK).
fn sampler_ratio(sampler: Option<&str>, arg: Option<f64>) -> f64 {
    match sampler.map(str::trim) {
        Some("always_off" | "parentbased_always_off") => 0.0,
        Some("traceidratio" | "parentbased_traceidratio") => arg.filter(|r| (0.0..=1.0).contains(r)).unwrap_or(1.0),
        _ => 1.0,
    }
}

/// The SDK's own trace-id-ratio decision.
fn ratio_samples(ratio: f64, trace_id: opentelemetry::trace::TraceId) -> bool {
    use opentelemetry_sdk::trace::ShouldSample;
    let r = opentelemetry_sdk::trace::Sampler::TraceIdRatioBased(ratio).should_sample(
        None,
        trace_id,
        "",
        &opentelemetry::trace::SpanKind::Server,
        &[],
        &[],
    );
    r.decision == opentelemetry_sdk::trace::SamplingDecision::RecordAndSample
}

/// The W3C `traceparent` of the current span, to store with events and pass on.
pub fn current_traceparent() -> Option<String> {
    let cx = tracing::Span::current().context();
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| format!("00-{}-{}-{:02x}", sc.trace_id(), sc.span_id(), sc.trace_flags().to_u8()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_decision_follows_the_configured_sampler() {
        assert_eq!(sampler_ratio(None, None), 1.0);
        assert_eq!(sampler_ratio(Some("parentbased_always_off"), None), 0.0);
        assert_eq!(sampler_ratio(Some("parentbased_traceidratio"), Some(0.1)), 0.1);
        assert_eq!(sampler_ratio(Some("traceidratio"), Some(7.0)), 1.0, "out of range: the SDK's default");
        let ids: Vec<_> = (1..=2000u128)
            .map(|i| opentelemetry::trace::TraceId::from(i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)))
            .collect();
        assert!(ids.iter().all(|&t| ratio_samples(1.0, t)));
        assert!(!ids.iter().any(|&t| ratio_samples(0.0, t)));
        let kept = ids.iter().filter(|&&t| ratio_samples(0.1, t)).count();
        assert!((100..=300).contains(&kept), "about one in ten: {kept}");
    }

    #[test]
    fn spans_get_trace_ids_without_a_collector() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let t = init_with("telemetry-test", LogFormat::Json);
            assert!(!t.is_exporting());
            let span = tracing::info_span!("request");
            let _g = span.enter();
            let id = current_trace_id().expect("a trace id");
            assert_eq!(id.len(), 32);
            let tp = current_traceparent().unwrap();
            assert!(tp.starts_with(&format!("00-{id}-")), "{tp}");
            let started = std::time::Instant::now();
            t.shutdown();
            assert!(started.elapsed() < Duration::from_secs(3));
        });
    }
}

//! Metrics: instruments come from the OpenTelemetry metrics API (`opentelemetry::global::meter`),
//! so the same figures can be pushed over OTLP; this module also renders them as Prometheus
//! text for `GET /metrics`.
//!
//! The SDK has no stable pull reader, so the Prometheus side is a push exporter that keeps
//! the last export rendered as text: a scrape asks the periodic reader to flush (which
//! exports synchronously) and returns the text. Temporality is cumulative, as Prometheus
//! expects.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, Metric, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};

/// Histogram bucket bounds for latencies in seconds (1 ms to 10 s).
pub const LATENCY_BOUNDS: [f64; 14] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0];

/// The process's metrics: installed once as the global meter provider.
#[derive(Clone)]
pub struct Metrics {
    provider: SdkMeterProvider,
    text: Arc<Mutex<String>>,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// Installs the meter provider on first use (later calls return the same one), so that
/// several components in one process share one `/metrics`. Call it before making
/// instruments: instruments made from the global meter before it are no-ops.
pub fn metrics() -> &'static Metrics {
    METRICS.get_or_init(|| {
        let text = Arc::new(Mutex::new(String::new()));
        let exporter = PrometheusText { text: text.clone() };
        // The interval only matters for pushes nobody reads; scrapes flush on demand.
        let reader = PeriodicReader::builder(exporter).with_interval(Duration::from_secs(3600)).build();
        let mut builder = SdkMeterProvider::builder().with_reader(reader);
        // Pushed over OTLP too when a collector is configured (the standard variables;
        // the interval from OTEL_METRIC_EXPORT_INTERVAL, default 60 s).
        if let Some(endpoint) = otlp_endpoint() {
            match opentelemetry_otlp::MetricExporter::builder().with_tonic().with_endpoint(endpoint).build() {
                Ok(otlp) => builder = builder.with_reader(PeriodicReader::builder(otlp).build()),
                Err(e) => eprintln!("OTLP metrics export disabled: {e}"),
            }
        }
        let provider = builder.with_resource(crate::resource()).build();
        opentelemetry::global::set_meter_provider(provider.clone());
        Metrics { provider, text }
    })
}

impl Metrics {
    /// Every instrument's current value as Prometheus text (exposition format 0.0.4).
    /// Blocks while the reader collects: call it from a blocking thread.
    pub fn render(&self) -> String {
        let _ = self.provider.force_flush();
        self.text.lock().map(|t| t.clone()).unwrap_or_default()
    }
}

fn otlp_endpoint() -> Option<String> {
    ["OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
}

/// A push exporter that renders what it is given as Prometheus text.
struct PrometheusText {
    text: Arc<Mutex<String>>,
}

impl PushMetricExporter for PrometheusText {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let rendered = render(metrics);
        if let Ok(mut t) = self.text.lock() {
            *t = rendered;
        }
        Ok(())
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }

    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}

/// `http.server.request.duration` in seconds → `http_server_request_duration_seconds`.
fn metric_name(m: &Metric, counter: bool) -> String {
    let mut name: String =
        m.name().chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    let suffix = match m.unit() {
        "s" => "_seconds",
        "ms" => "_milliseconds",
        "By" => "_bytes",
        _ => "",
    };
    if !suffix.is_empty() && !name.ends_with(suffix) {
        name.push_str(suffix);
    }
    if counter && !name.ends_with("_total") {
        name.push_str("_total");
    }
    name
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn labels<'a>(attrs: impl Iterator<Item = &'a KeyValue>, extra: Option<(&str, String)>) -> String {
    let mut parts: Vec<String> = attrs
        .map(|kv| {
            let key: String =
                kv.key.as_str().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
            format!("{key}=\"{}\"", escape(&kv.value.as_str()))
        })
        .collect();
    parts.sort();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{v}\""));
    }
    if parts.is_empty() { String::new() } else { format!("{{{}}}", parts.join(",")) }
}

fn number(v: f64) -> String {
    if v.is_infinite() { if v > 0.0 { "+Inf".into() } else { "-Inf".into() } } else { format!("{v}") }
}

trait AsF64: Copy {
    fn f(self) -> f64;
}
impl AsF64 for f64 {
    fn f(self) -> f64 {
        self
    }
}
impl AsF64 for u64 {
    fn f(self) -> f64 {
        self as f64
    }
}
impl AsF64 for i64 {
    fn f(self) -> f64 {
        self as f64
    }
}

fn render_data<T: AsF64>(out: &mut String, m: &Metric, data: &MetricData<T>) {
    match data {
        MetricData::Gauge(g) => {
            let name = metric_name(m, false);
            let _ = writeln!(out, "# HELP {name} {}\n# TYPE {name} gauge", escape(m.description()));
            for p in g.data_points() {
                let _ = writeln!(out, "{name}{} {}", labels(p.attributes(), None), number(p.value().f()));
            }
        }
        MetricData::Sum(s) => {
            let name = metric_name(m, s.is_monotonic());
            let kind = if s.is_monotonic() { "counter" } else { "gauge" };
            let _ = writeln!(out, "# HELP {name} {}\n# TYPE {name} {kind}", escape(m.description()));
            for p in s.data_points() {
                let _ = writeln!(out, "{name}{} {}", labels(p.attributes(), None), number(p.value().f()));
            }
        }
        MetricData::Histogram(h) => {
            let name = metric_name(m, false);
            let _ = writeln!(out, "# HELP {name} {}\n# TYPE {name} histogram", escape(m.description()));
            for p in h.data_points() {
                let mut cumulative = 0u64;
                let bounds: Vec<f64> = p.bounds().collect();
                for (i, count) in p.bucket_counts().enumerate() {
                    cumulative += count;
                    let le = bounds.get(i).copied().unwrap_or(f64::INFINITY);
                    let l = labels(p.attributes(), Some(("le", number(le))));
                    let _ = writeln!(out, "{name}_bucket{l} {cumulative}");
                }
                let l = labels(p.attributes(), None);
                let _ = writeln!(out, "{name}_sum{l} {}", number(p.sum().f()));
                let _ = writeln!(out, "{name}_count{l} {}", p.count());
            }
        }
        MetricData::ExponentialHistogram(_) => {}
    }
}

/// Prometheus text of every metric in `rm`.
fn render(rm: &ResourceMetrics) -> String {
    let mut out = String::new();
    for scope in rm.scope_metrics() {
        for m in scope.metrics() {
            match m.data() {
                AggregatedMetrics::F64(d) => render_data(&mut out, m, d),
                AggregatedMetrics::U64(d) => render_data(&mut out, m, d),
                AggregatedMetrics::I64(d) => render_data(&mut out, m, d),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histograms_render_as_prometheus_text() {
        // Instruments made before the provider is installed would be no-ops.
        let m = metrics();
        let meter = opentelemetry::global::meter("telemetry-test");
        let counter = meter.u64_counter("test.requests").with_description("Requests").build();
        let hist = meter
            .f64_histogram("test.latency")
            .with_unit("s")
            .with_description("Latency")
            .with_boundaries(LATENCY_BOUNDS.to_vec())
            .build();
        counter.add(3, &[KeyValue::new("route", "/v1/rides/{id}")]);
        hist.record(0.003, &[KeyValue::new("route", "/x")]);
        hist.record(20.0, &[KeyValue::new("route", "/x")]);
        let text = m.render();
        assert!(text.contains("# TYPE test_requests_total counter"), "{text}");
        assert!(text.contains("test_requests_total{route=\"/v1/rides/{id}\"} 3"), "{text}");
        assert!(text.contains("# TYPE test_latency_seconds histogram"), "{text}");
        assert!(text.contains("test_latency_seconds_bucket{route=\"/x\",le=\"0.0025\"} 0"), "{text}");
        assert!(text.contains("test_latency_seconds_bucket{route=\"/x\",le=\"0.005\"} 1"), "{text}");
        assert!(text.contains("test_latency_seconds_bucket{route=\"/x\",le=\"+Inf\"} 2"), "{text}");
        assert!(text.contains("test_latency_seconds_count{route=\"/x\"} 2"), "{text}");
    }
}

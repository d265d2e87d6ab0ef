//! The log's own figures, as OpenTelemetry instruments (shown at `/metrics`): append
//! latency and outcome, and how far each projection is behind the head.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, ObservableGauge};

struct Instruments {
    append_duration: Histogram<f64>,
    appends: Counter<u64>,
    _lag: ObservableGauge<i64>,
}

/// Events behind the head, per projection, as last measured.
static LAG: OnceLock<Mutex<HashMap<String, i64>>> = OnceLock::new();

fn lags() -> &'static Mutex<HashMap<String, i64>> {
    LAG.get_or_init(Default::default)
}

fn instruments() -> &'static Instruments {
    static I: OnceLock<Instruments> = OnceLock::new();
    I.get_or_init(|| {
        telemetry::metrics::metrics();
        let meter = opentelemetry::global::meter("samskab-eventlog");
        Instruments {
            append_duration: meter
                .f64_histogram("eventlog.append.duration")
                .with_unit("s")
                .with_description("Time to append (durably) to the event log, by backend and outcome")
                .with_boundaries(telemetry::metrics::LATENCY_BOUNDS.to_vec())
                .build(),
            appends: meter
                .u64_counter("eventlog.appends")
                .with_description("Append calls, by backend and outcome")
                .build(),
            _lag: meter
                .i64_observable_gauge("eventlog.projection.lag")
                .with_description("Events between the head of the log and a projection's checkpoint")
                .with_callback(|obs| {
                    if let Ok(map) = lags().lock() {
                        for (name, lag) in map.iter() {
                            obs.observe(*lag, &[KeyValue::new("projection", name.clone())]);
                        }
                    }
                })
                .build(),
        }
    })
}

pub(crate) fn append_done(db: &'static str, took: Duration, ok: bool) {
    let i = instruments();
    let attrs = [KeyValue::new("db_system", db), KeyValue::new("outcome", if ok { "ok" } else { "error" })];
    i.append_duration.record(took.as_secs_f64(), &attrs);
    i.appends.add(1, &attrs);
}

/// Records a projection's lag (events between the head and its checkpoint).
pub(crate) fn projection_lag(name: &str, lag: i64) {
    instruments();
    if let Ok(mut map) = lags().lock() {
        map.insert(name.to_owned(), lag.max(0));
    }
}

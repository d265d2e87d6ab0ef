//! Notify's figures, as OpenTelemetry instruments (shown at `/metrics`):
//! `notify_notices_total{kind, channel, outcome}` (outcomes in [`notice`]; a decision
//! another process made first counts where it was made) and `notify_backlog`
//! (occasions started by events and not yet decided, as of the last look).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, Ordering};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, ObservableGauge};

struct Instruments {
    notices: Counter<u64>,
    _backlog: ObservableGauge<i64>,
}

static BACKLOG: AtomicI64 = AtomicI64::new(0);

fn instruments() -> &'static Instruments {
    static I: OnceLock<Instruments> = OnceLock::new();
    I.get_or_init(|| {
        telemetry::metrics::metrics();
        let meter = opentelemetry::global::meter("samskab-notify");
        Instruments {
            notices: meter
                .u64_counter("notify.notices")
                .with_description("Notices decided or skipped, by kind, channel and outcome")
                .build(),
            _backlog: meter
                .i64_observable_gauge("notify.backlog")
                .with_description("Occasions waiting to be decided")
                .with_callback(|obs| obs.observe(BACKLOG.load(Ordering::Relaxed), &[]))
                .build(),
        }
    })
}

/// One notice's outcome on a channel: `decided`, `skipped` (recorded, never sent), and
/// for e-mail `delivered`, `retried`, `failed`, `rejected`, `not-configured`, `no-address`,
/// `opted-out`, `erased`.
pub fn notice(kind: &str, channel: &str, outcome: &str) {
    let outcome = outcome.to_owned();
    instruments().notices.add(
        1,
        &[
            KeyValue::new("kind", kind.to_owned()),
            KeyValue::new("channel", channel.to_owned()),
            KeyValue::new("outcome", outcome),
        ],
    );
}

/// The occasions waiting, as of now.
pub fn backlog(n: i64) {
    instruments();
    BACKLOG.store(n, Ordering::Relaxed);
}

//! The delivery loop, run in the gateway process. Each round gives every active webhook
//! that has none a worker of its own (at most `SAMSKAB_WEBHOOKS_WORKERS` at once), which
//! reads new feed items into the webhook's queue, then `POST`s the due head of each of its
//! streams; a receiver that holds its request delays only its own webhook. A
//! stream's items go out one at a time, in order; a failing stream waits with exponential
//! backoff (with jitter) while the other streams keep flowing. After a stream has failed
//! for [`WebhookConfig::give_up_secs`] the webhook is disabled.
//!
//! Several gateways may share PostgreSQL: each attempt first leases its queue row, so a
//! given item is attempted by one dispatcher at a time. Delivery stays at least once: a
//! receiver that answered but whose answer was lost gets the item again.
//!
//! The connection goes to the address the SSRF guard checked (pinned), and redirects are
//! not followed. The gauge `webhook.backlog` reports each webhook's undelivered items.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use futures_util::FutureExt;
use opentelemetry::KeyValue;
use uuid::Uuid;

use super::signature::{HEADER, signature};
use super::store::{Attempt, Queued};
use super::{Hook, WebhookConfig, Webhooks, now_ms};
use crate::feed::{FeedCursor, FeedItem};
use crate::problem::ApiError;
use servicekit::ssrf::{check_url, literal_ip, resolve};

/// How long a claimed attempt is leased to its dispatcher.
const LEASE_MS: i64 = 30_000;
/// The deadline of one delivery.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Feed items read per webhook per round.
const FILL_BATCH: u32 = 200;

/// The backlog gauge's values, per webhook.
fn backlogs() -> &'static Mutex<HashMap<String, i64>> {
    static B: OnceLock<Mutex<HashMap<String, i64>>> = OnceLock::new();
    B.get_or_init(Default::default)
}

/// Stops reporting the backlog of a webhook (deleted).
pub(super) fn forget_backlog(id: &str) {
    backlogs().lock().map(|mut m| m.remove(id)).ok();
}

/// Registers the `webhook.backlog` gauge (once per process).
pub(super) fn install_gauge() {
    static G: OnceLock<opentelemetry::metrics::ObservableGauge<i64>> = OnceLock::new();
    G.get_or_init(|| {
        telemetry::metrics::metrics();
        opentelemetry::global::meter("samskab-gateway")
            .i64_observable_gauge("webhook.backlog")
            .with_description("Feed events a webhook has not yet had delivered")
            .with_callback(|obs| {
                if let Ok(map) = backlogs().lock() {
                    for (id, n) in map.iter() {
                        obs.observe(*n, &[KeyValue::new("webhook_id", id.clone())]);
                    }
                }
            })
            .build()
    });
}

/// Whether a webhook wants events of type `event_type` (no types listed: all).
fn wants(hook: &Hook, event_type: &str) -> bool {
    hook.event_types.is_empty() || hook.event_types.iter().any(|t| t == event_type)
}

/// Whether a stream whose first failed attempt was at `first_failed_at` (0: none failed)
/// has failed for `give_up_ms` by `now` (all unix milliseconds).
fn gave_up(first_failed_at: i64, now: i64, give_up_ms: i64) -> bool {
    first_failed_at > 0 && now - first_failed_at >= give_up_ms
}

/// The delay before attempt `attempt + 1`: exponential, capped, with jitter (50–100 %).
fn backoff(config: &WebhookConfig, attempt: i64) -> i64 {
    let exp = (attempt - 1).clamp(0, 40) as u32;
    let full = config.backoff_base_ms.saturating_mul(1u64 << exp.min(40)).min(config.backoff_max_ms);
    let jitter: f64 = 0.5 + rand::random::<f64>() * 0.5;
    (full as f64 * jitter) as i64
}

/// The dispatcher's workers: one task per webhook being served.
#[derive(Default)]
struct Workers {
    set: tokio::task::JoinSet<()>,
    /// Task → its webhook.
    tasks: HashMap<tokio::task::Id, Uuid>,
    /// Webhooks with a worker.
    busy: HashSet<Uuid>,
    /// Where the next round starts in the list of webhooks (fair when the cap is reached).
    next: usize,
}

impl Webhooks {
    /// Starts the dispatcher; it ends when `stop` is triggered, after its workers finish
    /// what they hold (an attempt is not cut short: it would stay leased).
    pub fn spawn(&self, stop: servicekit::server::Stop) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            this.release_leases().await;
            let mut workers = Workers::default();
            let stopped = stop.stopped();
            tokio::pin!(stopped);
            loop {
                this.round(&mut workers, &stop).await;
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tokio::time::sleep(Duration::from_millis(this.config.poll_ms)) => {}
                }
            }
            while workers.set.join_next().await.is_some() {}
            tracing::debug!("webhook dispatcher stopped");
        })
    }

    /// At start, on SQLite (one process owns the database), makes items leased by a
    /// previous run due now instead of when their lease ends. On PostgreSQL other gateways
    /// may hold those leases, so they run out instead.
    async fn release_leases(&self) {
        if self.store.backend() != eventlog::Backend::Sqlite {
            return;
        }
        if let Err(e) = self.release_all_leases(now_ms()).await {
            tracing::warn!(error = %e, "webhooks: could not release leases of a previous run");
        }
    }

    /// One round: every active webhook without a worker gets one (up to
    /// [`WebhookConfig::workers`] at once, taken in turn from where the last round stopped),
    /// so a receiver that holds its request, or fails, delays only its own webhook.
    async fn round(&self, workers: &mut Workers, stop: &servicekit::server::Stop) {
        while let Some(done) = workers.set.try_join_next_with_id() {
            let id = match done {
                Ok((id, _)) => id,
                Err(e) => e.id(),
            };
            if let Some(hook) = workers.tasks.remove(&id) {
                workers.busy.remove(&hook);
            }
        }
        let hooks = match self.active().await {
            Ok(hooks) => hooks,
            Err(e) => {
                tracing::warn!(error = %e, "webhooks: could not list webhooks");
                return;
            }
        };
        if hooks.is_empty() {
            return;
        }
        let cap = self.config.workers.max(1) as usize;
        let first = workers.next % hooks.len();
        for hook in hooks.iter().cycle().skip(first).take(hooks.len()) {
            if workers.busy.len() >= cap {
                // The rest start in the next round, first in line.
                workers.next = hooks.iter().position(|h| h.id == hook.id).unwrap_or(0);
                return;
            }
            if workers.busy.contains(&hook.id) {
                continue;
            }
            let (this, h, stop) = (self.clone(), hook.clone(), stop.clone());
            let task = workers.set.spawn(async move { this.work(h, &stop).await });
            workers.tasks.insert(task.id(), hook.id);
            workers.busy.insert(hook.id);
        }
        workers.next = first;
    }

    /// A webhook's turn: read new feed events into its queue, then deliver the heads of
    /// its streams that are due, until nothing is due or `stop`.
    async fn work(&self, hook: Hook, stop: &servicekit::server::Stop) {
        // The key or grant it was made with must still be in force: a revoked one stops
        // its deliveries (checked each round, so within the grant cache's second).
        match self.credentials.in_force(&hook.owner_credential).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(webhook = %hook.id, code = %e.code, "webhooks: could not check the owner's credential");
                return;
            }
        }
        if let Err(e) = self.fill(&hook).await {
            tracing::warn!(webhook = %hook.id, code = %e.code, "webhooks: could not read the feed");
        }
        // Deliver until nothing is due (each pass sends the next item of every stream).
        for _ in 0..50 {
            if stop.stopped().now_or_never().is_some() {
                break;
            }
            match self.dispatch(&hook).await {
                Ok(true) => continue,
                Ok(false) => break,
                Err(e) => {
                    tracing::warn!(webhook = %hook.id, error = %e, "webhooks: delivery round failed");
                    break;
                }
            }
        }
        if let Ok(n) = self.backlog(hook.id).await {
            backlogs().lock().map(|mut m| m.insert(hook.id.to_string(), n)).ok();
        }
    }

    /// Reads the feed after the webhook's position into its queue (one batch).
    async fn fill(&self, hook: &Hook) -> Result<(), ApiError> {
        let after = FeedCursor::parse(&hook.feed_cursor, "/feed_cursor").unwrap_or_default();
        let (items, next) = self.reader.read(&after, FILL_BATCH, hook.chapter).await?;
        let next = next.to_string();
        if next == hook.feed_cursor {
            return Ok(());
        }
        let wanted: Vec<(FeedItem, String)> = items
            .into_iter()
            .filter(|i| wants(hook, &i.event_type))
            .map(|i| {
                let body = serde_json::to_string(&i).expect("items serialise");
                (i, body)
            })
            .collect();
        self.enqueue(hook, next, wanted, now_ms()).await
    }

    /// Delivers the due head of each stream; true when any was delivered.
    async fn dispatch(&self, hook: &Hook) -> Result<bool, String> {
        let now = now_ms();
        let heads = self.heads(hook.id).await.map_err(|e| e.to_string())?;
        let give_up = self.config.give_up_secs as i64 * 1000;
        if heads.iter().any(|q| gave_up(q.first_failed_at, now, give_up)) {
            self.disable(hook.id).await.map_err(|e| e.to_string())?;
            return Ok(false);
        }
        let due: Vec<Queued> = heads.into_iter().filter(|q| q.due <= now).collect();
        if due.is_empty() {
            return Ok(false);
        }
        let secret = self
            .keys
            .unseal(&format!("webhook:{}", hook.id), "secret", &domain::types::Sealed(hook.secret.clone()))
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the webhook's secret is gone")?;
        let results =
            futures_util::future::join_all(due.into_iter().map(|q| self.attempt(hook, &secret, q, now))).await;
        Ok(results.into_iter().any(|delivered| delivered))
    }

    /// Disables a webhook whose stream has failed for too long.
    async fn disable(&self, id: Uuid) -> Result<(), eventlog::Error> {
        let now = now_ms();
        tracing::warn!(webhook = %id, "webhooks: disabled after failing for too long");
        self.set_disabled(id, now).await
    }

    /// Claims, sends and records one item; true when delivered.
    async fn attempt(&self, hook: &Hook, secret: &str, q: Queued, now: i64) -> bool {
        // The lease: only the dispatcher that moves the due time from what it read sends it.
        let claimed = self.lease(hook.id, q.event_id.clone(), q.due, now + LEASE_MS).await;
        if !matches!(claimed, Ok(1)) {
            return false;
        }
        let (outcome, status, error) = self.send(hook, secret, &q.body).await;
        let attempt = q.attempts + 1;
        let delivered = outcome == "delivered";
        let delay = if delivered { 0 } else { backoff(&self.config, attempt) };
        let first_failed = if delivered || q.first_failed_at > 0 { q.first_failed_at } else { now };
        let at = now_ms();
        let recorded = self
            .record(Attempt {
                webhook_id: hook.id,
                event_id: q.event_id,
                stream: q.item.stream,
                event_type: q.item.event_type,
                attempt,
                at,
                outcome,
                status_code: status,
                error,
                next_attempt_at: at + delay,
                first_failed_at: first_failed,
            })
            .await;
        if let Err(e) = recorded {
            tracing::warn!(webhook = %hook.id, error = %e, "webhooks: could not record an attempt");
        }
        delivered
    }

    /// Sends one body; (outcome, HTTP status or 0, error).
    async fn send(&self, hook: &Hook, secret: &str, body: &str) -> (&'static str, u16, String) {
        let url = match check_url(&hook.url) {
            Ok(u) => u,
            Err(why) => return ("refused", 0, why.to_owned()),
        };
        let addrs = match resolve(&url, self.config.allow_loopback).await {
            Ok(a) if a.is_empty() => return ("failed", 0, "the target's host does not resolve".into()),
            Ok(a) => a,
            Err(why) => return ("refused", 0, why),
        };
        // TLS with rustls (ring) and the system's roots; installed once per process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).no_proxy();
        if literal_ip(&url).is_none() {
            // Connect to the address just checked, not to whatever DNS says next.
            client = client.resolve(url.host_str().unwrap_or(""), addrs[0]);
        }
        let client = match client.timeout(DELIVERY_TIMEOUT).build() {
            Ok(c) => c,
            Err(e) => return ("failed", 0, e.to_string()),
        };
        let t = chrono::Utc::now().timestamp();
        let sent = client
            .post(url)
            .header("content-type", "application/json")
            .header("user-agent", "Samskab-Webhooks/1")
            .header(HEADER, signature(secret, t, body))
            .header("samskab-webhook-id", hook.id.to_string())
            .body(body.to_owned())
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => ("delivered", r.status().as_u16(), String::new()),
            Ok(r) => ("failed", r.status().as_u16(), format!("the receiver answered {}", r.status())),
            Err(e) => ("failed", 0, if e.is_timeout() { "timed out".into() } else { "could not connect".into() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_tls_client_can_be_built_for_https_deliveries() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).no_proxy().build();
        assert!(client.is_ok(), "{:?}", client.err());
    }

    fn config(base: u64, max: u64) -> WebhookConfig {
        WebhookConfig { backoff_base_ms: base, backoff_max_ms: max, ..WebhookConfig::default() }
    }

    /// Many draws of the delay before attempt `attempt + 1`.
    fn delays(c: &WebhookConfig, attempt: i64) -> Vec<i64> {
        (0..200).map(|_| backoff(c, attempt)).collect()
    }

    #[test]
    fn backoff_doubles_with_each_failure_and_jitters_between_half_and_all() {
        let c = config(1_000, 1_000_000);
        for (attempt, full) in [(1, 1_000), (2, 2_000), (3, 4_000), (5, 16_000)] {
            let d = delays(&c, attempt);
            assert!(d.iter().all(|&d| full / 2 <= d && d <= full), "attempt {attempt}: {d:?}");
            // Jitter: not always the same delay.
            assert!(d.iter().any(|&x| x != d[0]), "attempt {attempt}: no jitter");
        }
        // Before any failure counts as the first.
        assert!(delays(&c, 0).iter().all(|&d| (500..=1_000).contains(&d)));
    }

    #[test]
    fn backoff_is_capped_at_the_longest_delay() {
        let c = config(1_000, 5_000);
        for attempt in [4, 10, 41, 1_000, i64::MAX] {
            assert!(delays(&c, attempt).iter().all(|&d| (2_500..=5_000).contains(&d)), "attempt {attempt}");
        }
        // A huge base does not overflow.
        let c = config(u64::MAX / 2, 3_600_000);
        assert!(delays(&c, 40).iter().all(|&d| (1_800_000..=3_600_000).contains(&d)));
    }

    #[test]
    fn a_stream_gives_up_after_failing_for_the_configured_time() {
        let day = 86_400_000;
        assert!(!gave_up(0, 10 * day, day), "never failed");
        assert!(!gave_up(1_000, 1_000 + day - 1, day));
        assert!(gave_up(1_000, 1_000 + day, day));
        assert!(gave_up(1_000, 1_000 + 2 * day, day));
    }

    #[test]
    fn a_webhook_wants_its_event_types_or_all_when_none_are_listed() {
        let mut hook = Hook {
            id: Uuid::nil(),
            owner: String::new(),
            chapter: None,
            status: "active".into(),
            created_at: 0,
            disabled_at: 0,
            feed_cursor: String::new(),
            event_types: Vec::new(),
            url: String::new(),
            secret: String::new(),
            owner_credential: String::new(),
        };
        // Any two names of the feed's vocabulary (the gateway names none itself).
        let mut types = crate::feed::event_types();
        let (one, other) = (types.next().expect("a type"), types.next().expect("another"));
        assert!(wants(&hook, one));
        hook.event_types = vec![one.into()];
        assert!(wants(&hook, one));
        assert!(!wants(&hook, other));
    }
}

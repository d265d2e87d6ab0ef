//! Webhooks: integrators' subscriptions to the event feed, delivered by a dispatcher that
//! runs in the gateway process. State lives in the gateway's database so that deliveries
//! survive a restart: the webhook rows (the signing secret sealed with the gateway's key
//! store), each webhook's position in the merged feed, a queue of the feed items still to
//! deliver (the per-stream progress: the lowest queued item of a stream is its head), and
//! a log of every attempt.
//!
//! Each delivery is a `POST` of one feed item, signed with `Samskab-Signature`. A stream's
//! items go out one at a time, in order; a failing stream waits with exponential backoff
//! (with jitter) while the other streams keep flowing. After a stream has failed for
//! [`WebhookConfig::give_up_secs`] (24 h) the webhook is disabled. Delivery is at least
//! once, also when several gateways share PostgreSQL. Targets are checked against
//! server-side request forgery.
//!
//! By job:
//! - `store`: the rows and their SQL (webhooks, the queue, the log of attempts);
//! - `dispatcher`: the delivery loop (feed into queue, leases, backoff, giving up, the
//!   backlog gauge, the `POST`);
//! - `servicekit::ssrf`: which targets are allowed (shared with notify's push sender);
//! - `signature`: the `Samskab-Signature` header.

mod dispatcher;
mod signature;
mod store;

use serde::Serialize;
use uuid::Uuid;

use eventlog::EventStore;
use keystore::KeyStore;

use crate::feed::FeedReader;

pub use servicekit::ssrf::{check_url, resolve};
pub use store::owner_of;

/// How webhooks are delivered.
#[derive(Debug, Clone, clap::Args)]
pub struct WebhookConfig {
    /// Allow webhook targets on loopback addresses (local development and tests only).
    #[arg(long = "webhooks-allow-loopback", env = "SAMSKAB_WEBHOOKS_ALLOW_LOOPBACK")]
    pub allow_loopback: bool,
    /// First retry delay in milliseconds (doubles with each failure).
    #[arg(
        long = "webhooks-backoff-base-ms",
        env = "SAMSKAB_WEBHOOKS_BACKOFF_BASE_MS",
        default_value_t = 10_000,
        hide = true
    )]
    pub backoff_base_ms: u64,
    /// Longest retry delay in milliseconds.
    #[arg(
        long = "webhooks-backoff-max-ms",
        env = "SAMSKAB_WEBHOOKS_BACKOFF_MAX_MS",
        default_value_t = 3_600_000,
        hide = true
    )]
    pub backoff_max_ms: u64,
    /// Seconds a stream may keep failing before its webhook is disabled.
    #[arg(
        long = "webhooks-give-up-secs",
        env = "SAMSKAB_WEBHOOKS_GIVE_UP_SECS",
        default_value_t = 86_400,
        hide = true
    )]
    pub give_up_secs: u64,
    /// Webhooks one owner (an integrator's key or token) may have, active or disabled;
    /// creating one more is 422 `limit-reached` until one is deleted.
    #[arg(long = "webhooks-per-owner", env = "SAMSKAB_WEBHOOKS_PER_OWNER", default_value_t = 25,
        value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub per_owner: u32,
    /// Webhooks delivered to at once (one worker each; a slow receiver holds only its own).
    #[arg(long = "webhooks-workers", env = "SAMSKAB_WEBHOOKS_WORKERS", default_value_t = 64,
        value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub workers: u32,
    /// How often the dispatcher looks for new events, in milliseconds.
    #[arg(long = "webhooks-poll-ms", env = "SAMSKAB_WEBHOOKS_POLL_MS", default_value_t = 250, hide = true)]
    pub poll_ms: u64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            allow_loopback: false,
            backoff_base_ms: 10_000,
            backoff_max_ms: 3_600_000,
            give_up_secs: 86_400,
            per_owner: 25,
            workers: 64,
            poll_ms: 250,
        }
    }
}

/// Now, unix milliseconds.
fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A webhook as stored.
#[derive(Debug, Clone)]
pub struct Hook {
    /// Id.
    pub id: Uuid,
    /// Hash of the owner's role, scope and subject.
    pub owner: String,
    /// The chapter whose events it receives (none: the whole network).
    pub chapter: Option<Uuid>,
    /// `active` or `disabled`.
    pub status: String,
    /// Created, unix milliseconds.
    pub created_at: i64,
    /// Disabled, unix milliseconds (0: not).
    pub disabled_at: i64,
    /// Where its dispatcher reads the feed next.
    pub feed_cursor: String,
    /// The event types it wants (empty: all).
    pub event_types: Vec<String>,
    /// Target.
    pub url: String,
    /// The sealed signing secret.
    pub secret: String,
    /// The credential it was made with (`crate::caller::Credentials`): deliveries stop
    /// while it is not in force (a revoked key or grant).
    pub owner_credential: String,
}

/// One attempt, as logged.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeliveryView {
    /// Id of the attempt.
    pub delivery_id: String,
    /// The event delivered.
    pub event_id: String,
    /// Its stream.
    pub stream: String,
    /// Its type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// 1 for the first attempt of this event, then 2, 3...
    pub attempt: i64,
    /// When (RFC 3339, UTC).
    pub at: String,
    /// `delivered`, `failed` or `refused` (the target's address is not allowed).
    pub outcome: String,
    /// The receiver's HTTP status (absent when it did not answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// What went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The webhooks' store, SSRF checks and dispatcher.
#[derive(Clone)]
pub struct Webhooks {
    store: EventStore,
    keys: KeyStore,
    reader: FeedReader,
    /// Configuration.
    pub config: WebhookConfig,
    credentials: crate::caller::Credentials,
}

impl Webhooks {
    /// Over the gateway's database (migrations applied) and key store.
    pub fn new(
        store: EventStore,
        keys: KeyStore,
        reader: FeedReader,
        config: WebhookConfig,
        credentials: crate::caller::Credentials,
    ) -> Self {
        dispatcher::install_gauge();
        Webhooks { store, keys, reader, config, credentials }
    }
}

/// Removes payload fields from deliveries still queued (`(event id, field)`): a migration
/// that sealed those fields in the log (`samskab migrate`) leaves no clear copy of them in
/// the webhook queue, which holds each item as it will be sent. Returns how many queued
/// items changed. Run with the gateway stopped.
pub async fn drop_queued_fields(
    store: &eventlog::EventStore,
    drops: &[(String, String)],
) -> Result<u64, eventlog::Error> {
    servicekit::feed::drop_copied_fields(
        store,
        "SELECT webhook_id, event_id, item FROM gateway_webhook_queue",
        "UPDATE gateway_webhook_queue SET item = $3 WHERE webhook_id = $1 AND event_id = $2",
        Some("data"),
        drops,
    )
    .await
}

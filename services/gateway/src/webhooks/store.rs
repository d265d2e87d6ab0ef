//! The webhooks' rows and their SQL, in the gateway's database: the webhooks (the signing
//! secret sealed with the gateway's key store, the position in the merged feed), the queue
//! of feed items still to deliver (the lowest queued item of a stream is its head), and the
//! log of every attempt.
//!
//! Several gateways may share PostgreSQL: reading the feed into the queue is a
//! compare-and-set on the webhook's feed position ([`Webhooks::enqueue`]), and each attempt
//! first claims its queue row with a lease, a compare-and-set on its due time
//! ([`Webhooks::lease`]).

use eventlog::Arg;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{DeliveryView, Hook, Webhooks, now_ms};
use crate::feed::FeedItem;
use crate::problem::ApiError;

/// A query of whole webhook rows (read as [`HookRow`]).
macro_rules! hook_sql {
    ($tail:literal) => {
        concat!(
            "SELECT webhook_id, owner, chapter_id, status, created_at, disabled_at, feed_cursor, event_types, url, secret, ",
            "owner_credential ",
            "FROM gateway_webhooks ",
            $tail
        )
    };
}

/// A webhook's row as stored: `chapter_id` is '-' for the whole network, `event_types` a
/// JSON array.
#[derive(sqlx::FromRow)]
struct HookRow {
    #[sqlx(try_from = "String")]
    webhook_id: Uuid,
    owner: String,
    chapter_id: String,
    status: String,
    created_at: i64,
    disabled_at: i64,
    feed_cursor: String,
    event_types: String,
    url: String,
    secret: String,
    owner_credential: String,
}

impl HookRow {
    /// The webhook, unless its event types are not a JSON list of names.
    fn hook(self) -> Option<Hook> {
        Some(Hook {
            id: self.webhook_id,
            owner: self.owner,
            chapter: self.chapter_id.parse().ok(),
            status: self.status,
            created_at: self.created_at,
            disabled_at: self.disabled_at,
            feed_cursor: self.feed_cursor,
            event_types: serde_json::from_str(&self.event_types).ok()?,
            url: self.url,
            secret: self.secret,
            owner_credential: self.owner_credential,
        })
    }
}

/// A queued item: its event, attempts so far, due time, first failure.
pub(super) struct Queued {
    /// The event's id.
    pub(super) event_id: String,
    /// Attempts so far.
    pub(super) attempts: i64,
    /// When it is due, unix milliseconds (while leased: when the lease ends).
    pub(super) due: i64,
    /// When its first attempt failed, unix milliseconds (0: none has).
    pub(super) first_failed_at: i64,
    /// The feed item's JSON, as delivered.
    pub(super) body: String,
    /// The feed item.
    pub(super) item: FeedItem,
}

/// A queue row as stored (`item` is the feed item's JSON).
#[derive(sqlx::FromRow)]
struct QueueRow {
    event_id: String,
    attempts: i64,
    next_attempt_at: i64,
    first_failed_at: i64,
    item: String,
}

impl QueueRow {
    /// The queued item, unless its JSON is not a feed item.
    fn queued(self) -> Option<Queued> {
        Some(Queued {
            item: serde_json::from_str(&self.item).ok()?,
            event_id: self.event_id,
            attempts: self.attempts,
            due: self.next_attempt_at,
            first_failed_at: self.first_failed_at,
            body: self.item,
        })
    }
}

/// An attempt's row as stored (`status_code` 0 and `error` '' when there was none).
#[derive(sqlx::FromRow)]
struct DeliveryRow {
    delivery_id: String,
    event_id: String,
    stream: String,
    event_type: String,
    attempt: i64,
    at: i64,
    outcome: String,
    status_code: i64,
    error: String,
}

impl From<DeliveryRow> for DeliveryView {
    fn from(r: DeliveryRow) -> Self {
        DeliveryView {
            delivery_id: r.delivery_id,
            event_id: r.event_id,
            stream: r.stream,
            event_type: r.event_type,
            attempt: r.attempt,
            at: chrono::DateTime::from_timestamp_millis(r.at)
                .unwrap_or_default()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            outcome: r.outcome,
            status_code: u16::try_from(r.status_code).ok().filter(|s| *s > 0),
            error: (!r.error.is_empty()).then_some(r.error),
        }
    }
}

/// One attempt to record: the queue row's new state and the log's new row.
pub(super) struct Attempt {
    /// The webhook.
    pub(super) webhook_id: Uuid,
    /// The event attempted.
    pub(super) event_id: String,
    /// Its stream.
    pub(super) stream: String,
    /// Its type.
    pub(super) event_type: String,
    /// 1 for the first attempt of this event, then 2, 3...
    pub(super) attempt: i64,
    /// When, unix milliseconds.
    pub(super) at: i64,
    /// `delivered` (the item leaves the queue), `failed` or `refused`.
    pub(super) outcome: &'static str,
    /// The receiver's HTTP status (0: it did not answer).
    pub(super) status_code: u16,
    /// What went wrong ('': nothing).
    pub(super) error: String,
    /// When not delivered: when the next attempt is due, unix milliseconds.
    pub(super) next_attempt_at: i64,
    /// When not delivered: when the stream's first failed attempt was, unix milliseconds.
    pub(super) first_failed_at: i64,
}

/// A store failure, logged, as the caller's 503.
pub(super) fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "webhook store failed");
    ApiError::new(servicekit::ErrorCode::Unavailable)
}

/// The key of a webhook's owner: role, scope and subject, hashed.
pub fn owner_of(caller: &crate::caller::Caller) -> String {
    let scope = caller.chapter().map(|c| c.to_string()).unwrap_or_default();
    hex::encode(&Sha256::digest(format!("{}\0{scope}\0{}", caller.role().name(), caller.sub).as_bytes())[..16])
}

impl Webhooks {
    /// Stores a new webhook; returns it with its secret in clear.
    pub async fn create(
        &self,
        owner: String,
        owner_credential: String,
        chapter: Option<Uuid>,
        url: String,
        event_types: Vec<String>,
    ) -> Result<(Hook, String), ApiError> {
        let id = Uuid::now_v7();
        let mut raw = [0u8; 32];
        rand::Rng::fill_bytes(&mut rand::rng(), &mut raw);
        let secret = format!("whsec_{}", hex::encode(raw));
        let sealed = self.keys.seal(&format!("webhook:{id}"), "secret", &secret).await.map_err(internal)?;
        let cursor = self.reader.end().await?.to_string();
        let hook = Hook {
            id,
            owner,
            chapter,
            status: "active".into(),
            created_at: now_ms(),
            disabled_at: 0,
            feed_cursor: cursor,
            event_types,
            url,
            secret: sealed.0,
            owner_credential,
        };
        let h = hook.clone();
        let types = serde_json::to_string(&h.event_types).expect("strings serialise");
        let cap = i64::from(self.config.per_owner);
        let made = self
            .store
            .transaction(move |tx| {
                Box::pin(async move {
                    // The owner's count goes up only while below the cap; the row's lock
                    // orders concurrent creations (PostgreSQL re-checks the condition on
                    // the row as the previous one left it; SQLite has one writer).
                    let counted = tx
                        .execute(
                            "INSERT INTO gateway_webhook_owners (owner, webhooks) VALUES ($1, 1) \
                             ON CONFLICT (owner) DO UPDATE SET webhooks = gateway_webhook_owners.webhooks + 1 \
                             WHERE gateway_webhook_owners.webhooks < $2",
                            &[Arg::Text(h.owner.clone()), Arg::Int(cap)],
                        )
                        .await?;
                    if counted == 0 {
                        return Ok(false);
                    }
                    tx.execute(
                        "INSERT INTO gateway_webhooks (webhook_id, owner, chapter_id, status, created_at, disabled_at, \
                         feed_cursor, event_types, url, secret, enqueued, owner_credential) \
                         VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8, $9, 0, $10)",
                        &[
                            Arg::Text(h.id.to_string()),
                            Arg::Text(h.owner),
                            Arg::Text(h.chapter.map_or_else(|| "-".to_owned(), |c| c.to_string())),
                            Arg::Text(h.status),
                            Arg::Int(h.created_at),
                            Arg::Text(h.feed_cursor),
                            Arg::Text(types),
                            Arg::Text(h.url),
                            Arg::Text(h.secret),
                            Arg::Text(h.owner_credential),
                        ],
                    )
                    .await?;
                    Ok(true)
                })
            })
            .await
            .map_err(internal)?;
        if !made {
            return Err(ApiError::new(servicekit::ErrorCode::LimitReached)
                .detail(format!("an integrator may have at most {cap} webhooks: delete one before making another")));
        }
        Ok((hook, secret))
    }

    /// One webhook.
    pub async fn get(&self, id: Uuid) -> Result<Option<Hook>, ApiError> {
        let row: Option<HookRow> = self
            .store
            .fetch_optional_row(hook_sql!("WHERE webhook_id = $1"), &[Arg::Text(id.to_string())])
            .await
            .map_err(internal)?;
        Ok(row.and_then(HookRow::hook))
    }

    /// A page of webhooks (an owner's, or all), by id after `after`.
    pub async fn list(&self, owner: Option<&str>, after: &str, limit: u32) -> Result<Vec<Hook>, ApiError> {
        let rows: Vec<HookRow> = match owner {
            Some(o) => {
                self.store
                    .fetch_rows(
                        hook_sql!("WHERE owner = $1 AND webhook_id > $2 ORDER BY webhook_id LIMIT $3"),
                        &[Arg::Text(o.to_owned()), Arg::Text(after.to_owned()), Arg::Int(i64::from(limit))],
                    )
                    .await
            }
            None => {
                self.store
                    .fetch_rows(
                        hook_sql!("WHERE webhook_id > $1 ORDER BY webhook_id LIMIT $2"),
                        &[Arg::Text(after.to_owned()), Arg::Int(i64::from(limit))],
                    )
                    .await
            }
        }
        .map_err(internal)?;
        Ok(rows.into_iter().filter_map(HookRow::hook).collect())
    }

    /// The active webhooks (those the dispatcher delivers to).
    pub(super) async fn active(&self) -> Result<Vec<Hook>, eventlog::Error> {
        let rows: Vec<HookRow> = self.store.fetch_rows(hook_sql!("WHERE status = 'active'"), &[]).await?;
        Ok(rows.into_iter().filter_map(HookRow::hook).collect())
    }

    /// Deletes a webhook, its queue and its log, and counts it off its owner's webhooks
    /// (once, however many deletions of it race).
    pub async fn delete(&self, hook: &Hook) -> Result<(), ApiError> {
        let (id, owner) = (hook.id.to_string(), hook.owner.clone());
        super::dispatcher::forget_backlog(&id);
        self.store
            .transaction(move |tx| {
                Box::pin(async move {
                    let a = [Arg::Text(id)];
                    tx.execute("DELETE FROM gateway_webhook_queue WHERE webhook_id = $1", &a).await?;
                    tx.execute("DELETE FROM gateway_webhook_deliveries WHERE webhook_id = $1", &a).await?;
                    if tx.execute("DELETE FROM gateway_webhooks WHERE webhook_id = $1", &a).await? == 1 {
                        tx.execute(
                            "UPDATE gateway_webhook_owners SET webhooks = webhooks - 1 WHERE owner = $1 AND webhooks > 0",
                            &[Arg::Text(owner)],
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .await
            .map_err(internal)?;
        Ok(())
    }

    /// Marks an active webhook disabled at `now` (unix milliseconds).
    pub(super) async fn set_disabled(&self, id: Uuid, now: i64) -> Result<(), eventlog::Error> {
        let id = id.to_string();
        self.store
            .transaction(move |tx| {
                Box::pin(async move {
                    tx.execute(
                        "UPDATE gateway_webhooks SET status = 'disabled', disabled_at = $2 WHERE webhook_id = $1 AND status = 'active'",
                        &[Arg::Text(id), Arg::Int(now)],
                    )
                    .await
                })
            })
            .await
            .map(|_| ())
    }

    /// Moves the webhook's feed position from where `hook` read it to `next` and queues
    /// `wanted` (each item with its JSON), due at `now`; nothing when another dispatcher
    /// moved the position first.
    pub(super) async fn enqueue(
        &self,
        hook: &Hook,
        next: String,
        wanted: Vec<(FeedItem, String)>,
        now: i64,
    ) -> Result<(), ApiError> {
        let (id, old) = (hook.id.to_string(), hook.feed_cursor.clone());
        self.store
            .transaction(move |tx| {
                Box::pin(async move {
                    let base = tx
                        .fetch_i64(
                            "SELECT enqueued FROM gateway_webhooks WHERE webhook_id = $1 AND feed_cursor = $2",
                            &[Arg::Text(id.clone()), Arg::Text(old.clone())],
                        )
                        .await?;
                    let Some(base) = base else { return Ok(()) };
                    let moved = tx
                        .execute(
                            "UPDATE gateway_webhooks SET feed_cursor = $3, enqueued = enqueued + $4 \
                             WHERE webhook_id = $1 AND feed_cursor = $2",
                            &[Arg::Text(id.clone()), Arg::Text(old), Arg::Text(next), Arg::Int(wanted.len() as i64)],
                        )
                        .await?;
                    if moved != 1 {
                        // Another dispatcher moved it first.
                        return Ok(());
                    }
                    for (n, (item, body)) in wanted.into_iter().enumerate() {
                        tx.execute(
                            "INSERT INTO gateway_webhook_queue (webhook_id, event_id, seq, stream, attempts, next_attempt_at, \
                             first_failed_at, item) VALUES ($1, $2, $3, $4, 0, $5, 0, $6) \
                             ON CONFLICT (webhook_id, event_id) DO NOTHING",
                            &[
                                Arg::Text(id.clone()),
                                Arg::Text(item.event_id),
                                Arg::Int(base + n as i64),
                                Arg::Text(item.stream),
                                Arg::Int(now),
                                Arg::Text(body),
                            ],
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .await
            .map_err(internal)
    }

    /// The head (lowest queued item) of each of the webhook's streams, at most 100.
    pub(super) async fn heads(&self, id: Uuid) -> Result<Vec<Queued>, eventlog::Error> {
        let rows: Vec<QueueRow> = self
            .store
            .fetch_rows(
                "SELECT q.event_id, q.attempts, q.next_attempt_at, q.first_failed_at, q.item FROM gateway_webhook_queue q \
                 WHERE q.webhook_id = $1 AND q.seq = (SELECT MIN(p.seq) FROM gateway_webhook_queue p \
                 WHERE p.webhook_id = q.webhook_id AND p.stream = q.stream) ORDER BY q.seq LIMIT 100",
                &[Arg::Text(id.to_string())],
            )
            .await?;
        Ok(rows.into_iter().filter_map(QueueRow::queued).collect())
    }

    /// Claims a queued item until `until` (unix milliseconds): moves its due time from
    /// `due`, the value read, so that one dispatcher wins. The rows changed (1: claimed).
    pub(super) async fn lease(&self, id: Uuid, event_id: String, due: i64, until: i64) -> Result<u64, eventlog::Error> {
        let id = id.to_string();
        self.store
            .transaction(move |tx| {
                Box::pin(async move {
                    tx.execute(
                        "UPDATE gateway_webhook_queue SET next_attempt_at = $3 \
                         WHERE webhook_id = $1 AND event_id = $2 AND next_attempt_at = $4",
                        &[Arg::Text(id), Arg::Text(event_id), Arg::Int(until), Arg::Int(due)],
                    )
                    .await
                })
            })
            .await
    }

    /// Makes every leased item due at `now` (unix milliseconds).
    pub(super) async fn release_all_leases(&self, now: i64) -> Result<u64, eventlog::Error> {
        self.store
            .transaction(move |tx| {
                Box::pin(async move {
                    tx.execute(
                        "UPDATE gateway_webhook_queue SET next_attempt_at = $1 WHERE next_attempt_at > $1",
                        &[Arg::Int(now)],
                    )
                    .await
                })
            })
            .await
    }

    /// Records an attempt: a delivered item leaves the queue, another is due again later;
    /// either way the attempt is logged.
    pub(super) async fn record(&self, a: Attempt) -> Result<u64, eventlog::Error> {
        let delivered = a.outcome == "delivered";
        let id = a.webhook_id.to_string();
        let ev = a.event_id;
        self.store
            .transaction(move |tx| {
                Box::pin(async move {
                    if delivered {
                        tx.execute(
                            "DELETE FROM gateway_webhook_queue WHERE webhook_id = $1 AND event_id = $2",
                            &[Arg::Text(id.clone()), Arg::Text(ev.clone())],
                        )
                        .await?;
                    } else {
                        tx.execute(
                            "UPDATE gateway_webhook_queue SET attempts = $3, next_attempt_at = $4, first_failed_at = $5 \
                             WHERE webhook_id = $1 AND event_id = $2",
                            &[
                                Arg::Text(id.clone()),
                                Arg::Text(ev.clone()),
                                Arg::Int(a.attempt),
                                Arg::Int(a.next_attempt_at),
                                Arg::Int(a.first_failed_at),
                            ],
                        )
                        .await?;
                    }
                    tx.execute(
                        "INSERT INTO gateway_webhook_deliveries (delivery_id, webhook_id, event_id, stream, event_type, \
                         attempt, at, outcome, status_code, error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                        &[
                            Arg::Text(Uuid::now_v7().to_string()),
                            Arg::Text(id),
                            Arg::Text(ev),
                            Arg::Text(a.stream),
                            Arg::Text(a.event_type),
                            Arg::Int(a.attempt),
                            Arg::Int(a.at),
                            Arg::Text(a.outcome.to_owned()),
                            Arg::Int(i64::from(a.status_code)),
                            Arg::Text(a.error),
                        ],
                    )
                    .await
                })
            })
            .await
    }

    /// Items not yet delivered.
    pub async fn backlog(&self, id: Uuid) -> Result<i64, ApiError> {
        self.store
            .fetch_i64("SELECT COUNT(*) FROM gateway_webhook_queue WHERE webhook_id = $1", &[Arg::Text(id.to_string())])
            .await
            .map(|n| n.unwrap_or(0))
            .map_err(internal)
    }

    /// A page of a webhook's attempts, oldest first, after the attempt `after`.
    pub async fn deliveries(&self, id: Uuid, after: &str, limit: u32) -> Result<Vec<DeliveryView>, ApiError> {
        let rows: Vec<DeliveryRow> = self
            .store
            .fetch_rows(
                "SELECT delivery_id, event_id, stream, event_type, attempt, at, outcome, status_code, error \
                 FROM gateway_webhook_deliveries WHERE webhook_id = $1 AND delivery_id > $2 ORDER BY delivery_id LIMIT $3",
                &[Arg::Text(id.to_string()), Arg::Text(after.to_owned()), Arg::Int(i64::from(limit))],
            )
            .await
            .map_err(internal)?;
        Ok(rows.into_iter().map(DeliveryView::from).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;
    use crate::caller::{Acting, Caller};

    fn hook_row(chapter_id: &str, event_types: &str) -> HookRow {
        HookRow {
            webhook_id: Uuid::nil(),
            owner: "o".into(),
            chapter_id: chapter_id.into(),
            status: "active".into(),
            created_at: 1,
            disabled_at: 0,
            feed_cursor: "c".into(),
            event_types: event_types.into(),
            url: "https://hooks.example.org/".into(),
            secret: "sealed".into(),
            owner_credential: String::new(),
        }
    }

    #[test]
    fn a_hook_row_reads_its_chapter_and_event_types() {
        let network = hook_row("-", "[]").hook().expect("a valid row");
        assert_eq!(network.chapter, None);
        assert!(network.event_types.is_empty());
        let chapter = Uuid::from_u128(7);
        let h = hook_row(&chapter.to_string(), r#"["SomethingHappened","SomethingElseHappened"]"#)
            .hook()
            .expect("a valid row");
        assert_eq!(h.chapter, Some(chapter));
        assert_eq!(h.event_types, ["SomethingHappened", "SomethingElseHappened"]);
        assert_eq!((h.url.as_str(), h.secret.as_str()), ("https://hooks.example.org/", "sealed"));
    }

    #[test]
    fn a_hook_row_whose_event_types_are_not_a_list_of_names_is_skipped() {
        assert!(hook_row("-", "not json").hook().is_none());
        assert!(hook_row("-", "[1, 2]").hook().is_none());
    }

    #[test]
    fn a_queue_row_keeps_the_item_json_as_the_body() {
        let json = r#"{"cursor":"c1","event_id":"e1","stream":"thing-1","type":"SomethingHappened","occurred_at":"2023-11-14T22:13:20Z","data":{}}"#;
        let row = |item: &str| QueueRow {
            event_id: "e1".into(),
            attempts: 2,
            next_attempt_at: 30,
            first_failed_at: 10,
            item: item.into(),
        };
        let q = row(json).queued().expect("a feed item");
        assert_eq!((q.event_id.as_str(), q.attempts, q.due, q.first_failed_at), ("e1", 2, 30, 10));
        assert_eq!(q.body, json);
        assert_eq!((q.item.stream.as_str(), q.item.event_type.as_str()), ("thing-1", "SomethingHappened"));
        assert!(row("{}").queued().is_none());
    }

    #[test]
    fn a_delivery_row_reads_zero_status_and_empty_error_as_absent() {
        let row = |status_code: i64, error: &str| DeliveryRow {
            delivery_id: "d".into(),
            event_id: "e".into(),
            stream: "thing-1".into(),
            event_type: "SomethingHappened".into(),
            attempt: 1,
            at: 1_700_000_000_000,
            outcome: "failed".into(),
            status_code,
            error: error.into(),
        };
        let v = DeliveryView::from(row(0, ""));
        assert_eq!(v.at, "2023-11-14T22:13:20.000Z");
        assert_eq!((v.status_code, v.error), (None, None));
        let v = DeliveryView::from(row(502, "the receiver answered 502 Bad Gateway"));
        assert_eq!(v.status_code, Some(502));
        assert_eq!(v.error.as_deref(), Some("the receiver answered 502 Bad Gateway"));
    }

    #[test]
    fn owners_are_keyed_by_role_scope_and_subject() {
        let caller = |role: Role, chapter: Option<Uuid>, sub: &str| {
            Caller::single(sub.into(), Uuid::nil(), Acting { grant: None, role, chapter, suspended: false })
        };
        let c = Uuid::from_u128(1);
        let key = owner_of(&caller(Role::Integrator(Some(c)), Some(c), "app"));
        assert_eq!(key.len(), 32);
        assert!(key.chars().all(|ch| ch.is_ascii_hexdigit()));
        assert_eq!(key, owner_of(&caller(Role::Integrator(Some(c)), Some(c), "app")));
        assert_ne!(key, owner_of(&caller(Role::Integrator(None), None, "app")));
        assert_ne!(key, owner_of(&caller(Role::Integrator(Some(c)), Some(c), "other")));
        assert_ne!(key, owner_of(&caller(Role::ChapterAdmin(c), Some(c), "app")));
    }
}

//! Sending what the outbox holds (e-mail, SMS, Web Push): each notice leased by one sender at a time (two
//! processes may run), its recipient's choice, address and language settled at send time
//! (an address is unsealed only here, never stored in clear), retried with exponential
//! backoff and jitter for 24 h, then recorded as failed; one recipient's failure never holds
//! back another's. Every copy of a notice carries one `Message-ID`: a crash between sending
//! and recording sends it again, recognisably.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use eventlog::{Arg, Error, EventStore, ExpectedVersion, NewEvent, StreamAppend};
use keystore::KeyStore;
use samskab_proto::volunteer::v1::{GetPilotRequest, volunteer_service_client::VolunteerServiceClient};
use tonic::transport::Channel;
use uuid::Uuid;

use crate::facts::{from_micros, micros};
use crate::inbox::OutboxDoc;
use crate::mail::{Email, Mailer, SendError};
use crate::notices::{self, Language, NoticeDelivered, NoticeFailed, Secret, kind};
use crate::people;
use crate::sms::{Sms, SmsSender};

/// How long a sender holds a notice it is sending.
const LEASE: Duration = Duration::minutes(2);
/// How long a notice is retried.
pub const GIVE_UP_AFTER: Duration = Duration::hours(24);
/// The first retry's delay; each next one doubles, up to [`MAX_DELAY`].
const FIRST_DELAY: Duration = Duration::seconds(30);
const MAX_DELAY: Duration = Duration::hours(1);
/// Notices sent per look.
const BATCH: i64 = 20;

/// The delay before attempt `attempts + 1`: 30 s, 1 min, 2 min, ... up to 1 h, each
/// between half and all of it (jitter, so a relay that comes back is not hit at once).
pub fn backoff(attempts: u32, jitter: f64) -> Duration {
    let exp = FIRST_DELAY.num_milliseconds().saturating_mul(1i64 << attempts.saturating_sub(1).min(20));
    let ms = exp.min(MAX_DELAY.num_milliseconds()) as f64;
    Duration::milliseconds((ms * (0.5 + 0.5 * jitter.clamp(0.0, 1.0))) as i64)
}

/// Sends the outbox.
#[derive(Clone)]
pub struct Sender {
    /// Notify's log and tables.
    pub store: EventStore,
    /// Notify's keys (contact details, codes).
    pub keys: KeyStore,
    /// The relay, if configured.
    pub mailer: Option<Mailer>,
    /// The SMS provider, if configured.
    pub sms: Option<SmsSender>,
    /// Web Push.
    pub pusher: crate::push::Pusher,
    /// Volunteer, for a pilot record's address.
    pub volunteer: Option<VolunteerServiceClient<Channel>>,
}

#[derive(Debug, sqlx::FromRow)]
struct Row {
    notice_id: String,
    recipient: String,
    kind: String,
    channel: String,
    due_at: i64,
    next_at: i64,
    attempts: i64,
    doc: String,
}

/// What became of one attempt.
enum Outcome {
    Delivered,
    /// Not sent, for good (the word recorded).
    Final(&'static str),
    /// Try again later.
    Retry,
    /// Held by the recipient's quiet hours until then (not an attempt).
    Hold(DateTime<Utc>),
}

impl Sender {
    /// One look: sends what is due by `now`; returns how many notices it settled or retried.
    pub async fn round(&self, now: DateTime<Utc>) -> Result<usize, Error> {
        let rows: Vec<Row> = self
            .store
            .fetch_rows(
                "SELECT notice_id, recipient, kind, channel, due_at, next_at, attempts, doc FROM notify_outbox \
                 WHERE next_at <= $1 ORDER BY next_at, notice_id LIMIT $2",
                &[Arg::Int(micros(now)), Arg::Int(BATCH)],
            )
            .await?;
        let mut n = 0;
        for row in rows {
            if !self.lease(&row, now).await? {
                continue;
            }
            let attempts = u32::try_from(row.attempts + 1).unwrap_or(u32::MAX);
            let outcome = self.attempt(&row, now).await;
            let id: Uuid = row.notice_id.parse().map_err(|_| Error::Corrupt(format!("notice {}", row.notice_id)))?;
            match outcome {
                Outcome::Delivered => {
                    let e = NoticeDelivered { notice_id: id, channel: row.channel.clone(), at: now, attempts };
                    self.record(id, "NoticeDelivered", &e).await?;
                    crate::metrics::notice(&row.kind, &row.channel, "delivered");
                }
                Outcome::Final(word) => {
                    let e = NoticeFailed {
                        notice_id: id,
                        channel: row.channel.clone(),
                        at: now,
                        outcome: word.into(),
                        attempts,
                    };
                    self.record(id, "NoticeFailed", &e).await?;
                    crate::metrics::notice(&row.kind, &row.channel, word);
                }
                Outcome::Retry if now - from_micros(row.due_at) >= GIVE_UP_AFTER => {
                    let e = NoticeFailed {
                        notice_id: id,
                        channel: row.channel.clone(),
                        at: now,
                        outcome: "failed".into(),
                        attempts,
                    };
                    self.record(id, "NoticeFailed", &e).await?;
                    crate::metrics::notice(&row.kind, &row.channel, "failed");
                }
                Outcome::Retry => {
                    let next = now + backoff(attempts, rand::random::<f64>());
                    self.reschedule(id, next, true).await?;
                    crate::metrics::notice(&row.kind, &row.channel, "retried");
                }
                Outcome::Hold(until) => {
                    // Not an attempt: it waits for the end of the quiet hours.
                    self.reschedule(id, until, false).await?;
                    crate::metrics::notice(&row.kind, &row.channel, "held");
                }
            }
            n += 1;
        }
        Ok(n)
    }

    /// Moves a notice's next attempt to `at`; one that was not an attempt (held for quiet
    /// hours) gives back the attempt its lease counted.
    async fn reschedule(&self, id: Uuid, at: DateTime<Utc>, attempted: bool) -> Result<(), Error> {
        let (id, at) = (id.to_string(), Arg::Int(micros(at)));
        self.store
            .transaction(move |tx| {
                Box::pin(async move {
                    let sql = if attempted {
                        "UPDATE notify_outbox SET next_at = $2 WHERE notice_id = $1"
                    } else {
                        "UPDATE notify_outbox SET next_at = $2, attempts = attempts - 1 WHERE notice_id = $1"
                    };
                    tx.execute(sql, &[id.into(), at]).await
                })
            })
            .await?;
        Ok(())
    }

    /// Takes the notice for this sender: moves its next attempt past the lease, if no other
    /// sender moved it first.
    async fn lease(&self, row: &Row, now: DateTime<Utc>) -> Result<bool, Error> {
        let (id, old, until) = (row.notice_id.clone(), row.next_at, micros(now + LEASE));
        let taken = self
            .store
            .transaction(move |tx| {
                Box::pin(async move {
                    tx.execute(
                        "UPDATE notify_outbox SET next_at = $3, attempts = attempts + 1 \
                         WHERE notice_id = $1 AND next_at = $2",
                        &[id.into(), Arg::Int(old), Arg::Int(until)],
                    )
                    .await
                })
            })
            .await?;
        Ok(taken == 1)
    }

    async fn record<T: serde::Serialize>(&self, id: Uuid, event_type: &str, payload: &T) -> Result<(), Error> {
        // One outcome per notice: its id names it, so a second sender's is a no-op.
        let event_id = notices::notice_id("outcome", &id.to_string(), "", "");
        let event = NewEvent::with_id(event_id, event_type, payload)?;
        match self.store.append(vec![StreamAppend::new(notices::stream(id), ExpectedVersion::Any, vec![event])]).await {
            Ok(_) | Err(Error::IdempotencyClash { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The pilot record's address on `channel` (`email`, or `sms`: its phone number in
    /// E.164), asked of volunteer now (none once erased).
    async fn pilot_address(&self, pilot_id: &str, channel: &str) -> Result<Option<String>, SendError> {
        let Some(client) = &self.volunteer else { return Ok(None) };
        let mut client = client.clone();
        let call = client.get_pilot(GetPilotRequest { pilot_id: pilot_id.into() });
        match tokio::time::timeout(StdDuration::from_secs(10), call).await {
            Ok(Ok(p)) => {
                let p = p.into_inner();
                let a = if channel == notices::channel::SMS { p.phone } else { p.email };
                let usable = channel != notices::channel::SMS || crate::grpc::e164(&a);
                Ok(Some(a).filter(|a| !a.is_empty() && usable && !p.erased))
            }
            Ok(Err(s)) if s.code() == tonic::Code::NotFound => Ok(None),
            Ok(Err(s)) => Err(SendError::Transient(format!("volunteer: {}", s.code()))),
            Err(_) => Err(SendError::Transient("volunteer: timeout".into())),
        }
    }

    /// Where the notice goes on its channel: the sealed address it carries (a confirmation
    /// code's), the chooser's confirmed address or number, or a pilot record's.
    async fn address(&self, row: &Row, chooser: &str, secret: &Option<Secret>) -> Result<Option<String>, SendError> {
        if let Some(to) = secret.as_ref().and_then(|s| s.to.clone()) {
            return Ok(Some(to));
        }
        let transient = |e: Error| SendError::Transient(e.to_string());
        // An invitation goes to the pilot record's address, whoever else is linked.
        if row.kind != kind::INVITATION
            && let Some(person) = chooser.strip_prefix("person:")
            && let Some(a) =
                people::confirmed_address(&self.store, &self.keys, person, &row.channel).await.map_err(transient)?
        {
            return Ok(Some(a));
        }
        match row.recipient.strip_prefix("pilot:") {
            Some(pilot) => self.pilot_address(pilot, &row.channel).await,
            None => Ok(None),
        }
    }

    async fn attempt(&self, row: &Row, now: DateTime<Utc>) -> Outcome {
        match self.try_send(row, now).await {
            Ok(o) => o,
            Err(SendError::Permanent(_)) => Outcome::Final("rejected"),
            Err(SendError::Config(_)) => Outcome::Final("not-configured"),
            Err(SendError::Transient(e)) => {
                // A relay's or provider's words may hold the address: only the notice is named.
                tracing::warn!(notice_id = %row.notice_id, channel = %row.channel, error = %redact(&e),
                    "notice not sent; retrying later");
                Outcome::Retry
            }
        }
    }

    async fn try_send(&self, row: &Row, now: DateTime<Utc>) -> Result<Outcome, SendError> {
        let transient = |e: Error| SendError::Transient(e.to_string());
        let configured = match row.channel.as_str() {
            notices::channel::EMAIL => self.mailer.is_some(),
            notices::channel::SMS => self.sms.is_some(),
            notices::channel::PUSH => true,
            _ => false,
        };
        if !configured {
            return Ok(Outcome::Final("not-configured"));
        }
        if people::erased(&self.store, &row.recipient).await.map_err(transient)? {
            return Ok(Outcome::Final("erased"));
        }
        let doc: OutboxDoc = serde_json::from_str(&row.doc).map_err(|e| SendError::Permanent(e.to_string()))?;
        let chooser = people::chooser(&self.store, &row.recipient).await.map_err(transient)?;
        let prefs = people::preferences(&self.store, &chooser).await.map_err(transient)?.unwrap_or_default();
        let choosable = kind::ALL.contains(&row.kind.as_str());
        if choosable && !prefs.channels_of(&row.kind).contains(&row.channel) {
            return Ok(Outcome::Final("opted-out"));
        }
        // Quiet hours hold SMS and push of what a person may choose (a code they asked for
        // just now, or an invitation, is not held).
        if choosable
            && row.channel != notices::channel::EMAIL
            && let Some(q) = &prefs.quiet_hours
        {
            let zone = [q.timezone.as_str(), doc.facts.timezone.as_str()]
                .iter()
                .find_map(|z| z.parse::<chrono_tz::Tz>().ok())
                .unwrap_or(chrono_tz::UTC);
            if let Some(until) = crate::quiet::held_until(q, zone, now, doc.facts.start) {
                return Ok(Outcome::Hold(until));
            }
        }
        let secret: Option<Secret> = match &doc.facts.sealed {
            Some(sealed) => match self.keys.unseal_json::<Secret>(&row.recipient, "notice", sealed).await {
                Ok(Some(s)) => Some(s),
                // The recipient's key is gone: erased.
                Ok(None) => return Ok(Outcome::Final("erased")),
                Err(e) => return Err(SendError::Transient(e.to_string())),
            },
            None => None,
        };
        let lang =
            prefs.language.as_deref().and_then(Language::parse).unwrap_or_else(|| Language::default_for(&doc.facts));
        let (subject, mut text) = notices::words(&row.kind, &doc.facts, lang);
        if let Some(s) = &secret {
            text = format!("{text}\n\n{}", s.code);
        }
        let id: Uuid = row.notice_id.parse().map_err(|_| SendError::Permanent("notice id".into()))?;
        if row.channel == notices::channel::PUSH {
            return self.push(row, &chooser, &doc, id, &subject, &text).await;
        }
        let Some(to) = self.address(row, &chooser, &secret).await? else { return Ok(Outcome::Final("no-address")) };
        match (row.channel.as_str(), &self.mailer, &self.sms) {
            (notices::channel::EMAIL, Some(mailer), _) => {
                let unsubscribe = choosable.then(|| {
                    let token = people::unsubscribe_token(&self.keys, &chooser, &row.kind);
                    format!("{}/v1/unsubscribe?token={token}", mailer.public_url)
                });
                let language = if lang == Language::Da { "da" } else { "en" };
                mailer.send(&Email { to, subject, text, notice_id: id, unsubscribe, language }).await?;
            }
            (notices::channel::SMS, _, Some(sms)) => {
                sms.send(&Sms { to, text: crate::sms::text_of(&subject, &text), notice_id: id }).await?;
            }
            _ => return Ok(Outcome::Final("not-configured")),
        }
        Ok(Outcome::Delivered)
    }
}

impl Sender {
    /// Pushes the notice to each of the chooser's browsers: delivered when a push service
    /// took it for one of them (a browser whose push service is down then misses it: the
    /// others are not pushed again and again); a subscription the push service calls gone is
    /// deleted; when none took it and one could not be reached, all are tried again later
    /// (one topic per notice: a push service replaces a copy not yet delivered).
    async fn push(
        &self,
        row: &Row,
        chooser: &str,
        doc: &OutboxDoc,
        id: Uuid,
        title: &str,
        body: &str,
    ) -> Result<Outcome, SendError> {
        let transient = |e: Error| SendError::Transient(e.to_string());
        let Some(person) = chooser.strip_prefix("person:") else { return Ok(Outcome::Final("no-address")) };
        let subs = crate::push::subscriptions(&self.store, person).await.map_err(transient)?;
        let payload = serde_json::json!({
            "notification_id": id,
            "kind": row.kind,
            "title": title,
            "body": body,
            "links": {"ride_id": doc.facts.ride_id, "ride_request_id": doc.facts.ride_request_id},
        })
        .to_string();
        let topic = id.simple().to_string();
        let urgent = row.kind == kind::REMINDER || row.kind == kind::CANCELLED;
        let (mut sent, mut retry, mut gone) = (0usize, false, 0usize);
        for (sub_id, sealed, _) in &subs {
            let Ok(sealed) = serde_json::from_str::<domain::types::Sealed>(sealed) else { continue };
            let target = match self.keys.unseal_json::<people::PushTarget>(chooser, "push", &sealed).await {
                Ok(Some(t)) => t,
                Ok(None) => return Ok(Outcome::Final("erased")),
                Err(e) => return Err(SendError::Transient(e.to_string())),
            };
            match self.pusher.send(&target, payload.as_bytes(), &topic, urgent).await {
                Ok(crate::push::Pushed::Sent) => sent += 1,
                Ok(crate::push::Pushed::Gone) => {
                    gone += 1;
                    if let Ok(sub) = sub_id.parse() {
                        crate::subscriptions::remove(&self.store, chooser, sub, "gone")
                            .await
                            .map_err(|e| SendError::Transient(e.to_string()))?;
                    }
                }
                Err(SendError::Transient(e)) => {
                    tracing::warn!(notice_id = %row.notice_id, error = %e, "push not sent; retrying later");
                    retry = true;
                }
                Err(e) => tracing::warn!(notice_id = %row.notice_id, error = %e, "push refused"),
            }
        }
        Ok(if sent > 0 {
            Outcome::Delivered
        } else if retry {
            Outcome::Retry
        } else if gone == subs.len() {
            Outcome::Final("no-address")
        } else {
            Outcome::Final("rejected")
        })
    }
}

/// A relay's error without anything that looks like an address.
fn redact(s: &str) -> String {
    s.split_whitespace().map(|w| if w.contains('@') { "<address>" } else { w }).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_with_jitter_up_to_an_hour() {
        assert_eq!(backoff(1, 1.0), Duration::seconds(30));
        assert_eq!(backoff(2, 1.0), Duration::seconds(60));
        assert_eq!(backoff(3, 1.0), Duration::seconds(120));
        assert_eq!(backoff(3, 0.0), Duration::seconds(60));
        assert_eq!(backoff(30, 1.0), Duration::hours(1));
        assert!(backoff(4, 0.5) > backoff(4, 0.0) && backoff(4, 0.5) < backoff(4, 1.0));
    }

    #[test]
    fn a_relays_words_lose_their_addresses() {
        assert_eq!(redact("550 5.1.1 <pilot@example.org>: unknown"), "550 5.1.1 <address> unknown");
    }
}

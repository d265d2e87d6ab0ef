//! Recipients' own data: their preferences (language, channels per kind, quiet hours),
//! their contact details (sealed under the person's key, usable once confirmed), signed
//! unsubscribe links and erasure. Each change is an event in notify's log (stream
//! `recipient-<recipient>`), projected into `notify_preferences` and `notify_contacts` by
//! the one projection of the log ([`crate::inbox::Inbox`]).

use std::collections::BTreeMap;

use base64::Engine;
use chrono::{DateTime, Utc};
use domain::types::Sealed;
use eventlog::{Arg, Error, EventStore, RecordedEvent, Tx};
use keystore::KeyStore;
use serde::{Deserialize, Serialize};

use crate::facts::micros;
use crate::notices::kind;

/// Channels a person may choose per kind.
pub const CHANNELS: &[&str] = &["email", "sms", "push"];

/// Quiet hours (held SMS and push; the next issue sends by them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuietHours {
    /// `HH:MM`.
    pub from: String,
    /// `HH:MM`.
    pub to: String,
    /// An IANA zone; empty: the zone of the person's first grant's chapter.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub timezone: String,
}

/// What a recipient chose; what they did not choose takes the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preferences {
    /// `da` or `en`; none: by the chapter's zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Quiet hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<QuietHours>,
    /// Channels per kind; a kind not here: e-mail.
    #[serde(default)]
    pub channels: BTreeMap<String, Vec<String>>,
}

impl Preferences {
    /// The channels of `kind` besides the inbox.
    pub fn channels_of(&self, kind: &str) -> Vec<String> {
        self.channels.get(kind).cloned().unwrap_or_else(|| vec!["email".into()])
    }

    /// Every kind with its channels (the chosen ones, else the default).
    pub fn effective(&self) -> BTreeMap<String, Vec<String>> {
        kind::ALL.iter().map(|k| ((*k).to_owned(), self.channels_of(k))).collect()
    }
}

/// The recipient's preferences changed (the whole set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationPreferencesSet {
    /// `person:<id>` or `pilot:<id>`.
    pub recipient: String,
    /// The set.
    pub preferences: Preferences,
    /// Why: `set` (by the person) or `unsubscribed:<kind>` (a link in an e-mail).
    pub by: String,
}

/// A person set an address (or number) that waits for its confirmation code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactDetailsSet {
    /// `person:<id>`.
    pub recipient: String,
    /// `email` or `sms`.
    pub channel: String,
    /// The address, sealed under the person's key.
    pub address: Sealed,
    /// The code's keyed digest.
    pub code_digest: String,
    /// Until when the code holds.
    pub expires_at: DateTime<Utc>,
}

/// The person confirmed the pending address: it is used from now on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactConfirmed {
    /// `person:<id>`.
    pub recipient: String,
    /// The channel.
    pub channel: String,
}

/// A wrong code was tried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactConfirmationFailed {
    /// `person:<id>`.
    pub recipient: String,
    /// The channel.
    pub channel: String,
}

/// The recipient was erased: their contact details, preferences, inbox and waiting
/// deliveries are gone, and nothing more is decided for them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecipientErased {
    /// `person:<id>` or `pilot:<id>`.
    pub recipient: String,
}

/// A browser subscribed to Web Push for the person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushSubscriptionAdded {
    /// `person:<id>`.
    pub recipient: String,
    /// Its id.
    pub subscription_id: uuid::Uuid,
    /// [`PushTarget`] as JSON, sealed under the person's key.
    pub target: Sealed,
    /// A keyed digest of the endpoint (the same browser subscribing again is found by it).
    pub endpoint_digest: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A subscription is gone: deleted by the person (`deleted`) or refused by the push
/// service as expired (`gone`: a 404 or 410).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushSubscriptionRemoved {
    /// `person:<id>`.
    pub recipient: String,
    /// Its id.
    pub subscription_id: uuid::Uuid,
    /// `deleted` or `gone`.
    pub reason: String,
}

/// Where and how a push goes (sealed in [`PushSubscriptionAdded`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushTarget {
    /// The push service's URL for the browser.
    pub endpoint: String,
    /// The browser's P-256 public key, base64url.
    pub p256dh: String,
    /// Its auth secret, base64url.
    pub auth: String,
}

/// The stream of a recipient's own events.
pub fn stream(recipient: &str) -> String {
    format!("recipient-{recipient}")
}

/// Applies a recipient event to the tables (the log's projection).
pub async fn apply(tx: &mut Tx<'_>, event: &RecordedEvent) -> Result<(), Error> {
    match event.event_type.as_str() {
        "NotificationPreferencesSet" => {
            let p: NotificationPreferencesSet = event.payload_as()?;
            let doc = serde_json::to_string(&p.preferences).map_err(Error::Payload)?;
            tx.execute(
                "INSERT INTO notify_preferences (recipient, doc) VALUES ($1, $2) \
                 ON CONFLICT (recipient) DO UPDATE SET doc = excluded.doc",
                &[p.recipient.into(), doc.into()],
            )
            .await?;
        }
        "ContactDetailsSet" => {
            let c: ContactDetailsSet = event.payload_as()?;
            let (person, sealed) =
                (person_of(&c.recipient), serde_json::to_string(&c.address).map_err(Error::Payload)?);
            tx.execute(
                "INSERT INTO notify_contacts (person_id, channel, pending, code_digest, code_expires_at, tries) \
                 VALUES ($1, $2, $3, $4, $5, 0) ON CONFLICT (person_id, channel) DO UPDATE SET \
                 pending = excluded.pending, code_digest = excluded.code_digest, \
                 code_expires_at = excluded.code_expires_at, tries = 0",
                &[person.into(), c.channel.into(), sealed.into(), c.code_digest.into(), Arg::Int(micros(c.expires_at))],
            )
            .await?;
        }
        "ContactConfirmed" => {
            let c: ContactConfirmed = event.payload_as()?;
            tx.execute(
                "UPDATE notify_contacts SET confirmed = pending, pending = '', code_digest = '', tries = 0 \
                 WHERE person_id = $1 AND channel = $2",
                &[person_of(&c.recipient).into(), c.channel.into()],
            )
            .await?;
        }
        "ContactConfirmationFailed" => {
            let c: ContactConfirmationFailed = event.payload_as()?;
            tx.execute(
                "UPDATE notify_contacts SET tries = tries + 1 WHERE person_id = $1 AND channel = $2",
                &[person_of(&c.recipient).into(), c.channel.into()],
            )
            .await?;
        }
        "RecipientErased" => {
            let e: RecipientErased = event.payload_as()?;
            erase_in(tx, &e.recipient).await?;
        }
        "PushSubscriptionAdded" => {
            let a: PushSubscriptionAdded = event.payload_as()?;
            let sealed = serde_json::to_string(&a.target).map_err(Error::Payload)?;
            tx.execute(
                "INSERT INTO notify_push_subscriptions \
                 (subscription_id, person_id, sealed, endpoint_digest, created_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (subscription_id) DO NOTHING",
                &[
                    a.subscription_id.to_string().into(),
                    person_of(&a.recipient).into(),
                    sealed.into(),
                    a.endpoint_digest.into(),
                    Arg::Int(micros(a.created_at)),
                ],
            )
            .await?;
        }
        "PushSubscriptionRemoved" => {
            let r: PushSubscriptionRemoved = event.payload_as()?;
            tx.execute(
                "DELETE FROM notify_push_subscriptions WHERE subscription_id = $1",
                &[r.subscription_id.to_string().into()],
            )
            .await?;
        }
        _ => {}
    }
    Ok(())
}

fn person_of(recipient: &str) -> String {
    recipient.strip_prefix("person:").unwrap_or(recipient).to_owned()
}

/// Deletes what notify holds of `recipient` and marks them erased (in a projection's or a
/// feed follower's transaction).
pub async fn erase_in(tx: &mut Tx<'_>, recipient: &str) -> Result<(), Error> {
    let r = recipient.to_owned();
    tx.execute(
        "INSERT INTO notify_erased (recipient) VALUES ($1) ON CONFLICT (recipient) DO NOTHING",
        &[r.as_str().into()],
    )
    .await?;
    tx.execute("DELETE FROM notify_preferences WHERE recipient = $1", &[r.as_str().into()]).await?;
    tx.execute("DELETE FROM notify_contacts WHERE person_id = $1", &[person_of(&r).into()]).await?;
    tx.execute("DELETE FROM notify_push_subscriptions WHERE person_id = $1", &[person_of(&r).into()]).await?;
    tx.execute("DELETE FROM notify_inbox WHERE recipient = $1", &[r.as_str().into()]).await?;
    tx.execute("DELETE FROM notify_outbox WHERE recipient = $1", &[r.as_str().into()]).await?;
    tx.execute("DELETE FROM notify_deliveries WHERE recipient = $1", &[r.as_str().into()]).await?;
    Ok(())
}

/// The recipient whose choices apply: a pilot's linked person, else the recipient.
pub async fn chooser(store: &EventStore, recipient: &str) -> Result<String, Error> {
    if let Some(pilot) = recipient.strip_prefix("pilot:") {
        let person = store
            .fetch_texts("SELECT person_id FROM notify_pilots WHERE pilot_id = $1", &[pilot.into()])
            .await?
            .into_iter()
            .next()
            .unwrap_or_default();
        if !person.is_empty() {
            return Ok(format!("person:{person}"));
        }
    }
    Ok(recipient.to_owned())
}

/// The preferences of whoever chooses for `recipient` ([`chooser`]), in one read (the
/// decider asks this of every recipient of every notice).
pub async fn chooser_preferences(store: &EventStore, recipient: &str) -> Result<Option<Preferences>, Error> {
    let pilot = recipient.strip_prefix("pilot:").unwrap_or_default();
    let doc = store
        .fetch_texts(
            "SELECT doc FROM notify_preferences WHERE recipient = COALESCE(\
             (SELECT 'person:' || person_id FROM notify_pilots WHERE pilot_id = $1 AND person_id <> ''), $2)",
            &[pilot.into(), recipient.into()],
        )
        .await?;
    match doc.into_iter().next() {
        Some(d) => Ok(Some(serde_json::from_str(&d).map_err(Error::Payload)?)),
        None => Ok(None),
    }
}

/// Whether `recipient` was erased.
pub async fn erased(store: &EventStore, recipient: &str) -> Result<bool, Error> {
    Ok(store
        .fetch_i64("SELECT COUNT(*) FROM notify_erased WHERE recipient = $1", &[recipient.into()])
        .await?
        .unwrap_or(0)
        > 0)
}

/// What `recipient` chose (defaults where nothing).
pub async fn preferences(store: &EventStore, recipient: &str) -> Result<Option<Preferences>, Error> {
    let doc = store.fetch_texts("SELECT doc FROM notify_preferences WHERE recipient = $1", &[recipient.into()]).await?;
    match doc.into_iter().next() {
        Some(d) => Ok(Some(serde_json::from_str(&d).map_err(Error::Payload)?)),
        None => Ok(None),
    }
}

/// A person's contact row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ContactRow {
    /// Sealed confirmed address (JSON), or empty.
    pub confirmed: String,
    /// Sealed pending address (JSON), or empty.
    pub pending: String,
    /// The pending code's digest.
    pub code_digest: String,
    /// Until when.
    pub code_expires_at: i64,
    /// Wrong tries.
    pub tries: i64,
}

/// A person's contact row of `channel`.
pub async fn contact(store: &EventStore, person_id: &str, channel: &str) -> Result<Option<ContactRow>, Error> {
    let rows: Vec<ContactRow> = store
        .fetch_rows(
            "SELECT confirmed, pending, code_digest, code_expires_at, tries FROM notify_contacts \
             WHERE person_id = $1 AND channel = $2",
            &[person_id.into(), channel.into()],
        )
        .await?;
    Ok(rows.into_iter().next())
}

/// Unseals a sealed value stored as JSON (none once the person's key is erased).
pub async fn unseal(keys: &KeyStore, recipient: &str, field: &str, json: &str) -> Option<String> {
    if json.is_empty() {
        return None;
    }
    let sealed: Sealed = serde_json::from_str(json).ok()?;
    keys.unseal(recipient, field, &sealed).await.ok().flatten()
}

/// The person's confirmed address on `channel`, unsealed (send time only).
pub async fn confirmed_address(
    store: &EventStore,
    keys: &KeyStore,
    person_id: &str,
    channel: &str,
) -> Result<Option<String>, Error> {
    let Some(row) = contact(store, person_id, channel).await? else { return Ok(None) };
    Ok(unseal(keys, &format!("person:{person_id}"), channel, &row.confirmed).await)
}

const UNSUBSCRIBE: &str = "unsubscribe";

/// The signed token of an unsubscribe link: the recipient and kind, with a keyed digest
/// (HMAC under a key derived from notify's master key). Stored nowhere.
pub fn unsubscribe_token(keys: &KeyStore, recipient: &str, kind: &str) -> String {
    let body = format!("{recipient}\n{kind}");
    let mac = keys.digest(UNSUBSCRIBE, body.as_bytes());
    format!("{}.{mac}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(body))
}

/// The (recipient, kind) of a token this service signed; `None` for anything else.
pub fn verify_unsubscribe(keys: &KeyStore, token: &str) -> Option<(String, String)> {
    let (body, mac) = token.split_once('.')?;
    let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(body).ok()?;
    let expected = keys.digest(UNSUBSCRIBE, &body);
    if !constant_time_eq(expected.as_bytes(), mac.as_bytes()) {
        return None;
    }
    let body = String::from_utf8(body).ok()?;
    let (recipient, kind) = body.split_once('\n')?;
    Some((recipient.to_owned(), kind.to_owned()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The keyed digest of a confirmation code.
pub fn code_digest(keys: &KeyStore, recipient: &str, channel: &str, code: &str) -> String {
    keys.digest("contact-code", format!("{recipient}\n{channel}\n{code}").as_bytes())
}

/// Whether two digests are equal, in constant time.
pub fn same_digest(a: &str, b: &str) -> bool {
    constant_time_eq(a.as_bytes(), b.as_bytes())
}

/// A pending address as the recipient's stream tells it.
#[derive(Debug, Clone, Default)]
pub struct PendingContact {
    /// The code's digest.
    pub code_digest: String,
    /// Until when.
    pub expires_at: DateTime<Utc>,
    /// Wrong tries since it was set.
    pub tries: u32,
}

/// A recipient's own state, folded from their stream (the authority for decisions; the
/// tables may lag).
#[derive(Debug, Clone, Default)]
pub struct State {
    /// The stream's version (0: none).
    pub version: u64,
    /// The last preferences set.
    pub preferences: Option<Preferences>,
    /// Pending addresses per channel.
    pub pending: BTreeMap<String, PendingContact>,
    /// Push subscriptions, oldest first.
    pub push: Vec<PushSubscriptionAdded>,
    /// Erased.
    pub erased: bool,
}

/// What a change appends: the recipient stream's event (type and payload) and the appends
/// of other streams that go with it, in the same append.
pub type Change = (&'static str, serde_json::Value, Vec<eventlog::StreamAppend>);

/// Runs `decide` on the recipient's state and appends the change it returns at the version
/// it read, deciding again after a lost race; answers what `decide` answered.
pub async fn change<T>(
    store: &EventStore,
    recipient: &str,
    decide: impl Fn(&State) -> Result<(T, Option<Change>), servicekit::ServiceError>,
) -> Result<T, servicekit::ServiceError> {
    use eventlog::{ExpectedVersion, NewEvent, StreamAppend};
    for _ in 0..20 {
        let state = load(store, recipient).await?;
        let (answer, change) = decide(&state)?;
        let Some((event_type, payload, more)) = change else { return Ok(answer) };
        let expected =
            if state.version == 0 { ExpectedVersion::NoStream } else { ExpectedVersion::Exact(state.version) };
        let mut appends =
            vec![StreamAppend::new(stream(recipient), expected, vec![NewEvent::new(event_type, &payload)?])];
        appends.extend(more);
        match store.append(appends).await {
            Ok(_) => return Ok(answer),
            Err(Error::WrongExpectedVersion { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(servicekit::ServiceError::Unavailable("too many concurrent changes; try again".into()))
}

/// Folds `recipient`'s stream.
pub async fn load(store: &EventStore, recipient: &str) -> Result<State, Error> {
    let mut s = State::default();
    for e in store.read_whole_stream(&stream(recipient)).await? {
        s.version = e.version;
        match e.event_type.as_str() {
            "NotificationPreferencesSet" => {
                s.preferences = Some(e.payload_as::<NotificationPreferencesSet>()?.preferences);
            }
            "ContactDetailsSet" => {
                let c: ContactDetailsSet = e.payload_as()?;
                s.pending.insert(
                    c.channel,
                    PendingContact { code_digest: c.code_digest, expires_at: c.expires_at, tries: 0 },
                );
            }
            "ContactConfirmationFailed" => {
                let c: ContactConfirmationFailed = e.payload_as()?;
                if let Some(p) = s.pending.get_mut(&c.channel) {
                    p.tries += 1;
                }
            }
            "ContactConfirmed" => {
                let c: ContactConfirmed = e.payload_as()?;
                s.pending.remove(&c.channel);
            }
            "RecipientErased" => {
                s = State { version: e.version, erased: true, ..State::default() };
            }
            "PushSubscriptionAdded" => {
                s.push.push(e.payload_as::<PushSubscriptionAdded>()?);
            }
            "PushSubscriptionRemoved" => {
                let r: PushSubscriptionRemoved = e.payload_as()?;
                s.push.retain(|a| a.subscription_id != r.subscription_id);
            }
            _ => {}
        }
    }
    Ok(s)
}

//! The inbox: notify's own log projected into `notify_inbox` (one row per decided notice,
//! its read time once read), `notify_outbox` (notices waiting to go out on other channels)
//! and the recipients' tables ([`crate::people`]), and the inbox's queries.

use chrono::{DateTime, Utc};
use eventlog::{Arg, Error, EventStore, Projection, RecordedEvent, Tx};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::facts::{from_micros, micros};
use crate::notices::{Facts, NoticeDecided, NoticeRead, channel};

/// The projection's checkpoint name.
pub const NAME: &str = "notify-inbox";

/// Projects decided notices and their reading into the inbox.
pub struct Inbox;

impl Projection for Inbox {
    fn name(&self) -> &str {
        NAME
    }

    /// Notify's log holds only its own events: notices and recipients'.
    fn filter(&self) -> eventlog::Filter {
        eventlog::Filter::all()
    }

    fn apply<'a>(&'a self, tx: &'a mut Tx<'_>, event: &'a RecordedEvent) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            match event.event_type.as_str() {
                "NoticeDecided" => {
                    let d: NoticeDecided = event.payload_as()?;
                    if d.channel != channel::INBOX {
                        let doc = OutboxDoc { occasion: d.occasion, facts: d.facts };
                        tx.execute(
                            "INSERT INTO notify_outbox (notice_id, recipient, kind, channel, due_at, next_at, doc) \
                             VALUES ($1, $2, $3, $4, $5, $5, $6) ON CONFLICT (notice_id) DO NOTHING",
                            &[
                                d.notice_id.into(),
                                d.recipient.into(),
                                d.kind.into(),
                                d.channel.into(),
                                Arg::Int(micros(d.due_at)),
                                Arg::Text(serde_json::to_string(&doc).map_err(Error::Payload)?),
                            ],
                        )
                        .await?;
                        return Ok(());
                    }
                    let doc = Doc { kind: d.kind.clone(), facts: d.facts };
                    tx.execute(
                        "INSERT INTO notify_inbox (notice_id, seq, recipient, kind, created_at, read_at, doc) \
                         VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM notify_inbox), $2, $3, $4, NULL, $5) \
                         ON CONFLICT (notice_id) DO NOTHING",
                        &[
                            d.notice_id.into(),
                            d.recipient.into(),
                            d.kind.into(),
                            Arg::Int(micros(d.due_at)),
                            Arg::Text(serde_json::to_string(&doc).map_err(Error::Payload)?),
                        ],
                    )
                    .await?;
                }
                "NoticeRead" => {
                    let r: NoticeRead = event.payload_as()?;
                    tx.execute(
                        "UPDATE notify_inbox SET read_at = $2 WHERE notice_id = $1 AND read_at IS NULL",
                        &[r.notice_id.into(), Arg::Int(micros(r.at))],
                    )
                    .await?;
                }
                "NoticeDelivered" | "NoticeFailed" => {
                    let outcome: Outcome = event.payload_as()?;
                    let word = outcome.outcome.unwrap_or_else(|| "delivered".into());
                    tx.execute(
                        "INSERT INTO notify_deliveries (notice_id, recipient, kind, channel, outcome, at) \
                         SELECT notice_id, recipient, kind, channel, $2, $3 FROM notify_outbox WHERE notice_id = $1 \
                         ON CONFLICT (notice_id) DO NOTHING",
                        &[outcome.notice_id.into(), word.into(), Arg::Int(micros(outcome.at))],
                    )
                    .await?;
                    tx.execute("DELETE FROM notify_outbox WHERE notice_id = $1", &[outcome.notice_id.into()]).await?;
                }
                _ => crate::people::apply(tx, event).await?,
            }
            Ok(())
        })
    }
}

/// The notice an outcome is about.
#[derive(Deserialize)]
struct Outcome {
    notice_id: Uuid,
    at: DateTime<Utc>,
    outcome: Option<String>,
}

/// What an outbox row keeps besides its columns.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboxDoc {
    /// The notice's occasion.
    pub occasion: String,
    /// Its facts.
    pub facts: Facts,
}

/// What an inbox row keeps besides its columns.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Doc {
    kind: String,
    facts: Facts,
}

/// A notice in an inbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Id.
    pub notice_id: Uuid,
    /// The order the inbox received it in.
    pub seq: i64,
    /// To whom.
    pub recipient: String,
    /// Kind.
    pub kind: String,
    /// When it was decided.
    pub created_at: DateTime<Utc>,
    /// When it was read.
    pub read_at: Option<DateTime<Utc>>,
    /// Its facts.
    pub facts: Facts,
}

#[derive(sqlx::FromRow)]
struct Row {
    notice_id: String,
    seq: i64,
    recipient: String,
    created_at: i64,
    read_at: Option<i64>,
    doc: String,
}

impl Row {
    fn entry(self) -> Result<Entry, Error> {
        let doc: Doc = serde_json::from_str(&self.doc).map_err(Error::Payload)?;
        Ok(Entry {
            notice_id: self.notice_id.parse().map_err(|_| Error::Corrupt(format!("notice id {}", self.notice_id)))?,
            seq: self.seq,
            recipient: self.recipient,
            kind: doc.kind,
            created_at: from_micros(self.created_at),
            read_at: self.read_at.map(from_micros),
            facts: doc.facts,
        })
    }
}

/// Where a page of an inbox ends: (created_at, notice_id) of its last entry.
pub fn cursor_of(e: &Entry) -> String {
    format!("{}.{}", micros(e.created_at), e.notice_id)
}

/// A cursor read back; `None` for a malformed one.
pub fn parse_cursor(c: &str) -> Option<(i64, String)> {
    let (t, id) = c.split_once('.')?;
    Some((t.parse().ok()?, id.parse::<Uuid>().ok()?.to_string()))
}

/// A page of the recipients' notices, newest first, after `cursor`; at most `limit`.
pub async fn page(
    store: &EventStore,
    recipients: &[String],
    after: Option<(i64, String)>,
    limit: usize,
    unread_only: bool,
) -> Result<Vec<Entry>, Error> {
    let (t, id) = after.unwrap_or((i64::MAX, String::new()));
    let mut all = Vec::new();
    for r in recipients {
        let rows: Vec<Row> = store
            .fetch_rows(
                "SELECT notice_id, seq, recipient, created_at, read_at, doc FROM notify_inbox \
                 WHERE recipient = $1 AND (created_at < $2 OR (created_at = $2 AND notice_id < $3)) \
                 AND ($4 = 0 OR read_at IS NULL) \
                 ORDER BY created_at DESC, notice_id DESC LIMIT $5",
                &[
                    r.as_str().into(),
                    Arg::Int(t),
                    Arg::Text(if id.is_empty() { "~".into() } else { id.clone() }),
                    Arg::Int(i64::from(unread_only)),
                    Arg::Int(limit as i64),
                ],
            )
            .await?;
        for row in rows {
            all.push(row.entry()?);
        }
    }
    all.sort_by_key(|e| std::cmp::Reverse((e.created_at, e.notice_id.to_string())));
    all.truncate(limit);
    Ok(all)
}

/// The recipients' notices received after `after_seq`, oldest first; at most `limit`.
pub async fn since(
    store: &EventStore,
    recipients: &[String],
    after_seq: i64,
    limit: usize,
) -> Result<Vec<Entry>, Error> {
    let mut all = Vec::new();
    for r in recipients {
        let rows: Vec<Row> = store
            .fetch_rows(
                "SELECT notice_id, seq, recipient, created_at, read_at, doc FROM notify_inbox \
                 WHERE recipient = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                &[r.as_str().into(), Arg::Int(after_seq), Arg::Int(limit as i64)],
            )
            .await?;
        for row in rows {
            all.push(row.entry()?);
        }
    }
    all.sort_by_key(|e| e.seq);
    all.truncate(limit);
    Ok(all)
}

/// One notice, if it is one of `recipients`'.
pub async fn get(store: &EventStore, recipients: &[String], notice_id: Uuid) -> Result<Option<Entry>, Error> {
    let rows: Vec<Row> = store
        .fetch_rows(
            "SELECT notice_id, seq, recipient, created_at, read_at, doc FROM notify_inbox WHERE notice_id = $1",
            &[notice_id.into()],
        )
        .await?;
    match rows.into_iter().next() {
        Some(row) if recipients.contains(&row.recipient) => Ok(Some(row.entry()?)),
        _ => Ok(None),
    }
}

/// The highest `seq` among the recipients' notices (0: none).
pub async fn head_seq(store: &EventStore, recipients: &[String]) -> Result<u64, Error> {
    let mut head = 0;
    for r in recipients {
        let n = store
            .fetch_i64("SELECT COALESCE(MAX(seq), 0) FROM notify_inbox WHERE recipient = $1", &[r.as_str().into()])
            .await?
            .unwrap_or(0);
        head = head.max(n.max(0) as u64);
    }
    Ok(head)
}

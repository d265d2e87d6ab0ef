//! The event log's one error type.

use uuid::Uuid;

use crate::ExpectedVersion;

/// What can go wrong when using the log.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A stream's version was not what the append expected; nothing of the call was written.
    #[error("stream {stream_id}: expected version {expected}, actual version {actual}")]
    WrongExpectedVersion {
        /// The stream whose expectation failed.
        stream_id: String,
        /// What the caller expected.
        expected: ExpectedVersion,
        /// What the stream holds (0 when it does not exist).
        actual: u64,
    },
    /// An event id is already stored with other content (stream, type, schema or payload).
    #[error("event {event_id} is already stored with different content")]
    IdempotencyClash {
        /// The clashing id.
        event_id: Uuid,
    },
    /// The append call itself is not well-formed (no events, a stream named twice, an id
    /// used twice in one call, an empty stream id).
    #[error("invalid append: {0}")]
    InvalidAppend(String),
    /// A cursor string that this log did not hand out.
    #[error("not a cursor of this log: {0:?}")]
    BadCursor(String),
    /// The database URL names no supported backend.
    #[error("unsupported database URL (use sqlite:// or postgres://): {0}")]
    UnsupportedUrl(String),
    /// A payload or metadata value could not be (de)serialised.
    #[error("payload is not valid JSON: {0}")]
    Payload(#[source] serde_json::Error),
    /// A stored row could not be decoded.
    #[error("corrupt row in the log: {0}")]
    Corrupt(String),
    /// A payload rewrite found an event missing or changed since it was read; nothing of
    /// the rewrite was written.
    #[error("rewrite refused: {0}")]
    Rewrite(String),
    /// A consumer's handler failed.
    #[error("handler failed: {0}")]
    Handler(String),
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The schema is behind this release and this role may not migrate it.
    #[error("{0}")]
    NotMigrated(String),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl Error {
    /// True when retrying the same call later could succeed (the database was unreachable,
    /// a pool timed out), as opposed to a refusal that will repeat.
    pub fn is_transient(&self) -> bool {
        match self {
            // PostgreSQL going down or coming back: the connection cut (class 08), the server
            // shutting down or crashing (57P01, 57P02) or still recovering (57P03).
            Error::Database(sqlx::Error::Database(db)) => {
                db.code().is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03"))
            }
            Error::Database(e) => matches!(
                e,
                sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed
            ),
            _ => false,
        }
    }
}

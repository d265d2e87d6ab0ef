//! The log's hot statements, one constant each: the backends run them and the query-plan
//! test (`tests/plans.rs`) EXPLAINs exactly these texts on both databases, so a change that
//! makes one of them scan its table or sort its rows fails a test (issue 22).

/// SQLite's hot statements.
pub mod sqlite {
    /// A stream's version (appends' expectation check, `stream_version`).
    pub const STREAM_VERSION: &str = "SELECT version FROM eventlog_streams WHERE stream_id = $1";
    /// A stream's events after a version (every command's load).
    pub const READ_STREAM: &str = "SELECT position, event_id, stream_id, version, event_type, schema_version, payload, \
         metadata, occurred_at, recorded_at \
         FROM eventlog_events WHERE stream_id = $1 AND version > $2 ORDER BY version LIMIT $3";
    // A page of the log after a position (`$1`), by category (`$2`) and tenant (`$3`),
    // at most `$4` events: one text for both statements below.
    macro_rules! page_sql {
        () => {
            "SELECT position, event_id, stream_id, version, event_type, schema_version, payload, \
             metadata, occurred_at, recorded_at \
             FROM eventlog_events \
             WHERE position > $1 \
               AND ($2 IS NULL OR substr(stream_id, 1, length($2)) = $2) \
               AND ($3 IS NULL OR tenant = $3) \
             ORDER BY position LIMIT $4"
        };
    }
    /// A page of the whole log after a position, by category and tenant (subscriptions).
    pub const READ_ALL: &str = page_sql!();
    /// [`READ_ALL`] with a category or tenant, and one more row: the last position of the
    /// log in the same snapshot (every column but the position NULL). A page shorter than
    /// the limit moves the reader's cursor there, so a follower of a rare category reads
    /// only the events appended since its last read, not every event since its last match.
    pub const READ_ALL_FILTERED: &str = concat!(
        "SELECT * FROM (",
        page_sql!(),
        ") UNION ALL SELECT (SELECT max(position) FROM eventlog_events), \
         NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL"
    );
    /// The last position.
    pub const HEAD: &str = "SELECT max(position) FROM eventlog_events";
    /// A stored event by id (told apart from a clash when an append hits one).
    pub const EVENT_BY_ID: &str =
        "SELECT event_id, stream_id, version, position, content_hash FROM eventlog_events WHERE event_id = $1";
    /// A consumer's checkpoint.
    pub const CHECKPOINT: &str = "SELECT cursor FROM eventlog_checkpoints WHERE consumer = $1";

    /// Several streams' versions (an append's expectation check): [`stream_versions`] of 3.
    pub const STREAM_VERSIONS_3: &str = "SELECT stream_id, version FROM eventlog_streams WHERE stream_id IN (?, ?, ?)";
    /// Several whole streams (a command's load): [`read_streams`] of 3.
    pub const READ_STREAMS_3: &str = "SELECT position, event_id, stream_id, version, event_type, schema_version, \
         payload, metadata, occurred_at, recorded_at FROM eventlog_events WHERE stream_id IN (?, ?, ?) \
         ORDER BY stream_id, version";

    /// The versions of `n` streams (positional parameters: the stream ids).
    pub fn stream_versions(n: usize) -> String {
        crate::consumer::in_list("SELECT stream_id, version FROM eventlog_streams WHERE stream_id IN", n, "", true)
    }

    /// Sets the versions of `n` streams (parameters: stream id, version, in pairs).
    pub fn set_stream_versions(n: usize) -> String {
        format!(
            "INSERT INTO eventlog_streams (stream_id, version) VALUES {} \
             ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version",
            vec!["(?, ?)"; n].join(", ")
        )
    }

    /// Every event of `n` streams, by stream and version (parameters: the stream ids).
    pub fn read_streams(n: usize) -> String {
        crate::consumer::in_list(
            "SELECT position, event_id, stream_id, version, event_type, schema_version, \
             payload, metadata, occurred_at, recorded_at FROM eventlog_events WHERE stream_id IN",
            n,
            "ORDER BY stream_id, version",
            true,
        )
    }

    /// Every one of them, named.
    pub const HOT: &[(&str, &str)] = &[
        ("stream_version", STREAM_VERSION),
        ("stream_versions", STREAM_VERSIONS_3),
        ("read_stream", READ_STREAM),
        ("read_streams", READ_STREAMS_3),
        ("read_all", READ_ALL),
        ("read_all_filtered", READ_ALL_FILTERED),
        ("head", HEAD),
        ("event_by_id", EVENT_BY_ID),
        ("checkpoint", CHECKPOINT),
    ];
}

/// PostgreSQL's hot statements.
pub mod postgres {
    /// A stream's version.
    pub const STREAM_VERSION: &str = "SELECT version FROM eventlog_streams WHERE stream_id = $1";
    /// A stream's events after a version.
    pub const READ_STREAM: &str = "SELECT position, (tx_id::text)::bigint AS tx, event_id, stream_id, version, \
         event_type, schema_version, payload::text, metadata::text, occurred_at, recorded_at \
         FROM eventlog_events WHERE stream_id = $1 AND version > $2 ORDER BY version LIMIT $3";
    /// Every event of several streams (`$1`: an array of distinct ids), stream by stream
    /// in the array's order, each by version. One index range per stream: `stream_id =
    /// ANY($1)` has a generic plan that guesses the array's rows, and one made while the
    /// log was small (a fresh deployment; autoanalyze runs a minute later at the earliest)
    /// read the whole table for every command (issue 22, part 3). `version > 0` (always
    /// true) makes the range an index scan even on a table of a few rows.
    pub const READ_STREAMS: &str = "SELECT e.position, (e.tx_id::text)::bigint AS tx, e.event_id, e.stream_id, \
         e.version, e.event_type, e.schema_version, e.payload::text, e.metadata::text, e.occurred_at, e.recorded_at \
         FROM unnest($1::text[]) WITH ORDINALITY AS s(id, n) \
         CROSS JOIN LATERAL (SELECT * FROM eventlog_events WHERE stream_id = s.id AND version > 0 ORDER BY version) e \
         ORDER BY s.n, e.version";

    // One static statement per filter shape: with `$n IS NULL OR ...` the generic plan
    // misjudges row counts and sorts the whole tail instead of walking the index.
    macro_rules! page_sql {
        ($($cond:literal)?) => {
            concat!(
                "SELECT position, (tx_id::text)::bigint AS tx, event_id, stream_id, version, event_type, \
                        schema_version, payload::text, metadata::text, occurred_at, recorded_at \
                 FROM eventlog_events \
                 WHERE (tx_id, position) > (($1::bigint)::text::xid8, $2) \
                   AND tx_id < pg_snapshot_xmin(pg_current_snapshot()) ",
                $($cond,)?
                " ORDER BY tx_id, position LIMIT $3"
            )
        };
    }
    // A filtered page, and one more row: the last readable cursor in the same snapshot
    // (every column but position and tx NULL). A page shorter than the limit moves the
    // reader's cursor there (see `sqlite::READ_ALL_FILTERED`).
    macro_rules! filtered_page_sql {
        ($cond:literal) => {
            concat!(
                "(",
                page_sql!($cond),
                ") UNION ALL SELECT h.position, (h.tx_id::text)::bigint, NULL, NULL, NULL, NULL, NULL, NULL, \
                 NULL, NULL, NULL FROM (SELECT tx_id, position FROM eventlog_events \
                 WHERE tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
                 ORDER BY tx_id DESC, position DESC LIMIT 1) h"
            )
        };
    }
    /// A page of the whole log after a cursor, below every open transaction.
    pub const READ_ALL: &str = page_sql!();
    /// The same, one category (`$4`: the stream prefix), and the last readable cursor.
    pub const READ_ALL_PREFIX: &str = filtered_page_sql!("AND starts_with(stream_id, $4)");
    /// The same, one tenant (`$4`), and the last readable cursor.
    pub const READ_ALL_TENANT: &str = filtered_page_sql!("AND tenant = $4");
    /// The same, one category (`$4`) and tenant (`$5`), and the last readable cursor.
    pub const READ_ALL_PREFIX_TENANT: &str = filtered_page_sql!("AND starts_with(stream_id, $4) AND tenant = $5");
    /// The cursor of the last event readers can see now.
    pub const HEAD: &str = "SELECT (tx_id::text)::bigint AS tx, position FROM eventlog_events \
         WHERE tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
         ORDER BY tx_id DESC, position DESC LIMIT 1";
    /// The cursor of the last committed event, readable yet or not.
    pub const LAST_COMMITTED: &str =
        "SELECT (tx_id::text)::bigint AS tx, position FROM eventlog_events ORDER BY tx_id DESC, position DESC LIMIT 1";
    /// Stored events by id (`$1`: an array).
    pub const EVENTS_BY_IDS: &str = "SELECT event_id, stream_id, version, position, (tx_id::text)::bigint, \
         content_hash FROM eventlog_events WHERE event_id = ANY($1)";
    /// A consumer's checkpoint.
    pub const CHECKPOINT: &str = "SELECT cursor FROM eventlog_checkpoints WHERE consumer = $1";

    /// Every one of them, named.
    pub const HOT: &[(&str, &str)] = &[
        ("stream_version", STREAM_VERSION),
        ("read_stream", READ_STREAM),
        ("read_streams", READ_STREAMS),
        ("read_all", READ_ALL),
        ("read_all_prefix", READ_ALL_PREFIX),
        ("read_all_tenant", READ_ALL_TENANT),
        ("read_all_prefix_tenant", READ_ALL_PREFIX_TENANT),
        ("head", HEAD),
        ("last_committed", LAST_COMMITTED),
        ("events_by_ids", EVENTS_BY_IDS),
        ("checkpoint", CHECKPOINT),
    ];
}

//! The read model: a projection of the service's own log into one table per kind of
//! object (`carehome_chapters`, `_carehomes`, `_bikes`, `_residents`), each row the
//! object's folded state as JSON plus the columns lists filter and count by. Lists read
//! from here (eventually consistent); single objects are read from their streams.

use domain::DomainEvent;
use domain::events::CareHomeEvent;
use eventlog::{Arg, Error, EventStore, Projection, RecordedEvent, Tx};
use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use servicekit::{Aggregate, ServiceError};
use uuid::Uuid;

use crate::bikes::Bike;
use crate::carehomes::CareHome;
use crate::chapters::Chapter;
use crate::residents::Resident;

/// Applies the read model's migrations (numbered files in `migrations/`, portable SQL).
pub async fn migrate(store: &EventStore) -> Result<(), Error> {
    store.migrate("carehome_migrations", sqlx::migrate!("./migrations"), sqlx::migrate!("./migrations")).await
}

/// A row's document: an object's state at a version of its stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Doc<T> {
    /// The stream version the state reflects.
    pub version: u64,
    /// The folded state.
    pub state: T,
}

/// The statements of one table (static SQL that both backends run).
pub struct Table {
    select: &'static str,
    upsert: &'static str,
    page: &'static str,
}

macro_rules! table {
    ($name:literal) => {
        Table {
            select: concat!("SELECT doc FROM ", $name, " WHERE id = $1"),
            upsert: concat!(
                "INSERT INTO ",
                $name,
                " (id, chapter_id, parent_id, status, version, doc) VALUES ($1, $2, $3, $4, $5, $6) ",
                "ON CONFLICT (id) DO UPDATE SET chapter_id = excluded.chapter_id, parent_id = excluded.parent_id, ",
                "status = excluded.status, version = excluded.version, doc = excluded.doc"
            ),
            page: concat!("SELECT doc FROM ", $name, " WHERE parent_id = $1 AND id > $2 ORDER BY id LIMIT $3"),
        }
    };
}

/// An object kept in the read model.
pub trait Listed: Aggregate<Event = CareHomeEvent> + Serialize + DeserializeOwned {
    /// Its table.
    const TABLE: Table;
    /// Its id (the row's key and a list's cursor).
    fn id(&self) -> Uuid;
    /// What lists of it are filtered by.
    fn parent_id(&self) -> Uuid;
    /// Its status (for counts), or "".
    fn status(&self) -> &'static str;
}

impl Listed for Chapter {
    const TABLE: Table = table!("carehome_chapters");
    fn id(&self) -> Uuid {
        self.chapter_id
    }
    fn parent_id(&self) -> Uuid {
        self.chapter_id
    }
    fn status(&self) -> &'static str {
        ""
    }
}

impl Listed for CareHome {
    const TABLE: Table = table!("carehome_carehomes");
    fn id(&self) -> Uuid {
        self.carehome_id
    }
    fn parent_id(&self) -> Uuid {
        self.chapter_id
    }
    fn status(&self) -> &'static str {
        ""
    }
}

impl Listed for Bike {
    const TABLE: Table = table!("carehome_bikes");
    fn id(&self) -> Uuid {
        self.bike_id
    }
    fn parent_id(&self) -> Uuid {
        self.carehome_id
    }
    fn status(&self) -> &'static str {
        self.status.as_str()
    }
}

impl Listed for Resident {
    const TABLE: Table = table!("carehome_residents");
    fn id(&self) -> Uuid {
        self.resident_id
    }
    fn parent_id(&self) -> Uuid {
        self.carehome_id
    }
    fn status(&self) -> &'static str {
        self.status.as_str()
    }
}

/// The projection that keeps the read model.
#[derive(Debug, Default)]
pub struct ReadModel;

/// The name its checkpoint is stored under.
pub const PROJECTION_NAME: &str = "carehome-read-model";

impl Projection for ReadModel {
    fn name(&self) -> &str {
        PROJECTION_NAME
    }

    fn apply<'a>(&'a self, tx: &'a mut Tx<'_>, event: &'a RecordedEvent) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(apply_event(tx, event))
    }
}

async fn apply_event(tx: &mut Tx<'_>, event: &RecordedEvent) -> Result<(), Error> {
    let Some(parsed) = CareHomeEvent::from_stored(&event.event_type, event.payload.get()).map_err(Error::Payload)?
    else {
        return Ok(()); // a type this build does not know (a newer writer)
    };
    let Some((kind, id)) = event.stream_id.split_once('-') else { return Ok(()) };
    match kind {
        "chapter" => upsert::<Chapter>(tx, event, &parsed, id).await,
        "carehome" => upsert::<CareHome>(tx, event, &parsed, id).await,
        "bike" => upsert::<Bike>(tx, event, &parsed, id).await,
        "resident" => upsert::<Resident>(tx, event, &parsed, id).await,
        _ => Ok(()),
    }
}

async fn upsert<T: Listed>(
    tx: &mut Tx<'_>,
    event: &RecordedEvent,
    parsed: &CareHomeEvent,
    id: &str,
) -> Result<(), Error> {
    let current: Option<Doc<T>> = match tx.fetch_text(T::TABLE.select, &[Arg::from(id)]).await? {
        Some(text) => Some(serde_json::from_str(&text).map_err(Error::Payload)?),
        None => None,
    };
    if current.as_ref().is_some_and(|d| d.version >= event.version) {
        return Ok(()); // already applied
    }
    let Some(state) = T::apply(current.map(|d| d.state), parsed) else { return Ok(()) };
    let chapter = event.metadata.tenant.map(|t| t.to_string()).unwrap_or_default();
    let (parent, status) = (state.parent_id(), state.status());
    let doc = serde_json::to_string(&Doc { version: event.version, state }).map_err(Error::Payload)?;
    tx.execute(
        T::TABLE.upsert,
        &[
            Arg::from(id),
            Arg::from(chapter),
            Arg::from(parent),
            Arg::from(status),
            Arg::Int(event.version as i64),
            Arg::from(doc),
        ],
    )
    .await?;
    Ok(())
}

/// Default page size of a list.
pub const DEFAULT_LIMIT: u32 = 50;
/// Largest page size of a list.
pub const MAX_LIMIT: u32 = 500;

/// Which page of a list: after `cursor` (the last id of the previous page), `limit` items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// The last id already seen ("" for the first page).
    pub after: String,
    /// Items per page.
    pub limit: u32,
}

impl PageRequest {
    /// Validates a list request's paging (`limit` 0 means the default).
    pub fn parse(limit: u32, cursor: &str) -> Result<Self, ServiceError> {
        let limit = match limit {
            0 => DEFAULT_LIMIT,
            n if n <= MAX_LIMIT => n,
            _ => return Err(ServiceError::invalid("/limit", format!("must be at most {MAX_LIMIT}"))),
        };
        let after = match cursor.trim() {
            "" => String::new(),
            c => Uuid::parse_str(c)
                .map_err(|_| ServiceError::invalid("/cursor", "not a cursor of this list"))?
                .to_string(),
        };
        Ok(PageRequest { after, limit })
    }
}

/// One page of a list and where the next starts ("" at the end).
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<Doc<T>>,
    /// The cursor of the next page, "" when this was the last.
    pub next_cursor: String,
}

/// A page of the objects under `parent`, in id order.
pub async fn page<T: Listed>(store: &EventStore, parent: Uuid, req: &PageRequest) -> Result<Page<T>, ServiceError> {
    let args = [Arg::from(parent), Arg::from(req.after.as_str()), Arg::Int(i64::from(req.limit) + 1)];
    let rows = store.fetch_texts(T::TABLE.page, &args).await?;
    let more = rows.len() > req.limit as usize;
    let mut items = Vec::with_capacity(rows.len().min(req.limit as usize));
    for row in rows.iter().take(req.limit as usize) {
        let doc: Doc<T> = serde_json::from_str(row).map_err(|e| ServiceError::Internal(format!("read model: {e}")))?;
        items.push(doc);
    }
    let next_cursor = match items.last() {
        Some(last) if more => last.state.id().to_string(),
        _ => String::new(),
    };
    Ok(Page { items, next_cursor })
}

/// How many care homes a chapter has.
pub async fn count_carehomes(store: &EventStore, chapter: Uuid) -> Result<u32, ServiceError> {
    let n = store.fetch_i64("SELECT COUNT(*) FROM carehome_carehomes WHERE chapter_id = $1", &[chapter.into()]).await?;
    Ok(n.unwrap_or(0).try_into().unwrap_or(u32::MAX))
}

/// How many trishaws a chapter has that are not retired.
pub async fn count_bikes(store: &EventStore, chapter: Uuid) -> Result<u32, ServiceError> {
    let n = store
        .fetch_i64(
            "SELECT COUNT(*) FROM carehome_bikes WHERE chapter_id = $1 AND status <> 'retired'",
            &[chapter.into()],
        )
        .await?;
    Ok(n.unwrap_or(0).try_into().unwrap_or(u32::MAX))
}

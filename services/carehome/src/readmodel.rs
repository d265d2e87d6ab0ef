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
    access_rows(tx, event, &parsed).await?;
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

// ---------------------------------------------------------------- people's access

/// A role grant in force, as the read model keeps it (found by person and by chapter).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrantDoc {
    /// The grant.
    pub role_grant_id: Uuid,
    /// The person.
    pub person_id: Uuid,
    /// admin, chapter_admin or coordinator.
    pub role: String,
    /// Its chapter (none for admin).
    pub chapter_id: Option<Uuid>,
    /// Its care home (coordinator).
    pub carehome_id: Option<Uuid>,
    /// When.
    pub granted_at: chrono::DateTime<chrono::Utc>,
    /// By whom.
    pub granted_by: String,
}

async fn put_grant(tx: &mut Tx<'_>, g: GrantDoc) -> Result<(), Error> {
    let doc = serde_json::to_string(&g).map_err(Error::Payload)?;
    tx.execute(
        "INSERT INTO carehome_grants (role_grant_id, person_id, chapter_id, doc) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (role_grant_id) DO UPDATE SET person_id = excluded.person_id, chapter_id = excluded.chapter_id, \
         doc = excluded.doc",
        &[
            g.role_grant_id.into(),
            g.person_id.into(),
            Arg::from(g.chapter_id.map(|c| c.to_string()).unwrap_or_default()),
            Arg::from(doc),
        ],
    )
    .await?;
    Ok(())
}

async fn drop_grant(tx: &mut Tx<'_>, grant: Uuid) -> Result<(), Error> {
    tx.execute("DELETE FROM carehome_grants WHERE role_grant_id = $1", &[grant.into()]).await?;
    Ok(())
}

/// Keeps the grants, invitations and API keys tables (the same transaction as the rest).
async fn access_rows(tx: &mut Tx<'_>, event: &RecordedEvent, parsed: &CareHomeEvent) -> Result<(), Error> {
    use crate::people::{ApiKey, StaffInvitation};
    use CareHomeEvent as E;
    let at = event.occurred_at;
    let by = || event.metadata.actor.as_ref().map(|a| a.id.clone()).unwrap_or_default();
    match parsed {
        E::AdminAppointed(e) => {
            let g = GrantDoc {
                role_grant_id: e.role_grant_id,
                person_id: e.person_id,
                role: "admin".into(),
                chapter_id: None,
                carehome_id: None,
                granted_at: at,
                granted_by: e.granted_by.clone(),
            };
            put_grant(tx, g).await
        }
        E::ChapterAdminAppointed(e) => {
            let g = GrantDoc {
                role_grant_id: e.role_grant_id,
                person_id: e.person_id,
                role: "chapter_admin".into(),
                chapter_id: Some(e.chapter_id),
                carehome_id: None,
                granted_at: at,
                granted_by: e.granted_by.clone(),
            };
            put_grant(tx, g).await
        }
        // Coordinators assigned before people signed in carry a token's `sub`, not a
        // person id: they are shown, but grant nobody anything.
        E::CoordinatorAssigned(e) => match e.user_id.parse::<Uuid>() {
            Ok(person) => {
                let g = GrantDoc {
                    role_grant_id: domain::access::grant_id("coordinator", Some(e.carehome_id), person),
                    person_id: person,
                    role: "coordinator".into(),
                    chapter_id: event.metadata.tenant,
                    carehome_id: Some(e.carehome_id),
                    granted_at: at,
                    granted_by: by(),
                };
                put_grant(tx, g).await
            }
            Err(_) => Ok(()),
        },
        E::AdminRemoved(e) => drop_grant(tx, e.role_grant_id).await,
        E::ChapterAdminRemoved(e) => drop_grant(tx, e.role_grant_id).await,
        E::CoordinatorRemoved(e) => match e.user_id.parse::<Uuid>() {
            Ok(p) => drop_grant(tx, domain::access::grant_id("coordinator", Some(e.carehome_id), p)).await,
            Err(_) => Ok(()),
        },
        E::InvitationIssued(_) | E::InvitationRedeemed(_) | E::InvitationRevoked(_) => {
            let id = event.stream_id.trim_start_matches("invitation-");
            let current = tx
                .fetch_text("SELECT doc FROM carehome_invitations WHERE invitation_id = $1", &[Arg::from(id)])
                .await?;
            let before = current
                .map(|d| serde_json::from_str::<domain::access::Invitation>(&d).map(StaffInvitation))
                .transpose()
                .map_err(Error::Payload)?;
            let Some(after) = StaffInvitation::apply(before, parsed) else { return Ok(()) };
            let chapter = after.0.chapter_id.map(|c| c.to_string()).unwrap_or_default();
            let doc = serde_json::to_string(&after.0).map_err(Error::Payload)?;
            tx.execute(
                "INSERT INTO carehome_invitations (invitation_id, chapter_id, doc) VALUES ($1, $2, $3) \
                 ON CONFLICT (invitation_id) DO UPDATE SET chapter_id = excluded.chapter_id, doc = excluded.doc",
                &[Arg::from(id), Arg::from(chapter), Arg::from(doc)],
            )
            .await?;
            Ok(())
        }
        E::ApiKeyIssued(_) | E::ApiKeyRevoked(_) => {
            let id = event.stream_id.trim_start_matches("apikey-");
            let current =
                tx.fetch_text("SELECT doc FROM carehome_api_keys WHERE api_key_id = $1", &[Arg::from(id)]).await?;
            let before = current.map(|d| serde_json::from_str::<ApiKey>(&d)).transpose().map_err(Error::Payload)?;
            let Some(after) = ApiKey::apply(before, parsed) else { return Ok(()) };
            let chapter = after.chapter_id.map(|c| c.to_string()).unwrap_or_default();
            let doc = serde_json::to_string(&after).map_err(Error::Payload)?;
            tx.execute(
                "INSERT INTO carehome_api_keys (api_key_id, chapter_id, doc) VALUES ($1, $2, $3) \
                 ON CONFLICT (api_key_id) DO UPDATE SET chapter_id = excluded.chapter_id, doc = excluded.doc",
                &[Arg::from(id), Arg::from(chapter), Arg::from(doc)],
            )
            .await?;
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Documents of a table by a key column (static SQL).
async fn docs<T: DeserializeOwned>(store: &EventStore, sql: &'static str, key: Arg) -> Result<Vec<T>, ServiceError> {
    let texts = store.fetch_texts(sql, &[key]).await?;
    texts.iter().map(|t| serde_json::from_str(t).map_err(|e| ServiceError::Internal(e.to_string()))).collect()
}

/// A person's grants in force.
pub async fn grants_of_person(store: &EventStore, person: Uuid) -> Result<Vec<GrantDoc>, ServiceError> {
    docs(store, "SELECT doc FROM carehome_grants WHERE person_id = $1 ORDER BY role_grant_id", person.into()).await
}

/// A chapter's grants ("": the network's admins).
pub async fn grants_in_chapter(store: &EventStore, chapter: &str) -> Result<Vec<GrantDoc>, ServiceError> {
    docs(store, "SELECT doc FROM carehome_grants WHERE chapter_id = $1 ORDER BY role_grant_id", Arg::from(chapter))
        .await
}

/// One grant.
pub async fn grant(store: &EventStore, grant: Uuid) -> Result<Option<GrantDoc>, ServiceError> {
    Ok(docs(store, "SELECT doc FROM carehome_grants WHERE role_grant_id = $1", grant.into()).await?.pop())
}

/// A chapter's invitations ("": the network's).
pub async fn invitations_in_chapter(
    store: &EventStore,
    chapter: &str,
) -> Result<Vec<domain::access::Invitation>, ServiceError> {
    docs(store, "SELECT doc FROM carehome_invitations WHERE chapter_id = $1 ORDER BY invitation_id", Arg::from(chapter))
        .await
}

/// A chapter's API keys ("": the network's).
pub async fn api_keys_in_chapter(
    store: &EventStore,
    chapter: &str,
) -> Result<Vec<crate::people::ApiKey>, ServiceError> {
    docs(store, "SELECT doc FROM carehome_api_keys WHERE chapter_id = $1 ORDER BY api_key_id", Arg::from(chapter)).await
}

/// When an API key was last used (Unix seconds).
pub async fn api_key_last_used(store: &EventStore, key: Uuid) -> Result<Option<i64>, ServiceError> {
    let at =
        store.fetch_i64("SELECT last_used_at FROM carehome_api_key_use WHERE api_key_id = $1", &[key.into()]).await?;
    Ok(at.filter(|t| *t > 0))
}

/// Marks an API key used now, unless it was within the last minute (one write a minute).
pub async fn touch_api_key(store: &EventStore, key: Uuid, now: i64) -> Result<(), ServiceError> {
    store
        .transaction(move |tx| {
            Box::pin(async move {
                tx.execute(
                    "INSERT INTO carehome_api_key_use (api_key_id, last_used_at) VALUES ($1, $2) \
                     ON CONFLICT (api_key_id) DO UPDATE SET last_used_at = excluded.last_used_at \
                     WHERE carehome_api_key_use.last_used_at < $3",
                    &[key.into(), Arg::Int(now), Arg::Int(now - 60)],
                )
                .await
            })
        })
        .await?;
    Ok(())
}

//! The pilots read model: a projection of the volunteer log into `volunteer_pilots`, one
//! JSON document per pilot, for lists by chapter. Single pilots are read from their stream.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use domain::DomainEvent;
use domain::events::VolunteerEvent;
use domain::types::{PilotStatus, Sealed, WeeklyWindow};
use eventlog::{Arg, Error, EventStore, Projection, RecordedEvent, Tx};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use servicekit::Aggregate;
use uuid::Uuid;

use crate::pilots::{Pilot, Qualification};

/// A pilot as the read model stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PilotDoc {
    /// Id.
    pub pilot_id: Uuid,
    /// Chapter.
    pub chapter_id: Uuid,
    /// Status.
    pub status: PilotStatus,
    /// Sealed personal fields.
    pub personal: Option<Sealed>,
    /// Qualifications: type → (qualified_on, valid_until).
    pub qualifications: BTreeMap<String, (NaiveDate, NaiveDate)>,
    /// Weekly availability.
    pub weekly: Vec<WeeklyWindow>,
    /// Care homes.
    pub carehome_ids: Vec<Uuid>,
    /// The linked person and the grant.
    #[serde(default)]
    pub account: Option<(Uuid, Uuid)>,
    /// Stream version.
    pub version: u64,
}

impl PilotDoc {
    /// The document of a folded pilot.
    pub fn of(p: &Pilot, version: u64) -> Self {
        PilotDoc {
            pilot_id: p.pilot_id,
            chapter_id: p.chapter_id,
            status: p.status,
            personal: p.personal.clone(),
            qualifications: p
                .qualifications
                .iter()
                .map(|(k, q)| (k.clone(), (q.qualified_on, q.valid_until)))
                .collect(),
            weekly: p.weekly.clone(),
            carehome_ids: p.carehome_ids.clone(),
            account: p.account,
            version,
        }
    }

    /// Back to the aggregate's shape.
    pub fn to_pilot(&self) -> Pilot {
        Pilot {
            pilot_id: self.pilot_id,
            chapter_id: self.chapter_id,
            status: self.status,
            personal: self.personal.clone(),
            qualifications: self
                .qualifications
                .iter()
                .map(|(k, (on, until))| (k.clone(), Qualification { qualified_on: *on, valid_until: *until }))
                .collect(),
            weekly: self.weekly.clone(),
            carehome_ids: self.carehome_ids.clone(),
            account: self.account,
        }
    }
}

/// The projection that keeps `volunteer_pilots` up to date.
pub struct PilotsProjection;

/// Its checkpoint name.
pub const NAME: &str = "volunteer_pilots";

async fn load_doc(tx: &mut Tx<'_>, pilot_id: Uuid) -> Result<Option<PilotDoc>, Error> {
    let doc = tx.fetch_text("SELECT doc FROM volunteer_pilots WHERE pilot_id = $1", &[pilot_id.into()]).await?;
    doc.map(|d| serde_json::from_str(&d).map_err(Error::Payload)).transpose()
}

impl Projection for PilotsProjection {
    fn name(&self) -> &str {
        NAME
    }

    /// Every event, so that the checkpoint reaches the head and [`caught_up`] can tell
    /// that a pilot's link is applied; `apply` skips the other streams (invitations).
    fn filter(&self) -> eventlog::Filter {
        eventlog::Filter::all()
    }

    fn apply<'a>(&'a self, tx: &'a mut Tx<'_>, event: &'a RecordedEvent) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let Some(ev) =
                VolunteerEvent::from_stored(&event.event_type, event.payload.get()).map_err(Error::Payload)?
            else {
                return Ok(());
            };
            if let Some(id) = event.stream_id.strip_prefix("invitation-") {
                return invitation_row(tx, id, &ev).await;
            }
            if !event.stream_id.starts_with("pilot-") {
                return Ok(());
            }
            let pilot_id: Uuid = event
                .stream_id
                .strip_prefix("pilot-")
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| Error::Corrupt(format!("stream {}", event.stream_id)))?;
            let before = load_doc(tx, pilot_id).await?.map(|d| d.to_pilot());
            let Some(after) = Pilot::apply(before, &ev) else { return Ok(()) };
            let doc = PilotDoc::of(&after, event.version);
            tx.execute(
                "INSERT INTO volunteer_pilots (pilot_id, chapter_id, status, version, doc, person_id) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (pilot_id) DO UPDATE SET chapter_id = excluded.chapter_id, status = excluded.status, \
                 version = excluded.version, doc = excluded.doc, person_id = excluded.person_id",
                &[
                    pilot_id.into(),
                    after.chapter_id.into(),
                    Arg::Text(after.status.to_string()),
                    Arg::Int(event.version as i64),
                    Arg::Text(serde_json::to_string(&doc).map_err(Error::Payload)?),
                    // '' for none, not NULL: on PostgreSQL one prepared statement must
                    // not see a typed NULL in a text parameter on one run and text on the
                    // next (22P03).
                    Arg::Text(after.account.map(|(person, _)| person.to_string()).unwrap_or_default()),
                ],
            )
            .await?;
            Ok(())
        })
    }
}

/// A page of a chapter's pilots after the cursor (a pilot id), in id order.
pub async fn list(
    store: &EventStore,
    chapter_id: Uuid,
    after: Option<Uuid>,
    limit: usize,
) -> Result<Vec<PilotDoc>, Error> {
    let rows = store
        .fetch_texts(
            "SELECT doc FROM volunteer_pilots WHERE chapter_id = $1 AND pilot_id > $2 ORDER BY pilot_id LIMIT $3",
            &[chapter_id.into(), Arg::Text(after.map(|a| a.to_string()).unwrap_or_default()), Arg::Int(limit as i64)],
        )
        .await?;
    rows.iter().map(|d| serde_json::from_str(d).map_err(Error::Payload)).collect()
}

/// How many pilots of a chapter are active.
pub async fn count_active(store: &EventStore, chapter_id: Uuid) -> Result<u64, Error> {
    let n = store
        .fetch_i64(
            "SELECT count(*) FROM volunteer_pilots WHERE chapter_id = $1 AND status = 'active'",
            &[chapter_id.into()],
        )
        .await?;
    Ok(n.unwrap_or(0) as u64)
}

/// The pilots linked to `person`, by the read model (callers confirm each from its stream).
pub async fn linked_to(store: &EventStore, person: Uuid) -> Result<Vec<Uuid>, Error> {
    let ids = store
        .fetch_texts("SELECT pilot_id FROM volunteer_pilots WHERE person_id = $1 ORDER BY pilot_id", &[person.into()])
        .await?;
    Ok(ids.iter().filter_map(|i| i.parse().ok()).collect())
}

/// The pilot whose link is the grant `grant` (`None`: no such link).
pub async fn pilot_of_grant(store: &EventStore, grant: Uuid) -> Result<Option<Uuid>, Error> {
    // The grant id is derived from the pilot and the person, so it is not a column: look it
    // up among linked pilots' documents.
    let docs =
        store.fetch_texts("SELECT doc FROM volunteer_pilots WHERE person_id <> '' ORDER BY pilot_id", &[]).await?;
    for d in docs {
        let doc: PilotDoc = serde_json::from_str(&d).map_err(Error::Payload)?;
        if doc.account.is_some_and(|(_, g)| g == grant) {
            return Ok(Some(doc.pilot_id));
        }
    }
    Ok(None)
}

async fn invitation_row(tx: &mut Tx<'_>, id: &str, ev: &VolunteerEvent) -> Result<(), Error> {
    use crate::access::PilotInvitation;
    let current =
        tx.fetch_text("SELECT doc FROM volunteer_invitations WHERE invitation_id = $1", &[Arg::from(id)]).await?;
    let before = current
        .map(|d| serde_json::from_str::<domain::access::Invitation>(&d).map(PilotInvitation))
        .transpose()
        .map_err(Error::Payload)?;
    let Some(after) = PilotInvitation::apply(before, ev) else { return Ok(()) };
    let chapter = after.0.chapter_id.map(|c| c.to_string()).unwrap_or_default();
    let doc = serde_json::to_string(&after.0).map_err(Error::Payload)?;
    tx.execute(
        "INSERT INTO volunteer_invitations (invitation_id, chapter_id, doc) VALUES ($1, $2, $3) \
         ON CONFLICT (invitation_id) DO UPDATE SET chapter_id = excluded.chapter_id, doc = excluded.doc",
        &[Arg::from(id), Arg::from(chapter), Arg::from(doc)],
    )
    .await?;
    Ok(())
}

/// A chapter's pilot invitations, in id order.
pub async fn invitations_in_chapter(
    store: &EventStore,
    chapter: Uuid,
) -> Result<Vec<domain::access::Invitation>, Error> {
    let docs = store
        .fetch_texts(
            "SELECT doc FROM volunteer_invitations WHERE chapter_id = $1 ORDER BY invitation_id",
            &[chapter.into()],
        )
        .await?;
    docs.iter().map(|d| serde_json::from_str(d).map_err(Error::Payload)).collect()
}

/// The pilot links of a chapter's pilots: (pilot, person, grant).
pub async fn links_in_chapter(store: &EventStore, chapter: Uuid) -> Result<Vec<Uuid>, Error> {
    let ids = store
        .fetch_texts(
            "SELECT pilot_id FROM volunteer_pilots WHERE chapter_id = $1 AND person_id <> '' ORDER BY pilot_id",
            &[chapter.into()],
        )
        .await?;
    Ok(ids.iter().filter_map(|i| i.parse().ok()).collect())
}

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

    fn filter(&self) -> eventlog::Filter {
        eventlog::Filter::category("pilot-")
    }

    fn apply<'a>(&'a self, tx: &'a mut Tx<'_>, event: &'a RecordedEvent) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let Some(ev) =
                VolunteerEvent::from_stored(&event.event_type, event.payload.get()).map_err(Error::Payload)?
            else {
                return Ok(());
            };
            let pilot_id: Uuid = event
                .stream_id
                .strip_prefix("pilot-")
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| Error::Corrupt(format!("stream {}", event.stream_id)))?;
            let before = load_doc(tx, pilot_id).await?.map(|d| d.to_pilot());
            let Some(after) = Pilot::apply(before, &ev) else { return Ok(()) };
            let doc = PilotDoc::of(&after, event.version);
            tx.execute(
                "INSERT INTO volunteer_pilots (pilot_id, chapter_id, status, version, doc) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (pilot_id) DO UPDATE SET chapter_id = excluded.chapter_id, status = excluded.status, \
                 version = excluded.version, doc = excluded.doc",
                &[
                    pilot_id.into(),
                    after.chapter_id.into(),
                    Arg::Text(after.status.to_string()),
                    Arg::Int(event.version as i64),
                    Arg::Text(serde_json::to_string(&doc).map_err(Error::Payload)?),
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

//! Facts owned by other services (chapters, care homes, trishaws, residents, pilots), as
//! booking last saw them on the care-home and volunteer feeds. Each feed is followed into
//! `booking_facts` with its checkpoint in the same transaction; events that must cancel
//! rides or change rosters are also written to `booking_outbox` in that transaction, so
//! the cascade cannot be lost between the fact and its consequence.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::Notify;

use chrono::{DateTime, NaiveDate, Utc};
use domain::DomainEvent;
use domain::events::{CareHomeEvent, ChapterSettings, PilotAvailabilityDeclared, VolunteerEvent};
use domain::types::{BikeStatus, ConsentScope, DateRange, PilotStatus, ResidentStatus, RideHours, WeeklyWindow};
use eventlog::{Arg, Error, EventStore, Tx};
use futures_util::future::BoxFuture;
use samskab_proto::common::v1::EventEnvelope;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use servicekit::remote::RemoteProjection;
use uuid::Uuid;

use crate::rules::FactParts;

/// A chapter's zone and settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChapterFact {
    /// Id.
    pub chapter_id: Uuid,
    /// IANA zone.
    pub timezone: String,
    /// Settings.
    pub settings: ChapterSettings,
}

/// What booking needs of a care home.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CareHomeFact {
    /// Id.
    pub carehome_id: Uuid,
    /// Chapter.
    pub chapter_id: Uuid,
    /// Own zone, if any.
    pub timezone: Option<String>,
    /// Weekly hours.
    pub ride_hours: Vec<RideHours>,
    /// Turnaround between rides on one trishaw.
    pub turnaround_minutes: u32,
    /// Pilot bookings wait for confirmation.
    pub requires_confirmation: bool,
    /// Pilots may put residents on their own rides (facts stored before the rule: false).
    #[serde(default)]
    pub pilots_choose_riders: bool,
    /// Closed date ranges.
    pub closures: Vec<DateRange>,
}

/// What booking needs of a trishaw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BikeFact {
    /// Id.
    pub bike_id: Uuid,
    /// Its care home.
    pub carehome_id: Uuid,
    /// Type.
    pub bike_type: String,
    /// Seats.
    pub seats: u32,
    /// Status.
    pub status: BikeStatus,
}

/// What booking needs of a resident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResidentFact {
    /// Id.
    pub resident_id: Uuid,
    /// Care home.
    pub carehome_id: Uuid,
    /// Status.
    pub status: ResidentStatus,
    /// Consent on record (empty: none).
    pub consent: Vec<ConsentScope>,
    /// Every consent ever on record, from its `given_at` until withdrawn or replaced (a
    /// ride recorded after the fact is checked against the consent of its own time, also
    /// one recorded later than it was given). Facts stored before: none kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consents: Vec<ConsentPeriod>,
}

/// A consent from when it was given until it was withdrawn or replaced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsentPeriod {
    /// When it was given.
    pub given_at: DateTime<Utc>,
    /// When it ended (withdrawn, replaced); open while none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
    /// What it covered.
    pub scope: Vec<ConsentScope>,
}

impl ResidentFact {
    /// The consent in force at `t`: from the periods kept, or (a fact stored before they
    /// were kept) the consent on record.
    pub fn consent_at(&self, t: DateTime<Utc>) -> Vec<ConsentScope> {
        if self.consents.is_empty() {
            return self.consent.clone();
        }
        self.consents
            .iter()
            .rev()
            .find(|p| p.given_at <= t && p.ended_at.is_none_or(|e| e > t))
            .map(|p| p.scope.clone())
            .unwrap_or_default()
    }
}

/// What booking needs of a pilot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PilotFact {
    /// Id.
    pub pilot_id: Uuid,
    /// Chapter.
    pub chapter_id: Uuid,
    /// Status.
    pub status: PilotStatus,
    /// Qualifications: trishaw type → (qualified_on, valid_until).
    pub qualifications: BTreeMap<String, (NaiveDate, NaiveDate)>,
    /// Every qualification ever recorded, renewals included: (type, qualified_on,
    /// valid_until). A qualification counts from `qualified_on` to `valid_until` whenever
    /// it was recorded. Facts stored before: none kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub qualified: Vec<(String, NaiveDate, NaiveDate)>,
    /// Declared weekly availability, in the local time of the care home ridden from (its
    /// latest `PilotAvailabilityDeclared`; none declared, or a fact stored before booking
    /// learnt availability: empty, so never a candidate).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weekly: Vec<WeeklyWindow>,
    /// The care homes the pilot chose to ride at (empty: none chosen, any home).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub carehome_ids: Vec<Uuid>,
    /// The version, in the pilot's stream, of the declaration `weekly` and `carehome_ids`
    /// come from (0: none), so that an older one never replaces a newer one.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub availability_version: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// Puts a declaration of availability on the pilot's fact, unless the fact holds a later
/// one (the facts follower and the availability backfill both apply declarations).
async fn declare(tx: &mut Tx<'_>, e: &EventEnvelope, a: PilotAvailabilityDeclared) -> Result<(), Error> {
    update::<PilotFact>(
        tx,
        kind::PILOT,
        a.pilot_id,
        |f| Some(f.chapter_id),
        |f| {
            if e.version > f.availability_version {
                f.weekly = a.weekly;
                f.carehome_ids = a.carehome_ids;
                f.availability_version = e.version;
            }
        },
    )
    .await
}

/// Booking learnt pilots' availability with issue 21: pilot facts stored before hold none,
/// so those pilots would never be candidates until they declared again. This follower
/// reads the volunteer feed once from its start (its own checkpoint) for
/// `PilotAvailabilityDeclared` only and puts each on its pilot's fact, the later
/// declaration winning. Replaying the facts follower instead would cascade old suspensions
/// and retirements again.
pub struct AvailabilityBackfill;

impl RemoteProjection for AvailabilityBackfill {
    fn name(&self) -> &str {
        "booking_facts_volunteer_availability"
    }

    fn apply<'a>(&'a self, tx: &'a mut Tx<'_>, e: &'a EventEnvelope) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            if e.event_type != "PilotAvailabilityDeclared" {
                return Ok(());
            }
            let Some(VolunteerEvent::PilotAvailabilityDeclared(a)) = decode::<VolunteerEvent>(e)? else {
                return Ok(());
            };
            // The facts follower's transactions begin by moving its checkpoint: taking that
            // row's lock first makes this read-modify-write of a pilot's fact wait for theirs
            // (and theirs for this), so neither loses the other's change (PostgreSQL; SQLite
            // has one writer anyway).
            tx.execute(
                "UPDATE eventlog_checkpoints SET cursor = cursor WHERE consumer = 'booking_facts_volunteer'",
                &[],
            )
            .await?;
            declare(tx, e, a).await
        })
    }
}

impl PilotFact {
    /// Whether the pilot was qualified for `bike_type` on every day from `first` to `last`.
    pub fn qualified_for(&self, bike_type: &str, first: NaiveDate, last: NaiveDate) -> bool {
        let within = |on: &NaiveDate, until: &NaiveDate| first >= *on && last <= *until;
        self.qualifications.get(bike_type).is_some_and(|(on, until)| within(on, until))
            || self.qualified.iter().any(|(t, on, until)| t == bike_type && within(on, until))
    }
}

/// The kinds of fact, as stored.
pub mod kind {
    /// Chapters.
    pub const CHAPTER: &str = "chapter";
    /// Care homes.
    pub const CAREHOME: &str = "carehome";
    /// Trishaws.
    pub const BIKE: &str = "bike";
    /// Residents.
    pub const RESIDENT: &str = "resident";
    /// Pilots.
    pub const PILOT: &str = "pilot";
}

/// Reads one fact.
pub async fn get<T: DeserializeOwned>(store: &EventStore, kind: &'static str, id: Uuid) -> Result<Option<T>, Error> {
    let docs = store
        .fetch_texts("SELECT doc FROM booking_facts WHERE kind = $1 AND id = $2", &[kind.into(), id.into()])
        .await?;
    docs.first().map(|d| serde_json::from_str(d).map_err(Error::Payload)).transpose()
}

/// The facts a booking decides on, read together (`readmodel::statements` pins their plans).
pub mod statements {
    /// A trishaw (`$1`), its care home and that home's chapter (each saved under its
    /// parent: a trishaw under its care home, a care home under its chapter), and a pilot
    /// (`$2`): one row, NULL where a fact is missing.
    pub const BOOKING_FACTS: &str = "SELECT \
         (SELECT doc FROM booking_facts WHERE kind = 'bike' AND id = $1), \
         (SELECT h.doc FROM booking_facts b JOIN booking_facts h ON h.kind = 'carehome' AND h.id = b.parent \
          WHERE b.kind = 'bike' AND b.id = $1), \
         (SELECT c.doc FROM booking_facts b JOIN booking_facts h ON h.kind = 'carehome' AND h.id = b.parent \
          JOIN booking_facts c ON c.kind = 'chapter' AND c.id = h.parent WHERE b.kind = 'bike' AND b.id = $1), \
         (SELECT doc FROM booking_facts WHERE kind = 'pilot' AND id = $2)";
    /// A care home (`$1`) and its chapter (the home is saved under it): one row, NULL
    /// where a fact is missing (an availability query).
    pub const HOME_FACTS: &str = "SELECT \
         (SELECT doc FROM booking_facts WHERE kind = 'carehome' AND id = $1), \
         (SELECT c.doc FROM booking_facts h JOIN booking_facts c ON c.kind = 'chapter' AND c.id = h.parent \
          WHERE h.kind = 'carehome' AND h.id = $1)";
    /// Up to four residents (`$1`..`$4`; unused slots repeat the first).
    pub const RESIDENTS: &str = "SELECT id, doc FROM booking_facts \
         WHERE kind = 'resident' AND id IN ($1, $2, $3, $4)";
    /// How many residents one [`RESIDENTS`] asks for.
    pub const RESIDENTS_PER_STATEMENT: usize = 4;
}

/// A trishaw, its care home, their chapter and a pilot, as found (one statement).
pub async fn booking_facts(store: &EventStore, bike_id: Uuid, pilot_id: Uuid) -> Result<FactParts, Error> {
    // The documents of the trishaw, its care home, their chapter and the pilot.
    type Docs = (Option<String>, Option<String>, Option<String>, Option<String>);
    let row: Option<Docs> =
        store.fetch_optional_row(statements::BOOKING_FACTS, &[bike_id.into(), pilot_id.into()]).await?;
    let (bike, home, chapter, pilot) = row.unwrap_or_default();
    Ok(FactParts { bike: parse(bike)?, home: parse(home)?, chapter: parse(chapter)?, pilot: parse(pilot)? })
}

/// A care home and its chapter, as found (one statement).
pub async fn home_facts(
    store: &EventStore,
    carehome_id: Uuid,
) -> Result<(Option<CareHomeFact>, Option<ChapterFact>), Error> {
    let row: Option<(Option<String>, Option<String>)> =
        store.fetch_optional_row(statements::HOME_FACTS, &[carehome_id.into()]).await?;
    let (home, chapter) = row.unwrap_or_default();
    Ok((parse(home)?, parse(chapter)?))
}

/// Residents' facts, in the order asked (absent ones as `None`).
pub async fn residents(store: &EventStore, ids: &[Uuid]) -> Result<Vec<(Uuid, Option<ResidentFact>)>, Error> {
    let mut found: BTreeMap<Uuid, ResidentFact> = BTreeMap::new();
    for chunk in ids.chunks(statements::RESIDENTS_PER_STATEMENT) {
        let args: Vec<Arg> =
            (0..statements::RESIDENTS_PER_STATEMENT).map(|i| (*chunk.get(i).unwrap_or(&chunk[0])).into()).collect();
        let rows: Vec<(String, String)> = store.fetch_rows(statements::RESIDENTS, &args).await?;
        for (id, doc) in rows {
            let id: Uuid = id.parse().map_err(|_| Error::Corrupt(format!("resident fact id {id}")))?;
            found.insert(id, serde_json::from_str(&doc).map_err(Error::Payload)?);
        }
    }
    Ok(ids.iter().map(|id| (*id, found.get(id).cloned())).collect())
}

fn parse<T: DeserializeOwned>(doc: Option<String>) -> Result<Option<T>, Error> {
    doc.map(|d| serde_json::from_str(&d).map_err(Error::Payload)).transpose()
}

/// Every fact of a kind under a parent (bikes of a care home), in id order.
pub async fn children<T: DeserializeOwned>(
    store: &EventStore,
    kind: &'static str,
    parent: Uuid,
) -> Result<Vec<T>, Error> {
    let docs = store
        .fetch_texts(
            "SELECT doc FROM booking_facts WHERE kind = $1 AND parent = $2 ORDER BY id",
            &[kind.into(), parent.into()],
        )
        .await?;
    docs.iter().map(|d| serde_json::from_str(d).map_err(Error::Payload)).collect()
}

/// Every fact of a kind (all chapters), in id order.
pub async fn all<T: DeserializeOwned>(store: &EventStore, kind: &'static str) -> Result<Vec<T>, Error> {
    let docs = store.fetch_texts("SELECT doc FROM booking_facts WHERE kind = $1 ORDER BY id", &[kind.into()]).await?;
    docs.iter().map(|d| serde_json::from_str(d).map_err(Error::Payload)).collect()
}

async fn load<T: DeserializeOwned>(tx: &mut Tx<'_>, kind: &'static str, id: Uuid) -> Result<Option<T>, Error> {
    let doc =
        tx.fetch_text("SELECT doc FROM booking_facts WHERE kind = $1 AND id = $2", &[kind.into(), id.into()]).await?;
    doc.map(|d| serde_json::from_str(&d).map_err(Error::Payload)).transpose()
}

async fn save<T: Serialize>(
    tx: &mut Tx<'_>,
    kind: &'static str,
    id: Uuid,
    parent: Option<Uuid>,
    doc: &T,
) -> Result<(), Error> {
    tx.execute(
        "INSERT INTO booking_facts (kind, id, parent, doc) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (kind, id) DO UPDATE SET parent = excluded.parent, doc = excluded.doc",
        &[
            kind.into(),
            id.into(),
            Arg::Text(parent.map(|p| p.to_string()).unwrap_or_default()),
            Arg::Text(serde_json::to_string(doc).map_err(Error::Payload)?),
        ],
    )
    .await?;
    Ok(())
}

/// Loads a fact, changes it, stores it; a fact never seen is left alone.
async fn update<T: Serialize + DeserializeOwned>(
    tx: &mut Tx<'_>,
    kind: &'static str,
    id: Uuid,
    parent: impl Fn(&T) -> Option<Uuid>,
    change: impl FnOnce(&mut T),
) -> Result<(), Error> {
    if let Some(mut doc) = load::<T>(tx, kind, id).await? {
        change(&mut doc);
        save(tx, kind, id, parent(&doc), &doc).await?;
    }
    Ok(())
}

/// Records that an event must cascade onto rides (see `cascades`).
async fn outbox(tx: &mut Tx<'_>, e: &EventEnvelope) -> Result<(), Error> {
    tx.execute(
        "INSERT INTO booking_outbox (event_id, event_type, data, occurred_at, pass) VALUES ($1, $2, $3, $4, 0) \
         ON CONFLICT (event_id) DO NOTHING",
        &[
            e.event_id.clone().into(),
            e.event_type.clone().into(),
            e.data_json.clone().into(),
            Arg::Int(e.occurred_at.as_ref().map_or(0, |t| t.seconds)),
        ],
    )
    .await?;
    Ok(())
}

fn decode<E: DomainEvent>(e: &EventEnvelope) -> Result<Option<E>, Error> {
    E::from_stored(&e.event_type, &e.data_json).map_err(Error::Payload)
}

/// Follows the care-home feed; `kick` wakes the cascade worker after each batch.
pub struct CareHomeFacts {
    /// Woken after every committed batch.
    pub kick: Arc<Notify>,
}

impl RemoteProjection for CareHomeFacts {
    fn name(&self) -> &str {
        "booking_facts_carehome"
    }

    fn after_commit<'a>(&'a self, _batch: &'a [EventEnvelope]) -> BoxFuture<'a, ()> {
        self.kick.notify_one();
        Box::pin(async {})
    }

    fn apply<'a>(&'a self, tx: &'a mut Tx<'_>, e: &'a EventEnvelope) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            use CareHomeEvent as E;
            let Some(ev) = decode::<CareHomeEvent>(e)? else { return Ok(()) };
            let home = |f: &CareHomeFact| Some(f.chapter_id);
            let changed = carehome_fact_changed(&ev);
            match ev {
                E::ChapterRegistered(c) => {
                    let fact = ChapterFact { chapter_id: c.chapter_id, timezone: c.timezone, settings: c.settings };
                    save(tx, kind::CHAPTER, c.chapter_id, None, &fact).await?;
                }
                E::ChapterSettingsChanged(c) => {
                    update::<ChapterFact>(tx, kind::CHAPTER, c.chapter_id, |_| None, |f| f.settings = c.settings)
                        .await?;
                }
                E::CareHomeRegistered(c) => {
                    let fact = CareHomeFact {
                        carehome_id: c.carehome_id,
                        chapter_id: c.chapter_id,
                        timezone: c.timezone,
                        ride_hours: c.ride_hours,
                        turnaround_minutes: c.turnaround_minutes,
                        requires_confirmation: c.requires_confirmation,
                        pilots_choose_riders: c.pilots_choose_riders,
                        closures: Vec::new(),
                    };
                    save(tx, kind::CAREHOME, c.carehome_id, Some(c.chapter_id), &fact).await?;
                }
                E::RideHoursChanged(c) => {
                    update::<CareHomeFact>(tx, kind::CAREHOME, c.carehome_id, home, |f| f.ride_hours = c.ride_hours)
                        .await?;
                }
                E::CareHomeClosed(c) => {
                    update::<CareHomeFact>(tx, kind::CAREHOME, c.carehome_id, home, |f| f.closures.push(c.dates))
                        .await?;
                    outbox(tx, e).await?;
                }
                E::CareHomeDetailsCorrected(c) => {
                    update::<CareHomeFact>(tx, kind::CAREHOME, c.carehome_id, home, |f| {
                        if let Some(v) = c.turnaround_minutes {
                            f.turnaround_minutes = v;
                        }
                        if let Some(v) = c.requires_confirmation {
                            f.requires_confirmation = v;
                        }
                        if let Some(v) = c.pilots_choose_riders {
                            f.pilots_choose_riders = v;
                        }
                    })
                    .await?;
                    if c.turnaround_minutes.is_some() {
                        outbox(tx, e).await?;
                    }
                }
                E::ClosureLifted(c) => {
                    update::<CareHomeFact>(tx, kind::CAREHOME, c.carehome_id, home, |f| {
                        f.closures.retain(|d| *d != c.dates);
                    })
                    .await?;
                }
                E::BikeDetailsCorrected(b) => {
                    update::<BikeFact>(
                        tx,
                        kind::BIKE,
                        b.bike_id,
                        |f| Some(f.carehome_id),
                        |f| {
                            if let Some(t) = &b.bike_type {
                                f.bike_type.clone_from(t);
                            }
                            if let Some(s) = b.seats {
                                f.seats = s;
                            }
                        },
                    )
                    .await?;
                    if b.bike_type.is_some() || b.seats.is_some() {
                        outbox(tx, e).await?;
                    }
                }
                E::BikeMoved(b) => {
                    // The parent follows the care home (the fact is saved under its new one).
                    update::<BikeFact>(
                        tx,
                        kind::BIKE,
                        b.bike_id,
                        |f| Some(f.carehome_id),
                        |f| {
                            f.carehome_id = b.carehome_id;
                        },
                    )
                    .await?;
                    outbox(tx, e).await?;
                }
                E::ResidentDetailsCorrected(_) => {}
                E::BikeCommissioned(b) => {
                    let fact = BikeFact {
                        bike_id: b.bike_id,
                        carehome_id: b.carehome_id,
                        bike_type: b.bike_type,
                        seats: b.seats,
                        status: BikeStatus::InService,
                    };
                    save(tx, kind::BIKE, b.bike_id, Some(b.carehome_id), &fact).await?;
                }
                E::BikeTakenOutOfService(b) => {
                    set_bike(tx, b.bike_id, BikeStatus::OutOfService).await?;
                    outbox(tx, e).await?;
                }
                E::BikeReturnedToService(b) => set_bike(tx, b.bike_id, BikeStatus::InService).await?,
                E::BikeRetired(b) => {
                    set_bike(tx, b.bike_id, BikeStatus::Retired).await?;
                    outbox(tx, e).await?;
                }
                E::BikeIssueReported(_) | E::BikeRepaired(_) => {}
                // Who may sign in as whom is not booking's to know.
                E::CoordinatorAssigned(_)
                | E::CoordinatorRemoved(_)
                | E::AdminAppointed(_)
                | E::AdminRemoved(_)
                | E::ChapterAdminAppointed(_)
                | E::ChapterAdminRemoved(_)
                | E::InvitationIssued(_)
                | E::InvitationRedeemed(_)
                | E::InvitationRevoked(_)
                | E::ApiKeyIssued(_)
                | E::ApiKeyRevoked(_) => {}
                E::ResidentAdmitted(r) => {
                    let fact = ResidentFact {
                        resident_id: r.resident_id,
                        carehome_id: r.carehome_id,
                        status: ResidentStatus::LivingHere,
                        consent: Vec::new(),
                        consents: Vec::new(),
                    };
                    save(tx, kind::RESIDENT, r.resident_id, Some(r.carehome_id), &fact).await?;
                }
                E::ResidentConsentRecorded(c) => {
                    let period = ConsentPeriod { given_at: c.given_at, ended_at: None, scope: c.scope.clone() };
                    update::<ResidentFact>(
                        tx,
                        kind::RESIDENT,
                        c.resident_id,
                        |f| Some(f.carehome_id),
                        |f| {
                            f.consent = c.scope;
                            for p in f.consents.iter_mut().filter(|p| p.ended_at.is_none()) {
                                p.ended_at = Some(period.given_at.max(p.given_at));
                            }
                            f.consents.push(period);
                        },
                    )
                    .await?;
                }
                E::ResidentConsentWithdrawn(c) => {
                    let at = occurred(e);
                    update::<ResidentFact>(
                        tx,
                        kind::RESIDENT,
                        c.resident_id,
                        |f| Some(f.carehome_id),
                        |f| {
                            f.consent = Vec::new();
                            for p in f.consents.iter_mut().filter(|p| p.ended_at.is_none()) {
                                p.ended_at = Some(at.max(p.given_at));
                            }
                        },
                    )
                    .await?;
                    outbox(tx, e).await?;
                }
                E::ResidentMovedOut(r) => {
                    set_resident(tx, r.resident_id, Some(ResidentStatus::MovedOut), None).await?;
                    outbox(tx, e).await?;
                }
                E::ResidentErased(r) => {
                    set_resident(tx, r.resident_id, Some(ResidentStatus::Erased), Some(Vec::new())).await?;
                    outbox(tx, e).await?;
                }
            }
            if let Some((kind, id)) = changed {
                remember(tx, e, kind, id).await?;
            }
            Ok(())
        })
    }
}

/// The fact a care-home event changes. (Consents and qualifications count from the time
/// they name, whenever recorded: their periods are kept in the fact itself.)
fn carehome_fact_changed(ev: &CareHomeEvent) -> Option<(&'static str, Uuid)> {
    use CareHomeEvent as E;
    Some(match ev {
        E::ChapterRegistered(c) => (kind::CHAPTER, c.chapter_id),
        E::ChapterSettingsChanged(c) => (kind::CHAPTER, c.chapter_id),
        E::CareHomeRegistered(c) => (kind::CAREHOME, c.carehome_id),
        E::RideHoursChanged(c) => (kind::CAREHOME, c.carehome_id),
        E::CareHomeClosed(c) => (kind::CAREHOME, c.carehome_id),
        E::CareHomeDetailsCorrected(c) => (kind::CAREHOME, c.carehome_id),
        E::ClosureLifted(c) => (kind::CAREHOME, c.carehome_id),
        E::BikeCommissioned(b) => (kind::BIKE, b.bike_id),
        E::BikeTakenOutOfService(b) => (kind::BIKE, b.bike_id),
        E::BikeReturnedToService(b) => (kind::BIKE, b.bike_id),
        E::BikeRetired(b) => (kind::BIKE, b.bike_id),
        E::BikeDetailsCorrected(b) => (kind::BIKE, b.bike_id),
        E::BikeMoved(b) => (kind::BIKE, b.bike_id),
        E::ResidentAdmitted(r) => (kind::RESIDENT, r.resident_id),
        E::ResidentConsentRecorded(c) => (kind::RESIDENT, c.resident_id),
        E::ResidentConsentWithdrawn(c) => (kind::RESIDENT, c.resident_id),
        E::ResidentMovedOut(r) => (kind::RESIDENT, r.resident_id),
        E::ResidentErased(r) => (kind::RESIDENT, r.resident_id),
        _ => return None,
    })
}

/// The pilot a volunteer event changes.
fn pilot_fact_changed(ev: &VolunteerEvent) -> Option<Uuid> {
    use VolunteerEvent as E;
    Some(match ev {
        E::PilotRegistered(p) => p.pilot_id,
        E::PilotQualified(q) => q.pilot_id,
        E::PilotQualificationRenewed(q) => q.pilot_id,
        E::PilotSuspended(p) => p.pilot_id,
        E::PilotReinstated(p) => p.pilot_id,
        E::PilotRetired(p) => p.pilot_id,
        E::PilotErased(p) => p.pilot_id,
        E::PilotAvailabilityDeclared(a) => a.pilot_id,
        _ => return None,
    })
}

/// When an event happened, as its envelope says.
fn occurred(e: &EventEnvelope) -> DateTime<Utc> {
    e.occurred_at
        .as_ref()
        .and_then(|t| DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0)))
        .unwrap_or_default()
}

/// Keeps the fact as it stands now (after `e`) in its history, from the event's time. One
/// row per event: a redelivery adds none.
async fn remember(tx: &mut Tx<'_>, e: &EventEnvelope, kind: &'static str, id: Uuid) -> Result<(), Error> {
    let from = occurred(e).timestamp_micros();
    tx.execute(
        "INSERT INTO booking_fact_history (kind, id, event_id, valid_from, seq, doc) \
         SELECT kind, id, $3, $4, (SELECT COALESCE(MAX(seq), 0) + 1 FROM booking_fact_history WHERE kind = $1 AND id = $2), doc \
         FROM booking_facts WHERE kind = $1 AND id = $2 \
         ON CONFLICT (kind, id, event_id) DO NOTHING",
        &[kind.into(), id.into(), e.event_id.clone().into(), Arg::Int(from)],
    )
    .await?;
    Ok(())
}

/// A fact as it stood at `at`: the last change that had taken effect by then; before its
/// first one (a trishaw, resident or pilot registered later), as it was registered. Facts
/// learnt before history was kept have none: then as they stand now.
pub async fn get_at<T: DeserializeOwned>(
    store: &EventStore,
    kind: &'static str,
    id: Uuid,
    at: DateTime<Utc>,
) -> Result<Option<T>, Error> {
    let before = store
        .fetch_texts(
            "SELECT doc FROM booking_fact_history WHERE kind = $1 AND id = $2 AND valid_from <= $3 \
             ORDER BY valid_from DESC, seq DESC LIMIT 1",
            &[kind.into(), id.into(), Arg::Int(at.timestamp_micros())],
        )
        .await?;
    let docs = if before.is_empty() {
        store
            .fetch_texts(
                "SELECT doc FROM booking_fact_history WHERE kind = $1 AND id = $2 ORDER BY valid_from, seq LIMIT 1",
                &[kind.into(), id.into()],
            )
            .await?
    } else {
        before
    };
    match docs.first() {
        Some(d) => serde_json::from_str(d).map(Some).map_err(Error::Payload),
        None => get(store, kind, id).await,
    }
}

async fn set_bike(tx: &mut Tx<'_>, bike_id: Uuid, status: BikeStatus) -> Result<(), Error> {
    update::<BikeFact>(tx, kind::BIKE, bike_id, |f| Some(f.carehome_id), |f| f.status = status).await
}

async fn set_resident(
    tx: &mut Tx<'_>,
    resident_id: Uuid,
    status: Option<ResidentStatus>,
    consent: Option<Vec<ConsentScope>>,
) -> Result<(), Error> {
    update::<ResidentFact>(
        tx,
        kind::RESIDENT,
        resident_id,
        |f| Some(f.carehome_id),
        |f| {
            if let Some(s) = status {
                f.status = s;
            }
            if let Some(c) = consent {
                f.consent = c;
            }
        },
    )
    .await
}

/// Follows the volunteer feed; `kick` wakes the cascade worker after each batch.
pub struct VolunteerFacts {
    /// Woken after every committed batch.
    pub kick: Arc<Notify>,
}

impl RemoteProjection for VolunteerFacts {
    fn name(&self) -> &str {
        "booking_facts_volunteer"
    }

    fn after_commit<'a>(&'a self, _batch: &'a [EventEnvelope]) -> BoxFuture<'a, ()> {
        self.kick.notify_one();
        Box::pin(async {})
    }

    fn apply<'a>(&'a self, tx: &'a mut Tx<'_>, e: &'a EventEnvelope) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            use VolunteerEvent as E;
            let Some(ev) = decode::<VolunteerEvent>(e)? else { return Ok(()) };
            let chapter = |f: &PilotFact| Some(f.chapter_id);
            let set_status = |s: PilotStatus| move |f: &mut PilotFact| f.status = s;
            let changed = pilot_fact_changed(&ev);
            match ev {
                E::PilotRegistered(p) => {
                    let fact = PilotFact {
                        pilot_id: p.pilot_id,
                        chapter_id: p.chapter_id,
                        status: PilotStatus::Active,
                        qualifications: BTreeMap::new(),
                        qualified: Vec::new(),
                        weekly: Vec::new(),
                        carehome_ids: Vec::new(),
                        availability_version: 0,
                    };
                    save(tx, kind::PILOT, p.pilot_id, Some(p.chapter_id), &fact).await?;
                }
                E::PilotQualified(q) => {
                    update::<PilotFact>(tx, kind::PILOT, q.pilot_id, chapter, |f| {
                        f.qualified.push((q.bike_type.clone(), q.qualified_on, q.valid_until));
                        f.qualifications.insert(q.bike_type, (q.qualified_on, q.valid_until));
                    })
                    .await?;
                }
                E::PilotQualificationRenewed(q) => {
                    update::<PilotFact>(tx, kind::PILOT, q.pilot_id, chapter, |f| {
                        f.qualified.push((q.bike_type.clone(), q.qualified_on, q.valid_until));
                        f.qualifications.insert(q.bike_type, (q.qualified_on, q.valid_until));
                    })
                    .await?;
                }
                E::PilotSuspended(p) => {
                    update(tx, kind::PILOT, p.pilot_id, chapter, set_status(PilotStatus::Suspended)).await?;
                    outbox(tx, e).await?;
                }
                E::PilotReinstated(p) => {
                    update(tx, kind::PILOT, p.pilot_id, chapter, set_status(PilotStatus::Active)).await?
                }
                E::PilotAccountLinked(_)
                | E::PilotAccountUnlinked(_)
                | E::InvitationIssued(_)
                | E::InvitationRedeemed(_)
                | E::InvitationRevoked(_) => {}
                E::PilotRetired(p) => {
                    update(tx, kind::PILOT, p.pilot_id, chapter, set_status(PilotStatus::Retired)).await?;
                    outbox(tx, e).await?;
                }
                E::PilotErased(p) => {
                    update(tx, kind::PILOT, p.pilot_id, chapter, set_status(PilotStatus::Erased)).await?;
                    outbox(tx, e).await?;
                }
                // The latest declaration replaces the one before (candidates and offers).
                E::PilotAvailabilityDeclared(a) => declare(tx, e, a).await?,
                E::PilotDetailsCorrected(_) => {}
            }
            if let Some(id) = changed {
                remember(tx, e, kind::PILOT, id).await?;
            }
            Ok(())
        })
    }
}

//! What notify knows of other services' objects, followed from their feeds (each batch
//! with its checkpoint in one transaction, `servicekit::remote`): from care-home the
//! chapters' zones and reminder lead times, the care homes' chapters, names and zones, and
//! who coordinates which home; from booking the rides (pilot, home, start, status, riders)
//! and, for events that occasion notices, a row in `notify_pending` in the same
//! transaction, so no occasion is lost between the event and its decision.

use chrono::{DateTime, Utc};
use domain::DomainEvent;
use domain::events::{BookingEvent, CareHomeEvent, VolunteerEvent};
use eventlog::{Arg, Error, Tx};
use futures_util::future::BoxFuture;
use samskab_proto::common::v1::EventEnvelope;
use serde::{Deserialize, Serialize};
use servicekit::remote::RemoteProjection;
use uuid::Uuid;

use crate::notices::kind;

/// Microseconds since the epoch, as stored.
pub fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// A stored time.
pub fn from_micros(m: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(m).unwrap_or_default()
}

/// An event older than this when notify first reads it occasions nothing: it is history
/// (a first start on a long log, a long outage), and a notice whose occasion passed more
/// than an hour ago is never sent (`api.md`).
pub const STALE_AFTER_MINUTES: i64 = 60;

/// Follows care-home's feed.
pub struct CareHomeFacts;

/// The checkpoint name of [`CareHomeFacts`].
pub const CAREHOME_FEED: &str = "notify-carehome-feed";
/// The checkpoint name of [`Rides`].
pub const BOOKING_FEED: &str = "notify-booking-feed";

impl RemoteProjection for CareHomeFacts {
    fn name(&self) -> &str {
        CAREHOME_FEED
    }

    /// Chapter admins are appointed by internal events.
    fn with_internal(&self) -> bool {
        true
    }

    fn apply<'a>(&'a self, tx: &'a mut Tx<'_>, e: &'a EventEnvelope) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let Some(ev) = CareHomeEvent::from_stored(&e.event_type, &e.data_json).map_err(Error::Payload)? else {
                return Ok(());
            };
            use CareHomeEvent as E;
            match ev {
                E::ChapterRegistered(c) => {
                    tx.execute(
                        "INSERT INTO notify_chapters (chapter_id, timezone, reminder_leads) VALUES ($1, $2, $3) \
                         ON CONFLICT (chapter_id) DO UPDATE SET timezone = excluded.timezone, \
                         reminder_leads = excluded.reminder_leads",
                        &[c.chapter_id.into(), c.timezone.into(), leads(&c.settings.reminder_lead_minutes)],
                    )
                    .await?;
                }
                E::ChapterSettingsChanged(c) => {
                    tx.execute(
                        "UPDATE notify_chapters SET reminder_leads = $2 WHERE chapter_id = $1",
                        &[c.chapter_id.into(), leads(&c.settings.reminder_lead_minutes)],
                    )
                    .await?;
                }
                E::CareHomeRegistered(h) => {
                    tx.execute(
                        "INSERT INTO notify_carehomes (carehome_id, chapter_id, name, timezone) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (carehome_id) DO UPDATE SET chapter_id = excluded.chapter_id, \
                         name = excluded.name, timezone = excluded.timezone",
                        &[h.carehome_id.into(), h.chapter_id.into(), h.name.into(), h.timezone.unwrap_or_default().into()],
                    )
                    .await?;
                }
                E::CareHomeDetailsCorrected(h) => {
                    if let Some(name) = h.name {
                        tx.execute(
                            "UPDATE notify_carehomes SET name = $2 WHERE carehome_id = $1",
                            &[h.carehome_id.into(), name.into()],
                        )
                        .await?;
                    }
                }
                E::CoordinatorAssigned(c) => {
                    tx.execute(
                        "INSERT INTO notify_coordinators (carehome_id, person_id) VALUES ($1, $2) \
                         ON CONFLICT (carehome_id, person_id) DO NOTHING",
                        &[c.carehome_id.into(), c.user_id.into()],
                    )
                    .await?;
                }
                E::ChapterAdminAppointed(a) => {
                    tx.execute(
                        "INSERT INTO notify_chapter_admins (chapter_id, person_id) VALUES ($1, $2) \
                         ON CONFLICT (chapter_id, person_id) DO NOTHING",
                        &[a.chapter_id.into(), a.person_id.into()],
                    )
                    .await?;
                }
                E::ChapterAdminRemoved(a) => {
                    tx.execute(
                        "DELETE FROM notify_chapter_admins WHERE chapter_id = $1 AND person_id = $2",
                        &[a.chapter_id.into(), a.person_id.into()],
                    )
                    .await?;
                }
                E::CoordinatorRemoved(c) => {
                    tx.execute(
                        "DELETE FROM notify_coordinators WHERE carehome_id = $1 AND person_id = $2",
                        &[c.carehome_id.into(), c.user_id.into()],
                    )
                    .await?;
                }
                _ => {}
            }
            Ok(())
        })
    }
}

fn leads(minutes: &[u32]) -> Arg {
    Arg::Text(serde_json::to_string(minutes).unwrap_or_else(|_| "[]".into()))
}

/// An occasion waiting in `notify_pending`: what a decision needs besides the ride's row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    /// The kind.
    pub kind: String,
    /// The ride.
    pub ride_id: Uuid,
    /// Who caused it: they are not told (`api.md`).
    pub actor_id: String,
    /// Their role.
    pub actor_role: String,
    /// A cancellation's reason code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The ride request (a claim, an offer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ride_request_id: Option<Uuid>,
    /// The pilot an offer is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pilot_id: Option<Uuid>,
}

/// Follows booking's feed.
pub struct Rides;

impl RemoteProjection for Rides {
    fn name(&self) -> &str {
        BOOKING_FEED
    }

    fn stream_prefixes(&self) -> Vec<String> {
        vec!["ride-".into(), "riderequest-".into()]
    }

    fn apply<'a>(&'a self, tx: &'a mut Tx<'_>, e: &'a EventEnvelope) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let Some(ev) = BookingEvent::from_stored(&e.event_type, &e.data_json).map_err(Error::Payload)? else {
                return Ok(());
            };
            let occurred = e.occurred_at.as_ref().and_then(samskab_proto::time::from_proto).unwrap_or_default();
            let fresh = occurred >= servicekit::clock::now() - chrono::Duration::minutes(STALE_AFTER_MINUTES);
            let (actor_id, actor_role) = e.actor.as_ref().map(|a| (a.id.clone(), a.role.clone())).unwrap_or_default();
            let by_pilot = actor_role == "pilot";
            let pending = |kind: &str, ride_id: Uuid| Pending {
                kind: kind.into(),
                ride_id,
                actor_id: actor_id.clone(),
                actor_role: actor_role.clone(),
                reason: None,
                ride_request_id: None,
                pilot_id: None,
            };
            use BookingEvent as E;
            let mut occasions = Vec::new();
            match ev {
                E::RideBooked(b) => {
                    tx.execute(
                        "INSERT INTO notify_rides (ride_id, chapter_id, carehome_id, pilot_id, starts_at, status, riders) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (ride_id) DO NOTHING",
                        &[
                            b.ride_id.into(),
                            b.chapter_id.into(),
                            b.carehome_id.into(),
                            b.pilot_id.into(),
                            Arg::Int(micros(b.start)),
                            b.status.to_string().into(),
                            Arg::Int(b.riders.len() as i64),
                        ],
                    )
                    .await?;
                    if !by_pilot {
                        occasions.push(pending(kind::BOOKED_FOR_YOU, b.ride_id));
                    }
                    if b.status == domain::types::RideStatus::PendingConfirmation {
                        occasions.push(pending(kind::PENDING_CONFIRMATION, b.ride_id));
                    }
                }
                E::RideConfirmed(c) => {
                    set_status(tx, c.ride_id, "booked").await?;
                    occasions.push(pending(kind::CONFIRMED, c.ride_id));
                }
                E::RideRescheduled(r) => {
                    tx.execute(
                        "UPDATE notify_rides SET starts_at = $2 WHERE ride_id = $1",
                        &[r.ride_id.into(), Arg::Int(micros(r.start))],
                    )
                    .await?;
                    occasions.push(pending(kind::RESCHEDULED, r.ride_id));
                }
                E::RiderAddedToRoster(r) => {
                    riders(tx, r.ride_id, 1).await?;
                    occasions.push(pending(kind::ROSTER_CHANGED, r.ride_id));
                }
                E::RiderRemovedFromRoster(r) => {
                    riders(tx, r.ride_id, -1).await?;
                    occasions.push(pending(kind::ROSTER_CHANGED, r.ride_id));
                }
                E::RiderPromotedFromWaitlist(r) => {
                    riders(tx, r.ride_id, 1).await?;
                    occasions.push(pending(kind::WAITLIST_PROMOTED, r.ride_id));
                }
                E::RideCancelled(c) => {
                    set_status(tx, c.ride_id, "cancelled").await?;
                    let mut p = pending(kind::CANCELLED, c.ride_id);
                    p.reason = Some(c.reason.to_string());
                    occasions.push(p);
                }
                E::RideRequested(r) => {
                    // Escalations already due when it was posted are not for it.
                    let told: Vec<String> = crate::decider::UNCLAIMED_LEAD_HOURS
                        .iter()
                        .filter(|h| r.window_from - chrono::Duration::hours(**h) <= occurred)
                        .map(|h| h.to_string())
                        .collect();
                    tx.execute(
                        "INSERT INTO notify_requests (ride_request_id, chapter_id, carehome_id, window_from, told) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (ride_request_id) DO NOTHING",
                        &[
                            r.ride_request_id.into(),
                            r.chapter_id.into(),
                            r.carehome_id.into(),
                            Arg::Int(micros(r.window_from)),
                            Arg::Text(serde_json::to_string(&told).map_err(Error::Payload)?),
                        ],
                    )
                    .await?;
                }
                E::RideRequestClaimed(c) => {
                    request_status(tx, c.ride_request_id, "claimed").await?;
                    let mut p = pending(kind::CLAIMED, c.ride_id);
                    p.ride_request_id = Some(c.ride_request_id);
                    occasions.push(p);
                }
                E::RideRequestWithdrawn(w) => request_status(tx, w.ride_request_id, "withdrawn").await?,
                E::RideRequestExpired(x) => request_status(tx, x.ride_request_id, "expired").await?,
                E::RideRequestOffered(o) => {
                    for pilot in o.pilot_ids {
                        let mut p = pending(kind::OFFERED, Uuid::nil());
                        p.ride_request_id = Some(o.ride_request_id);
                        p.pilot_id = Some(pilot);
                        occasions.push(p);
                    }
                }
                E::RideStarted(s) => set_status(tx, s.ride_id, "started").await?,
                E::RideCompleted(c) => set_status(tx, c.ride_id, "completed").await?,
                E::RideMarkedNoShow(n) => set_status(tx, n.ride_id, "no_show").await?,
                _ => {}
            }
            if !fresh {
                return Ok(());
            }
            for (n, p) in occasions.into_iter().enumerate() {
                // One occasion per event and kind (an event may occasion two kinds); an
                // offer's is (request, pilot), whichever event offered it.
                let occasion = match (p.ride_request_id, p.pilot_id) {
                    (Some(r), Some(pilot)) => format!("{}/{r}/{pilot}", p.kind),
                    _ => format!("{}/{}/{n}", p.kind, e.event_id),
                };
                tx.execute(
                    "INSERT INTO notify_pending (occasion, due_at, doc) VALUES ($1, $2, $3) \
                     ON CONFLICT (occasion) DO NOTHING",
                    &[
                        occasion.into(),
                        Arg::Int(micros(occurred)),
                        Arg::Text(serde_json::to_string(&p).map_err(Error::Payload)?),
                    ],
                )
                .await?;
            }
            Ok(())
        })
    }
}

async fn request_status(tx: &mut Tx<'_>, id: Uuid, status: &str) -> Result<(), Error> {
    tx.execute("UPDATE notify_requests SET status = $2 WHERE ride_request_id = $1", &[id.into(), status.into()])
        .await?;
    Ok(())
}

async fn set_status(tx: &mut Tx<'_>, ride_id: Uuid, status: &str) -> Result<(), Error> {
    tx.execute("UPDATE notify_rides SET status = $2 WHERE ride_id = $1", &[ride_id.into(), status.into()]).await?;
    Ok(())
}

async fn riders(tx: &mut Tx<'_>, ride_id: Uuid, by: i64) -> Result<(), Error> {
    tx.execute("UPDATE notify_rides SET riders = riders + $2 WHERE ride_id = $1", &[ride_id.into(), Arg::Int(by)])
        .await?;
    Ok(())
}

/// The checkpoint name of [`Pilots`].
pub const VOLUNTEER_FEED: &str = "notify-volunteer-feed";

/// Follows volunteer's feed: pilot records, the person linked to each, erasure.
pub struct Pilots;

impl RemoteProjection for Pilots {
    fn name(&self) -> &str {
        VOLUNTEER_FEED
    }

    fn stream_prefixes(&self) -> Vec<String> {
        vec!["pilot-".into()]
    }

    /// Pilot links are internal events.
    fn with_internal(&self) -> bool {
        true
    }

    fn apply<'a>(&'a self, tx: &'a mut Tx<'_>, e: &'a EventEnvelope) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let Some(ev) = VolunteerEvent::from_stored(&e.event_type, &e.data_json).map_err(Error::Payload)? else {
                return Ok(());
            };
            use VolunteerEvent as E;
            match ev {
                E::PilotRegistered(p) => {
                    tx.execute(
                        "INSERT INTO notify_pilots (pilot_id, chapter_id) VALUES ($1, $2) \
                         ON CONFLICT (pilot_id) DO NOTHING",
                        &[p.pilot_id.into(), p.chapter_id.into()],
                    )
                    .await?;
                }
                E::PilotQualified(q) => qualified(tx, q.pilot_id, &q.bike_type, q.valid_until).await?,
                E::PilotQualificationRenewed(q) => qualified(tx, q.pilot_id, &q.bike_type, q.valid_until).await?,
                E::PilotAccountLinked(l) => {
                    tx.execute(
                        "UPDATE notify_pilots SET person_id = $2 WHERE pilot_id = $1",
                        &[l.pilot_id.into(), l.person_id.into()],
                    )
                    .await?;
                }
                E::PilotAccountUnlinked(l) => {
                    tx.execute("UPDATE notify_pilots SET person_id = '' WHERE pilot_id = $1", &[l.pilot_id.into()])
                        .await?;
                }
                E::PilotErased(p) => {
                    tx.execute(
                        "UPDATE notify_pilots SET erased = 1, person_id = '' WHERE pilot_id = $1",
                        &[p.pilot_id.into()],
                    )
                    .await?;
                    crate::people::erase_in(tx, &format!("pilot:{}", p.pilot_id)).await?;
                }
                _ => {}
            }
            Ok(())
        })
    }
}

async fn qualified(tx: &mut Tx<'_>, pilot: Uuid, bike_type: &str, until: chrono::NaiveDate) -> Result<(), Error> {
    tx.execute(
        "INSERT INTO notify_qualifications (pilot_id, bike_type, valid_until) VALUES ($1, $2, $3) \
         ON CONFLICT (pilot_id, bike_type) DO UPDATE SET valid_until = excluded.valid_until",
        &[pilot.into(), bike_type.into(), until.to_string().into()],
    )
    .await?;
    Ok(())
}

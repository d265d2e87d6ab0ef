//! A care home's ride requests: recorded, withdrawn while open, expired once their window
//! has passed (claiming is a booking: [`super::booking::claim`]). Pure.

use chrono::{DateTime, Duration, Utc};
use domain::events::{BookingEvent, RideRequestExpired, RideRequestOffered, RideRequestWithdrawn, RideRequested};
use domain::types::{BikeStatus, RideKind, RideRequestStatus, Sealed};
use domain::{Decision, DomainError, ErrorCode};
use uuid::Uuid;

use crate::facts::{BikeFact, CareHomeFact, ResidentFact};
use crate::requests::{RideRequest, request_stream};
use crate::rules;

/// The refusal of a request transition its life cycle does not allow.
pub fn illegal(r: &RideRequest, action: &str) -> DomainError {
    DomainError::conflict(ErrorCode::IllegalTransition, format!("a {} ride request cannot be {action}", r.status), None)
}

/// A new request, its note sealed.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRequest {
    /// Its id.
    pub ride_request_id: Uuid,
    /// Care home.
    pub carehome_id: Uuid,
    /// Residents.
    pub resident_ids: Vec<Uuid>,
    /// Window start.
    pub window_from: DateTime<Utc>,
    /// Window end.
    pub window_to: DateTime<Utc>,
    /// Length.
    pub duration_minutes: u32,
    /// Kind.
    pub kind: RideKind,
    /// The note, sealed.
    pub note: Option<Sealed>,
}

/// What a command on a request decides on.
#[derive(Debug, Clone, Default)]
pub struct RequestInput {
    /// The request (`None`: not yet, or no such request).
    pub request: Option<RideRequest>,
    /// The care home (new requests).
    pub home: Option<CareHomeFact>,
    /// The residents named (new requests).
    pub riders: Vec<(Uuid, Option<ResidentFact>)>,
    /// Now.
    pub now: DateTime<Utc>,
}

/// Records a request: its window must lie ahead and hold the ride; every resident must
/// live at the care home with consent; at most two riders unless it is an event.
pub fn request(input: &RequestInput, r: &NewRequest) -> Result<Decision<BookingEvent>, DomainError> {
    let home = input.home.as_ref().ok_or_else(|| DomainError::NotFound("care home".into()))?;
    if input.request.is_some() {
        return Ok(Decision::nothing());
    }
    if r.window_to <= input.now {
        return Err(DomainError::invalid("/window/to", "must be in the future"));
    }
    if r.window_to - r.window_from < Duration::minutes(i64::from(r.duration_minutes)) {
        return Err(DomainError::invalid("/duration_minutes", "must fit inside the window"));
    }
    let bike_like = BikeFact {
        bike_id: Uuid::nil(),
        carehome_id: home.carehome_id,
        bike_type: String::new(),
        seats: 2,
        status: BikeStatus::InService,
    };
    rules::check_riders(home, &bike_like, r.kind, r.duration_minutes, None, &input.riders)?;
    let event = RideRequested {
        ride_request_id: r.ride_request_id,
        carehome_id: r.carehome_id,
        chapter_id: home.chapter_id,
        resident_ids: r.resident_ids.clone(),
        window_from: r.window_from,
        window_to: r.window_to,
        duration_minutes: r.duration_minutes,
        kind: r.kind,
        note: r.note.clone(),
    };
    Ok(Decision::on(request_stream(r.ride_request_id), vec![event.into()], Some(home.chapter_id)))
}

fn existing(input: &RequestInput) -> Result<&RideRequest, DomainError> {
    input.request.as_ref().ok_or_else(|| DomainError::NotFound("ride request".into()))
}

/// The care home withdraws an open request.
pub fn withdraw(input: &RequestInput) -> Result<Decision<BookingEvent>, DomainError> {
    let r = existing(input)?;
    match r.status {
        RideRequestStatus::Open => Ok(Decision::on(
            request_stream(r.ride_request_id),
            vec![RideRequestWithdrawn { ride_request_id: r.ride_request_id }.into()],
            Some(r.chapter_id),
        )),
        _ => Err(illegal(r, "withdrawn")),
    }
}

/// An open request whose window has passed expires (anything else: nothing to do).
pub fn expire(input: &RequestInput) -> Result<Decision<BookingEvent>, DomainError> {
    let r = existing(input)?;
    match r.status {
        RideRequestStatus::Open if r.window_to <= input.now => Ok(Decision::on(
            request_stream(r.ride_request_id),
            vec![RideRequestExpired { ride_request_id: r.ride_request_id }.into()],
            Some(r.chapter_id),
        )),
        _ => Ok(Decision::nothing()),
    }
}

/// How long one offer round lasts, and how near a window must start for every candidate
/// to be offered it at once.
pub const OFFER_ROUND_HOURS: i64 = 24;

/// The offer round due at `now` for a request posted at `posted_at`: its number (the
/// rounds recorded so far) and whether every candidate left is offered it at once (its
/// window starts within 24 h); `None` when nothing is due (not open, window passed, or the
/// next round's 24 h not yet run).
pub fn due_round(r: &RideRequest, posted_at: DateTime<Utc>, now: DateTime<Utc>) -> Option<(u32, bool)> {
    if r.status != RideRequestStatus::Open || r.window_to <= now {
        return None;
    }
    let all = r.window_from - now <= Duration::hours(OFFER_ROUND_HOURS);
    let k = r.offer_rounds;
    (all || posted_at + Duration::hours(OFFER_ROUND_HOURS * i64::from(k)) <= now).then_some((k, all))
}

/// What an offer round decides on.
#[derive(Debug, Clone, Default)]
pub struct OfferInput {
    /// The request.
    pub request: Option<RideRequest>,
    /// When it was posted.
    pub posted_at: DateTime<Utc>,
    /// Now.
    pub now: DateTime<Utc>,
    /// The chapter's `offer_fanout`.
    pub fanout: u32,
    /// The candidates now, best placed first (computed only when a round is due).
    pub candidates: Vec<Uuid>,
}

/// Offer round `round` of an open request: to the next `offer_fanout` candidates not yet
/// offered it (every one left when its window starts within 24 h). Nothing when the round
/// is not the one due (done before, or not yet), or nobody new is a candidate (the round
/// stays due, and a pilot who becomes a candidate is offered it at the next sweep).
pub fn offer(i: &OfferInput, round: u32) -> Result<Decision<BookingEvent>, DomainError> {
    let Some(r) = &i.request else { return Ok(Decision::nothing()) };
    let Some((due, all)) = due_round(r, i.posted_at, i.now) else { return Ok(Decision::nothing()) };
    if due != round {
        return Ok(Decision::nothing());
    }
    let fresh = i.candidates.iter().filter(|p| !r.offered.contains(p)).copied();
    let pilot_ids: Vec<Uuid> = if all { fresh.collect() } else { fresh.take(i.fanout.max(1) as usize).collect() };
    if pilot_ids.is_empty() {
        return Ok(Decision::nothing());
    }
    let event = RideRequestOffered { ride_request_id: r.ride_request_id, pilot_ids, round };
    Ok(Decision::on(request_stream(r.ride_request_id), vec![event.into()], Some(r.chapter_id)))
}

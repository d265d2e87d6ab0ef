//! A care home's ride requests: recorded, withdrawn while open, expired once their window
//! has passed (claiming is a booking: [`super::booking::claim`]). Pure.

use chrono::{DateTime, Duration, Utc};
use domain::events::{BookingEvent, RideRequestExpired, RideRequestWithdrawn, RideRequested};
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

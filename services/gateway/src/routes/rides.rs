//! Rides and their whole life cycle: booking (three kinds), reading and listing, the
//! roster and check-in, confirmation, rescheduling, cancellation, start, completion and
//! no-show. Who may do what follows the role table of the API contract; personal fields
//! (riders' names, addresses, story, note) only reach callers allowed to see them.

use samskab_proto::booking::v1 as bpb;
use samskab_proto::carehome::v1 as cpb;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

use crate::AppState;
use crate::caller::Caller;
use crate::clients::req;
use crate::problem::ApiError;
use crate::views::{opt, time};

/// A rider on a ride's roster.
#[derive(Debug, Serialize, ToSchema)]
pub struct RiderView {
    /// The resident.
    pub resident_id: String,
    /// Name, for callers allowed to see it (absent once erased).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Checked in.
    pub checked_in: bool,
}

/// A ride.
#[derive(Debug, Serialize, ToSchema)]
pub struct RideView {
    /// Id.
    pub ride_id: String,
    /// `pleasure`, `event` or `functional`.
    pub kind: String,
    /// `pending_confirmation`, `booked`, `started`, `completed`, `cancelled`, `no_show`.
    pub status: String,
    /// Trishaw.
    pub bike_id: String,
    /// Pilot.
    pub pilot_id: String,
    /// Care home.
    pub carehome_id: String,
    /// Chapter.
    pub chapter_id: String,
    /// Start (UTC).
    pub start: Option<String>,
    /// Length in minutes.
    pub duration_minutes: u32,
    /// The roster, in order.
    pub riders: Vec<RiderView>,
    /// Event rides: minutes per trip.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trip_minutes: Option<u32>,
    /// Functional rides: `outbound` or `return`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leg: Option<String>,
    /// Functional rides: the other leg of a round trip.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linked_ride_id: Option<String>,
    /// Functional rides: pickup address (for callers allowed to see it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pickup: Option<String>,
    /// Functional rides: drop-off address (for callers allowed to see it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropoff: Option<String>,
    /// On booking a round trip: the return leg.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_ride_id: Option<String>,
    /// The ride request it fulfils.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ride_request_id: Option<String>,
    /// Cancellation reason code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_reason: Option<String>,
    /// Role of who cancelled (`system` for cascades).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancelled_by_role: Option<String>,
    /// When it was cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancelled_at: Option<String>,
    /// Cancellation note (for callers allowed to see it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_note: Option<String>,
    /// When it started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    /// Kilometres.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distance_km: Option<f64>,
    /// The trishaw's condition afterwards.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bike_condition: Option<String>,
    /// The story (for callers allowed to see it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub story: Option<String>,
    /// When it was booked.
    pub booked_at: Option<String>,
    /// The version (also the ETag).
    pub version: u64,
}

/// Whether the caller may see the personal fields of a ride (riders' names, addresses,
/// story, note): admin, the chapter's admin, the care home's coordinator, the ride's pilot.
pub fn sees_personal(caller: &Caller, ride: &bpb::Ride) -> bool {
    let (chapter, home, pilot) = (ride.chapter_id.parse().ok(), ride.carehome_id.parse().ok(), ride.pilot_id.parse().ok());
    chapter.is_some_and(|c| caller.admin_of(c)) || home.is_some_and(|h| caller.coordinates(h)) || pilot.is_some_and(|p| caller.is_pilot(p))
}

/// Whether the caller may read a ride at all: the ride's pilot, the coordinator of its
/// care home, the chapter's admin, admin.
pub fn may_read(caller: &Caller, ride: &bpb::Ride) -> bool {
    sees_personal(caller, ride)
}

/// The view of a ride for this caller (names looked up only when the caller may see them).
pub async fn view(s: &AppState, caller: &Caller, ride: bpb::Ride) -> Result<RideView, ApiError> {
    let personal = sees_personal(caller, &ride);
    let mut riders = Vec::with_capacity(ride.riders.len());
    for r in &ride.riders {
        let display_name = if personal {
            match s.clients.carehome.clone().get_resident(req(cpb::IdRequest { id: r.resident_id.clone() })).await {
                Ok(res) => opt(res.into_inner().display_name),
                Err(st) if st.code() == tonic::Code::NotFound => None,
                Err(st) => return Err(st.into()),
            }
        } else {
            None
        };
        riders.push(RiderView { resident_id: r.resident_id.clone(), display_name, checked_in: r.checked_in });
    }
    let f = ride.functional.clone();
    let keep = |v: String| if personal { opt(v) } else { None };
    Ok(RideView {
        ride_id: ride.ride_id,
        kind: ride.kind,
        status: ride.status,
        bike_id: ride.bike_id,
        pilot_id: ride.pilot_id,
        carehome_id: ride.carehome_id,
        chapter_id: ride.chapter_id,
        start: time(&ride.start),
        duration_minutes: ride.duration_minutes,
        riders,
        trip_minutes: (ride.trip_minutes > 0).then_some(ride.trip_minutes),
        leg: f.as_ref().map(|f| f.leg.clone()),
        linked_ride_id: f.as_ref().and_then(|f| opt(f.linked_ride_id.clone())),
        pickup: f.as_ref().and_then(|f| keep(f.pickup.clone())),
        dropoff: f.as_ref().and_then(|f| keep(f.dropoff.clone())),
        return_ride_id: None,
        ride_request_id: opt(ride.ride_request_id),
        cancel_reason: opt(ride.cancel_reason),
        cancelled_by_role: opt(ride.cancelled_by_role),
        cancelled_at: time(&ride.cancelled_at),
        cancel_note: keep(ride.cancel_note),
        started_at: time(&ride.started_at),
        ended_at: time(&ride.ended_at),
        distance_km: ride.ended_at.is_some().then_some(ride.distance_km),
        bike_condition: opt(ride.bike_condition),
        story: keep(ride.story),
        booked_at: time(&ride.booked_at),
        version: ride.version,
    })
}

/// Loads a ride the caller may read (404 otherwise), with personal fields opened.
pub async fn visible(s: &AppState, caller: &Caller, id: Uuid) -> Result<bpb::Ride, ApiError> {
    let ride = match s.clients.booking.clone().get_ride(req(bpb::GetRideRequest { ride_id: id.to_string(), include_personal: true })).await {
        Ok(r) => r.into_inner(),
        Err(st) if st.code() == tonic::Code::NotFound => return Err(ApiError::not_found()),
        Err(st) => return Err(st.into()),
    };
    if !may_read(caller, &ride) {
        return Err(ApiError::not_found());
    }
    Ok(ride)
}

/// The ride routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
}

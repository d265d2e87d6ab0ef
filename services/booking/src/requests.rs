//! Ride requests: a care home asks for a ride for named residents in a time window; a
//! pilot claims it, which books the ride under the same rules in the same atomic append
//! as the claim; the care home may withdraw it; an unclaimed request expires when its
//! window has passed. The request as folded from its stream; the decisions are in
//! [`crate::commands::requests`] and [`crate::commands::booking::claim`].

use chrono::{DateTime, Utc};
use domain::Aggregate;
use domain::events::*;
use domain::types::{RideKind, RideRequestStatus, Sealed};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A ride request as its stream tells it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RideRequest {
    /// Id.
    pub ride_request_id: Uuid,
    /// Care home.
    pub carehome_id: Uuid,
    /// Chapter.
    pub chapter_id: Uuid,
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
    /// Sealed note.
    pub note: Option<Sealed>,
    /// Status.
    pub status: RideRequestStatus,
    /// The ride booked for it.
    pub ride_id: Option<Uuid>,
    /// The pilot who claimed it.
    pub pilot_id: Option<Uuid>,
    /// The pilots it was offered to, in the order offered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offered: Vec<Uuid>,
    /// How many offer rounds were recorded.
    #[serde(default)]
    pub offer_rounds: u32,
}

impl Aggregate for RideRequest {
    type Event = BookingEvent;

    fn apply(state: Option<Self>, event: &BookingEvent) -> Option<Self> {
        use BookingEvent as E;
        if let E::RideRequested(r) = event {
            return Some(RideRequest {
                ride_request_id: r.ride_request_id,
                carehome_id: r.carehome_id,
                chapter_id: r.chapter_id,
                resident_ids: r.resident_ids.clone(),
                window_from: r.window_from,
                window_to: r.window_to,
                duration_minutes: r.duration_minutes,
                kind: r.kind,
                note: r.note.clone(),
                status: RideRequestStatus::Open,
                ride_id: None,
                pilot_id: None,
                offered: Vec::new(),
                offer_rounds: 0,
            });
        }
        let mut s = state?;
        match event {
            E::RideRequestClaimed(c) => {
                s.status = RideRequestStatus::Claimed;
                s.ride_id = Some(c.ride_id);
                s.pilot_id = Some(c.pilot_id);
            }
            E::RideRequestWithdrawn(_) => s.status = RideRequestStatus::Withdrawn,
            E::RideRequestExpired(_) => s.status = RideRequestStatus::Expired,
            E::RideRequestOffered(o) => {
                for p in &o.pilot_ids {
                    if !s.offered.contains(p) {
                        s.offered.push(*p);
                    }
                }
                s.offer_rounds = s.offer_rounds.max(o.round + 1);
            }
            _ => {}
        }
        Some(s)
    }

    fn tenant(&self) -> Option<Uuid> {
        Some(self.chapter_id)
    }
}

/// The stream of a ride request.
pub fn request_stream(id: Uuid) -> String {
    format!("riderequest-{id}")
}

/// The key subject of a request's note.
pub fn request_subject(id: Uuid) -> String {
    format!("riderequest:{id}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::requests::illegal;
    use domain::ErrorCode;

    fn requested() -> RideRequest {
        let e = BookingEvent::RideRequested(RideRequested {
            ride_request_id: Uuid::from_u128(1),
            carehome_id: Uuid::from_u128(2),
            chapter_id: Uuid::from_u128(3),
            resident_ids: vec![Uuid::from_u128(4)],
            window_from: "2027-05-03T07:00:00Z".parse().unwrap(),
            window_to: "2027-05-03T12:00:00Z".parse().unwrap(),
            duration_minutes: 60,
            kind: RideKind::Pleasure,
            note: None,
        });
        RideRequest::apply(None, &e).unwrap()
    }

    #[test]
    fn a_request_is_claimed_withdrawn_or_expired_once() {
        let r = requested();
        assert_eq!(r.status, RideRequestStatus::Open);
        assert_eq!(r.tenant(), Some(Uuid::from_u128(3)));
        let claimed = RideRequest::apply(
            Some(r.clone()),
            &RideRequestClaimed {
                ride_request_id: r.ride_request_id,
                ride_id: Uuid::from_u128(9),
                pilot_id: Uuid::from_u128(8),
            }
            .into(),
        )
        .unwrap();
        assert_eq!((claimed.status, claimed.ride_id), (RideRequestStatus::Claimed, Some(Uuid::from_u128(9))));
        assert_eq!(illegal(&claimed, "withdrawn").code(), ErrorCode::IllegalTransition);
        let w =
            RideRequest::apply(Some(r.clone()), &RideRequestWithdrawn { ride_request_id: r.ride_request_id }.into())
                .unwrap();
        assert_eq!(w.status, RideRequestStatus::Withdrawn);
        let e = RideRequest::apply(Some(r.clone()), &RideRequestExpired { ride_request_id: r.ride_request_id }.into())
            .unwrap();
        assert_eq!(e.status, RideRequestStatus::Expired);
        assert!(RideRequest::apply(None, &RideRequestExpired { ride_request_id: r.ride_request_id }.into()).is_none());
    }
}

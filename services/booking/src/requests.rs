//! Ride requests: a care home asks for a ride for named residents in a time window; a
//! pilot claims it, which books the ride under the same rules in the same atomic append
//! as the claim; the care home may withdraw it; an unclaimed request expires when its
//! window has passed.

use chrono::{DateTime, Duration, Utc};
use domain::events::*;
use domain::types::{RideKind, RideRequestStatus, Sealed};
use serde::{Deserialize, Serialize};
use servicekit::aggregate;
use servicekit::{Aggregate, CommandCtx, ErrorCode, ServiceError, ServiceResult};
use uuid::Uuid;

use crate::booking::{BookRide, Booked};
use crate::facts::{self, CareHomeFact, kind};
use crate::rules;
use crate::service::{Booking, expect};

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

/// A new request.
#[derive(Debug, Clone)]
pub struct NewRequest {
    /// Care home.
    pub carehome_id: Uuid,
    /// Residents.
    pub resident_ids: Vec<Uuid>,
    /// Window.
    pub window_from: DateTime<Utc>,
    /// Window end.
    pub window_to: DateTime<Utc>,
    /// Length.
    pub duration_minutes: u32,
    /// Kind.
    pub kind: RideKind,
    /// Note in clear (sealed before storing).
    pub note: Option<String>,
}

fn illegal(r: &RideRequest, action: &str) -> ServiceError {
    ServiceError::conflict(
        ErrorCode::IllegalTransition,
        format!("a {} ride request cannot be {action}", r.status),
        None,
    )
}

impl Booking {
    /// Loads a ride request.
    pub async fn load_request(&self, id: Uuid) -> ServiceResult<(RideRequest, u64)> {
        let (loaded, _) = aggregate::load::<RideRequest>(&self.store, &request_stream(id)).await?;
        let version = loaded.version;
        loaded.state.map(|s| (s, version)).ok_or_else(|| ServiceError::NotFound("ride request".into()))
    }

    /// Records a care home's request.
    pub async fn request_ride(&self, ctx: &CommandCtx, r: NewRequest) -> ServiceResult<(RideRequest, u64)> {
        let home: CareHomeFact = facts::get(&self.store, kind::CAREHOME, r.carehome_id)
            .await?
            .ok_or_else(|| ServiceError::NotFound("care home".into()))?;
        let now = Utc::now();
        if r.window_to <= now {
            return Err(ServiceError::invalid("/window/to", "must be in the future"));
        }
        if r.window_to - r.window_from < Duration::minutes(i64::from(r.duration_minutes)) {
            return Err(ServiceError::invalid("/duration_minutes", "must fit inside the window"));
        }
        let bike_like = facts::BikeFact {
            bike_id: Uuid::nil(),
            carehome_id: home.carehome_id,
            bike_type: String::new(),
            seats: 2,
            status: domain::types::BikeStatus::InService,
        };
        let riders = self.residents(&r.resident_ids).await?;
        rules::check_riders(&home, &bike_like, r.kind, r.duration_minutes, None, &riders)?;
        let id = ctx.new_object_id("ride-request");
        let note = match &r.note {
            Some(n) => Some(self.keys.seal(&format!("riderequest:{id}"), "note", n).await.map_err(ServiceError::from)?),
            None => None,
        };
        let event = RideRequested {
            ride_request_id: id,
            carehome_id: r.carehome_id,
            chapter_id: home.chapter_id,
            resident_ids: r.resident_ids,
            window_from: r.window_from,
            window_to: r.window_to,
            duration_minutes: r.duration_minutes,
            kind: r.kind,
            note,
        };
        let loaded = aggregate::execute::<RideRequest, _>(&self.store, ctx, &request_stream(id), |state| match state {
            None => Ok(vec![event.clone().into()]),
            Some(_) => Ok(vec![]),
        })
        .await?;
        Ok((loaded.state.expect("created"), loaded.version))
    }

    /// A pilot claims a request: the ride is booked and the request marked claimed in one append.
    pub async fn claim(
        &self,
        ctx: &CommandCtx,
        id: Uuid,
        pilot_id: Uuid,
        bike_id: Uuid,
        start: DateTime<Utc>,
    ) -> ServiceResult<((RideRequest, u64), Booked)> {
        let (req, version) = self.load_request(id).await?;
        ctx.check_version(version)?;
        let ride_id = ctx.new_object_id("ride");
        if req.status == RideRequestStatus::Claimed && req.ride_id == Some(ride_id) {
            let booked = self.book(ctx, self.claim_booking(&req, pilot_id, bike_id, start), vec![]).await?;
            return Ok(((req, version), booked));
        }
        if req.status != RideRequestStatus::Open {
            return Err(illegal(&req, "claimed"));
        }
        let end = start + Duration::minutes(i64::from(req.duration_minutes));
        if start < req.window_from || end > req.window_to {
            return Err(ServiceError::invalid("/start", "the ride must lie inside the request's window"));
        }
        let bike: facts::BikeFact = facts::get(&self.store, kind::BIKE, bike_id)
            .await?
            .ok_or_else(|| ServiceError::NotFound("trishaw".into()))?;
        if bike.carehome_id != req.carehome_id {
            return Err(ServiceError::invalid("/bike_id", "the trishaw belongs to another care home"));
        }
        let claimed: BookingEvent = RideRequestClaimed { ride_request_id: id, ride_id, pilot_id }.into();
        let extra = vec![(request_stream(id), expect(version), vec![claimed])];
        let booked = self.book(ctx, self.claim_booking(&req, pilot_id, bike_id, start), extra).await?;
        Ok((self.load_request(id).await?, booked))
    }

    fn claim_booking(&self, req: &RideRequest, pilot_id: Uuid, bike_id: Uuid, start: DateTime<Utc>) -> BookRide {
        BookRide {
            bike_id,
            pilot_id,
            start,
            duration_minutes: req.duration_minutes,
            resident_ids: req.resident_ids.clone(),
            kind: req.kind,
            trip_minutes: (req.kind == RideKind::Event).then_some(30),
            functional: None,
            ride_request_id: Some(req.ride_request_id),
        }
    }

    /// The care home withdraws an open request.
    pub async fn withdraw(&self, ctx: &CommandCtx, id: Uuid) -> ServiceResult<(RideRequest, u64)> {
        self.request_transition(ctx, id, |r| match r.status {
            RideRequestStatus::Open => Ok(vec![RideRequestWithdrawn { ride_request_id: id }.into()]),
            _ => Err(illegal(r, "withdrawn")),
        })
        .await
    }

    /// Marks an open request whose window has passed as expired.
    pub async fn expire(&self, ctx: &CommandCtx, id: Uuid) -> ServiceResult<(RideRequest, u64)> {
        let now = Utc::now();
        self.request_transition(ctx, id, |r| match r.status {
            RideRequestStatus::Open if r.window_to <= now => {
                Ok(vec![RideRequestExpired { ride_request_id: id }.into()])
            }
            _ => Ok(vec![]),
        })
        .await
    }

    async fn request_transition(
        &self,
        ctx: &CommandCtx,
        id: Uuid,
        decide: impl Fn(&RideRequest) -> ServiceResult<Vec<BookingEvent>>,
    ) -> ServiceResult<(RideRequest, u64)> {
        let loaded = aggregate::execute::<RideRequest, _>(&self.store, ctx, &request_stream(id), |state| match state {
            None => Err(ServiceError::NotFound("ride request".into())),
            Some(r) => decide(r),
        })
        .await?;
        Ok((loaded.state.expect("exists"), loaded.version))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

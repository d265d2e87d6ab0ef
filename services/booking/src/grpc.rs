//! The gRPC face of the booking service: validates requests into commands (400-style
//! errors name the field as a JSON pointer of the REST body), runs them, and answers with
//! rides read from their streams, personal fields opened only when asked for.

use chrono::{DateTime, Utc};
use domain::types::{self, CancellationReason, Invalid, RideKind, RideStatus, Sealed};
use samskab_proto::booking::v1::{self as pb, booking_service_server::BookingService};
use samskab_proto::time::{from_proto, to_proto};
use servicekit::{CommandCtx, ServiceError, ServiceResult};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::commands::booking::{BookRide, Claim, ReturnLeg, SealedRoute};
use crate::commands::requests::NewRequest;
use crate::commands::rides::{self as rides_cmd, Cancel, Completion};
use crate::readmodel::{self, RideQuery};
use crate::requests::{RideRequest, request_subject};
use crate::rides::{Ride, ride_subject};
use crate::service::{Booked, Booking, Reads};

type Reply<T> = Result<Response<T>, Status>;

/// Longest ride accepted (an event block may fill a day's ride hours).
const MAX_MINUTES: u32 = 12 * 60;

struct Fields(Vec<Invalid>);

impl Fields {
    fn new() -> Self {
        Fields(Vec::new())
    }

    fn take<T>(&mut self, r: Result<T, Invalid>) -> Option<T> {
        r.map_err(|e| self.0.push(e)).ok()
    }

    fn id(&mut self, field: &str, v: &str) -> Option<Uuid> {
        self.take(types::parse_id(field, v))
    }

    fn time(&mut self, field: &str, v: &Option<prost_types::Timestamp>) -> Option<DateTime<Utc>> {
        let t = v.as_ref().and_then(from_proto);
        if t.is_none() {
            self.0.push(Invalid::new(field, "must be an RFC 3339 time"));
        }
        t
    }

    fn minutes(&mut self, field: &str, v: u32) -> Option<u32> {
        if v == 0 || v > MAX_MINUTES {
            self.0.push(Invalid::new(field, format!("must be 1 to {MAX_MINUTES} minutes")));
            return None;
        }
        Some(v)
    }

    fn ids(&mut self, field: &str, vs: &[String]) -> Vec<Uuid> {
        let mut out = Vec::new();
        for (i, v) in vs.iter().enumerate() {
            match types::parse_id(&format!("{field}/{i}"), v) {
                Ok(id) if out.contains(&id) => self.0.push(Invalid::new(format!("{field}/{i}"), "is listed twice")),
                Ok(id) => out.push(id),
                Err(e) => self.0.push(e),
            }
        }
        out
    }

    fn done(self) -> Result<(), ServiceError> {
        if self.0.is_empty() { Ok(()) } else { Err(ServiceError::Invalid(self.0)) }
    }

    /// `Err(Invalid)` with every violation found, else the value `build` makes of the
    /// checked fields (each `Some` when nothing was refused).
    fn finish<T>(self, build: impl FnOnce() -> Option<T>) -> Result<T, ServiceError> {
        self.done()?;
        build().ok_or_else(|| ServiceError::Internal("a checked field was missing".into()))
    }
}

fn kind_of(f: &mut Fields, v: &str) -> Option<RideKind> {
    if v.is_empty() { Some(RideKind::Pleasure) } else { f.take(types::parse_enum("/kind", v)) }
}

fn ts(t: Option<DateTime<Utc>>) -> Option<prost_types::Timestamp> {
    t.map(to_proto)
}

impl Booking {
    async fn open(&self, ride_id: Uuid, field: &str, sealed: &Option<Sealed>) -> ServiceResult<String> {
        let Some(s) = sealed else { return Ok(String::new()) };
        Ok(self.keys.unseal(&ride_subject(ride_id), field, s).await.map_err(ServiceError::from)?.unwrap_or_default())
    }

    /// The proto form of a ride; personal fields only when `personal` is set.
    pub async fn ride_proto(&self, ride: &Ride, version: u64, personal: bool) -> ServiceResult<pb::Ride> {
        let id = ride.ride_id;
        let functional = match &ride.route {
            None => None,
            Some(r) => Some(pb::FunctionalLeg {
                pickup: if personal { self.open(id, "pickup", &Some(r.pickup.clone())).await? } else { String::new() },
                dropoff: if personal {
                    self.open(id, "dropoff", &Some(r.dropoff.clone())).await?
                } else {
                    String::new()
                },
                leg: r.leg.clone(),
                linked_ride_id: r.linked_ride_id.map(|l| l.to_string()).unwrap_or_default(),
            }),
        };
        let c = ride.cancellation.as_ref();
        let completed = ride.status == domain::types::RideStatus::Completed;
        Ok(pb::Ride {
            ride_id: id.to_string(),
            kind: ride.kind.to_string(),
            status: ride.status.to_string(),
            bike_id: ride.bike_id.to_string(),
            pilot_id: ride.pilot_id.to_string(),
            carehome_id: ride.carehome_id.to_string(),
            chapter_id: ride.chapter_id.to_string(),
            start: Some(to_proto(ride.start)),
            duration_minutes: ride.duration_minutes,
            riders: ride
                .riders
                .iter()
                .map(|r| pb::Rider { resident_id: r.resident_id.to_string(), checked_in: r.checked_in })
                .collect(),
            trip_minutes: ride.trip_minutes.unwrap_or(0),
            functional,
            ride_request_id: ride.ride_request_id.map(|r| r.to_string()).unwrap_or_default(),
            cancel_reason: c.map(|c| c.reason.to_string()).unwrap_or_default(),
            cancelled_by_role: c.map(|c| c.by_role.clone()).unwrap_or_default(),
            cancelled_at: ts(c.map(|c| c.at)),
            cancel_note: if personal {
                self.open(id, "cancel_note", &c.and_then(|c| c.note.clone())).await?
            } else {
                String::new()
            },
            started_at: ts(ride.started_at),
            ended_at: ts(ride.ended_at),
            distance_km: ride.distance_km.unwrap_or(0.0),
            bike_condition: ride.bike_condition.clone().unwrap_or_default(),
            story: if personal { self.open(id, "story", &ride.story).await? } else { String::new() },
            version,
            booked_at: Some(to_proto(ride.booked_at)),
            riders_carried: if completed { crate::stats::riders_carried(ride).count() as u32 } else { 0 },
            ride_minutes: if completed { crate::stats::actual_minutes(ride) } else { 0 },
            absent_resident_ids: ride.absent.iter().map(Uuid::to_string).collect(),
            recorded: ride.recorded,
            no_show_by: ride.no_show_by.clone().unwrap_or_default(),
            notes: if personal {
                let mut out = Vec::new();
                for n in &ride.notes {
                    out.push(self.open(id, "note", &Some(n.clone())).await?);
                }
                out
            } else {
                Vec::new()
            },
            ride_series_id: ride.ride_series_id.map(|s| s.to_string()).unwrap_or_default(),
            waitlist: ride.waitlist.iter().map(Uuid::to_string).collect(),
        })
    }

    async fn current(&self, ride_id: Uuid) -> ServiceResult<pb::Ride> {
        let (ride, version) = self.ride(ride_id).await?;
        self.ride_proto(&ride, version, false).await
    }

    /// Seals a booking's personal fields (a functional ride's addresses, under each leg's
    /// ride) and names its rides from the command's key: the decider sees neither keys nor
    /// clear text.
    async fn sealed_booking(&self, ctx: &CommandCtx, p: ParsedBook) -> ServiceResult<BookRide> {
        let (ride_id, return_id) = (ctx.new_object_id("ride"), ctx.new_object_id("ride-return"));
        let seal = |ride: Uuid, field: &'static str, text: &str| {
            let (keys, text) = (self.keys.clone(), text.to_owned());
            async move { keys.seal(&ride_subject(ride), field, &text).await.map_err(ServiceError::from) }
        };
        let route = match &p.functional {
            None => None,
            Some(f) => Some(SealedRoute {
                pickup: seal(ride_id, "pickup", &f.pickup).await?,
                dropoff: seal(ride_id, "dropoff", &f.dropoff).await?,
                return_leg: match f.round_trip {
                    false => None,
                    true => Some(ReturnLeg {
                        pickup: seal(return_id, "pickup", &f.dropoff).await?,
                        dropoff: seal(return_id, "dropoff", &f.pickup).await?,
                        start: f.return_start,
                    }),
                },
            }),
        };
        Ok(BookRide {
            ride_id,
            return_id,
            bike_id: p.bike_id,
            pilot_id: p.pilot_id,
            start: p.start,
            duration_minutes: p.duration_minutes,
            resident_ids: p.resident_ids,
            kind: p.kind,
            trip_minutes: p.trip_minutes,
            route,
            ride_request_id: None,
            actor_role: ctx.actor.role.clone(),
            ride_series_id: None,
        })
    }

    async fn booked_proto(&self, b: Booked) -> ServiceResult<pb::BookRideResponse> {
        let ride = self.ride_proto(&b.ride.0, b.ride.1, true).await?;
        let return_ride = match &b.return_ride {
            Some((r, v)) => Some(self.ride_proto(r, *v, true).await?),
            None => None,
        };
        Ok(pb::BookRideResponse { ride: Some(ride), return_ride })
    }

    async fn request_proto(&self, r: &RideRequest, version: u64, personal: bool) -> ServiceResult<pb::RideRequest> {
        let note = match (&r.note, personal) {
            (Some(n), true) => self
                .keys
                .unseal(&request_subject(r.ride_request_id), "note", n)
                .await
                .map_err(ServiceError::from)?
                .unwrap_or_default(),
            _ => String::new(),
        };
        Ok(pb::RideRequest {
            ride_request_id: r.ride_request_id.to_string(),
            carehome_id: r.carehome_id.to_string(),
            chapter_id: r.chapter_id.to_string(),
            resident_ids: r.resident_ids.iter().map(Uuid::to_string).collect(),
            window: Some(pb::TimeWindow { from: Some(to_proto(r.window_from)), to: Some(to_proto(r.window_to)) }),
            duration_minutes: r.duration_minutes,
            kind: r.kind.to_string(),
            note,
            status: r.status.to_string(),
            ride_id: r.ride_id.map(|i| i.to_string()).unwrap_or_default(),
            pilot_id: r.pilot_id.map(|i| i.to_string()).unwrap_or_default(),
            version,
        })
    }
}

/// A booking as requested, before its personal fields are sealed.
struct ParsedBook {
    bike_id: Uuid,
    pilot_id: Uuid,
    start: DateTime<Utc>,
    duration_minutes: u32,
    resident_ids: Vec<Uuid>,
    kind: RideKind,
    trip_minutes: Option<u32>,
    functional: Option<Functional>,
}

/// A functional ride's route in clear.
struct Functional {
    pickup: String,
    dropoff: String,
    round_trip: bool,
    return_start: Option<DateTime<Utc>>,
}

fn parse_book(r: &pb::BookRideRequest) -> Result<ParsedBook, ServiceError> {
    let mut f = Fields::new();
    let bike_id = f.id("/bike_id", &r.bike_id);
    let pilot_id = f.id("/pilot_id", &r.pilot_id);
    let start = f.time("/start", &r.start);
    let duration = f.minutes("/duration_minutes", r.duration_minutes);
    let resident_ids = f.ids("/resident_ids", &r.resident_ids);
    let kind = kind_of(&mut f, &r.kind);
    let trip_minutes = match kind {
        Some(RideKind::Event) => {
            let t = if r.trip_minutes == 0 { 30 } else { r.trip_minutes };
            if t < 5 || duration.is_some_and(|d| t > d) {
                f.0.push(Invalid::new("/trip_minutes", "must be at least 5 and at most the ride's length"));
            }
            Some(t)
        }
        _ => None,
    };
    let functional = match kind {
        Some(RideKind::Functional) => {
            let pickup = f.take(types::parse_label("/pickup", &r.pickup, 300));
            let dropoff = f.take(types::parse_label("/dropoff", &r.dropoff, 300));
            let return_start = match &r.return_start {
                None => None,
                Some(t) => {
                    let t = from_proto(t);
                    if t.is_none() {
                        f.0.push(Invalid::new("/return_start", "must be an RFC 3339 time"));
                    }
                    t
                }
            };
            Some(Functional {
                pickup: pickup.unwrap_or_default(),
                dropoff: dropoff.unwrap_or_default(),
                round_trip: r.round_trip.unwrap_or(true),
                return_start,
            })
        }
        _ => {
            if !r.pickup.is_empty() || !r.dropoff.is_empty() {
                f.0.push(Invalid::new("/pickup", "only functional rides have a pickup and a drop-off"));
            }
            None
        }
    };
    f.finish(|| {
        Some(ParsedBook {
            bike_id: bike_id?,
            pilot_id: pilot_id?,
            start: start?,
            duration_minutes: duration?,
            resident_ids,
            kind: kind?,
            trip_minutes,
            functional,
        })
    })
}

fn ride_id(v: &str) -> Result<Uuid, ServiceError> {
    Ok(types::parse_id("/ride_id", v)?)
}

#[tonic::async_trait]
impl BookingService for Booking {
    async fn book_ride(&self, req: Request<pb::BookRideRequest>) -> Reply<pb::BookRideResponse> {
        let r = req.into_inner();
        let ctx = CommandCtx::from_proto(r.context.clone())?;
        let cmd = self.sealed_booking(&ctx, parse_book(&r)?).await?;
        let booked = self.book(&ctx, &cmd).await?;
        Ok(Response::new(self.booked_proto(booked).await?))
    }

    async fn confirm_ride(&self, req: Request<pb::RideCommandRequest>) -> Reply<pb::Ride> {
        let r = req.into_inner();
        let ctx = CommandCtx::from_proto(r.context)?;
        let id = ride_id(&r.ride_id)?;
        self.on_ride(&ctx, id, |_| Reads::default(), rides_cmd::confirm).await?;
        Ok(Response::new(self.current(id).await?))
    }

    async fn add_rider(&self, req: Request<pb::RosterRequest>) -> Reply<pb::Ride> {
        let r = req.into_inner();
        let ctx = CommandCtx::from_proto(r.context)?;
        let id = ride_id(&r.ride_id)?;
        let resident = types::parse_id("/resident_id", &r.resident_id).map_err(ServiceError::from)?;
        Booking::add_rider(self, &ctx, id, resident).await?;
        Ok(Response::new(self.current(id).await?))
    }

    async fn remove_rider(&self, req: Request<pb::RosterRequest>) -> Reply<pb::Ride> {
        let r = req.into_inner();
        let ctx = CommandCtx::from_proto(r.context)?;
        let id = ride_id(&r.ride_id)?;
        let resident = types::parse_id("/resident_id", &r.resident_id).map_err(ServiceError::from)?;
        Booking::remove_rider(self, &ctx, id, resident, "removed").await?;
        Ok(Response::new(self.current(id).await?))
    }

    async fn join_waitlist(&self, req: Request<pb::RosterRequest>) -> Reply<pb::Ride> {
        let r = req.into_inner();
        let ctx = CommandCtx::from_proto(r.context)?;
        let id = ride_id(&r.ride_id)?;
        let resident = types::parse_id("/resident_id", &r.resident_id).map_err(ServiceError::from)?;
        Booking::join_waitlist(self, &ctx, id, resident).await?;
        Ok(Response::new(self.current(id).await?))
    }

    async fn leave_waitlist(&self, req: Request<pb::RosterRequest>) -> Reply<pb::Ride> {
        let r = req.into_inner();
        let ctx = CommandCtx::from_proto(r.context)?;
        let id = ride_id(&r.ride_id)?;
        let resident = types::parse_id("/resident_id", &r.resident_id).map_err(ServiceError::from)?;
        Booking::leave_waitlist(self, &ctx, id, resident, "removed").await?;
        Ok(Response::new(self.current(id).await?))
    }

    async fn check_in_rider(&self, req: Request<pb::RosterRequest>) -> Reply<pb::Ride> {
        let r = req.into_inner();
        let ctx = CommandCtx::from_proto(r.context)?;
        let id = ride_id(&r.ride_id)?;
        let resident = types::parse_id("/resident_id", &r.resident_id).map_err(ServiceError::from)?;
        self.on_ride(&ctx, id, |_| Reads::default(), |i| rides_cmd::check_in(i, resident)).await?;
        Ok(Response::new(self.current(id).await?))
    }

    async fn reschedule_ride(&self, req: Request<pb::RescheduleRideRequest>) -> Reply<pb::Ride> {
        let r = req.into_inner();
        let ctx = CommandCtx::from_proto(r.context)?;
        let id = ride_id(&r.ride_id)?;
        let mut f = Fields::new();
        let start = f.time("/start", &r.start);
        let duration = f.minutes("/duration_minutes", r.duration_minutes);
        let (start, duration) = f.finish(|| start.zip(duration))?;
        self.reschedule(&ctx, id, start, duration).await?;
        Ok(Response::new(self.current(id).await?))
    }

    async fn cancel_ride(&self, req: Request<pb::CancelRideRequest>) -> Reply<pb::Ride> {
        let r = req.into_inner();
        let ctx = CommandCtx::from_proto(r.context)?;
        let id = ride_id(&r.ride_id)?;
        let reason: CancellationReason = types::parse_enum("/reason", &r.reason).map_err(ServiceError::from)?;
        let note = if r.note.trim().is_empty() {
            None
        } else {
            let text = types::parse_label("/note", &r.note, 2000).map_err(ServiceError::from)?;
            self.ride(id).await?;
            Some(self.keys.seal(&ride_subject(id), "cancel_note", &text).await.map_err(ServiceError::from)?)
        };
        let cancel = Cancel { reason, by_role: ctx.actor.role.clone(), note, caused_by: None };
        self.cancel(&ctx, id, &cancel).await?;
        Ok(Response::new(self.current(id).await?))
    }

    async fn start_ride(&self, req: Request<pb::RideCommandRequest>) -> Reply<pb::Ride> {
        let r = req.into_inner();
        let ctx = CommandCtx::from_proto(r.context)?;
        let id = ride_id(&r.ride_id)?;
        let started_at = match &r.started_at {
            None => None,
            Some(t) => Some(from_proto(t).ok_or_else(|| ServiceError::invalid("/started_at", "must be a time"))?),
        };
        self.on_ride(&ctx, id, |_| Reads::default(), |i| rides_cmd::start(i, started_at)).await?;
        Ok(Response::new(self.current(id).await?))
    }

    async fn complete_ride(&self, req: Request<pb::CompleteRideRequest>) -> Reply<pb::Ride> {
        let r = req.into_inner();
        let ctx = CommandCtx::from_proto(r.context)?;
        let id = ride_id(&r.ride_id)?;
        let mut f = Fields::new();
        let ended_at = f.time("/ended_at", &r.ended_at);
        if !rides_cmd::valid_distance(r.distance_km) {
            f.0.push(Invalid::new("/distance_km", "must be between 0 and 500"));
        }
        let condition = if r.bike_condition.trim().is_empty() {
            None
        } else {
            f.take(types::parse_label("/bike_condition", &r.bike_condition, 60))
        };
        let story = if r.story.trim().is_empty() { None } else { f.take(types::parse_label("/story", &r.story, 4000)) };
        let mut absent = Vec::new();
        for (i, a) in r.absent_resident_ids.iter().enumerate() {
            absent.extend(f.id(&format!("/absent_resident_ids/{i}"), a));
        }
        let ended_at = f.finish(|| ended_at)?;
        let sealed = match story {
            None => None,
            Some(text) => {
                self.ride(id).await?;
                Some(self.keys.seal(&ride_subject(id), "story", &text).await.map_err(ServiceError::from)?)
            }
        };
        let with_story = sealed.is_some();
        let done =
            Completion { ended_at, distance_km: r.distance_km, bike_condition: condition, story: sealed, absent };
        // A story needs every rider's consent to stories: the decider reads the roster's facts.
        let reads = |ride: &Ride| Reads {
            riders: if with_story { ride.riders.iter().map(|x| x.resident_id).collect() } else { Vec::new() },
            ..Reads::default()
        };
        self.on_ride(&ctx, id, reads, |i| rides_cmd::complete(i, &done)).await?;
        Ok(Response::new(self.current(id).await?))
    }

    async fn mark_no_show(&self, req: Request<pb::RideCommandRequest>) -> Reply<pb::Ride> {
        let r = req.into_inner();
        let ctx = CommandCtx::from_proto(r.context)?;
        let id = ride_id(&r.ride_id)?;
        let by = if r.by.is_empty() { "riders" } else { r.by.as_str() };
        self.on_ride(&ctx, id, |_| Reads::default(), |i| rides_cmd::no_show(i, by)).await?;
        Ok(Response::new(self.current(id).await?))
    }

    async fn record_ride(&self, req: Request<pb::RecordRideRequest>) -> Reply<pb::Ride> {
        let r = req.into_inner();
        let ctx = CommandCtx::from_proto(r.context)?;
        let mut f = Fields::new();
        let bike_id = f.id("/bike_id", &r.bike_id);
        let pilot_id = f.id("/pilot_id", &r.pilot_id);
        let started_at = f.time("/started_at", &r.started_at);
        let ended_at = f.time("/ended_at", &r.ended_at);
        if !rides_cmd::valid_distance(r.distance_km) {
            f.0.push(Invalid::new("/distance_km", "must be between 0 and 500"));
        }
        let kind = match r.kind.as_str() {
            "" | "pleasure" => Some(RideKind::Pleasure),
            "event" => Some(RideKind::Event),
            _ => {
                f.0.push(Invalid::new("/kind", "must be pleasure or event"));
                None
            }
        };
        let mut riders = Vec::new();
        for (i, x) in r.resident_ids.iter().enumerate() {
            if let Some(id) = f.id(&format!("/resident_ids/{i}"), x) {
                if riders.contains(&id) {
                    f.0.push(Invalid::new(format!("/resident_ids/{i}"), "is named twice"));
                }
                riders.push(id);
            }
        }
        let mut absent = Vec::new();
        for (i, a) in r.absent_resident_ids.iter().enumerate() {
            absent.extend(f.id(&format!("/absent_resident_ids/{i}"), a));
        }
        let condition = if r.bike_condition.trim().is_empty() {
            None
        } else {
            f.take(types::parse_label("/bike_condition", &r.bike_condition, 60))
        };
        let story = if r.story.trim().is_empty() { None } else { f.take(types::parse_label("/story", &r.story, 4000)) };
        let note = if r.note.trim().is_empty() { None } else { f.take(types::parse_label("/note", &r.note, 2000)) };
        if let (Some(s), Some(e)) = (started_at, ended_at) {
            let now = servicekit::clock::now();
            if let Err(domain::DomainError::Invalid(list)) = rides_cmd::check_actual(s, e, now) {
                f.0.extend(list);
            }
        }
        let (bike_id, pilot_id, started_at, ended_at, kind) =
            f.finish(|| Some((bike_id?, pilot_id?, started_at?, ended_at?, kind?)))?;
        let ride_id = ctx.new_object_id("ride");
        let seal = |field: &'static str, text: Option<String>| {
            let keys = self.keys.clone();
            async move {
                match text {
                    None => Ok(None),
                    Some(t) => keys.seal(&ride_subject(ride_id), field, &t).await.map(Some).map_err(ServiceError::from),
                }
            }
        };
        let cmd = crate::commands::record::RecordRide {
            ride_id,
            bike_id,
            pilot_id,
            started_at,
            ended_at,
            distance_km: r.distance_km,
            resident_ids: riders,
            absent,
            kind,
            story: seal("story", story).await?,
            bike_condition: condition,
            note: seal("note", note).await?,
            actor_role: ctx.actor.role.clone(),
        };
        let (ride, version) = self.record(&ctx, &cmd).await?;
        Ok(Response::new(self.ride_proto(&ride, version, false).await?))
    }

    async fn correct_ride(&self, req: Request<pb::CorrectRideRequest>) -> Reply<pb::Ride> {
        let r = req.into_inner();
        let ctx = CommandCtx::from_proto(r.context)?;
        let id = ride_id(&r.ride_id)?;
        let mut f = Fields::new();
        let started_at = r.started_at.as_ref().and_then(|_| f.time("/started_at", &r.started_at));
        let ended_at = r.ended_at.as_ref().and_then(|_| f.time("/ended_at", &r.ended_at));
        let absent = if r.set_absent {
            let mut out = Vec::new();
            for (i, a) in r.absent_resident_ids.iter().enumerate() {
                out.extend(f.id(&format!("/absent_resident_ids/{i}"), a));
            }
            Some(out)
        } else {
            None
        };
        let note = if r.note.trim().is_empty() { None } else { f.take(types::parse_label("/note", &r.note, 2000)) };
        f.done()?;
        let (ride, _) = self.ride(id).await?;
        // A pilot corrects its rides within the chapter's record window (as it records).
        if ctx.actor.role == "pilot" {
            let window = i64::from(self.record_window(ride.chapter_id).await?);
            let began = ride.started_at.unwrap_or(ride.start);
            if servicekit::clock::now() - began > chrono::Duration::days(window) {
                return Err(ServiceError::from(domain::DomainError::rule(
                    servicekit::ErrorCode::OutsideRecordWindow,
                    format!("a pilot corrects rides of the last {window} days only; ask a coordinator"),
                ))
                .into());
            }
        }
        let note = match note {
            None => None,
            Some(t) => Some(self.keys.seal(&ride_subject(id), "note", &t).await.map_err(ServiceError::from)?),
        };
        let c = rides_cmd::Correction { started_at, ended_at, distance_km: r.distance_km, absent, note };
        let reads = |ride: &Ride| {
            let Some(holds) = rides_cmd::corrected_holds(ride, &c) else { return Reads::default() };
            Reads {
                streams: crate::commands::schedule::streams_of(&holds, &rides_cmd::releases_of(ride)),
                ..Reads::default()
            }
        };
        self.on_ride(&ctx, id, reads, |i| rides_cmd::correct(i, &c)).await?;
        Ok(Response::new(self.current(id).await?))
    }

    async fn get_ride(&self, req: Request<pb::GetRideRequest>) -> Reply<pb::Ride> {
        let r = req.into_inner();
        let (ride, version) = self.ride(ride_id(&r.ride_id)?).await?;
        Ok(Response::new(self.ride_proto(&ride, version, r.include_personal).await?))
    }

    async fn list_rides(&self, req: Request<pb::ListRidesRequest>) -> Reply<pb::ListRidesResponse> {
        let r = req.into_inner();
        let mut f = Fields::new();
        let opt_id = |f: &mut Fields, field: &str, v: &str| if v.is_empty() { None } else { f.id(field, v) };
        let chapter_id = opt_id(&mut f, "/chapter_id", &r.chapter_id);
        let carehome_id = opt_id(&mut f, "/carehome_id", &r.carehome_id);
        let pilot_id = opt_id(&mut f, "/pilot_id", &r.pilot_id);
        let bike_id = opt_id(&mut f, "/bike_id", &r.bike_id);
        let from = r.from.as_ref().map(|t| from_proto(t).map(|t| t.timestamp_micros()));
        let to = r.to.as_ref().map(|t| from_proto(t).map(|t| t.timestamp_micros()));
        if from == Some(None) {
            f.0.push(Invalid::new("/from", "must be an RFC 3339 time"));
        }
        if to == Some(None) {
            f.0.push(Invalid::new("/to", "must be an RFC 3339 time"));
        }
        let statuses: Vec<RideStatus> =
            r.statuses.iter().filter_map(|s| f.take(types::parse_enum("/status", s))).collect();
        let limit = match r.limit {
            0 => 50,
            n if n <= 500 => n as usize,
            _ => {
                f.0.push(Invalid::new("/limit", "must be at most 500"));
                0
            }
        };
        let after = if r.cursor.is_empty() {
            None
        } else {
            let parsed =
                r.cursor.split_once('_').and_then(|(a, b)| Some((a.parse::<i64>().ok()?, b.parse::<Uuid>().ok()?)));
            if parsed.is_none() {
                f.0.push(Invalid::new("/cursor", "not a cursor of this list"));
            }
            parsed
        };
        f.done()?;
        let q = RideQuery {
            chapter_id,
            carehome_id,
            pilot_id,
            bike_id,
            from: from.flatten(),
            to: to.flatten(),
            statuses,
            after,
            limit: limit + 1,
        };
        let docs = readmodel::list(&self.store, &q).await.map_err(ServiceError::from)?;
        let more = docs.len() > limit;
        let mut rides = Vec::new();
        for d in docs.iter().take(limit) {
            rides.push(self.ride_proto(&d.ride, d.version, false).await?);
        }
        let next_cursor = match (more, docs.get(limit.saturating_sub(1))) {
            (true, Some(d)) => format!("{}_{}", d.ride.start.timestamp_micros(), d.ride.ride_id),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListRidesResponse { rides, next_cursor }))
    }

    async fn get_availability(&self, req: Request<pb::GetAvailabilityRequest>) -> Reply<pb::GetAvailabilityResponse> {
        let r = req.into_inner();
        let mut f = Fields::new();
        let home = f.id("/carehome_id", &r.carehome_id);
        let from = f.time("/from", &r.from);
        let to = f.time("/to", &r.to);
        let duration = f.minutes("/duration_minutes", r.duration_minutes);
        if let (Some(a), Some(b)) = (from, to)
            && (b <= a || b - a > chrono::Duration::days(31))
        {
            f.0.push(Invalid::new("/to", "must be after from, at most 31 days later"));
        }
        let (home, from, to, duration) = f.finish(|| Some((home?, from?, to?, duration?)))?;
        let bikes = self.availability(home, from, to, duration).await?;
        Ok(Response::new(pb::GetAvailabilityResponse {
            bikes: bikes
                .into_iter()
                .map(|b| pb::BikeAvailability {
                    bike_id: b.bike.bike_id.to_string(),
                    bike_type: b.bike.bike_type,
                    seats: b.bike.seats,
                    free: b
                        .free
                        .into_iter()
                        .map(|(s, e)| pb::FreeInterval { start: Some(to_proto(s)), end: Some(to_proto(e)) })
                        .collect(),
                })
                .collect(),
        }))
    }

    async fn request_ride(&self, req: Request<pb::RequestRideRequest>) -> Reply<pb::RideRequest> {
        let r = req.into_inner();
        let ctx = CommandCtx::from_proto(r.context.clone())?;
        let mut f = Fields::new();
        let home = f.id("/carehome_id", &r.carehome_id);
        let residents = f.ids("/resident_ids", &r.resident_ids);
        if r.resident_ids.is_empty() {
            f.0.push(Invalid::new("/resident_ids", "must name at least one resident"));
        }
        let window = r.window.unwrap_or_default();
        let from = f.time("/window/from", &window.from);
        let to = f.time("/window/to", &window.to);
        if let (Some(a), Some(b)) = (from, to)
            && b <= a
        {
            f.0.push(Invalid::new("/window/to", "must be after from"));
        }
        let duration = f.minutes("/duration_minutes", r.duration_minutes);
        let kind = kind_of(&mut f, &r.kind);
        let note = if r.note.trim().is_empty() { None } else { f.take(types::parse_label("/note", &r.note, 2000)) };
        let (carehome_id, window_from, window_to, duration_minutes, kind) =
            f.finish(|| Some((home?, from?, to?, duration?, kind?)))?;
        let ride_request_id = ctx.new_object_id("ride-request");
        let note = match note {
            Some(n) => {
                Some(self.keys.seal(&request_subject(ride_request_id), "note", &n).await.map_err(ServiceError::from)?)
            }
            None => None,
        };
        let new = NewRequest {
            ride_request_id,
            carehome_id,
            resident_ids: residents,
            window_from,
            window_to,
            duration_minutes,
            kind,
            note,
        };
        let (req, v) = Booking::request_ride(self, &ctx, &new).await?;
        Ok(Response::new(self.request_proto(&req, v, true).await?))
    }

    async fn claim_ride_request(
        &self,
        req: Request<pb::ClaimRideRequestRequest>,
    ) -> Reply<pb::ClaimRideRequestResponse> {
        let r = req.into_inner();
        let ctx = CommandCtx::from_proto(r.context)?;
        let mut f = Fields::new();
        let id = f.id("/ride_request_id", &r.ride_request_id);
        let pilot = f.id("/pilot_id", &r.pilot_id);
        let bike = f.id("/bike_id", &r.bike_id);
        let start = f.time("/start", &r.start);
        let (ride_request_id, pilot_id, bike_id, start) = f.finish(|| Some((id?, pilot?, bike?, start?)))?;
        let claim = Claim {
            ride_request_id,
            ride_id: ctx.new_object_id("ride"),
            pilot_id,
            bike_id,
            start,
            actor_role: ctx.actor.role.clone(),
        };
        let ((request, v), booked) = self.claim(&ctx, &claim).await?;
        Ok(Response::new(pb::ClaimRideRequestResponse {
            ride_request: Some(self.request_proto(&request, v, false).await?),
            ride: Some(self.ride_proto(&booked.ride.0, booked.ride.1, false).await?),
        }))
    }

    async fn withdraw_ride_request(&self, req: Request<pb::RideRequestCommandRequest>) -> Reply<pb::RideRequest> {
        let r = req.into_inner();
        let ctx = CommandCtx::from_proto(r.context)?;
        let id = types::parse_id("/ride_request_id", &r.ride_request_id).map_err(ServiceError::from)?;
        let (request, v) = self.withdraw(&ctx, id).await?;
        Ok(Response::new(self.request_proto(&request, v, false).await?))
    }

    async fn get_ride_request(&self, req: Request<pb::GetRideRequestRequest>) -> Reply<pb::RideRequest> {
        let r = req.into_inner();
        let id = types::parse_id("/ride_request_id", &r.ride_request_id).map_err(ServiceError::from)?;
        let (request, v) = self.load_request(id).await?;
        Ok(Response::new(self.request_proto(&request, v, r.include_personal).await?))
    }

    async fn ride_request_candidates(
        &self,
        req: Request<pb::RideRequestCandidatesRequest>,
    ) -> Reply<pb::RideRequestCandidatesResponse> {
        let r = req.into_inner();
        let id = types::parse_id("/ride_request_id", &r.ride_request_id).map_err(ServiceError::from)?;
        let candidates = self.candidates(id).await?;
        Ok(Response::new(pb::RideRequestCandidatesResponse {
            candidates: candidates
                .into_iter()
                .map(|c| pb::RideRequestCandidate {
                    pilot_id: c.pilot_id.to_string(),
                    free: c
                        .free
                        .into_iter()
                        .map(|(s, e)| pb::FreeInterval { start: Some(to_proto(s)), end: Some(to_proto(e)) })
                        .collect(),
                    rides_last_30_days: c.rides_last_30_days,
                })
                .collect(),
        }))
    }

    async fn list_ride_requests(
        &self,
        req: Request<pb::ListRideRequestsRequest>,
    ) -> Reply<pb::ListRideRequestsResponse> {
        let r = req.into_inner();
        let mut f = Fields::new();
        let home = if r.carehome_id.is_empty() { None } else { f.id("/carehome_id", &r.carehome_id) };
        let chapter = if r.chapter_id.is_empty() { None } else { f.id("/chapter_id", &r.chapter_id) };
        for s in &r.statuses {
            f.take(types::parse_enum::<types::RideRequestStatus>("/status", s));
        }
        let after = if r.cursor.is_empty() { None } else { f.id("/cursor", &r.cursor) };
        let limit = if r.limit == 0 { 50 } else { r.limit as usize };
        if limit > 500 {
            f.0.push(Invalid::new("/limit", "must be at most 500"));
        }
        f.done()?;
        let docs = readmodel::list_requests(&self.store, home, chapter, &r.statuses, after, limit + 1)
            .await
            .map_err(ServiceError::from)?;
        let more = docs.len() > limit;
        let mut out = Vec::new();
        for d in docs.iter().take(limit) {
            out.push(self.request_proto(&d.request, d.version, false).await?);
        }
        let next_cursor =
            if more { out.last().map(|r| r.ride_request_id.clone()).unwrap_or_default() } else { String::new() };
        Ok(Response::new(pb::ListRideRequestsResponse { ride_requests: out, next_cursor }))
    }

    async fn plan_ride_series(&self, req: Request<pb::PlanRideSeriesRequest>) -> Reply<pb::RideSeries> {
        let r = req.into_inner();
        let ctx = CommandCtx::from_proto(r.context.clone())?;
        let cmd = crate::grpc_series::parse_plan(&ctx, &r)?;
        let (s, version) = self.plan_series(&ctx, &cmd).await?;
        Ok(Response::new(self.series_proto(&s, version, true).await?))
    }

    async fn get_ride_series(&self, req: Request<pb::GetRideSeriesRequest>) -> Reply<pb::RideSeries> {
        let r = req.into_inner();
        let id = types::parse_id("/ride_series_id", &r.ride_series_id).map_err(ServiceError::from)?;
        let (s, version) = self.series(id).await?;
        Ok(Response::new(self.series_proto(&s, version, true).await?))
    }

    async fn list_ride_series(&self, req: Request<pb::ListRideSeriesRequest>) -> Reply<pb::ListRideSeriesResponse> {
        let r = req.into_inner();
        let mut f = Fields::new();
        let home = f.id("/carehome_id", &r.carehome_id);
        let pilot = if r.pilot_id.is_empty() { None } else { f.id("/pilot_id", &r.pilot_id) };
        let after = if r.after.is_empty() { None } else { f.id("/after", &r.after) };
        let home = f.finish(|| home)?;
        let limit = match r.limit {
            0 => 50,
            n => n.min(200),
        };
        let page = self.list_series(home, pilot, after, limit).await?;
        let next_after = if page.len() as u32 == limit {
            page.last().map(|(s, _)| s.plan.ride_series_id.to_string()).unwrap_or_default()
        } else {
            String::new()
        };
        let mut items = Vec::with_capacity(page.len());
        for (s, version) in &page {
            items.push(self.series_proto(s, *version, false).await?);
        }
        Ok(Response::new(pb::ListRideSeriesResponse { items, next_after }))
    }

    async fn cancel_ride_series(
        &self,
        req: Request<pb::CancelRideSeriesRequest>,
    ) -> Reply<pb::CancelRideSeriesResponse> {
        let r = req.into_inner();
        let ctx = CommandCtx::from_proto(r.context.clone())?;
        let (id, c, note) = self.parse_cancel_series(&ctx, &r).await?;
        let cancelled = self.cancel_series(&ctx, id, &c, note.as_deref()).await?;
        let (s, version) = self.series(id).await?;
        Ok(Response::new(pb::CancelRideSeriesResponse {
            cancelled,
            series: Some(self.series_proto(&s, version, true).await?),
        }))
    }

    async fn cancel_day_for_weather(
        &self,
        req: Request<pb::CancelDayForWeatherRequest>,
    ) -> Reply<pb::CancelDayForWeatherResponse> {
        let r = req.into_inner();
        let ctx = CommandCtx::from_proto(r.context)?;
        let mut f = Fields::new();
        let chapter = f.id("/chapter_id", &r.chapter_id);
        let date = f.take(types::parse_date("/date", &r.date));
        let note = if r.note.trim().is_empty() { None } else { f.take(types::parse_label("/note", &r.note, 2000)) };
        let (chapter, date) = f.finish(|| chapter.zip(date))?;
        let cancelled = Booking::cancel_day_for_weather(self, &ctx, chapter, date, note).await?;
        Ok(Response::new(pb::CancelDayForWeatherResponse { cancelled }))
    }

    async fn forget_person(&self, req: Request<pb::ForgetPersonRequest>) -> Reply<pb::ForgetPersonResponse> {
        let r = req.into_inner();
        let (rides, requests) = match (r.resident_id.is_empty(), r.pilot_id.is_empty()) {
            (false, true) => {
                let id = types::parse_id("/resident_id", &r.resident_id).map_err(ServiceError::from)?;
                self.forget_resident(id).await?
            }
            (true, false) => {
                let id = types::parse_id("/pilot_id", &r.pilot_id).map_err(ServiceError::from)?;
                (self.forget_pilot(id).await?, 0)
            }
            _ => {
                return Err(
                    ServiceError::invalid("/resident_id", "name exactly one of resident_id and pilot_id").into()
                );
            }
        };
        Ok(Response::new(pb::ForgetPersonResponse { rides: rides as u32, requests: requests as u32 }))
    }

    async fn broken_rides(&self, req: Request<pb::BrokenRidesRequest>) -> Reply<pb::BrokenRidesResponse> {
        let r = req.into_inner();
        let parse = |field: &str, v: &str| -> Result<Option<Uuid>, ServiceError> {
            if v.is_empty() { Ok(None) } else { Ok(Some(types::parse_id(field, v)?)) }
        };
        let change = crate::cascades::Change {
            bike_id: parse("/bike_id", &r.bike_id)?,
            carehome_id: parse("/carehome_id", &r.carehome_id)?,
            seats: r.seats,
            bike_type: r.bike_type,
            turnaround_minutes: r.turnaround_minutes,
            every_future: r.every_future,
        };
        let now = servicekit::clock::now().timestamp_micros();
        let ids = self.broken(&change, now, false).await?;
        Ok(Response::new(pb::BrokenRidesResponse { ride_ids: ids.iter().map(Uuid::to_string).collect() }))
    }

    async fn export_rides(&self, req: Request<pb::ExportRidesRequest>) -> Reply<pb::PersonalExport> {
        let r = req.into_inner();
        let (rides, requests) = match (r.resident_id.is_empty(), r.pilot_id.is_empty()) {
            (false, true) => {
                let id = types::parse_id("/resident_id", &r.resident_id).map_err(ServiceError::from)?;
                (
                    readmodel::rides_ever_of_resident(&self.store, id).await.map_err(ServiceError::from)?,
                    readmodel::requests_naming(&self.store, id).await.map_err(ServiceError::from)?,
                )
            }
            (true, false) => {
                let id = types::parse_id("/pilot_id", &r.pilot_id).map_err(ServiceError::from)?;
                (readmodel::rides_of_pilot(&self.store, id).await.map_err(ServiceError::from)?, Vec::new())
            }
            _ => {
                return Err(
                    ServiceError::invalid("/resident_id", "name exactly one of resident_id and pilot_id").into()
                );
            }
        };
        let mut out_rides = Vec::new();
        for id in rides {
            let (state, version) = self.ride(id).await?;
            let ride = self.ride_proto(&state, version, true).await?;
            out_rides.push(serde_json::json!({
                "ride_id": ride.ride_id, "kind": ride.kind, "status": ride.status,
                "start": state.start, "duration_minutes": ride.duration_minutes,
                "carehome_id": ride.carehome_id, "pilot_id": ride.pilot_id,
                "pickup": ride.functional.as_ref().map(|f| f.pickup.clone()),
                "dropoff": ride.functional.as_ref().map(|f| f.dropoff.clone()),
                "story": ride.story, "cancel_reason": ride.cancel_reason, "cancel_note": ride.cancel_note,
                "distance_km": ride.distance_km,
            }));
        }
        let mut out_requests = Vec::new();
        for id in requests {
            let (req, v) = self.load_request(id).await?;
            let p = self.request_proto(&req, v, true).await?;
            out_requests.push(serde_json::json!({
                "ride_request_id": p.ride_request_id, "status": p.status, "note": p.note, "carehome_id": p.carehome_id,
            }));
        }
        let json = serde_json::json!({ "rides": out_rides, "ride_requests": out_requests });
        Ok(Response::new(pb::PersonalExport { json: json.to_string() }))
    }

    async fn stats(&self, req: Request<pb::StatsRequest>) -> Reply<pb::StatsResponse> {
        Ok(Response::new(crate::stats::answer(&self.store, req.into_inner()).await?))
    }

    async fn participation(&self, req: Request<pb::ParticipationRequest>) -> Reply<pb::ParticipationResponse> {
        Ok(Response::new(crate::stats::answer_participation(&self.store, req.into_inner()).await?))
    }

    async fn reach(&self, req: Request<pb::ReachRequest>) -> Reply<pb::ReachResponse> {
        Ok(Response::new(crate::stats::answer_reach(&self.store, req.into_inner()).await?))
    }

    async fn chapter_reach(&self, req: Request<pb::ChapterReachRequest>) -> Reply<pb::ChapterReachResponse> {
        Ok(Response::new(crate::stats::answer_chapter_reach(&self.store, req.into_inner()).await?))
    }
}

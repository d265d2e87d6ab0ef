//! Given/when/then tests of every booking command, without a database: given the events on
//! the streams (the outcome of earlier commands) and the facts booking has seen, when a
//! command is decided, then these events or this error. The inputs are assembled from the
//! streams exactly as the loaders in `service.rs` do: the same holds, the same folds.
//! Invariants 1–7 of `domain.md`, each named where it is attacked.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use domain::events::*;
use domain::types::{
    BikeStatus, CancellationReason, ConsentScope, PilotStatus, ResidentStatus, RideHours, RideKind, RideRequestStatus,
    RideStatus, Sealed, Weekday,
};
use domain::{Aggregate, Decision, DomainError, DomainEvent, ErrorCode};
use uuid::Uuid;

use super::booking::{self, BookInput, BookRide, Claim, ClaimInput, ReturnLeg, SealedRoute};
use super::requests::{self, NewRequest, RequestInput};
use super::rides::{self, Cancel, Completion, RideInput};
use super::schedule::{Schedules, streams_of};
use super::weather::{self, WeatherInput, weather_stream};
use crate::facts::{BikeFact, CareHomeFact, ChapterFact, PilotFact, ResidentFact};
use crate::requests::{RideRequest, request_stream};
use crate::rides::{Ride, ride_stream};
use crate::rules::FactParts;
use crate::schedule::DaySchedule;

type Outcome = Result<Decision<BookingEvent>, DomainError>;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

const CHAPTER: Uuid = Uuid::from_u128(0xc1);
const HOME: Uuid = Uuid::from_u128(0xa1);
const BIKE: Uuid = Uuid::from_u128(0xb1);
const BIKE2: Uuid = Uuid::from_u128(0xb2);
const PILOT: Uuid = Uuid::from_u128(0x91);
const PILOT2: Uuid = Uuid::from_u128(0x92);
const ANNA: Uuid = Uuid::from_u128(0xe1);
const BO: Uuid = Uuid::from_u128(0xe2);
const CARL: Uuid = Uuid::from_u128(0xe3);

/// Monday 3 May 2027, 10:00 Copenhagen (CEST) = 08:00Z.
const MORNING: &str = "2027-05-03T08:00:00Z";
const NOW: &str = "2027-05-01T12:00:00Z";

/// The world a test starts from: the streams' events and the facts booking has seen.
#[derive(Clone)]
struct Given {
    streams: BTreeMap<String, Vec<BookingEvent>>,
    chapter: Option<ChapterFact>,
    home: Option<CareHomeFact>,
    bikes: BTreeMap<Uuid, BikeFact>,
    pilots: BTreeMap<Uuid, PilotFact>,
    residents: BTreeMap<Uuid, ResidentFact>,
    now: DateTime<Utc>,
    /// Commands decided so far (each new ride gets the next id).
    n: u128,
}

fn bike(id: Uuid, seats: u32) -> BikeFact {
    BikeFact { bike_id: id, carehome_id: HOME, bike_type: "trishaw".into(), seats, status: BikeStatus::InService }
}

fn pilot(id: Uuid) -> PilotFact {
    let mut q = BTreeMap::new();
    q.insert("trishaw".to_owned(), ("2027-01-01".parse().unwrap(), "2027-12-31".parse().unwrap()));
    PilotFact {
        pilot_id: id,
        chapter_id: CHAPTER,
        status: PilotStatus::Active,
        qualifications: q,
        qualified: vec![],
        weekly: vec![],
        carehome_ids: vec![],
        availability_version: 0,
    }
}

fn resident(id: Uuid, consent: Vec<ConsentScope>) -> ResidentFact {
    ResidentFact { resident_id: id, carehome_id: HOME, status: ResidentStatus::LivingHere, consent, consents: vec![] }
}

/// A chapter in Copenhagen time, a care home open 09:00–17:00 every day with a 15-minute
/// turnaround, two 2-seat trishaws, two qualified pilots, three residents who consent to
/// rides (Anna to stories too).
fn given() -> Given {
    Given {
        streams: BTreeMap::new(),
        chapter: Some(ChapterFact {
            chapter_id: CHAPTER,
            timezone: "Europe/Copenhagen".into(),
            settings: ChapterSettings { lead_time_minutes: 60, ..ChapterSettings::default() },
        }),
        home: Some(CareHomeFact {
            carehome_id: HOME,
            chapter_id: CHAPTER,
            timezone: None,
            ride_hours: Weekday::ALL
                .iter()
                .map(|w| RideHours { weekday: *w, opens: "09:00".parse().unwrap(), closes: "17:00".parse().unwrap() })
                .collect(),
            turnaround_minutes: 15,
            requires_confirmation: false,
            // The rule on pilots' riders has its own tests (rules.rs, tests/tests/api/riders.rs).
            pilots_choose_riders: true,
            closures: vec![],
        }),
        bikes: [(BIKE, bike(BIKE, 2)), (BIKE2, bike(BIKE2, 2))].into(),
        pilots: [(PILOT, pilot(PILOT)), (PILOT2, pilot(PILOT2))].into(),
        residents: [
            (ANNA, resident(ANNA, vec![ConsentScope::Rides, ConsentScope::Stories])),
            (BO, resident(BO, vec![ConsentScope::Rides])),
            (CARL, resident(CARL, vec![ConsentScope::Rides])),
        ]
        .into(),
        now: t(NOW),
        n: 0,
    }
}

/// A pleasure ride of an hour for `riders`.
fn ride(bike: Uuid, pilot: Uuid, start: &str, riders: &[Uuid]) -> BookRide {
    BookRide {
        ride_id: Uuid::nil(),
        return_id: Uuid::nil(),
        bike_id: bike,
        pilot_id: pilot,
        start: t(start),
        duration_minutes: 60,
        resident_ids: riders.to_vec(),
        kind: RideKind::Pleasure,
        trip_minutes: None,
        route: None,
        ride_request_id: None,
        actor_role: "chapter_admin".into(),
        ride_series_id: None,
    }
}

impl Given {
    fn versioned(&self, stream: &str) -> Vec<(BookingEvent, u64)> {
        self.streams.get(stream).map_or(Vec::new(), |e| e.iter().cloned().zip(1..).collect())
    }

    /// The schedules of the named streams, folded as the loader folds them.
    fn schedules(&self, streams: &[String]) -> Schedules {
        Schedules(
            streams
                .iter()
                .map(|s| (s.clone(), DaySchedule::fold(self.versioned(s).iter().map(|(e, v)| (e, *v)))))
                .collect(),
        )
    }

    fn fold<A: Aggregate<Event = BookingEvent>>(&self, stream: &str) -> Option<A> {
        A::fold(self.streams.get(stream).into_iter().flatten())
    }

    fn facts(&self, bike: Uuid, pilot: Uuid) -> FactParts {
        let bike = self.bikes.get(&bike).cloned();
        FactParts {
            home: bike.as_ref().and(self.home.clone()),
            chapter: self.chapter.clone(),
            bike,
            pilot: self.pilots.get(&pilot).cloned(),
        }
    }

    fn riders(&self, ids: &[Uuid]) -> Vec<(Uuid, Option<ResidentFact>)> {
        ids.iter().map(|id| (*id, self.residents.get(id).cloned())).collect()
    }

    /// As `service::book_input`.
    fn book_input(&self, cmd: &BookRide) -> BookInput {
        let mut input = BookInput {
            facts: self.facts(cmd.bike_id, cmd.pilot_id),
            riders: self.riders(&cmd.resident_ids),
            schedules: Schedules::default(),
            named: Vec::new(),
            now: self.now,
        };
        if let Ok(f) = input.facts.facts()
            && let Ok(legs) = booking::legs(&f, &input.riders, cmd, self.now)
        {
            input.schedules = self.schedules(&streams_of(&booking::holds(&legs), &[]));
        }
        input
    }

    /// As `Booking::on_ride` with the reads of each command.
    fn ride_input(&self, ride_id: Uuid, streams: Vec<String>, facts: bool, riders: Vec<Uuid>) -> RideInput {
        let ride: Option<Ride> = self.fold(&ride_stream(ride_id));
        let mut input = RideInput { ride: ride.clone(), now: self.now, ..RideInput::default() };
        if let Some(r) = ride {
            input.schedules = self.schedules(&streams);
            if facts {
                input.facts = self.facts(r.bike_id, r.pilot_id);
            }
            input.riders = self.riders(&riders);
        }
        input
    }

    fn the_ride(&self, ride_id: Uuid) -> Ride {
        self.fold(&ride_stream(ride_id)).expect("the ride exists")
    }

    /// Appends a decision's events to their streams (the executor's append).
    fn apply(&mut self, d: &Decision<BookingEvent>) {
        for (s, e) in &d.events {
            self.streams.entry(s.clone()).or_default().push(e.clone());
        }
    }

    /// Books `cmd` with a fresh ride id and keeps its events; returns the ride id.
    fn book(&mut self, mut cmd: BookRide) -> Uuid {
        self.n += 1;
        cmd.ride_id = Uuid::from_u128(0x1000 + self.n);
        cmd.return_id = Uuid::from_u128(0x2000 + self.n);
        let d = booking::book(&self.book_input(&cmd), &cmd).expect("given: the booking succeeds");
        self.apply(&d);
        cmd.ride_id
    }

    fn when_book(&self, mut cmd: BookRide) -> Outcome {
        cmd.ride_id = Uuid::from_u128(0x9000);
        cmd.return_id = Uuid::from_u128(0x9001);
        booking::book(&self.book_input(&cmd), &cmd)
    }

    fn when_cancel(&self, ride_id: Uuid, reason: CancellationReason, caused_by: Option<Uuid>) -> Outcome {
        let r = self.the_ride(ride_id);
        let input = self.ride_input(ride_id, streams_of(&[], &rides::releases_of(&r)), false, vec![]);
        rides::cancel(&input, &Cancel { reason, by_role: "system".into(), note: None, caused_by })
    }

    fn when_on_ride(&self, ride_id: Uuid, decide: impl Fn(&RideInput) -> Outcome) -> Outcome {
        decide(&self.ride_input(ride_id, vec![], false, vec![]))
    }

    fn when_reschedule(&self, ride_id: Uuid, start: &str, minutes: u32) -> Outcome {
        let r = self.the_ride(ride_id);
        let streams = streams_of(&rides::moved_holds(&r, t(start), minutes), &rides::releases_of(&r));
        let riders = r.riders.iter().map(|x| x.resident_id).collect();
        rides::reschedule(&self.ride_input(ride_id, streams, true, riders), t(start), minutes)
    }

    fn when_add_rider(&self, ride_id: Uuid, resident: Uuid) -> Outcome {
        let r = self.the_ride(ride_id);
        let streams = streams_of(&rides::rider_holds(&r, resident), &[]);
        let riders = r.riders.iter().map(|x| x.resident_id).chain([resident]).collect();
        rides::add_rider(&self.ride_input(ride_id, streams, true, riders), resident, "coordinator")
    }

    fn when_join(&self, ride_id: Uuid, resident: Uuid) -> Outcome {
        let r = self.the_ride(ride_id);
        let streams = streams_of(&rides::rider_holds(&r, resident), &[]);
        rides::join_waitlist(&self.ride_input(ride_id, streams, true, vec![resident]), resident)
    }

    /// A rider taken off with the reads of a promotion (as `Booking::remove_rider`): the
    /// waiting residents' facts and streams, and the other rides they wait for there.
    fn when_seat_frees(&self, ride_id: Uuid, resident: Uuid) -> Outcome {
        let r = self.the_ride(ride_id);
        let mut streams = streams_of(&rides::rider_holds(&r, resident), &[]);
        for w in &r.waitlist {
            streams.extend(rides::rider_holds(&r, *w).into_iter().map(|h| h.stream));
        }
        let mut input = self.ride_input(ride_id, streams.clone(), true, r.waitlist.clone());
        let mut others: Vec<Ride> = Vec::new();
        for s in &streams {
            for o in input.schedules.0.get(s).map(|d| d.waiting.keys().copied().collect::<Vec<_>>()).unwrap_or_default()
            {
                if o != ride_id && !others.iter().any(|x| x.ride_id == o) {
                    others.push(self.the_ride(o));
                }
            }
        }
        for o in &others {
            for w in &r.waitlist {
                let theirs: Vec<String> = rides::rider_holds(o, *w).into_iter().map(|h| h.stream).collect();
                input.schedules.0.extend(self.schedules(&theirs).0);
            }
        }
        input.others = others;
        rides::remove_rider(&input, resident, "removed")
    }

    fn when_remove_rider(&self, ride_id: Uuid, resident: Uuid) -> Outcome {
        let r = self.the_ride(ride_id);
        let streams = streams_of(&rides::rider_holds(&r, resident), &[]);
        rides::remove_rider(&self.ride_input(ride_id, streams, false, vec![]), resident, "consent_withdrawn")
    }
}

/// Then: refused with `code` (and nothing is written: a refusal is not a decision).
#[track_caller]
fn then_refused(outcome: Outcome, code: ErrorCode) -> DomainError {
    match outcome {
        Err(e) => {
            assert_eq!(e.code(), code, "refused with {e}");
            e
        }
        Ok(d) => panic!("expected {code}, decided {:?}", types(&d)),
    }
}

/// Then: these (stream prefix, event type) pairs, in order.
#[track_caller]
fn then_events(outcome: Outcome, expected: &[(&str, &str)]) -> Decision<BookingEvent> {
    let d = outcome.unwrap_or_else(|e| panic!("expected {expected:?}, refused: {e} ({})", e.code()));
    let got = types(&d);
    assert_eq!(got.len(), expected.len(), "decided {got:?}");
    for ((stream, ty), (prefix, want)) in got.iter().zip(expected) {
        assert!(stream.starts_with(prefix) && ty == want, "decided {got:?}, expected {expected:?}");
    }
    d
}

fn types(d: &Decision<BookingEvent>) -> Vec<(String, &'static str)> {
    d.events.iter().map(|(s, e)| (s.clone(), e.event_type())).collect()
}

// Invariant 1: a trishaw is never in two rides whose slots plus turnaround overlap.

#[test]
fn booking_holds_the_trishaw_pilot_and_riders() {
    let g = given();
    let d = then_events(
        g.when_book(ride(BIKE, PILOT, MORNING, &[ANNA])),
        &[("ride-", "RideBooked"), ("bikeday-", "SlotHeld"), ("pilotday-", "SlotHeld"), ("residentday-", "SlotHeld")],
    );
    assert_eq!(d.tenant, Some(CHAPTER));
    let Some((_, BookingEvent::SlotHeld(bike_hold))) = d.events.iter().find(|(s, _)| s.starts_with("bikeday-")) else {
        panic!("no trishaw hold")
    };
    assert_eq!(bike_hold.end, t("2027-05-03T09:15:00Z"), "the trishaw's hold includes the turnaround");
}

#[test]
fn booking_the_same_trishaw_inside_the_turnaround_conflicts() {
    let mut g = given();
    let first = g.book(ride(BIKE, PILOT, MORNING, &[]));
    let e = then_refused(g.when_book(ride(BIKE, PILOT2, "2027-05-03T09:10:00Z", &[])), ErrorCode::BikeTaken);
    assert_eq!(e, DomainError::conflict(ErrorCode::BikeTaken, e.to_string(), Some(first)));
    then_events(
        g.when_book(ride(BIKE, PILOT2, "2027-05-03T09:15:00Z", &[])),
        &[("ride-", "RideBooked"), ("bikeday-", "SlotHeld"), ("pilotday-", "SlotHeld")],
    );
}

#[test]
fn a_cancelled_ride_frees_its_slot_for_a_new_ride() {
    let mut g = given();
    let first = g.book(ride(BIKE, PILOT, MORNING, &[ANNA]));
    let d = g.when_cancel(first, CancellationReason::Rider, None).unwrap();
    g.apply(&d);
    then_events(
        g.when_book(ride(BIKE, PILOT2, MORNING, &[ANNA])),
        &[("ride-", "RideBooked"), ("bikeday-", "SlotHeld"), ("pilotday-", "SlotHeld"), ("residentday-", "SlotHeld")],
    );
}

#[test]
fn a_ride_crossing_midnight_utc_holds_both_days() {
    let mut g = given();
    g.home.as_mut().unwrap().timezone = Some("America/New_York".into());
    // 19:30–20:30 in New York (EDT) is 23:30–00:30Z.
    let mut late = ride(BIKE, PILOT, "2027-05-03T23:30:00Z", &[]);
    g.home.as_mut().unwrap().ride_hours.iter_mut().for_each(|h| h.closes = "21:00".parse().unwrap());
    then_events(
        g.when_book(late.clone()),
        &[
            ("ride-", "RideBooked"),
            ("bikeday-", "SlotHeld"),
            ("bikeday-", "SlotHeld"),
            ("pilotday-", "SlotHeld"),
            ("pilotday-", "SlotHeld"),
        ],
    );
    g.book(late.clone());
    late.pilot_id = PILOT2;
    late.start = t("2027-05-04T00:15:00Z");
    late.duration_minutes = 30;
    then_refused(g.when_book(late), ErrorCode::BikeTaken);
}

// Invariant 2: a pilot, a resident, is never in two overlapping rides.

#[test]
fn a_pilot_or_a_resident_in_another_ride_is_busy() {
    let mut g = given();
    g.book(ride(BIKE, PILOT, MORNING, &[ANNA]));
    then_refused(g.when_book(ride(BIKE2, PILOT, "2027-05-03T08:30:00Z", &[])), ErrorCode::PilotBusy);
    then_refused(g.when_book(ride(BIKE2, PILOT2, "2027-05-03T08:30:00Z", &[ANNA])), ErrorCode::ResidentBusy);
    // People need no turnaround.
    then_events(
        g.when_book(ride(BIKE2, PILOT, "2027-05-03T09:00:00Z", &[ANNA])),
        &[("ride-", "RideBooked"), ("bikeday-", "SlotHeld"), ("pilotday-", "SlotHeld"), ("residentday-", "SlotHeld")],
    );
}

#[test]
fn a_round_trip_is_two_linked_legs_that_hold_their_own_slots() {
    let g = given();
    let mut cmd = ride(BIKE, PILOT, MORNING, &[BO]);
    cmd.kind = RideKind::Functional;
    let sealed = |s: &str| Sealed(format!("{}{s}", Sealed::PREFIX));
    cmd.route = Some(SealedRoute {
        pickup: sealed("p"),
        dropoff: sealed("d"),
        return_leg: Some(ReturnLeg { pickup: sealed("d2"), dropoff: sealed("p2"), start: None }),
    });
    let d = g.when_book(cmd.clone()).unwrap();
    let booked: Vec<&RideBooked> =
        d.events.iter().filter_map(|(_, e)| if let BookingEvent::RideBooked(b) = e { Some(b) } else { None }).collect();
    assert_eq!(booked.len(), 2);
    let (out, back) = (booked[0].route.as_ref().unwrap(), booked[1].route.as_ref().unwrap());
    assert_eq!((out.linked_ride_id, back.linked_ride_id), (Some(booked[1].ride_id), Some(booked[0].ride_id)));
    // Invariant 6: the decider sees only sealed text and writes exactly what it was given.
    assert_eq!((&out.pickup, &back.pickup), (&sealed("p"), &sealed("d2")));
    assert_eq!(booked[1].start, t("2027-05-03T10:00:00Z"), "return after max(turnaround, 60 min)");
    assert_eq!(d.events.len(), 2 + 2 * 3);
    // A return leg that starts before the outbound ends is refused.
    if let Some(r) = cmd.route.as_mut() {
        r.return_leg.as_mut().unwrap().start = Some(t("2027-05-03T08:30:00Z"));
    }
    let e = then_refused(g.when_book(cmd), ErrorCode::Validation);
    assert!(matches!(e, DomainError::Invalid(f) if f[0].field == "/return_start"));
}

// Invariant 3: the booking rules.

#[test]
fn every_booking_rule_refuses_with_its_code() {
    let g = given();
    let mut wheelchair = g.clone();
    wheelchair.bikes.get_mut(&BIKE).unwrap().bike_type = "wheelchair".into();
    then_refused(wheelchair.when_book(ride(BIKE, PILOT, MORNING, &[])), ErrorCode::NotQualified);
    let mut expired = g.clone();
    expired
        .pilots
        .get_mut(&PILOT)
        .unwrap()
        .qualifications
        .insert("trishaw".into(), ("2027-01-01".parse().unwrap(), "2027-05-02".parse::<NaiveDate>().unwrap()));
    then_refused(expired.when_book(ride(BIKE, PILOT, MORNING, &[])), ErrorCode::NotQualified);
    let mut suspended = g.clone();
    suspended.pilots.get_mut(&PILOT).unwrap().status = PilotStatus::Suspended;
    then_refused(suspended.when_book(ride(BIKE, PILOT, MORNING, &[])), ErrorCode::PilotSuspended);
    let mut grounded = g.clone();
    grounded.bikes.get_mut(&BIKE).unwrap().status = BikeStatus::OutOfService;
    then_refused(grounded.when_book(ride(BIKE, PILOT, MORNING, &[])), ErrorCode::BikeOutOfService);
    // 08:30 Copenhagen = 06:30Z, before the 09:00 opening.
    then_refused(g.when_book(ride(BIKE, PILOT, "2027-05-03T06:30:00Z", &[])), ErrorCode::OutsideRideHours);
    then_refused(g.when_book(ride(BIKE, PILOT, "2027-05-01T12:30:00Z", &[])), ErrorCode::LeadTime);
    then_refused(g.when_book(ride(BIKE, PILOT, MORNING, &[ANNA, BO, CARL])), ErrorCode::TooManyRiders);
    let mut moved = g.clone();
    moved.residents.get_mut(&BO).unwrap().status = ResidentStatus::MovedOut;
    then_refused(moved.when_book(ride(BIKE, PILOT, MORNING, &[BO])), ErrorCode::NotResidentHere);
    then_refused(g.when_book(ride(BIKE, PILOT, MORNING, &[Uuid::from_u128(0xee)])), ErrorCode::NotResidentHere);
    let mut withdrawn = g.clone();
    withdrawn.residents.get_mut(&BO).unwrap().consent.clear();
    then_refused(withdrawn.when_book(ride(BIKE, PILOT, MORNING, &[BO])), ErrorCode::NoConsent);
    let mut other_chapter = g.clone();
    other_chapter.pilots.get_mut(&PILOT).unwrap().chapter_id = Uuid::from_u128(0xc2);
    // Another chapter's pilot is not there for this chapter (404), whatever its status.
    then_refused(other_chapter.when_book(ride(BIKE, PILOT, MORNING, &[])), ErrorCode::NotFound);
    other_chapter.pilots.get_mut(&PILOT).unwrap().status = PilotStatus::Suspended;
    then_refused(other_chapter.when_book(ride(BIKE, PILOT, MORNING, &[])), ErrorCode::NotFound);
}

#[test]
fn unknown_facts_are_not_found_naming_the_first_missing() {
    let g = given();
    let e = then_refused(g.when_book(ride(Uuid::from_u128(0xbb), PILOT, MORNING, &[])), ErrorCode::NotFound);
    assert_eq!(e, DomainError::NotFound("trishaw".into()));
    let e = then_refused(g.when_book(ride(BIKE, Uuid::from_u128(0x99), MORNING, &[])), ErrorCode::NotFound);
    assert_eq!(e, DomainError::NotFound("pilot".into()));
}

#[test]
fn an_event_block_takes_seats_per_trip() {
    let g = given();
    let mut event = ride(BIKE, PILOT, MORNING, &[ANNA, BO, CARL]);
    event.kind = RideKind::Event;
    event.duration_minutes = 120;
    event.trip_minutes = Some(30);
    then_events(
        g.when_book(event),
        &[
            ("ride-", "RideBooked"),
            ("bikeday-", "SlotHeld"),
            ("pilotday-", "SlotHeld"),
            ("residentday-", "SlotHeld"),
            ("residentday-", "SlotHeld"),
            ("residentday-", "SlotHeld"),
        ],
    );
}

#[test]
fn a_pilots_booking_waits_for_confirmation_where_the_home_asks_it() {
    let mut g = given();
    g.home.as_mut().unwrap().requires_confirmation = true;
    let mut by_pilot = ride(BIKE, PILOT, MORNING, &[]);
    by_pilot.actor_role = "pilot".into();
    let id = g.book(by_pilot);
    assert_eq!(g.the_ride(id).status, RideStatus::PendingConfirmation);
    let id2 = g.book(ride(BIKE2, PILOT2, MORNING, &[]));
    assert_eq!(g.the_ride(id2).status, RideStatus::Booked, "staff bookings need no confirmation");
    then_refused(g.when_on_ride(id, start_now), ErrorCode::IllegalTransition);
    let d = then_events(g.when_on_ride(id, rides::confirm), &[("ride-", "RideConfirmed")]);
    g.apply(&d);
    assert_eq!(g.the_ride(id).status, RideStatus::Booked);
    then_refused(g.when_on_ride(id, rides::confirm), ErrorCode::IllegalTransition);
}

#[test]
fn rescheduling_moves_the_holds_under_the_rules() {
    let mut g = given();
    let a = g.book(ride(BIKE, PILOT, MORNING, &[ANNA]));
    g.book(ride(BIKE, PILOT2, "2027-05-03T11:00:00Z", &[]));
    // Over its own old slot: fine (it releases what it held).
    then_events(
        g.when_reschedule(a, "2027-05-03T08:30:00Z", 60),
        &[
            ("ride-", "RideRescheduled"),
            ("bikeday-", "SlotReleased"),
            ("bikeday-", "SlotHeld"),
            ("pilotday-", "SlotReleased"),
            ("pilotday-", "SlotHeld"),
            ("residentday-", "SlotReleased"),
            ("residentday-", "SlotHeld"),
        ],
    );
    then_refused(g.when_reschedule(a, "2027-05-03T10:30:00Z", 60), ErrorCode::BikeTaken);
    then_refused(g.when_reschedule(a, "2027-05-03T06:00:00Z", 60), ErrorCode::OutsideRideHours);
}

#[test]
fn a_freed_seat_goes_to_the_first_waiting_resident_who_may_ride_it() {
    let mut g = given();
    let dana = Uuid::from_u128(0xe4);
    let eva = Uuid::from_u128(0xe5);
    g.residents.insert(dana, resident(dana, vec![ConsentScope::Rides]));
    g.residents.insert(eva, resident(eva, vec![ConsentScope::Rides]));
    let a = g.book(ride(BIKE, PILOT, MORNING, &[ANNA, BO]));
    // An overlapping ride with a free seat.
    let b = g.book(ride(BIKE2, PILOT2, "2027-05-03T08:30:00Z", &[CARL]));
    then_refused(g.when_join(b, dana), ErrorCode::SeatFree);
    then_refused(g.when_join(a, ANNA), ErrorCode::Validation);
    then_refused(g.when_join(a, CARL), ErrorCode::ResidentBusy);
    then_refused(g.when_join(a, Uuid::from_u128(0xee)), ErrorCode::NotResidentHere);
    for w in [dana, eva] {
        let d = then_events(g.when_join(a, w), &[("ride-", "ResidentWaitlisted"), ("residentday-", "SlotAwaited")]);
        g.apply(&d);
    }
    assert!(g.when_join(a, dana).unwrap().is_empty(), "waiting twice changes nothing");
    assert_eq!(g.the_ride(a).waitlist, vec![dana, eva]);
    // b fills up; eva waits for it too.
    let d = g.when_add_rider(b, BO);
    assert!(d.is_err(), "Bo rides a at that time");
    let d = then_events(g.when_add_rider(b, dana), &[("ride-", "RiderAddedToRoster"), ("residentday-", "SlotHeld")]);
    g.apply(&d);
    let d = then_events(g.when_join(b, eva), &[("ride-", "ResidentWaitlisted"), ("residentday-", "SlotAwaited")]);
    g.apply(&d);
    // Bo leaves a: dana (first in line) rides b now and is passed over; eva takes the seat
    // in the same decision, and leaves b's waitlist.
    let d = then_events(
        g.when_seat_frees(a, BO),
        &[
            ("ride-", "RiderRemovedFromRoster"),
            ("residentday-", "SlotReleased"),
            ("ride-", "RiderPromotedFromWaitlist"),
            ("residentday-", "SlotHeld"),
            ("ride-", "ResidentLeftWaitlist"),
            ("residentday-", "SlotReleased"),
        ],
    );
    match &d.events[2].1 {
        BookingEvent::RiderPromotedFromWaitlist(p) => assert_eq!((p.resident_id, p.skipped.clone()), (eva, vec![dana])),
        e => panic!("{e:?}"),
    }
    g.apply(&d);
    let a_now = g.the_ride(a);
    assert_eq!(a_now.riders.iter().map(|r| r.resident_id).collect::<Vec<_>>(), vec![ANNA, eva]);
    assert_eq!(a_now.waitlist, vec![dana], "the passed-over resident keeps their place");
    assert!(g.the_ride(b).waitlist.is_empty(), "a promoted resident leaves overlapping waitlists");
    // Leaving, and a cancelled ride's places released with it.
    then_refused(g.when_on_ride(b, |i| rides::leave_waitlist(i, eva, "removed")), ErrorCode::NotFound);
    let d = then_events(
        g.when_cancel(a, CancellationReason::Weather, None),
        &[
            ("ride-", "RideCancelled"),
            ("bikeday-", "SlotReleased"),
            ("pilotday-", "SlotReleased"),
            ("residentday-", "SlotReleased"),
            ("residentday-", "SlotReleased"),
            ("residentday-", "SlotReleased"),
        ],
    );
    g.apply(&d);
    assert!(g.the_ride(a).waitlist.is_empty(), "a cancelled ride drops its waitlist");
}

#[test]
fn roster_changes_follow_the_rules_and_the_schedules() {
    let mut g = given();
    let a = g.book(ride(BIKE, PILOT, MORNING, &[ANNA]));
    let b = g.book(ride(BIKE2, PILOT2, MORNING, &[]));
    then_refused(g.when_add_rider(b, ANNA), ErrorCode::ResidentBusy);
    let d = then_events(g.when_add_rider(b, BO), &[("ride-", "RiderAddedToRoster"), ("residentday-", "SlotHeld")]);
    g.apply(&d);
    assert!(g.when_add_rider(b, BO).unwrap().is_empty(), "adding a rider twice changes nothing");
    then_refused(g.when_add_rider(a, Uuid::from_u128(0xee)), ErrorCode::NotResidentHere);
    let d = then_events(
        g.when_remove_rider(a, ANNA),
        &[("ride-", "RiderRemovedFromRoster"), ("residentday-", "SlotReleased")],
    );
    g.apply(&d);
    let d = then_events(g.when_add_rider(b, ANNA), &[("ride-", "RiderAddedToRoster"), ("residentday-", "SlotHeld")]);
    g.apply(&d);
    then_refused(g.when_add_rider(b, CARL), ErrorCode::TooManyRiders);
    then_refused(g.when_remove_rider(a, ANNA), ErrorCode::NotFound);
}

// Invariant 4: a ride changes state only along its life cycle.

fn start_now(i: &RideInput) -> Outcome {
    rides::start(i, None)
}

fn no_show_riders(i: &RideInput) -> Outcome {
    rides::no_show(i, "riders")
}

#[test]
fn the_life_cycle_runs_forward_only_and_a_cancelled_ride_stays_cancelled() {
    let mut g = given();
    let id = g.book(ride(BIKE, PILOT, MORNING, &[ANNA]));
    then_refused(g.when_on_ride(id, rides::confirm), ErrorCode::IllegalTransition);
    g.now = t("2027-05-03T08:02:00Z");
    let d = then_events(g.when_on_ride(id, start_now), &[("ride-", "RideStarted")]);
    g.apply(&d);
    let d = then_events(g.when_on_ride(id, |i| rides::check_in(i, ANNA)), &[("ride-", "RiderCheckedIn")]);
    g.apply(&d);
    assert!(g.when_on_ride(id, |i| rides::check_in(i, ANNA)).unwrap().is_empty(), "checked in once");
    then_refused(g.when_on_ride(id, |i| rides::check_in(i, BO)), ErrorCode::NotFound);
    let early = Completion {
        ended_at: t("2027-05-03T07:00:00Z"),
        distance_km: 1.0,
        bike_condition: None,
        story: None,
        absent: vec![],
    };
    then_refused(g.when_on_ride(id, |i| rides::complete(i, &early)), ErrorCode::Validation);
    let done = Completion { ended_at: t("2027-05-03T09:00:00Z"), ..early };
    let d = then_events(g.when_on_ride(id, |i| rides::complete(i, &done)), &[("ride-", "RideCompleted")]);
    g.apply(&d);
    assert_eq!(g.the_ride(id).status, RideStatus::Completed);
    then_refused(g.when_on_ride(id, |i| rides::complete(i, &done)), ErrorCode::IllegalTransition);
    then_refused(g.when_on_ride(id, no_show_riders), ErrorCode::IllegalTransition);
    then_refused(g.when_cancel(id, CancellationReason::Rider, None), ErrorCode::IllegalTransition);

    let other = g.book(ride(BIKE2, PILOT2, "2027-05-04T08:00:00Z", &[]));
    let d = g.when_cancel(other, CancellationReason::Weather, None).unwrap();
    g.apply(&d);
    for decide in [rides::confirm, start_now, no_show_riders] {
        then_refused(g.when_on_ride(other, decide), ErrorCode::IllegalTransition);
    }
    then_refused(g.when_cancel(other, CancellationReason::Weather, None), ErrorCode::IllegalTransition);
    then_refused(g.when_reschedule(other, "2027-05-04T09:00:00Z", 60), ErrorCode::IllegalTransition);
    then_refused(g.when_on_ride(Uuid::from_u128(0x77), start_now), ErrorCode::NotFound);
}

#[test]
fn a_no_show_is_reachable_before_completion() {
    let mut g = given();
    let id = g.book(ride(BIKE, PILOT, MORNING, &[]));
    then_events(g.when_on_ride(id, no_show_riders), &[("ride-", "RideMarkedNoShow")]);
}

// Invariant 5: every change is an event; the state is the fold of the events.

#[test]
fn the_state_is_the_fold_of_the_decided_events() {
    let mut g = given();
    let id = g.book(ride(BIKE, PILOT, MORNING, &[ANNA, BO]));
    let r = g.the_ride(id);
    assert_eq!((r.status, r.riders.len(), r.booked_at), (RideStatus::Booked, 2, t(NOW)));
    let d = g.when_reschedule(id, "2027-05-03T10:00:00Z", 45).unwrap();
    g.apply(&d);
    let r = g.the_ride(id);
    assert_eq!((r.start, r.duration_minutes), (t("2027-05-03T10:00:00Z"), 45));
    let schedules = g.schedules(&[crate::schedule::Holder::Bike(BIKE).stream(t(MORNING).date_naive())]);
    let held = schedules.0.values().next().unwrap();
    assert_eq!(held.held.get(&id), Some(&(t("2027-05-03T10:00:00Z"), t("2027-05-03T11:00:00Z"))));
    assert_eq!(held.version, 3, "held, released, held again");
}

// Invariant 6: personal fields arrive sealed; a story needs the riders' consent.

#[test]
fn a_story_is_kept_only_with_every_riders_consent_to_stories() {
    let mut g = given();
    let id = g.book(ride(BIKE, PILOT, MORNING, &[ANNA, BO]));
    g.now = t("2027-05-03T08:00:00Z");
    let d = g.when_on_ride(id, start_now).unwrap();
    g.apply(&d);
    let story = Sealed(format!("{}xyz", Sealed::PREFIX));
    let done = Completion {
        ended_at: t("2027-05-03T09:00:00Z"),
        distance_km: 4.0,
        bike_condition: None,
        story: Some(story.clone()),
        absent: vec![],
    };
    let with_riders = |g: &Given| g.ride_input(id, vec![], false, vec![ANNA, BO]);
    then_refused(rides::complete(&with_riders(&g), &done), ErrorCode::NoConsent);
    g.residents.get_mut(&BO).unwrap().consent.push(ConsentScope::Stories);
    let d = then_events(rides::complete(&with_riders(&g), &done), &[("ride-", "RideCompleted")]);
    assert!(matches!(&d.events[0].1, BookingEvent::RideCompleted(c) if c.story == Some(story.clone())));
}

// Invariant 7: cascades cancel once and release every slot; rosters shed residents.

#[test]
fn a_cascade_cancels_once_releasing_every_slot() {
    let mut g = given();
    let id = g.book(ride(BIKE, PILOT, MORNING, &[ANNA, BO]));
    let cause = Uuid::from_u128(0xca05e);
    let d = then_events(
        g.when_cancel(id, CancellationReason::Equipment, Some(cause)),
        &[
            ("ride-", "RideCancelled"),
            ("bikeday-", "SlotReleased"),
            ("pilotday-", "SlotReleased"),
            ("residentday-", "SlotReleased"),
            ("residentday-", "SlotReleased"),
        ],
    );
    g.apply(&d);
    let c = g.the_ride(id).cancellation.unwrap();
    assert_eq!((c.reason, c.caused_by, c.at), (CancellationReason::Equipment, Some(cause), t(NOW)));
    then_refused(g.when_cancel(id, CancellationReason::Equipment, Some(cause)), ErrorCode::IllegalTransition);
}

#[test]
fn a_ride_left_without_riders_stays_booked() {
    let mut g = given();
    let id = g.book(ride(BIKE, PILOT, MORNING, &[ANNA]));
    let d = g.when_remove_rider(id, ANNA).unwrap();
    g.apply(&d);
    let r = g.the_ride(id);
    assert_eq!((r.status, r.riders.len()), (RideStatus::Booked, 0));
}

#[test]
fn a_weather_day_is_recorded_once() {
    let g = given();
    let date: NaiveDate = "2027-05-03".parse().unwrap();
    let input = WeatherInput { chapter: g.chapter.clone(), recorded: false };
    let d = then_events(weather::cancel_day(&input, CHAPTER, date), &[("weatherday-", "DayCancelledForWeather")]);
    assert_eq!(d.events[0].0, weather_stream(CHAPTER, date));
    assert!(weather::cancel_day(&WeatherInput { recorded: true, ..input }, CHAPTER, date).unwrap().is_empty());
    then_refused(weather::cancel_day(&WeatherInput::default(), CHAPTER, date), ErrorCode::NotFound);
}

// Ride requests: recorded, claimed once, withdrawn, expired.

fn new_request(g: &Given, residents: &[Uuid]) -> (NewRequest, RequestInput) {
    let r = NewRequest {
        ride_request_id: Uuid::from_u128(0x7e9),
        carehome_id: HOME,
        resident_ids: residents.to_vec(),
        window_from: t("2027-05-03T07:00:00Z"),
        window_to: t("2027-05-03T12:00:00Z"),
        duration_minutes: 60,
        kind: RideKind::Pleasure,
        note: None,
    };
    let input = RequestInput { request: None, home: g.home.clone(), riders: g.riders(residents), now: g.now };
    (r, input)
}

fn requested(g: &mut Given) -> Uuid {
    let (r, input) = new_request(g, &[ANNA]);
    let d = then_events(requests::request(&input, &r), &[("riderequest-", "RideRequested")]);
    g.apply(&d);
    r.ride_request_id
}

fn claim_of(g: &Given, id: Uuid, pilot: Uuid, bike: Uuid, start: &str) -> (Claim, ClaimInput) {
    let c = Claim {
        ride_request_id: id,
        ride_id: Uuid::from_u128(0x5000 + pilot.as_u128()),
        pilot_id: pilot,
        bike_id: bike,
        start: t(start),
        actor_role: "pilot".into(),
    };
    let request: Option<RideRequest> = g.fold(&request_stream(id));
    let book = match &request {
        Some(r) => g.book_input(&booking::claim_booking(r, &c)),
        None => BookInput::default(),
    };
    (c, ClaimInput { request, book })
}

#[test]
fn a_request_is_recorded_under_the_roster_rules() {
    let g = given();
    let (r, input) = new_request(&g, &[ANNA]);
    then_events(requests::request(&input, &r), &[("riderequest-", "RideRequested")]);
    let (r2, input2) = new_request(&g, &[ANNA, BO, CARL]);
    then_refused(requests::request(&input2, &r2), ErrorCode::TooManyRiders);
    let late = RequestInput { now: t("2027-05-03T12:00:00Z"), ..input.clone() };
    then_refused(requests::request(&late, &r), ErrorCode::Validation);
    let short = NewRequest { window_to: t("2027-05-03T07:30:00Z"), ..r.clone() };
    then_refused(requests::request(&input, &short), ErrorCode::Validation);
    then_refused(requests::request(&RequestInput { home: None, ..input }, &r), ErrorCode::NotFound);
}

#[test]
fn claiming_books_the_ride_and_claims_the_request_in_one_decision() {
    let mut g = given();
    let id = requested(&mut g);
    let (c, input) = claim_of(&g, id, PILOT, BIKE, MORNING);
    let d = then_events(
        booking::claim(&input, &c),
        &[
            ("ride-", "RideBooked"),
            ("riderequest-", "RideRequestClaimed"),
            ("bikeday-", "SlotHeld"),
            ("pilotday-", "SlotHeld"),
            ("residentday-", "SlotHeld"),
        ],
    );
    g.apply(&d);
    let r: RideRequest = g.fold(&request_stream(id)).unwrap();
    assert_eq!((r.status, r.ride_id, r.pilot_id), (RideRequestStatus::Claimed, Some(c.ride_id), Some(PILOT)));
    let ride = g.the_ride(c.ride_id);
    assert_eq!((ride.ride_request_id, ride.status), (Some(id), RideStatus::Booked));
    // The second pilot, on another trishaw, decides on the claimed request: 409.
    let (c2, input2) = claim_of(&g, id, PILOT2, BIKE2, MORNING);
    then_refused(booking::claim(&input2, &c2), ErrorCode::IllegalTransition);
    then_refused(
        requests::withdraw(&RequestInput { request: Some(r), ..Default::default() }),
        ErrorCode::IllegalTransition,
    );
}

#[test]
fn a_claim_must_fit_the_window_the_home_and_the_rules() {
    let mut g = given();
    let id = requested(&mut g);
    let (c, input) = claim_of(&g, id, PILOT, BIKE, "2027-05-03T11:30:00Z");
    let e = then_refused(booking::claim(&input, &c), ErrorCode::Validation);
    assert!(matches!(e, DomainError::Invalid(f) if f[0].field == "/start"));
    let mut elsewhere = g.clone();
    elsewhere.bikes.get_mut(&BIKE).unwrap().carehome_id = Uuid::from_u128(0xa2);
    let (c, input) = claim_of(&elsewhere, id, PILOT, BIKE, MORNING);
    let e = then_refused(booking::claim(&input, &c), ErrorCode::Validation);
    assert!(matches!(e, DomainError::Invalid(f) if f[0].field == "/bike_id"));
    g.book(ride(BIKE, PILOT2, MORNING, &[]));
    let (c, input) = claim_of(&g, id, PILOT, BIKE, MORNING);
    then_refused(booking::claim(&input, &c), ErrorCode::BikeTaken);
    let (c, input) = claim_of(&g, Uuid::from_u128(0x404), PILOT, BIKE, MORNING);
    then_refused(booking::claim(&input, &c), ErrorCode::NotFound);
}

#[test]
fn a_request_is_withdrawn_or_expires_once() {
    let mut g = given();
    let id = requested(&mut g);
    let input = |g: &Given| RequestInput { request: g.fold(&request_stream(id)), now: g.now, ..Default::default() };
    assert!(requests::expire(&input(&g)).unwrap().is_empty(), "not before its window has passed");
    let mut later = g.clone();
    later.now = t("2027-05-03T12:00:00Z");
    let d = then_events(requests::expire(&input(&later)), &[("riderequest-", "RideRequestExpired")]);
    later.apply(&d);
    assert!(requests::expire(&input(&later)).unwrap().is_empty(), "expired once");
    then_refused(requests::withdraw(&input(&later)), ErrorCode::IllegalTransition);
    let d = then_events(requests::withdraw(&input(&g)), &[("riderequest-", "RideRequestWithdrawn")]);
    g.apply(&d);
    then_refused(requests::withdraw(&input(&g)), ErrorCode::IllegalTransition);
    then_refused(requests::withdraw(&RequestInput::default()), ErrorCode::NotFound);
}

#[test]
fn offers_widen_every_24_hours_to_the_next_candidates_and_to_all_within_a_day_of_the_window() {
    let mut g = given();
    let id = requested(&mut g);
    let posted = t("2027-04-28T12:00:00Z");
    let p = |n: u128| Uuid::from_u128(n);
    let input = |g: &Given, now: &str, candidates: &[u128]| requests::OfferInput {
        request: g.fold(&request_stream(id)),
        posted_at: posted,
        now: t(now),
        fanout: 3,
        candidates: candidates.iter().map(|n| p(*n)).collect(),
    };
    let offered = |d: &Decision<BookingEvent>| match d.of(&request_stream(id)).next() {
        Some(BookingEvent::RideRequestOffered(o)) => (o.round, o.pilot_ids.clone()),
        other => panic!("not an offer: {other:?}"),
    };
    let first = input(&g, "2027-04-28T12:00:00Z", &[1, 2, 3, 4, 5, 6, 7]);
    let d = requests::offer(&first, 0).unwrap();
    assert_eq!(offered(&d), (0, vec![p(1), p(2), p(3)]));
    g.apply(&d);
    let again = input(&g, "2027-04-28T12:00:00Z", &[1, 2, 3, 4, 5, 6, 7]);
    assert!(requests::offer(&again, 0).unwrap().is_empty(), "a round is offered once");
    assert!(
        requests::offer(&input(&g, "2027-04-29T11:59:00Z", &[1, 2, 3, 4]), 1).unwrap().is_empty(),
        "not before 24 h"
    );
    // Recomputed: 2 and 1 still ahead of the rest, but only those not offered yet count.
    let d = requests::offer(&input(&g, "2027-04-29T12:00:00Z", &[2, 4, 1, 5, 6, 7]), 1).unwrap();
    assert_eq!(offered(&d), (1, vec![p(4), p(5), p(6)]));
    g.apply(&d);
    assert!(requests::offer(&input(&g, "2027-04-30T12:00:00Z", &[1, 2]), 2).unwrap().is_empty(), "nobody new");
    // The window (07:00 on the 3rd) starts within 24 h: every candidate left at once.
    let d = requests::offer(&input(&g, "2027-05-02T08:00:00Z", &[9, 7, 8, 10, 11, 1]), 2).unwrap();
    assert_eq!(offered(&d), (2, vec![p(9), p(7), p(8), p(10), p(11)]));
    g.apply(&d);
    let r: RideRequest = g.fold(&request_stream(id)).unwrap();
    assert_eq!((r.offered.len(), r.offer_rounds), (11, 3));
    // Claimed: no more offers.
    let (c, ci) = claim_of(&g, id, PILOT, BIKE, MORNING);
    g.apply(&booking::claim(&ci, &c).unwrap());
    assert!(requests::offer(&input(&g, "2027-05-02T09:00:00Z", &[12]), 3).unwrap().is_empty());
}

// What really happened (issue 17): records, corrections, reported starts, absence.

mod really_happened {
    use super::*;
    use crate::commands::record::{self, RecordInput, RecordRide};

    fn recording(g: &Given, from: &str, minutes: i64, riders: &[Uuid], actor: &str) -> RecordRide {
        let started_at = t(from);
        RecordRide {
            ride_id: Uuid::from_u128(0x5000 + g.n),
            bike_id: BIKE,
            pilot_id: PILOT,
            started_at,
            ended_at: started_at + chrono::Duration::minutes(minutes),
            distance_km: 3.0,
            resident_ids: riders.to_vec(),
            absent: vec![],
            kind: RideKind::Pleasure,
            story: None,
            bike_condition: None,
            note: None,
            actor_role: actor.into(),
        }
    }

    /// As `Booking::record`, with the facts as they are now standing in for "then".
    fn record_input(g: &Given, cmd: &RecordRide) -> RecordInput {
        RecordInput {
            bike: g.bikes.get(&cmd.bike_id).cloned(),
            home: g.home.clone(),
            home_now: g.home.clone(),
            chapter: g.chapter.clone(),
            pilot: g.pilots.get(&cmd.pilot_id).cloned(),
            pilot_now: g.pilots.get(&cmd.pilot_id).cloned(),
            riders: g.riders(&cmd.resident_ids),
            named: vec![],
            schedules: g.schedules(&streams_of(&record::holds(cmd), &[])),
            now: g.now,
        }
    }

    fn when_record(g: &Given, cmd: &RecordRide) -> Outcome {
        record::record(&record_input(g, cmd), cmd)
    }

    /// Then: the record on the ride's stream, and slots held on schedule streams only.
    #[track_caller]
    fn then_recorded(outcome: Outcome) -> Decision<BookingEvent> {
        let d = outcome.unwrap_or_else(|e| panic!("expected a record, refused: {e} ({})", e.code()));
        let got = types(&d);
        assert!(got[0].0.starts_with("ride-") && got[0].1 == "RideRecorded", "decided {got:?}");
        assert!(got[1..].iter().all(|(s, t)| !s.starts_with("ride-") && *t == "SlotHeld"), "decided {got:?}");
        d
    }

    #[test]
    fn a_record_is_completed_holds_its_actual_interval_and_obeys_the_overlap_invariants() {
        let mut g = given();
        g.now = t("2027-05-03T18:00:00Z");
        let cmd = recording(&g, "2027-05-03T12:00:00Z", 45, &[ANNA, BO], "pilot");
        let d = then_recorded(when_record(&g, &cmd));
        assert!(d.events.iter().filter(|(s, _)| s.starts_with("bikeday-")).count() == 1, "it holds its trishaw");
        g.apply(&d);
        let r = g.the_ride(cmd.ride_id);
        assert_eq!(
            (r.status, r.recorded, r.duration_minutes, r.turnaround_minutes),
            (RideStatus::Completed, true, 45, 0)
        );
        // The same trishaw at an overlapping time: refused, naming the record.
        g.n += 1;
        let mut other = recording(&g, "2027-05-03T12:30:00Z", 30, &[], "chapter_admin");
        other.pilot_id = PILOT2;
        match when_record(&g, &other) {
            Err(DomainError::Conflict { code, conflict_with, .. }) => {
                assert_eq!((code, conflict_with), (ErrorCode::BikeTaken, Some(cmd.ride_id)))
            }
            other => panic!("expected bike-taken, got {other:?}"),
        }
        // Right after it ends (no turnaround for an actual interval): fine.
        let after = RecordRide { started_at: t("2027-05-03T12:45:00Z"), ended_at: t("2027-05-03T13:00:00Z"), ..other };
        then_recorded(when_record(&g, &after));
    }

    #[test]
    fn a_record_refuses_times_windows_absence_and_facts_that_did_not_hold() {
        let mut g = given();
        g.now = t("2027-05-20T18:00:00Z");
        let base = recording(&g, "2027-05-19T12:00:00Z", 60, &[ANNA, BO], "pilot");
        let field = |o: Outcome| match o {
            Err(DomainError::Invalid(f)) => f[0].field.clone(),
            other => panic!("expected invalid, got {other:?}"),
        };
        let future =
            RecordRide { started_at: t("2027-05-21T12:00:00Z"), ended_at: t("2027-05-21T13:00:00Z"), ..base.clone() };
        assert_eq!(field(when_record(&g, &future)), "/started_at");
        let backwards = RecordRide { ended_at: base.started_at, ..base.clone() };
        assert_eq!(field(when_record(&g, &backwards)), "/ended_at");
        let long = RecordRide { ended_at: base.started_at + chrono::Duration::hours(25), ..base.clone() };
        assert_eq!(field(when_record(&g, &long)), "/ended_at");
        // The pilots' window (14 days): a coordinator may record older rides.
        let old = recording(&g, "2027-05-05T12:00:00Z", 60, &[ANNA], "pilot");
        then_refused(when_record(&g, &old), ErrorCode::OutsideRecordWindow);
        then_recorded(when_record(&g, &RecordRide { actor_role: "coordinator".into(), ..old }));
        // Absence: on the roster, not everyone.
        then_refused(when_record(&g, &RecordRide { absent: vec![CARL], ..base.clone() }), ErrorCode::NotOnRoster);
        then_refused(
            when_record(&g, &RecordRide { absent: vec![ANNA, BO], ..base.clone() }),
            ErrorCode::AllRidersAbsent,
        );
        // Facts of its time: out of service, suspended, unqualified, no consent.
        let mut out = g.clone();
        out.bikes.get_mut(&BIKE).unwrap().status = BikeStatus::OutOfService;
        then_refused(when_record(&out, &base), ErrorCode::BikeOutOfService);
        let mut suspended = g.clone();
        suspended.pilots.get_mut(&PILOT).unwrap().status = PilotStatus::Suspended;
        then_refused(when_record(&suspended, &base), ErrorCode::PilotSuspended);
        let mut lapsed = g.clone();
        lapsed
            .pilots
            .get_mut(&PILOT)
            .unwrap()
            .qualifications
            .insert("trishaw".into(), ("2027-01-01".parse().unwrap(), "2027-05-18".parse().unwrap()));
        then_refused(when_record(&lapsed, &base), ErrorCode::NotQualified);
        // ...unless a qualification ever recorded covers the day.
        lapsed.pilots.get_mut(&PILOT).unwrap().qualified.push((
            "trishaw".into(),
            "2027-05-01".parse().unwrap(),
            "2027-05-31".parse().unwrap(),
        ));
        then_recorded(when_record(&lapsed, &base));
        let mut no_consent = g.clone();
        no_consent.residents.get_mut(&BO).unwrap().consent.clear();
        then_refused(when_record(&no_consent, &base), ErrorCode::NoConsent);
    }

    #[test]
    fn a_reported_start_lies_between_an_hour_before_the_slot_and_now() {
        let mut g = given();
        let id = g.book(ride(BIKE, PILOT, MORNING, &[ANNA]));
        g.now = t("2027-05-03T08:30:00Z");
        let at = |s: &'static str| move |i: &RideInput| rides::start(i, Some(t(s)));
        then_refused(g.when_on_ride(id, at("2027-05-03T06:59:00Z")), ErrorCode::Validation);
        then_refused(g.when_on_ride(id, at("2027-05-03T08:36:00Z")), ErrorCode::Validation);
        let d = then_events(g.when_on_ride(id, at("2027-05-03T07:05:00Z")), &[("ride-", "RideStarted")]);
        g.apply(&d);
        assert_eq!(g.the_ride(id).started_at, Some(t("2027-05-03T07:05:00Z")));
    }

    #[test]
    fn absence_and_corrections_change_what_counts_and_only_what_changed_is_written() {
        let mut g = given();
        let id = g.book(ride(BIKE, PILOT, MORNING, &[ANNA, BO]));
        g.now = t("2027-05-03T08:00:00Z");
        let d = g.when_on_ride(id, start_now).unwrap();
        g.apply(&d);
        g.now = t("2027-05-03T10:00:00Z");
        let done = Completion {
            ended_at: t("2027-05-03T09:00:00Z"),
            distance_km: 4.0,
            bike_condition: None,
            story: None,
            absent: vec![BO],
        };
        let d = then_events(g.when_on_ride(id, |i| rides::complete(i, &done)), &[("ride-", "RideCompleted")]);
        g.apply(&d);
        assert_eq!(crate::stats::riders_carried(&g.the_ride(id)).collect::<Vec<_>>(), vec![ANNA]);
        // A correction writes only what changed; nothing changed writes nothing.
        let same = rides::Correction { distance_km: Some(4.0), absent: Some(vec![BO]), ..Default::default() };
        assert!(g.when_on_ride(id, |i| rides::correct(i, &same)).unwrap().is_empty());
        let fix = rides::Correction { absent: Some(vec![]), ..Default::default() };
        let d = then_events(g.when_on_ride(id, |i| rides::correct(i, &fix)), &[("ride-", "RideCorrected")]);
        assert!(
            matches!(&d.events[0].1, BookingEvent::RideCorrected(c) if c.absent == Some(vec![]) && c.distance_km.is_none())
        );
        g.apply(&d);
        assert_eq!(crate::stats::riders_carried(&g.the_ride(id)).count(), 2, "[] clears the absent riders");
        let backwards = rides::Correction { ended_at: Some(t("2027-05-03T07:00:00Z")), ..Default::default() };
        then_refused(g.when_on_ride(id, |i| rides::correct(i, &backwards)), ErrorCode::Validation);
        // Only a completed ride is corrected.
        let other = g.book(ride(BIKE2, PILOT2, "2027-05-04T08:00:00Z", &[]));
        then_refused(g.when_on_ride(other, |i| rides::correct(i, &fix)), ErrorCode::IllegalTransition);
        // No-show by whom.
        let d = then_events(g.when_on_ride(other, |i| rides::no_show(i, "pilot")), &[("ride-", "RideMarkedNoShow")]);
        g.apply(&d);
        assert_eq!(g.the_ride(other).no_show_by.as_deref(), Some("pilot"));
    }
}

/// Ride series: the plan, each date's booking, cancellation and the stop.
mod series {
    use super::super::series::{self as series_cmd, CancelInput, CancelSeries, OccurrenceInput, PlanInput, PlanSeries};
    use super::*;
    use crate::series::{RideSeries, occurrence_id, series_stream};

    const SERIES: Uuid = Uuid::from_u128(0x5e);

    /// Every Monday at 10:00 Copenhagen from 3 May 2027, four times.
    fn mondays() -> PlanSeries {
        PlanSeries {
            ride_series_id: SERIES,
            bike_id: BIKE,
            pilot_id: PILOT,
            start: t(MORNING),
            duration_minutes: 60,
            resident_ids: vec![ANNA],
            kind: RideKind::Pleasure,
            trip_minutes: None,
            recurrence: Recurrence { weekdays: vec![Weekday::Monday], interval_weeks: 1, until: None, count: Some(4) },
            actor_role: "coordinator".into(),
        }
    }

    impl Given {
        fn plan(&self, cmd: &PlanSeries) -> Outcome {
            let input = PlanInput {
                facts: self.facts(cmd.bike_id, cmd.pilot_id),
                riders: self.riders(&cmd.resident_ids),
                named: vec![],
                now: self.now,
            };
            series_cmd::plan(&input, cmd)
        }

        /// As `Booking::book_occurrence`'s loader.
        fn occurrence(&self, date: &str) -> Outcome {
            let series: Option<RideSeries> = self.fold(&series_stream(SERIES));
            let date: NaiveDate = date.parse().unwrap();
            let riders = series.as_ref().map(|s| self.riders(&s.plan.riders)).unwrap_or_default();
            let book = match &series {
                Some(s) => self.book_input(&series_cmd::occurrence_booking(s, date, &riders)),
                None => BookInput::default(),
            };
            series_cmd::occurrence(&OccurrenceInput { series, riders, book }, date)
        }
    }

    fn planned() -> Given {
        let mut g = given();
        let d = g.plan(&mondays()).unwrap();
        g.apply(&d);
        g
    }

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn the_plan_keeps_the_local_time_and_checks_the_dates() {
        let d0 = given().plan(&mondays()).unwrap();
        let BookingEvent::RideSeriesPlanned(p) = &d0.events[0].1 else { panic!("{d0:?}") };
        assert_eq!((p.local_time.to_string().as_str(), p.timezone.as_str()), ("10:00", "Europe/Copenhagen"));
        let mut wrong_day = mondays();
        wrong_day.recurrence.weekdays = vec![Weekday::Tuesday];
        let until_before = PlanSeries {
            recurrence: Recurrence { until: Some(d("2027-05-02")), count: None, ..mondays().recurrence },
            ..mondays()
        };
        let until_far = PlanSeries {
            recurrence: Recurrence { until: Some(d("2029-05-04")), count: None, ..mondays().recurrence },
            ..mondays()
        };
        for (cmd, field) in
            [(wrong_day, "/recurrence/weekdays"), (until_before, "/recurrence/until"), (until_far, "/recurrence/until")]
        {
            match given().plan(&cmd) {
                Err(DomainError::Invalid(v)) => assert_eq!(v[0].field, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        // Two years to the day is allowed.
        let two_years = PlanSeries {
            recurrence: Recurrence { until: Some(d("2029-05-03")), count: None, ..mondays().recurrence },
            ..mondays()
        };
        assert!(given().plan(&two_years).is_ok());
    }

    #[test]
    fn a_date_is_booked_as_a_ride_of_the_series_once() {
        let mut g = planned();
        let d1 = g.occurrence("2027-05-10").unwrap();
        let ride = occurrence_id(SERIES, d("2027-05-10"));
        assert!(d1.events.iter().any(|(s, e)| s == &ride_stream(ride)
            && matches!(e, BookingEvent::RideBooked(b) if b.ride_series_id == Some(SERIES)
                && b.start == t("2027-05-10T08:00:00Z"))));
        assert!(d1.of(&series_stream(SERIES)).any(|e| matches!(e, BookingEvent::RideSeriesOccurrenceBooked(_))));
        g.apply(&d1);
        assert!(g.occurrence("2027-05-10").unwrap().is_empty(), "booked before: nothing to do");
        assert!(g.occurrence("2027-05-11").unwrap().is_empty(), "a Tuesday is not a date of the series");
        assert!(g.occurrence("2027-05-31").unwrap().is_empty(), "the fifth Monday is past the count");
        // Anna moves out: the next dates are booked without her (invariant 7).
        g.residents.get_mut(&ANNA).unwrap().status = ResidentStatus::MovedOut;
        let d2 = g.occurrence("2027-05-17").unwrap();
        assert!(d2.events.iter().any(|(_, e)| matches!(e, BookingEvent::RideBooked(b) if b.riders.is_empty())));
        assert!(!d2.events.iter().any(|(s, _)| s.starts_with("residentday-")), "her day is not held");
    }

    #[test]
    fn a_plan_names_only_riders_who_may_ride() {
        let mut g = given();
        g.residents.get_mut(&BO).unwrap().consent = vec![];
        let cmd = PlanSeries { resident_ids: vec![ANNA, BO], ..mondays() };
        assert_eq!(g.plan(&cmd).unwrap_err().code(), ErrorCode::NoConsent);
        let crowd = PlanSeries { resident_ids: vec![ANNA, CARL, BO], ..mondays() };
        assert_eq!(given().plan(&crowd).unwrap_err().code(), ErrorCode::TooManyRiders);
    }

    #[test]
    fn a_date_that_breaks_a_rule_is_recorded_with_its_problem_once() {
        let mut g = planned();
        // Another ride holds the trishaw on the second Monday (invariant 1).
        let other = g.book(ride(BIKE, PILOT2, "2027-05-10T08:30:00Z", &[]));
        let d1 = g.occurrence("2027-05-10").unwrap();
        assert_eq!(d1.streams(), vec![series_stream(SERIES).as_str()], "only the series' stream: no ride");
        let BookingEvent::RideSeriesOccurrenceSkipped(k) = &d1.events[0].1 else { panic!("{d1:?}") };
        assert_eq!((k.code.as_str(), k.conflict_with), ("bike-taken", Some(other)));
        g.apply(&d1);
        assert!(g.occurrence("2027-05-10").unwrap().is_empty(), "not retried");
    }

    #[test]
    fn a_retired_trishaw_stops_the_series_and_a_cancelled_date_is_not_booked() {
        let mut g = planned();
        g.bikes.get_mut(&BIKE).unwrap().status = BikeStatus::Retired;
        let stop = g.occurrence("2027-05-10").unwrap();
        let BookingEvent::RideSeriesCancelled(c) = &stop.events[0].1 else { panic!("{stop:?}") };
        assert_eq!((c.from, c.reason, c.by_role.as_str()), (d("2027-05-10"), CancellationReason::Equipment, "system"));
        g.apply(&stop);
        g.bikes.get_mut(&BIKE).unwrap().status = BikeStatus::InService;
        assert!(g.occurrence("2027-05-17").unwrap().is_empty(), "stopped: no later date is booked");
        assert!(
            g.occurrence("2027-05-03").unwrap().events.iter().any(|(s, _)| s.starts_with("ride-")),
            "earlier dates are"
        );
    }

    #[test]
    fn cancelling_from_a_date_cancels_its_rides_in_the_same_append() {
        let mut g = planned();
        for date in ["2027-05-03", "2027-05-10", "2027-05-17", "2027-05-24"] {
            let d1 = g.occurrence(date).unwrap();
            g.apply(&d1);
        }
        let s: RideSeries = g.fold(&series_stream(SERIES)).unwrap();
        let c = CancelSeries {
            from: Some(d("2027-05-17")),
            reason: CancellationReason::Rider,
            by_role: "coordinator".into(),
            note: None,
        };
        let rides: Vec<RideInput> = s
            .booked_from(d("2027-05-17"))
            .into_iter()
            .map(|(_, id)| {
                let r = g.the_ride(id);
                g.ride_input(id, streams_of(&[], &rides::releases_of(&r)), false, vec![])
            })
            .collect();
        let input = CancelInput { series: Some(s), rides, notes: Default::default(), now: g.now };
        let d1 = series_cmd::cancel(&input, &c).unwrap();
        let BookingEvent::RideSeriesCancelled(e) = &d1.events[0].1 else { panic!("{d1:?}") };
        assert_eq!(e.rides.len(), 2);
        assert_eq!(d1.events.iter().filter(|(_, e)| matches!(e, BookingEvent::RideCancelled(_))).count(), 2);
        assert!(d1.events.iter().any(|(s, e)| s.starts_with("bikeday-") && matches!(e, BookingEvent::SlotReleased(_))));
        g.apply(&d1);
        // Again from a later date, with nothing left: nothing.
        let s: RideSeries = g.fold(&series_stream(SERIES)).unwrap();
        let later = CancelSeries { from: Some(d("2027-05-24")), ..c };
        assert!(
            series_cmd::cancel(
                &CancelInput { series: Some(s), rides: vec![], notes: Default::default(), now: g.now },
                &later
            )
            .unwrap()
            .is_empty()
        );
    }
}

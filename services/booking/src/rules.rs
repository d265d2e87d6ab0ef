//! The booking rules of invariant 3, checked against the facts booking has seen: the pilot
//! is qualified for the trishaw's type for the whole slot and not suspended; the trishaw
//! is in service; the slot lies inside the care home's ride hours in its local time
//! (daylight-saving days included) and in season, and respects the chapter's lead time;
//! riders fit the seats; every rider lives at that care home and has consent. Pure.

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use domain::localtime;
use domain::types::{BikeStatus, ConsentScope, PilotStatus, ResidentStatus, RideKind};
use domain::{DomainError, ErrorCode};
use uuid::Uuid;

use crate::facts::{BikeFact, CareHomeFact, ChapterFact, PilotFact, ResidentFact};
use crate::rides::Ride;

/// Everything a booking decision reads.
#[derive(Debug, Clone)]
pub struct Facts {
    /// The chapter.
    pub chapter: ChapterFact,
    /// The care home.
    pub home: CareHomeFact,
    /// The trishaw.
    pub bike: BikeFact,
    /// The pilot.
    pub pilot: PilotFact,
}

/// The facts of a booking as looked up (each may be missing).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FactParts {
    /// The trishaw.
    pub bike: Option<BikeFact>,
    /// Its care home.
    pub home: Option<CareHomeFact>,
    /// The care home's chapter.
    pub chapter: Option<ChapterFact>,
    /// The pilot.
    pub pilot: Option<PilotFact>,
}

impl FactParts {
    /// All of them, or `not-found` naming the first one missing.
    pub fn facts(&self) -> Result<Facts, DomainError> {
        let missing = |what: &str| DomainError::NotFound(what.into());
        Ok(Facts {
            bike: self.bike.clone().ok_or_else(|| missing("trishaw"))?,
            home: self.home.clone().ok_or_else(|| missing("care home"))?,
            chapter: self.chapter.clone().ok_or_else(|| missing("chapter"))?,
            pilot: self.pilot.clone().ok_or_else(|| missing("pilot"))?,
        })
    }
}

impl Facts {
    /// The care home's zone (its own, or the chapter's).
    pub fn timezone(&self) -> Tz {
        zone(&self.home, &self.chapter)
    }
}

/// The zone in which a care home's local rules are evaluated.
pub fn zone(home: &CareHomeFact, chapter: &ChapterFact) -> Tz {
    home.timezone.as_deref().or(Some(chapter.timezone.as_str())).and_then(|z| z.parse().ok()).unwrap_or(chrono_tz::UTC)
}

/// A slot to check.
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    /// Start.
    pub start: DateTime<Utc>,
    /// Length.
    pub duration_minutes: u32,
}

impl Slot {
    /// End.
    pub fn end(&self) -> DateTime<Utc> {
        self.start + Duration::minutes(i64::from(self.duration_minutes))
    }
}

fn rule(code: ErrorCode, message: impl Into<String>) -> DomainError {
    DomainError::rule(code, message)
}

/// The trishaw, pilot and time rules for a slot.
pub fn check_slot(f: &Facts, slot: &Slot, now: DateTime<Utc>) -> Result<(), DomainError> {
    match f.bike.status {
        BikeStatus::InService => {}
        s => return Err(rule(ErrorCode::BikeOutOfService, format!("the trishaw is {s}"))),
    }
    // Another chapter's pilot is not there for this chapter: 404 as for an unknown id, and
    // before anything else about it (its status) is said.
    if f.pilot.chapter_id != f.home.chapter_id {
        return Err(rule(ErrorCode::NotFound, "no such pilot"));
    }
    match f.pilot.status {
        PilotStatus::Active => {}
        PilotStatus::Suspended => return Err(rule(ErrorCode::PilotSuspended, "the pilot is suspended")),
        s => return Err(rule(ErrorCode::NotQualified, format!("the pilot is {s}"))),
    }
    let tz = f.timezone();
    let first_day = localtime::local_date(tz, slot.start);
    let last_day = localtime::local_date(tz, slot.end() - Duration::microseconds(1));
    match f.pilot.qualifications.get(&f.bike.bike_type) {
        None => {
            return Err(rule(
                ErrorCode::NotQualified,
                format!("the pilot is not qualified for a {}", f.bike.bike_type),
            ));
        }
        Some((on, until)) if first_day < *on || last_day > *until => {
            return Err(rule(
                ErrorCode::NotQualified,
                format!(
                    "the pilot's {} qualification is valid from {on} through {until}, not for the whole slot",
                    f.bike.bike_type
                ),
            ));
        }
        Some(_) => {}
    }
    let lead = Duration::minutes(i64::from(f.chapter.settings.lead_time_minutes));
    if slot.start < now + lead {
        return Err(rule(
            ErrorCode::LeadTime,
            format!("rides must be booked at least {} minutes ahead", f.chapter.settings.lead_time_minutes),
        ));
    }
    if let Some(season) = &f.chapter.settings.ride_season
        && !season.contains(first_day)
    {
        return Err(rule(ErrorCode::OutsideRideHours, "the slot lies outside the chapter's ride season"));
    }
    if !localtime::slot_allowed(tz, &f.home.ride_hours, &f.home.closures, slot.start, slot.end()) {
        return Err(rule(
            ErrorCode::OutsideRideHours,
            format!("the slot lies outside the care home's ride hours ({tz})"),
        ));
    }
    Ok(())
}

/// A pilot puts residents on its own ride only where the care home lets pilots choose
/// their riders, or residents named in a ride request it claimed (`named`); otherwise
/// 403 `forbidden`, so that seating a resident cannot tell a pilot the resident's name.
/// Other roles are judged by the gateway's read and write rules.
pub fn check_pilot_seats(
    home: &CareHomeFact,
    actor_role: &str,
    residents: &[Uuid],
    named: &[Uuid],
) -> Result<(), DomainError> {
    if actor_role != "pilot" || home.pilots_choose_riders || residents.iter().all(|r| named.contains(r)) {
        return Ok(());
    }
    Err(DomainError::rule(
        ErrorCode::Forbidden,
        "this care home chooses the riders of pilots' rides: a pilot may seat only residents named in a request it claimed",
    ))
}

/// The roster rules: capacity, residence and consent of every rider.
pub fn check_riders(
    home: &CareHomeFact,
    bike: &BikeFact,
    kind: RideKind,
    duration_minutes: u32,
    trip_minutes: Option<u32>,
    riders: &[(Uuid, Option<ResidentFact>)],
) -> Result<(), DomainError> {
    let capacity = Ride::capacity(kind, bike.seats, duration_minutes, trip_minutes);
    if riders.len() as u32 > capacity {
        return Err(rule(ErrorCode::TooManyRiders, format!("this ride takes at most {capacity} riders")));
    }
    for (id, fact) in riders {
        let Some(r) =
            fact.as_ref().filter(|r| r.carehome_id == home.carehome_id && r.status == ResidentStatus::LivingHere)
        else {
            return Err(rule(ErrorCode::NotResidentHere, format!("resident {id} does not live at this care home")));
        };
        if !r.consent.contains(&ConsentScope::Rides) {
            return Err(rule(ErrorCode::NoConsent, format!("resident {id} has no consent to ride on record")));
        }
    }
    Ok(())
}

/// Whether a story may be kept about these riders: each must have consented to stories.
pub fn check_story_consent(riders: &[(Uuid, Option<ResidentFact>)]) -> Result<(), DomainError> {
    for (id, fact) in riders {
        if !fact.as_ref().is_some_and(|r| r.consent.contains(&ConsentScope::Stories)) {
            return Err(rule(ErrorCode::NoConsent, format!("resident {id} has not consented to stories")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::events::ChapterSettings;
    use domain::types::{DateRange, RideHours, Weekday};
    use std::collections::BTreeMap;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn facts() -> Facts {
        let chapter = Uuid::from_u128(1);
        let home = Uuid::from_u128(2);
        let mut q = BTreeMap::new();
        q.insert("trishaw".to_owned(), ("2027-01-01".parse().unwrap(), "2027-12-31".parse().unwrap()));
        Facts {
            chapter: ChapterFact {
                chapter_id: chapter,
                timezone: "Europe/Copenhagen".into(),
                settings: ChapterSettings { lead_time_minutes: 60, ..ChapterSettings::default() },
            },
            home: CareHomeFact {
                carehome_id: home,
                chapter_id: chapter,
                timezone: None,
                ride_hours: Weekday::ALL
                    .iter()
                    .map(|w| RideHours {
                        weekday: *w,
                        opens: "09:00".parse().unwrap(),
                        closes: "17:00".parse().unwrap(),
                    })
                    .collect(),
                turnaround_minutes: 15,
                requires_confirmation: false,
                pilots_choose_riders: false,
                closures: vec![],
            },
            bike: BikeFact {
                bike_id: Uuid::from_u128(3),
                carehome_id: home,
                bike_type: "trishaw".into(),
                seats: 2,
                status: BikeStatus::InService,
            },
            pilot: PilotFact {
                pilot_id: Uuid::from_u128(4),
                chapter_id: chapter,
                status: PilotStatus::Active,
                qualifications: q,
                qualified: vec![],
                weekly: vec![],
                carehome_ids: vec![],
                availability_version: 0,
            },
        }
    }

    const NOW: &str = "2027-03-20T12:00:00Z";

    fn check(f: &Facts, start: &str, minutes: u32) -> Result<(), ErrorCode> {
        check_slot(f, &Slot { start: t(start), duration_minutes: minutes }, t(NOW)).map_err(|e| e.code())
    }

    #[test]
    fn a_good_slot_passes() {
        assert_eq!(check(&facts(), "2027-05-03T08:00:00Z", 60), Ok(()));
    }

    #[test]
    fn ride_hours_are_local_on_both_sides_of_summer_time() {
        let f = facts();
        // Saturday 27 March (CET, UTC+1): 09:00 local = 08:00Z.
        assert_eq!(check(&f, "2027-03-27T08:00:00Z", 60), Ok(()));
        assert_eq!(check(&f, "2027-03-27T07:30:00Z", 60), Err(ErrorCode::OutsideRideHours));
        // Sunday 28 March (CEST, UTC+2): 09:00 local = 07:00Z; 08:00Z is 10:00 local.
        assert_eq!(check(&f, "2027-03-28T07:00:00Z", 60), Ok(()));
        assert_eq!(check(&f, "2027-03-28T06:30:00Z", 60), Err(ErrorCode::OutsideRideHours));
        assert_eq!(check(&f, "2027-03-28T14:30:00Z", 60), Err(ErrorCode::OutsideRideHours), "17:00 CEST = 15:00Z");
    }

    #[test]
    fn a_qualification_expiring_inside_the_slot_refuses() {
        let mut f = facts();
        f.pilot.qualifications.insert("trishaw".into(), ("2027-01-01".parse().unwrap(), "2027-05-03".parse().unwrap()));
        assert_eq!(check(&f, "2027-05-03T08:00:00Z", 60), Ok(()), "valid through the slot's day");
        assert_eq!(check(&f, "2027-05-04T08:00:00Z", 60), Err(ErrorCode::NotQualified));
        f.bike.bike_type = "wheelchair".into();
        assert_eq!(check(&f, "2027-05-03T08:00:00Z", 60), Err(ErrorCode::NotQualified), "wrong type");
    }

    #[test]
    fn statuses_lead_time_closures_and_season_refuse() {
        let mut f = facts();
        f.bike.status = BikeStatus::OutOfService;
        assert_eq!(check(&f, "2027-05-03T08:00:00Z", 60), Err(ErrorCode::BikeOutOfService));
        let mut f = facts();
        f.pilot.status = PilotStatus::Suspended;
        assert_eq!(check(&f, "2027-05-03T08:00:00Z", 60), Err(ErrorCode::PilotSuspended));
        let f = facts();
        assert_eq!(check(&f, "2027-03-20T12:30:00Z", 60), Err(ErrorCode::LeadTime));
        let mut f = facts();
        f.home.closures.push(DateRange { from: "2027-05-03".parse().unwrap(), to: "2027-05-04".parse().unwrap() });
        assert_eq!(check(&f, "2027-05-03T08:00:00Z", 60), Err(ErrorCode::OutsideRideHours));
        let mut f = facts();
        f.chapter.settings.ride_season =
            Some(DateRange { from: "2027-04-01".parse().unwrap(), to: "2027-10-01".parse().unwrap() });
        assert_eq!(check(&f, "2027-03-27T08:00:00Z", 60), Err(ErrorCode::OutsideRideHours));
    }

    #[test]
    fn riders_must_fit_live_here_and_consent() {
        let f = facts();
        let ok = ResidentFact {
            resident_id: Uuid::from_u128(10),
            carehome_id: f.home.carehome_id,
            status: ResidentStatus::LivingHere,
            consent: vec![ConsentScope::Rides],
            consents: vec![],
        };
        let r = |fact: Option<ResidentFact>| (Uuid::from_u128(10), fact);
        let three = vec![r(Some(ok.clone())), r(Some(ok.clone())), r(Some(ok.clone()))];
        let code = |riders: &[(Uuid, Option<ResidentFact>)], kind| {
            check_riders(&f.home, &f.bike, kind, 120, Some(30), riders).map_err(|e| e.code())
        };
        assert_eq!(code(&three, RideKind::Pleasure), Err(ErrorCode::TooManyRiders));
        assert_eq!(code(&three, RideKind::Event), Ok(()), "an event block takes seats per trip");
        assert_eq!(code(&[r(None)], RideKind::Pleasure), Err(ErrorCode::NotResidentHere));
        let moved = ResidentFact { status: ResidentStatus::MovedOut, ..ok.clone() };
        assert_eq!(code(&[r(Some(moved))], RideKind::Pleasure), Err(ErrorCode::NotResidentHere));
        let elsewhere = ResidentFact { carehome_id: Uuid::from_u128(99), ..ok.clone() };
        assert_eq!(code(&[r(Some(elsewhere))], RideKind::Pleasure), Err(ErrorCode::NotResidentHere));
        let no_consent = ResidentFact { consent: vec![], ..ok.clone() };
        assert_eq!(code(&[r(Some(no_consent))], RideKind::Pleasure), Err(ErrorCode::NoConsent));
        assert!(check_story_consent(&[r(Some(ok.clone()))]).is_err());
        let stories = ResidentFact { consent: vec![ConsentScope::Rides, ConsentScope::Stories], ..ok };
        assert!(check_story_consent(&[r(Some(stories))]).is_ok());
    }

    #[test]
    fn a_pilot_seats_only_whom_the_home_or_a_claimed_request_allows() {
        let mut f = facts();
        let (named, other) = (Uuid::from_u128(50), Uuid::from_u128(51));
        let refused = check_pilot_seats(&f.home, "pilot", &[named, other], &[named]).unwrap_err();
        assert!(matches!(refused, DomainError::Rule { code: ErrorCode::Forbidden, .. }), "{refused:?}");
        assert!(check_pilot_seats(&f.home, "pilot", &[named], &[named]).is_ok());
        assert!(check_pilot_seats(&f.home, "pilot", &[], &[]).is_ok(), "an empty roster seats nobody");
        assert!(check_pilot_seats(&f.home, "coordinator", &[other], &[]).is_ok(), "the home chooses");
        f.home.pilots_choose_riders = true;
        assert!(check_pilot_seats(&f.home, "pilot", &[named, other], &[]).is_ok());
    }
}

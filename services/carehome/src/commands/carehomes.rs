//! Care homes: where residents live and trishaws are kept. Owns ride hours per weekday
//! (local time), the turnaround between rides on one trishaw, the confirmation policy and
//! closures and its coordinators ([`coordinators`]). Pure domain: validation, the folded
//! state and a decision per command.

pub mod coordinators;

use domain::events::{
    CareHomeClosed, CareHomeDetailsCorrected, CareHomeEvent, CareHomeRegistered, ClosureLifted, RideHoursChanged,
};
use domain::types::{DateRange, RideHours, parse_date, parse_label, parse_ride_hours, parse_timezone};
use domain::{Aggregate, DomainError, ErrorCode};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::chapters::MAX_TURNAROUND_MINUTES;
use crate::validation::Violations;

/// Longest care-home name.
pub const NAME_MAX: usize = 200;
/// Longest address.
pub const ADDRESS_MAX: usize = 300;
/// Longest closure reason.
pub const REASON_MAX: usize = 500;

/// The stream of a care home.
pub fn stream(carehome_id: Uuid) -> String {
    format!("carehome-{carehome_id}")
}

/// A period the care home is closed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Closure {
    /// The closed days, `to` exclusive.
    pub dates: DateRange,
    /// Why.
    pub reason: String,
}

/// A care home as folded from its stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CareHome {
    /// Id.
    pub carehome_id: Uuid,
    /// Its chapter.
    pub chapter_id: Uuid,
    /// Name.
    pub name: String,
    /// Institutional address.
    pub address: String,
    /// Its own zone, if it has one (else the chapter's).
    pub timezone: Option<String>,
    /// Weekly ride hours, local time.
    pub ride_hours: Vec<RideHours>,
    /// Minutes between two rides on one trishaw.
    pub turnaround_minutes: u32,
    /// Whether pilot-booked rides wait for confirmation.
    pub requires_confirmation: bool,
    /// Whether pilots may put residents on their own rides (absent from documents
    /// written before the rule).
    #[serde(default)]
    pub pilots_choose_riders: bool,
    /// Closures, in the order they were recorded.
    pub closures: Vec<Closure>,
    /// Its coordinators' pseudonymous user ids, in order of assignment (absent from
    /// documents written before coordinators existed).
    #[serde(default)]
    pub coordinator_ids: Vec<String>,
}

impl CareHome {
    /// The zone its local times are in: its own or the chapter's.
    pub fn effective_timezone<'a>(&'a self, chapter_timezone: &'a str) -> &'a str {
        self.timezone.as_deref().unwrap_or(chapter_timezone)
    }
}

impl Aggregate for CareHome {
    type Event = CareHomeEvent;

    fn apply(state: Option<Self>, event: &CareHomeEvent) -> Option<Self> {
        match event {
            CareHomeEvent::CareHomeRegistered(e) => Some(CareHome {
                carehome_id: e.carehome_id,
                chapter_id: e.chapter_id,
                name: e.name.clone(),
                address: e.address.clone(),
                timezone: e.timezone.clone(),
                ride_hours: e.ride_hours.clone(),
                turnaround_minutes: e.turnaround_minutes,
                requires_confirmation: e.requires_confirmation,
                pilots_choose_riders: e.pilots_choose_riders,
                closures: vec![],
                coordinator_ids: vec![],
            }),
            CareHomeEvent::RideHoursChanged(e) => state.map(|h| CareHome { ride_hours: e.ride_hours.clone(), ..h }),
            CareHomeEvent::CareHomeClosed(e) => state.map(|mut h| {
                h.closures.push(Closure { dates: e.dates, reason: e.reason.clone() });
                h
            }),
            CareHomeEvent::CareHomeDetailsCorrected(e) => state.map(|mut h| {
                if let Some(v) = &e.name {
                    h.name.clone_from(v);
                }
                if let Some(v) = &e.address {
                    h.address.clone_from(v);
                }
                if let Some(v) = e.turnaround_minutes {
                    h.turnaround_minutes = v;
                }
                if let Some(v) = e.requires_confirmation {
                    h.requires_confirmation = v;
                }
                if let Some(v) = e.pilots_choose_riders {
                    h.pilots_choose_riders = v;
                }
                h
            }),
            CareHomeEvent::ClosureLifted(e) => state.map(|mut h| {
                h.closures.retain(|c| c.dates != e.dates);
                h
            }),
            CareHomeEvent::CoordinatorAssigned(e) => state.map(|mut h| {
                if !h.coordinator_ids.contains(&e.user_id) {
                    h.coordinator_ids.push(e.user_id.clone());
                }
                h
            }),
            CareHomeEvent::CoordinatorRemoved(e) => state.map(|mut h| {
                h.coordinator_ids.retain(|u| *u != e.user_id);
                h
            }),
            _ => state,
        }
    }

    fn tenant(&self) -> Option<Uuid> {
        Some(self.chapter_id)
    }
}

/// Weekly ride hours as they arrive: `(weekday, opens, closes)` rows.
pub type RideHoursInput<'a> = Vec<(&'a str, &'a str, &'a str)>;

/// Register a care home in a chapter.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisterCareHome {
    /// The new care home's id.
    pub carehome_id: Uuid,
    /// Its chapter (must exist).
    pub chapter_id: Uuid,
    /// Name.
    pub name: String,
    /// Address.
    pub address: String,
    /// Own zone.
    pub timezone: Option<String>,
    /// Ride hours.
    pub ride_hours: Vec<RideHours>,
    /// Turnaround minutes.
    pub turnaround_minutes: u32,
    /// Confirmation policy.
    pub requires_confirmation: bool,
    /// Whether pilots choose their riders.
    pub pilots_choose_riders: bool,
}

/// The raw fields of a care-home registration.
#[derive(Debug, Clone, Default)]
pub struct RegisterCareHomeInput<'a> {
    /// Name.
    pub name: &'a str,
    /// Address.
    pub address: &'a str,
    /// Own IANA zone, or empty.
    pub timezone: &'a str,
    /// Ride hours.
    pub ride_hours: RideHoursInput<'a>,
    /// Turnaround minutes.
    pub turnaround_minutes: u32,
    /// Confirmation policy.
    pub requires_confirmation: bool,
    /// Whether pilots choose their riders.
    pub pilots_choose_riders: bool,
}

impl RegisterCareHome {
    /// Validates the request's fields.
    pub fn parse(carehome_id: Uuid, chapter_id: Uuid, input: RegisterCareHomeInput<'_>) -> Result<Self, DomainError> {
        let mut v = Violations::new();
        let name = v.check(parse_label("/name", input.name, NAME_MAX));
        let address = v.check(parse_label("/address", input.address, ADDRESS_MAX));
        let timezone = match input.timezone.trim() {
            "" => Some(None),
            tz => v.check(parse_timezone("/timezone", tz)).map(|tz| Some(tz.name().to_owned())),
        };
        let ride_hours = v.check(parse_ride_hours("/ride_hours", input.ride_hours));
        if input.turnaround_minutes > MAX_TURNAROUND_MINUTES {
            v.push("/turnaround_minutes", format!("must be at most {MAX_TURNAROUND_MINUTES}"));
        }
        v.finish(|| {
            Some(RegisterCareHome {
                carehome_id,
                chapter_id,
                name: name?,
                address: address?,
                timezone: timezone?,
                ride_hours: ride_hours?,
                turnaround_minutes: input.turnaround_minutes,
                requires_confirmation: input.requires_confirmation,
                pilots_choose_riders: input.pilots_choose_riders,
            })
        })
    }
}

/// Decides a care home's registration (the caller has checked that the chapter exists).
pub fn register(state: Option<&CareHome>, cmd: &RegisterCareHome) -> Result<Vec<CareHomeEvent>, DomainError> {
    if state.is_some() {
        return Err(DomainError::conflict(ErrorCode::IllegalTransition, "the care home already exists", None));
    }
    Ok(vec![
        CareHomeRegistered {
            carehome_id: cmd.carehome_id,
            chapter_id: cmd.chapter_id,
            name: cmd.name.clone(),
            address: cmd.address.clone(),
            timezone: cmd.timezone.clone(),
            ride_hours: cmd.ride_hours.clone(),
            turnaround_minutes: cmd.turnaround_minutes,
            requires_confirmation: cmd.requires_confirmation,
            pilots_choose_riders: cmd.pilots_choose_riders,
        }
        .into(),
    ])
}

/// Validates new weekly ride hours.
pub fn parse_new_ride_hours(rows: RideHoursInput<'_>) -> Result<Vec<RideHours>, DomainError> {
    Ok(parse_ride_hours("/ride_hours", rows)?)
}

/// Decides a change of ride hours; unchanged hours write nothing.
pub fn change_ride_hours(state: Option<&CareHome>, hours: &[RideHours]) -> Result<Vec<CareHomeEvent>, DomainError> {
    let home = state.ok_or_else(|| DomainError::NotFound("care home".into()))?;
    if home.ride_hours == hours {
        return Ok(vec![]);
    }
    Ok(vec![RideHoursChanged { carehome_id: home.carehome_id, ride_hours: hours.to_vec() }.into()])
}

/// Validates a closure: `from` before `to` (exclusive) and a reason.
pub fn parse_closure(from: &str, to: &str, reason: &str) -> Result<Closure, DomainError> {
    let mut v = Violations::new();
    let from = v.check(parse_date("/from", from.trim()));
    let to = v.check(parse_date("/to", to.trim()));
    let reason = v.check(parse_label("/reason", reason, REASON_MAX));
    if let (Some(f), Some(t)) = (from, to)
        && f >= t
    {
        v.push("/to", "must be after from (to is exclusive)");
    }
    v.finish(|| Some(Closure { dates: DateRange { from: from?, to: to? }, reason: reason? }))
}

/// Decides a closure; the same days closed again write nothing (the reason arrives sealed,
/// and two sealings of one text differ, so days are what make a closure the same).
pub fn close(state: Option<&CareHome>, closure: &Closure) -> Result<Vec<CareHomeEvent>, DomainError> {
    let home = state.ok_or_else(|| DomainError::NotFound("care home".into()))?;
    if home.closures.iter().any(|c| c.dates == closure.dates) {
        return Ok(vec![]);
    }
    Ok(vec![
        CareHomeClosed { carehome_id: home.carehome_id, dates: closure.dates, reason: closure.reason.clone() }.into(),
    ])
}

/// A correction of a care home's details as it arrives (a field left out keeps its value).
#[derive(Debug, Clone, Default)]
pub struct CorrectionInput<'a> {
    /// Name.
    pub name: Option<&'a str>,
    /// Address.
    pub address: Option<&'a str>,
    /// Turnaround minutes.
    pub turnaround_minutes: Option<u32>,
    /// Confirmation policy (new bookings only).
    pub requires_confirmation: Option<bool>,
    /// Riders'-names rule.
    pub pilots_choose_riders: Option<bool>,
}

/// Validates a correction into the event's fields (care home id left nil).
pub fn parse_correction(input: &CorrectionInput<'_>) -> Result<CareHomeDetailsCorrected, DomainError> {
    let mut v = Violations::new();
    let name = input.name.map(|n| v.check(parse_label("/name", n, NAME_MAX)));
    let address = input.address.map(|a| v.check(parse_label("/address", a, ADDRESS_MAX)));
    if input.turnaround_minutes.is_some_and(|t| t > MAX_TURNAROUND_MINUTES) {
        v.push("/turnaround_minutes", format!("must be at most {MAX_TURNAROUND_MINUTES}"));
    }
    v.finish(|| {
        Some(CareHomeDetailsCorrected {
            carehome_id: Uuid::nil(),
            name: name.flatten(),
            address: address.flatten(),
            turnaround_minutes: input.turnaround_minutes,
            requires_confirmation: input.requires_confirmation,
            pilots_choose_riders: input.pilots_choose_riders,
        })
    })
}

/// Decides a correction: only the fields that differ are recorded; none writes nothing.
pub fn correct(state: Option<&CareHome>, c: &CareHomeDetailsCorrected) -> Result<Vec<CareHomeEvent>, DomainError> {
    let home = state.ok_or_else(|| DomainError::NotFound("care home".into()))?;
    let changed = CareHomeDetailsCorrected {
        carehome_id: home.carehome_id,
        name: c.name.clone().filter(|v| *v != home.name),
        address: c.address.clone().filter(|v| *v != home.address),
        turnaround_minutes: c.turnaround_minutes.filter(|v| *v != home.turnaround_minutes),
        requires_confirmation: c.requires_confirmation.filter(|v| *v != home.requires_confirmation),
        pilots_choose_riders: c.pilots_choose_riders.filter(|v| *v != home.pilots_choose_riders),
    };
    if changed == (CareHomeDetailsCorrected { carehome_id: home.carehome_id, ..Default::default() }) {
        return Ok(vec![]);
    }
    Ok(vec![changed.into()])
}

/// Decides lifting the closure recorded by event `closure_id` over `dates` (`current`:
/// whether it is the closure in force for those days). Lifted already: nothing to write.
pub fn lift(
    state: Option<&CareHome>,
    closure_id: Uuid,
    dates: DateRange,
    current: bool,
) -> Result<Vec<CareHomeEvent>, DomainError> {
    let home = state.ok_or_else(|| DomainError::NotFound("care home".into()))?;
    if !current || !home.closures.iter().any(|c| c.dates == dates) {
        return Ok(vec![]);
    }
    Ok(vec![ClosureLifted { carehome_id: home.carehome_id, closure_id, dates }.into()])
}

#[cfg(test)]
mod tests;

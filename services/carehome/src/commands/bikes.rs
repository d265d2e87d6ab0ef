//! Trishaws (`bike` in code): type, seats and service status, with the transitions
//! in service → out of service → in service, and retirement from either (final). Pure
//! domain: validation, the folded state and a decision per command.

use chrono::NaiveDate;
use domain::events::{
    BikeCommissioned, BikeDetailsCorrected, BikeIssueReported, BikeMoved, BikeRepaired, BikeRetired,
    BikeReturnedToService, BikeTakenOutOfService, CareHomeEvent,
};
use domain::types::{BikeStatus, parse_label};
use domain::{Aggregate, DomainError, ErrorCode};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::validation::{Violations, optional_date, optional_label, optional_text};

/// Longest trishaw name.
pub const NAME_MAX: usize = 100;
/// Longest trishaw type label.
pub const TYPE_MAX: usize = 50;
/// Longest reason or repair note.
pub const REASON_MAX: usize = 500;
/// Longest issue description.
pub const DESCRIPTION_MAX: usize = 2000;
/// The type of a trishaw commissioned without one.
pub const DEFAULT_TYPE: &str = "trishaw";

/// The stream of a trishaw.
pub fn stream(bike_id: Uuid) -> String {
    format!("bike-{bike_id}")
}

/// A trishaw as folded from its stream. Its events do not name the chapter: commands look
/// it up from the care home and hand it to the command runner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bike {
    /// Id.
    pub bike_id: Uuid,
    /// Its care home.
    pub carehome_id: Uuid,
    /// Name.
    pub name: String,
    /// Type, matched against pilots' qualifications.
    pub bike_type: String,
    /// Rider seats.
    pub seats: u32,
    /// Service status.
    pub status: BikeStatus,
    /// Why it is out of service (or was retired).
    pub reason: Option<String>,
    /// When it should be back in service.
    pub expected_back: Option<NaiveDate>,
}

impl Aggregate for Bike {
    type Event = CareHomeEvent;

    fn apply(state: Option<Self>, event: &CareHomeEvent) -> Option<Self> {
        use CareHomeEvent as E;
        match event {
            E::BikeCommissioned(e) => Some(Bike {
                bike_id: e.bike_id,
                carehome_id: e.carehome_id,
                name: e.name.clone(),
                bike_type: e.bike_type.clone(),
                seats: e.seats,
                status: BikeStatus::InService,
                reason: None,
                expected_back: None,
            }),
            E::BikeTakenOutOfService(e) => state.map(|b| Bike {
                status: BikeStatus::OutOfService,
                reason: Some(e.reason.clone()),
                expected_back: e.expected_back,
                ..b
            }),
            E::BikeReturnedToService(_) => {
                state.map(|b| Bike { status: BikeStatus::InService, reason: None, expected_back: None, ..b })
            }
            E::BikeDetailsCorrected(e) => state.map(|b| Bike {
                name: e.name.clone().unwrap_or(b.name),
                bike_type: e.bike_type.clone().unwrap_or(b.bike_type),
                seats: e.seats.unwrap_or(b.seats),
                ..b
            }),
            E::BikeMoved(e) => state.map(|b| Bike { carehome_id: e.carehome_id, ..b }),
            E::BikeRetired(e) => state.map(|b| Bike {
                status: BikeStatus::Retired,
                reason: Some(e.reason.clone()).filter(|r| !r.is_empty()),
                expected_back: None,
                ..b
            }),
            _ => state,
        }
    }

    fn tenant(&self) -> Option<Uuid> {
        None
    }
}

/// Put a trishaw into service at a care home.
#[derive(Debug, Clone, PartialEq)]
pub struct CommissionBike {
    /// The new trishaw's id.
    pub bike_id: Uuid,
    /// Its care home (must exist).
    pub carehome_id: Uuid,
    /// Name.
    pub name: String,
    /// Type (`trishaw` when none is given).
    pub bike_type: String,
    /// Seats, 1 or 2.
    pub seats: u32,
}

impl CommissionBike {
    /// Validates the request's fields.
    pub fn parse(
        bike_id: Uuid,
        carehome_id: Uuid,
        name: &str,
        bike_type: &str,
        seats: u32,
    ) -> Result<Self, DomainError> {
        let mut v = Violations::new();
        let name = v.check(parse_label("/name", name, NAME_MAX));
        let bike_type = v.check(optional_label("/bike_type", bike_type, TYPE_MAX));
        if !(1..=2).contains(&seats) {
            v.push("/seats", "must be 1 or 2");
        }
        v.finish(|| {
            Some(CommissionBike {
                bike_id,
                carehome_id,
                name: name?,
                bike_type: bike_type?.unwrap_or_else(|| DEFAULT_TYPE.to_owned()),
                seats,
            })
        })
    }
}

/// Decides a commissioning (the caller has checked that the care home exists).
pub fn commission(state: Option<&Bike>, cmd: &CommissionBike) -> Result<Vec<CareHomeEvent>, DomainError> {
    if state.is_some() {
        return Err(DomainError::conflict(ErrorCode::IllegalTransition, "the trishaw already exists", None));
    }
    Ok(vec![
        BikeCommissioned {
            bike_id: cmd.bike_id,
            carehome_id: cmd.carehome_id,
            name: cmd.name.clone(),
            bike_type: cmd.bike_type.clone(),
            seats: cmd.seats,
        }
        .into(),
    ])
}

/// Report a problem; a grounding issue takes the trishaw out of service.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportIssue {
    /// What is wrong.
    pub description: String,
    /// Whether it may not be ridden until repaired.
    pub grounding: bool,
}

impl ReportIssue {
    /// Validates the request's fields.
    pub fn parse(description: &str, grounding: bool) -> Result<Self, DomainError> {
        let description = optional_text("/description", description, DESCRIPTION_MAX)?
            .ok_or_else(|| DomainError::invalid("/description", "must not be empty"))?;
        Ok(ReportIssue { description, grounding })
    }
}

/// A change of service status: a reason (may be empty where optional) and an expected return.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServiceChange {
    /// Why (or, on return, what was repaired).
    pub reason: Option<String>,
    /// When it should be back.
    pub expected_back: Option<NaiveDate>,
}

impl ServiceChange {
    /// Validates `reason` (required when `reason_required`) and `expected_back`.
    pub fn parse(reason: &str, expected_back: &str, reason_required: bool) -> Result<Self, DomainError> {
        let mut v = Violations::new();
        let reason = v.check(optional_text("/reason", reason, REASON_MAX));
        if reason_required && matches!(reason, Some(None)) {
            v.push("/reason", "must not be empty");
        }
        let expected_back = v.check(optional_date("/expected_back", expected_back));
        v.finish(|| Some(ServiceChange { reason: reason?, expected_back: expected_back? }))
    }
}

fn existing(state: Option<&Bike>) -> Result<&Bike, DomainError> {
    state.ok_or_else(|| DomainError::NotFound("trishaw".into()))
}

fn illegal(bike: &Bike, what: &str) -> DomainError {
    DomainError::conflict(
        ErrorCode::IllegalTransition,
        format!("the trishaw is {}: it cannot be {what}", bike.status.as_str().replace('_', " ")),
        None,
    )
}

/// Decides an issue report.
pub fn report_issue(state: Option<&Bike>, cmd: &ReportIssue) -> Result<Vec<CareHomeEvent>, DomainError> {
    let bike = existing(state)?;
    if bike.status == BikeStatus::Retired {
        return Err(illegal(bike, "reported on"));
    }
    let mut events: Vec<CareHomeEvent> = vec![
        BikeIssueReported { bike_id: bike.bike_id, description: cmd.description.clone(), grounding: cmd.grounding }
            .into(),
    ];
    if cmd.grounding && bike.status == BikeStatus::InService {
        events.push(
            BikeTakenOutOfService { bike_id: bike.bike_id, reason: cmd.description.clone(), expected_back: None }
                .into(),
        );
    }
    Ok(events)
}

/// Decides taking a trishaw out of service (a reason is required).
pub fn take_out_of_service(state: Option<&Bike>, cmd: &ServiceChange) -> Result<Vec<CareHomeEvent>, DomainError> {
    let bike = existing(state)?;
    if bike.status != BikeStatus::InService {
        return Err(illegal(bike, "taken out of service"));
    }
    let reason = cmd.reason.clone().ok_or_else(|| DomainError::invalid("/reason", "must not be empty"))?;
    Ok(vec![BikeTakenOutOfService { bike_id: bike.bike_id, reason, expected_back: cmd.expected_back }.into()])
}

/// Decides a return to service: a reason (what was repaired) records the repair first.
pub fn return_to_service(state: Option<&Bike>, cmd: &ServiceChange) -> Result<Vec<CareHomeEvent>, DomainError> {
    let bike = existing(state)?;
    if bike.status != BikeStatus::OutOfService {
        return Err(illegal(bike, "returned to service"));
    }
    let mut events: Vec<CareHomeEvent> = Vec::new();
    if let Some(note) = &cmd.reason {
        events.push(BikeRepaired { bike_id: bike.bike_id, note: note.clone() }.into());
    }
    events.push(BikeReturnedToService { bike_id: bike.bike_id }.into());
    Ok(events)
}

/// Decides a retirement (final).
pub fn retire(state: Option<&Bike>, cmd: &ServiceChange) -> Result<Vec<CareHomeEvent>, DomainError> {
    let bike = existing(state)?;
    if bike.status == BikeStatus::Retired {
        return Err(illegal(bike, "retired"));
    }
    Ok(vec![BikeRetired { bike_id: bike.bike_id, reason: cmd.reason.clone().unwrap_or_default() }.into()])
}

/// Validates a correction of a trishaw's details (a field left out keeps its value).
pub fn parse_correction(
    name: Option<&str>,
    bike_type: Option<&str>,
    seats: Option<u32>,
) -> Result<BikeDetailsCorrected, DomainError> {
    let mut v = Violations::new();
    let name = name.map(|n| v.check(parse_label("/name", n, NAME_MAX)));
    let bike_type = bike_type.map(|t| v.check(parse_label("/bike_type", t, TYPE_MAX)));
    if seats.is_some_and(|s| !(1..=2).contains(&s)) {
        v.push("/seats", "must be 1 or 2");
    }
    v.finish(|| {
        Some(BikeDetailsCorrected { bike_id: Uuid::nil(), name: name.flatten(), bike_type: bike_type.flatten(), seats })
    })
}

/// Decides a correction: only the fields that differ are recorded; none writes nothing.
/// A retired trishaw keeps its last details.
pub fn correct(state: Option<&Bike>, c: &BikeDetailsCorrected) -> Result<Vec<CareHomeEvent>, DomainError> {
    let bike = existing(state)?;
    let changed = BikeDetailsCorrected {
        bike_id: bike.bike_id,
        name: c.name.clone().filter(|v| *v != bike.name),
        bike_type: c.bike_type.clone().filter(|v| *v != bike.bike_type),
        seats: c.seats.filter(|v| *v != bike.seats),
    };
    if changed == (BikeDetailsCorrected { bike_id: bike.bike_id, ..Default::default() }) {
        return Ok(vec![]);
    }
    if bike.status == BikeStatus::Retired {
        return Err(illegal(bike, "corrected"));
    }
    Ok(vec![changed.into()])
}

/// Decides a move to another care home (the caller checked it is of the same chapter);
/// to where it is already: nothing to write.
pub fn move_to(state: Option<&Bike>, carehome_id: Uuid) -> Result<Vec<CareHomeEvent>, DomainError> {
    let bike = existing(state)?;
    if bike.carehome_id == carehome_id {
        return Ok(vec![]);
    }
    if bike.status == BikeStatus::Retired {
        return Err(illegal(bike, "moved"));
    }
    Ok(vec![BikeMoved { bike_id: bike.bike_id, from_carehome_id: bike.carehome_id, carehome_id }.into()])
}

#[cfg(test)]
mod tests;

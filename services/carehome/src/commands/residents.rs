//! Residents: riders of a care home, known by a pseudonymous id. Owns admission (with
//! consent), consent recorded / withdrawn, moving out and erasure. Personal fields arrive
//! here already sealed; this module never sees them in clear after validation.

use chrono::{DateTime, Utc};
use domain::Invalid;
use domain::events::{
    CareHomeEvent, ResidentAdmitted, ResidentConsentRecorded, ResidentConsentWithdrawn, ResidentDetailsCorrected,
    ResidentErased, ResidentMovedOut, ResidentPersonal,
};
use domain::types::{ConsentScope, GivenBy, ResidentStatus, Sealed, parse_enum, parse_label};
use domain::{Aggregate, DomainError, ErrorCode};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::validation::{Violations, optional_text};

/// Longest display name.
pub const NAME_MAX: usize = 200;
/// Longest care notes.
pub const NOTES_MAX: usize = 4000;
/// The key-store field holding the sealed `ResidentPersonal`.
pub const PERSONAL_FIELD: &str = "personal";

/// The stream of a resident.
pub fn stream(resident_id: Uuid) -> String {
    format!("resident-{resident_id}")
}

/// The key-store subject of a resident.
pub fn subject(resident_id: Uuid) -> String {
    format!("resident:{resident_id}")
}

/// Consent on record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    /// Who gave it.
    pub given_by: GivenBy,
    /// When (UTC).
    pub given_at: DateTime<Utc>,
    /// What it covers (no duplicates).
    pub scope: Vec<ConsentScope>,
}

/// A resident as folded from their stream. Their events do not name the chapter: commands
/// look it up from the care home and hand it to the command runner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resident {
    /// Id.
    pub resident_id: Uuid,
    /// Their care home.
    pub carehome_id: Uuid,
    /// Sealed `ResidentPersonal` (none once erased).
    pub personal: Option<Sealed>,
    /// Consent on record.
    pub consent: Option<Consent>,
    /// Status.
    pub status: ResidentStatus,
}

impl Aggregate for Resident {
    type Event = CareHomeEvent;

    fn apply(state: Option<Self>, event: &CareHomeEvent) -> Option<Self> {
        use CareHomeEvent as E;
        match event {
            E::ResidentAdmitted(e) => Some(Resident {
                resident_id: e.resident_id,
                carehome_id: e.carehome_id,
                personal: Some(e.personal.clone()),
                consent: None,
                status: ResidentStatus::LivingHere,
            }),
            E::ResidentConsentRecorded(e) => state.map(|r| Resident {
                consent: Some(Consent { given_by: e.given_by, given_at: e.given_at, scope: e.scope.clone() }),
                ..r
            }),
            E::ResidentConsentWithdrawn(_) => state.map(|r| Resident { consent: None, ..r }),
            E::ResidentMovedOut(_) => state.map(|r| Resident { status: ResidentStatus::MovedOut, ..r }),
            E::ResidentDetailsCorrected(e) => state.map(|r| Resident { personal: Some(e.personal.clone()), ..r }),
            E::ResidentErased(_) => {
                state.map(|r| Resident { status: ResidentStatus::Erased, personal: None, consent: None, ..r })
            }
            _ => state,
        }
    }

    fn tenant(&self) -> Option<Uuid> {
        None
    }
}

/// Consent as it arrives, before validation.
#[derive(Debug, Clone, Copy)]
pub struct ConsentInput<'a> {
    /// `resident`, `relative` or `guardian`.
    pub given_by: &'a str,
    /// RFC 3339.
    pub given_at: &'a str,
    /// `rides`, `stories`.
    pub scope: &'a [String],
}

/// Validates consent found at `prefix` of the request body (`/consent` or "").
pub fn parse_consent(prefix: &str, input: Option<ConsentInput<'_>>) -> Result<Consent, Vec<Invalid>> {
    let Some(input) = input else {
        let field = if prefix.is_empty() { "/given_by" } else { prefix };
        return Err(vec![Invalid::new(field, "consent is required")]);
    };
    let mut v = Violations::new();
    let given_by = v.check(parse_enum::<GivenBy>(&format!("{prefix}/given_by"), input.given_by.trim()));
    let given_at = v.check(
        DateTime::parse_from_rfc3339(input.given_at.trim())
            .map(|t| t.to_utc())
            .map_err(|_| Invalid::new(format!("{prefix}/given_at"), "must be an RFC 3339 time")),
    );
    let mut scope: Vec<ConsentScope> = Vec::new();
    if input.scope.is_empty() {
        v.push(format!("{prefix}/scope"), "must name at least one of rides, stories");
    }
    for (i, s) in input.scope.iter().enumerate() {
        if let Some(s) = v.check(parse_enum::<ConsentScope>(&format!("{prefix}/scope/{i}"), s.trim()))
            && !scope.contains(&s)
        {
            scope.push(s);
        }
    }
    match (given_by, given_at) {
        (Some(given_by), Some(given_at)) if v.is_empty() => Ok(Consent { given_by, given_at, scope }),
        _ => Err(v.into_list()),
    }
}

/// Validates the personal fields of an admission.
pub fn parse_personal(display_name: &str, notes: &str) -> Result<ResidentPersonal, Vec<Invalid>> {
    let mut v = Violations::new();
    let display_name = v.check(parse_label("/display_name", display_name, NAME_MAX));
    let notes = v.check(optional_text("/notes", notes, NOTES_MAX));
    match (display_name, notes) {
        (Some(display_name), Some(notes)) => Ok(ResidentPersonal { display_name, notes }),
        _ => Err(v.into_list()),
    }
}

/// Admit a resident with consent; the personal fields are already sealed.
#[derive(Debug, Clone, PartialEq)]
pub struct AdmitResident {
    /// The new resident's id.
    pub resident_id: Uuid,
    /// Their care home (must exist).
    pub carehome_id: Uuid,
    /// Sealed `ResidentPersonal`.
    pub personal: Sealed,
    /// Consent.
    pub consent: Consent,
}

/// Decides an admission: the resident and their consent.
pub fn admit(state: Option<&Resident>, cmd: &AdmitResident) -> Result<Vec<CareHomeEvent>, DomainError> {
    if state.is_some() {
        return Err(DomainError::conflict(ErrorCode::IllegalTransition, "the resident already exists", None));
    }
    Ok(vec![
        ResidentAdmitted { resident_id: cmd.resident_id, carehome_id: cmd.carehome_id, personal: cmd.personal.clone() }
            .into(),
        recorded(cmd.resident_id, &cmd.consent),
    ])
}

fn recorded(resident_id: Uuid, c: &Consent) -> CareHomeEvent {
    ResidentConsentRecorded { resident_id, given_by: c.given_by, given_at: c.given_at, scope: c.scope.clone() }.into()
}

fn living_here<'a>(state: Option<&'a Resident>, what: &str) -> Result<&'a Resident, DomainError> {
    let r = state.ok_or_else(|| DomainError::NotFound("resident".into()))?;
    if r.status != ResidentStatus::LivingHere {
        let status = r.status.as_str().replace('_', " ");
        return Err(DomainError::conflict(
            ErrorCode::IllegalTransition,
            format!("the resident is {status}: {what} is not possible"),
            None,
        ));
    }
    Ok(r)
}

/// Decides recording consent (it replaces any earlier one; the same consent writes nothing).
pub fn record_consent(state: Option<&Resident>, consent: &Consent) -> Result<Vec<CareHomeEvent>, DomainError> {
    let r = living_here(state, "recording consent")?;
    if r.consent.as_ref() == Some(consent) {
        return Ok(vec![]);
    }
    Ok(vec![recorded(r.resident_id, consent)])
}

/// Decides withdrawing consent (there must be one on record).
pub fn withdraw_consent(state: Option<&Resident>) -> Result<Vec<CareHomeEvent>, DomainError> {
    let r = living_here(state, "withdrawing consent")?;
    if r.consent.is_none() {
        return Err(DomainError::conflict(ErrorCode::IllegalTransition, "no consent is on record", None));
    }
    Ok(vec![ResidentConsentWithdrawn { resident_id: r.resident_id }.into()])
}

/// Decides moving out.
pub fn move_out(state: Option<&Resident>) -> Result<Vec<CareHomeEvent>, DomainError> {
    let r = living_here(state, "moving out")?;
    Ok(vec![ResidentMovedOut { resident_id: r.resident_id }.into()])
}

/// A validated correction: the new name (if sent) and notes (if sent; `Some(None)` clears
/// them).
pub type Correction = (Option<String>, Option<Option<String>>);

/// Validates a correction's fields: `display_name` (if sent) and `notes` (if sent; empty
/// clears them).
pub fn parse_correction(display_name: Option<&str>, notes: Option<&str>) -> Result<Correction, Vec<Invalid>> {
    let mut v = Violations::new();
    let display_name = display_name.map(|n| v.check(parse_label("/display_name", n, NAME_MAX)));
    let notes = notes.map(|n| v.check(optional_text("/notes", n, NOTES_MAX)));
    if !v.is_empty() {
        return Err(v.into_list());
    }
    Ok((display_name.flatten(), notes.flatten()))
}

/// What a correction changes of `current`: the corrected whole and the names of the
/// changed fields (none: nothing to write).
pub fn corrected(
    current: &ResidentPersonal,
    display_name: Option<String>,
    notes: Option<Option<String>>,
) -> (ResidentPersonal, Vec<String>) {
    let mut next = current.clone();
    let mut fields = Vec::new();
    if let Some(name) = display_name.filter(|n| *n != current.display_name) {
        next.display_name = name;
        fields.push("display_name".to_owned());
    }
    if let Some(notes) = notes.filter(|n| *n != current.notes) {
        next.notes = notes;
        fields.push("notes".to_owned());
    }
    (next, fields)
}

/// Decides a correction of the personal fields (GDPR Art. 16): allowed while the resident
/// lives here or after moving out, never after erasure; no changed field writes nothing.
pub fn correct(
    state: Option<&Resident>,
    personal: &Sealed,
    fields: &[String],
) -> Result<Vec<CareHomeEvent>, DomainError> {
    let r = state.ok_or_else(|| DomainError::NotFound("resident".into()))?;
    if r.status == ResidentStatus::Erased {
        return Err(DomainError::conflict(ErrorCode::IllegalTransition, "the resident has been erased", None));
    }
    if fields.is_empty() {
        return Ok(vec![]);
    }
    Ok(vec![
        ResidentDetailsCorrected { resident_id: r.resident_id, personal: personal.clone(), fields: fields.to_vec() }
            .into(),
    ])
}

/// Decides recording an erasure (the key is deleted before); erasing again writes nothing.
pub fn erase(state: Option<&Resident>) -> Result<Vec<CareHomeEvent>, DomainError> {
    let r = state.ok_or_else(|| DomainError::NotFound("resident".into()))?;
    if r.status == ResidentStatus::Erased {
        return Ok(vec![]);
    }
    Ok(vec![ResidentErased { resident_id: r.resident_id }.into()])
}

#[cfg(test)]
mod tests;

//! A care home's coordinators: the users (by pseudonymous id, a token's `sub`) who look
//! after its rides, trishaws and residents. Assigning someone already assigned, or
//! removing someone who is not, writes nothing and is not an error.

use domain::DomainError;
use domain::Invalid;
use domain::events::{CareHomeEvent, CoordinatorAssigned, CoordinatorRemoved};

use super::CareHome;

/// Longest user id, in characters.
pub const USER_ID_MAX: usize = 128;

/// Whether `c` may appear in a user id: printable, neither whitespace nor an invisible
/// formatting character (zero-width, bidirectional controls, byte-order mark).
fn allowed(c: char) -> bool {
    !(c.is_control()
        || c.is_whitespace()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}'))
}

/// Validates a user id as given (not trimmed): 1 to [`USER_ID_MAX`] printable characters
/// without whitespace. The error names the field `/user_id`.
pub fn parse_user_id(value: &str) -> Result<String, DomainError> {
    const FIELD: &str = "/user_id";
    if value.is_empty() {
        return Err(Invalid::new(FIELD, "must not be empty").into());
    }
    if value.chars().count() > USER_ID_MAX {
        return Err(Invalid::new(FIELD, format!("must be at most {USER_ID_MAX} characters")).into());
    }
    if !value.chars().all(allowed) {
        return Err(Invalid::new(FIELD, "must be printable characters without whitespace").into());
    }
    Ok(value.to_owned())
}

fn existing(state: Option<&CareHome>) -> Result<&CareHome, DomainError> {
    state.ok_or_else(|| DomainError::NotFound("care home".into()))
}

/// Decides assigning a coordinator; one already assigned writes nothing.
pub fn assign(state: Option<&CareHome>, user_id: &str) -> Result<Vec<CareHomeEvent>, DomainError> {
    let home = existing(state)?;
    if home.coordinator_ids.iter().any(|u| u == user_id) {
        return Ok(vec![]);
    }
    Ok(vec![CoordinatorAssigned { carehome_id: home.carehome_id, user_id: user_id.to_owned() }.into()])
}

/// Decides removing a coordinator; one who is not assigned writes nothing.
pub fn remove(state: Option<&CareHome>, user_id: &str) -> Result<Vec<CareHomeEvent>, DomainError> {
    let home = existing(state)?;
    if !home.coordinator_ids.iter().any(|u| u == user_id) {
        return Ok(vec![]);
    }
    Ok(vec![CoordinatorRemoved { carehome_id: home.carehome_id, user_id: user_id.to_owned() }.into()])
}

#[cfg(test)]
mod tests;

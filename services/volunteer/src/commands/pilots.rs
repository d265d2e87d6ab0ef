//! The pilot aggregate: registration, qualifications per trishaw type, status changes and
//! availability. Pure: `decide` turns a command and the current state into events,
//! `Pilot::apply` folds events into state. No I/O here.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use domain::events::*;
use domain::types::{PilotStatus, Sealed, WeeklyWindow};
use domain::{Aggregate, DomainError, ErrorCode};
use uuid::Uuid;

/// A qualification for one trishaw type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qualification {
    /// Training date.
    pub qualified_on: NaiveDate,
    /// Valid through this date.
    pub valid_until: NaiveDate,
}

/// A pilot as its stream tells it.
#[derive(Debug, Clone, PartialEq)]
pub struct Pilot {
    /// Id.
    pub pilot_id: Uuid,
    /// Chapter.
    pub chapter_id: Uuid,
    /// Status.
    pub status: PilotStatus,
    /// Sealed personal fields (None once erased).
    pub personal: Option<Sealed>,
    /// Qualifications by trishaw type.
    pub qualifications: BTreeMap<String, Qualification>,
    /// Declared weekly availability.
    pub weekly: Vec<WeeklyWindow>,
    /// Care homes the pilot rides at.
    pub carehome_ids: Vec<Uuid>,
    /// The person who signs in as this pilot, with the grant (`PilotAccountLinked`).
    pub account: Option<(Uuid, Uuid)>,
}

impl Aggregate for Pilot {
    type Event = VolunteerEvent;

    fn apply(state: Option<Self>, event: &VolunteerEvent) -> Option<Self> {
        use VolunteerEvent as E;
        if let E::PilotRegistered(e) = event {
            return Some(Pilot {
                pilot_id: e.pilot_id,
                chapter_id: e.chapter_id,
                status: PilotStatus::Active,
                personal: Some(e.personal.clone()),
                qualifications: BTreeMap::new(),
                weekly: Vec::new(),
                carehome_ids: Vec::new(),
                account: None,
            });
        }
        let mut p = state?;
        match event {
            E::PilotRegistered(_) => unreachable!("handled above"),
            E::PilotQualified(q) => {
                p.qualifications.insert(
                    q.bike_type.clone(),
                    Qualification { qualified_on: q.qualified_on, valid_until: q.valid_until },
                );
            }
            E::PilotQualificationRenewed(q) => {
                p.qualifications.insert(
                    q.bike_type.clone(),
                    Qualification { qualified_on: q.qualified_on, valid_until: q.valid_until },
                );
            }
            E::PilotSuspended(_) => p.status = PilotStatus::Suspended,
            E::PilotReinstated(_) => p.status = PilotStatus::Active,
            E::PilotRetired(_) => p.status = PilotStatus::Retired,
            E::PilotAvailabilityDeclared(a) => {
                p.weekly = a.weekly.clone();
                p.carehome_ids = a.carehome_ids.clone();
            }
            E::PilotErased(_) => {
                p.status = PilotStatus::Erased;
                p.personal = None;
                p.account = None;
            }
            E::PilotDetailsCorrected(c) => p.personal = Some(c.personal.clone()),
            E::PilotAccountLinked(l) => p.account = Some((l.person_id, l.role_grant_id)),
            E::PilotAccountUnlinked(_) => p.account = None,
            E::InvitationIssued(_) | E::InvitationRedeemed(_) | E::InvitationRevoked(_) => {}
        }
        Some(p)
    }

    fn tenant(&self) -> Option<Uuid> {
        Some(self.chapter_id)
    }
}

/// What can be asked of a pilot.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Join a chapter.
    Register {
        /// The new pilot's id.
        pilot_id: Uuid,
        /// Chapter.
        chapter_id: Uuid,
        /// Sealed personal fields.
        personal: Sealed,
    },
    /// Qualify (or renew) for a trishaw type.
    Qualify {
        /// Type.
        bike_type: String,
        /// Training date.
        qualified_on: NaiveDate,
        /// End of validity.
        valid_until: NaiveDate,
    },
    /// Suspend.
    Suspend,
    /// Reinstate.
    Reinstate,
    /// Retire.
    Retire,
    /// Declare availability.
    DeclareAvailability {
        /// Weekly windows.
        weekly: Vec<WeeklyWindow>,
        /// Care homes.
        carehome_ids: Vec<Uuid>,
    },
    /// Correct personal fields: the whole corrected set, sealed, and the names of the
    /// fields that changed (an empty list writes nothing).
    Correct {
        /// Sealed `PilotPersonal` after the correction.
        personal: Sealed,
        /// What changed.
        fields: Vec<String>,
    },
    /// Erase personal data (the key is deleted by the caller first).
    Erase,
}

fn illegal(message: impl Into<String>) -> DomainError {
    DomainError::conflict(ErrorCode::IllegalTransition, message, None)
}

/// How many days ahead a qualification counts as expiring.
pub const EXPIRING_DAYS: i64 = 30;

/// The state of a qualification valid through `until` (inclusive) on day `on`: `valid`,
/// `expiring` (valid through at most [`EXPIRING_DAYS`] more days) or `expired`, and the
/// days left (negative once expired).
pub fn qualification_state(until: NaiveDate, on: NaiveDate) -> (&'static str, i64) {
    let left = (until - on).num_days();
    let state = if left < 0 {
        "expired"
    } else if left <= EXPIRING_DAYS {
        "expiring"
    } else {
        "valid"
    };
    (state, left)
}

/// Decides the events of a command.
pub fn decide(state: Option<&Pilot>, command: Command) -> Result<Vec<VolunteerEvent>, DomainError> {
    let Some(p) = state else {
        return match command {
            Command::Register { pilot_id, chapter_id, personal } => {
                Ok(vec![PilotRegistered { pilot_id, chapter_id, personal }.into()])
            }
            _ => Err(DomainError::NotFound("pilot".into())),
        };
    };
    let pilot_id = p.pilot_id;
    let status = p.status;
    match command {
        Command::Register { .. } => {
            Err(DomainError::conflict(ErrorCode::IllegalTransition, "pilot already registered", None))
        }
        Command::Erase if status == PilotStatus::Erased => Ok(vec![]),
        Command::Erase => Ok(vec![PilotErased { pilot_id }.into()]),
        _ if status == PilotStatus::Erased => Err(illegal("the pilot has been erased")),
        Command::Qualify { bike_type, qualified_on, valid_until } => {
            if status == PilotStatus::Retired {
                return Err(illegal("a retired pilot cannot be qualified"));
            }
            if valid_until < qualified_on {
                return Err(DomainError::invalid("/valid_until", "must not be before qualified_on"));
            }
            Ok(vec![if p.qualifications.contains_key(&bike_type) {
                PilotQualificationRenewed { pilot_id, bike_type, qualified_on, valid_until }.into()
            } else {
                PilotQualified { pilot_id, bike_type, qualified_on, valid_until }.into()
            }])
        }
        Command::Suspend => match status {
            PilotStatus::Active => Ok(vec![PilotSuspended { pilot_id }.into()]),
            _ => Err(illegal(format!("a {status} pilot cannot be suspended"))),
        },
        Command::Reinstate => match status {
            PilotStatus::Suspended => Ok(vec![PilotReinstated { pilot_id }.into()]),
            _ => Err(illegal(format!("a {status} pilot cannot be reinstated"))),
        },
        Command::Retire => match status {
            PilotStatus::Active | PilotStatus::Suspended => Ok(vec![PilotRetired { pilot_id }.into()]),
            _ => Err(illegal(format!("a {status} pilot cannot retire"))),
        },
        // Rectification is every pilot's right, retired or not (only erasure ends it).
        Command::Correct { fields, .. } if fields.is_empty() => Ok(vec![]),
        Command::Correct { personal, fields } => Ok(vec![PilotDetailsCorrected { pilot_id, personal, fields }.into()]),
        Command::DeclareAvailability { weekly, carehome_ids } => match status {
            PilotStatus::Active | PilotStatus::Suspended => {
                Ok(vec![PilotAvailabilityDeclared { pilot_id, weekly, carehome_ids }.into()])
            }
            _ => Err(illegal(format!("a {status} pilot cannot declare availability"))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn qualifications_expire_after_their_last_day_and_warn_thirty_days_ahead() {
        let on = date("2028-12-15");
        assert_eq!(qualification_state(date("2029-01-14"), on), ("expiring", 30));
        assert_eq!(qualification_state(date("2029-01-15"), on), ("valid", 31));
        assert_eq!(qualification_state(on, on), ("expiring", 0), "valid through its last day");
        assert_eq!(qualification_state(date("2028-12-14"), on), ("expired", -1));
    }

    fn run(state: Option<Pilot>, cmd: Command) -> Result<Option<Pilot>, DomainError> {
        let events = decide(state.as_ref(), cmd)?;
        Ok(events.iter().fold(state, Pilot::apply))
    }

    fn registered() -> Pilot {
        let cmd = Command::Register {
            pilot_id: Uuid::nil(),
            chapter_id: Uuid::max(),
            personal: Sealed("sealed:v1:AAAA".into()),
        };
        run(None, cmd).unwrap().unwrap()
    }

    #[test]
    fn registering_makes_an_active_pilot_once() {
        let p = registered();
        assert_eq!(p.status, PilotStatus::Active);
        assert_eq!(p.tenant(), Some(Uuid::max()));
        let again = decide(
            Some(&p),
            Command::Register { pilot_id: Uuid::nil(), chapter_id: Uuid::max(), personal: Sealed("x".into()) },
        );
        assert_eq!(again.unwrap_err().code(), ErrorCode::IllegalTransition);
        assert!(matches!(decide(None, Command::Suspend), Err(DomainError::NotFound(_))));
    }

    #[test]
    fn qualifying_again_for_a_type_renews_it() {
        let q = |until: &str| Command::Qualify {
            bike_type: "trishaw".into(),
            qualified_on: date("2027-01-10"),
            valid_until: date(until),
        };
        let p = registered();
        let first = decide(Some(&p), q("2027-12-31")).unwrap();
        assert_eq!(first[0].event_type(), "PilotQualified");
        let p = run(Some(p), q("2027-12-31")).unwrap().unwrap();
        let second = decide(Some(&p), q("2028-12-31")).unwrap();
        assert_eq!(second[0].event_type(), "PilotQualificationRenewed");
        let p = run(Some(p), q("2028-12-31")).unwrap().unwrap();
        assert_eq!(p.qualifications["trishaw"].valid_until, date("2028-12-31"));
        let bad = decide(Some(&p), q("2026-01-01")).unwrap_err();
        assert!(matches!(bad, DomainError::Invalid(ref f) if f[0].field == "/valid_until"));
    }

    #[test]
    fn status_follows_its_life_cycle() {
        let p = registered();
        assert_eq!(decide(Some(&p), Command::Reinstate).unwrap_err().code(), ErrorCode::IllegalTransition);
        let p = run(Some(p), Command::Suspend).unwrap().unwrap();
        assert_eq!(p.status, PilotStatus::Suspended);
        assert_eq!(decide(Some(&p), Command::Suspend).unwrap_err().code(), ErrorCode::IllegalTransition);
        let p = run(Some(p), Command::Reinstate).unwrap().unwrap();
        let p = run(Some(p), Command::Retire).unwrap().unwrap();
        assert_eq!(p.status, PilotStatus::Retired);
        assert_eq!(decide(Some(&p), Command::Retire).unwrap_err().code(), ErrorCode::IllegalTransition);
        let q = Command::Qualify {
            bike_type: "t".into(),
            qualified_on: date("2027-01-01"),
            valid_until: date("2027-02-01"),
        };
        assert_eq!(decide(Some(&p), q).unwrap_err().code(), ErrorCode::IllegalTransition);
    }

    #[test]
    fn erasure_is_final_and_harmless_twice() {
        let p = run(Some(registered()), Command::Erase).unwrap().unwrap();
        assert_eq!(p.status, PilotStatus::Erased);
        assert_eq!(p.personal, None);
        assert!(decide(Some(&p), Command::Erase).unwrap().is_empty());
        assert_eq!(decide(Some(&p), Command::Suspend).unwrap_err().code(), ErrorCode::IllegalTransition);
        let fix = Command::Correct { personal: Sealed("sealed:v1:BBBB".into()), fields: vec!["email".into()] };
        assert_eq!(decide(Some(&p), fix).unwrap_err().code(), ErrorCode::IllegalTransition);
    }

    #[test]
    fn a_correction_replaces_the_sealed_fields_and_names_what_changed() {
        let p = run(Some(registered()), Command::Retire).unwrap().unwrap();
        let new = Sealed("sealed:v1:BBBB".into());
        let fix = Command::Correct { personal: new.clone(), fields: vec!["display_name".into()] };
        let events = decide(Some(&p), fix.clone()).unwrap();
        assert_eq!(events[0].event_type(), "PilotDetailsCorrected");
        assert_eq!(run(Some(p.clone()), fix).unwrap().unwrap().personal, Some(new.clone()));
        let nothing = Command::Correct { personal: new, fields: vec![] };
        assert!(decide(Some(&p), nothing).unwrap().is_empty(), "no change writes nothing");
    }

    #[test]
    fn availability_is_replaced_as_a_whole() {
        let w = WeeklyWindow {
            weekday: domain::types::Weekday::Monday,
            from: "09:00".parse().unwrap(),
            to: "12:00".parse().unwrap(),
        };
        let p =
            run(Some(registered()), Command::DeclareAvailability { weekly: vec![w], carehome_ids: vec![Uuid::nil()] })
                .unwrap()
                .unwrap();
        assert_eq!(p.weekly, vec![w]);
        let p = run(Some(p), Command::DeclareAvailability { weekly: vec![], carehome_ids: vec![] }).unwrap().unwrap();
        assert!(p.weekly.is_empty() && p.carehome_ids.is_empty());
    }
}

//! The audit trails of the care-home service's objects (chapters, care homes, trishaws,
//! residents): their streams and a few words on each of its events, without personal
//! data (`servicekit::audit`).

use serde_json::Value;
use servicekit::audit::{count, field, list, plural, words};
use uuid::Uuid;

use crate::commands::{bikes, carehomes, chapters, residents};

/// The stream of a chapter, care home, trishaw or resident.
pub fn stream_of(object_type: &str, id: Uuid) -> Option<String> {
    match object_type {
        "chapter" => Some(chapters::stream(id)),
        "carehome" => Some(carehomes::stream(id)),
        "bike" => Some(bikes::stream(id)),
        "resident" => Some(residents::stream(id)),
        _ => None,
    }
}

/// A few words on a care-home event, from its public payload (an unknown type, a newer
/// writer's, in words).
pub fn summary(event_type: &str, d: &Value) -> String {
    known(event_type, d).unwrap_or_else(|| words(event_type))
}

/// The words of the event types this service knows.
fn known(event_type: &str, d: &Value) -> Option<String> {
    Some(match event_type {
        "ChapterRegistered" => format!("Chapter registered (time zone {})", field(d, "timezone")),
        "ChapterSettingsChanged" => format!(
            "Settings changed: lead time {} min, default turnaround {} min, reminders [{}] min",
            d["settings"]["lead_time_minutes"],
            d["settings"]["default_turnaround_minutes"],
            list(&d["settings"], "reminder_lead_minutes")
        ),
        "CareHomeRegistered" => format!(
            "Care home registered ({}, turnaround {} min, confirmation {})",
            plural(count(d, "ride_hours"), "ride-hour window"),
            d["turnaround_minutes"],
            if d["requires_confirmation"].as_bool() == Some(true) { "required" } else { "not required" }
        ),
        "RideHoursChanged" => format!("Ride hours changed ({})", plural(count(d, "ride_hours"), "window")),
        "CareHomeClosed" => {
            format!("Closed from {} to {} (exclusive)", field(&d["dates"], "from"), field(&d["dates"], "to"))
        }
        "CoordinatorAssigned" => format!("Coordinator {} assigned", field(d, "user_id")),
        "CoordinatorRemoved" => format!("Coordinator {} removed", field(d, "user_id")),
        "AdminAppointed" => format!("Person {} appointed network administrator", field(d, "person_id")),
        "AdminRemoved" => format!("Person {} no longer network administrator", field(d, "person_id")),
        "ChapterAdminAppointed" => format!("Person {} appointed chapter administrator", field(d, "person_id")),
        "ChapterAdminRemoved" => format!("Person {} no longer chapter administrator", field(d, "person_id")),
        "InvitationIssued" => {
            format!("Invitation as {} issued, valid until {}", field(d, "role"), field(d, "expires_at"))
        }
        "InvitationRedeemed" => format!("Invitation redeemed by person {}", field(d, "person_id")),
        "InvitationRevoked" => "Invitation revoked".into(),
        "ApiKeyIssued" => format!("API key \"{}\" issued", field(d, "name")),
        "ApiKeyRevoked" => "API key revoked".into(),
        "BikeCommissioned" => format!("Commissioned ({}, {} seats)", field(d, "bike_type"), d["seats"]),
        "BikeIssueReported" => {
            if d["grounding"].as_bool() == Some(true) {
                "Issue reported; the trishaw is grounded".into()
            } else {
                "Issue reported".into()
            }
        }
        "BikeTakenOutOfService" => match d["expected_back"].as_str() {
            Some(b) => format!("Taken out of service, expected back {b}"),
            None => "Taken out of service".into(),
        },
        "BikeRepaired" => "Repaired".into(),
        "BikeReturnedToService" => "Returned to service".into(),
        "BikeRetired" => "Retired".into(),
        "ResidentAdmitted" => "Resident admitted".into(),
        "ResidentConsentRecorded" => {
            format!("Consent recorded (given by {}; scope: {})", field(d, "given_by"), list(d, "scope"))
        }
        "ResidentConsentWithdrawn" => "Consent withdrawn".into(),
        "ResidentMovedOut" => "Moved out".into(),
        "ResidentErased" => "Personal data erased".into(),
        "ResidentDetailsCorrected" => format!("Corrected: {}", list(d, "fields")),
        "CareHomeDetailsCorrected" | "BikeDetailsCorrected" => {
            let fields: Vec<&str> = d
                .as_object()
                .map(|m| m.keys().map(String::as_str).filter(|k| !k.ends_with("_id")).collect())
                .unwrap_or_default();
            format!("Corrected: {}", fields.join(", "))
        }
        "ClosureLifted" => {
            format!("Closure from {} to {} lifted", field(&d["dates"], "from"), field(&d["dates"], "to"))
        }
        "BikeMoved" => format!("Moved from care home {} to {}", field(d, "from_carehome_id"), field(d, "carehome_id")),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::events::CareHomeEvent;
    use serde_json::json;

    #[test]
    fn summaries_hold_facts_and_no_free_text() {
        assert_eq!(
            summary("BikeIssueReported", &json!({"description": "Jens broke it", "grounding": false})),
            "Issue reported"
        );
        assert_eq!(
            summary("BikeTakenOutOfService", &json!({"reason": "Jens broke it", "expected_back": "2027-06-01"})),
            "Taken out of service, expected back 2027-06-01"
        );
    }

    #[test]
    fn every_care_home_event_has_its_own_words() {
        for name in CareHomeEvent::NAMES {
            assert!(known(name, &json!({})).is_some(), "{name} has no summary of its own");
        }
    }

    #[test]
    fn only_its_own_objects_have_streams() {
        let id = Uuid::nil();
        for t in ["chapter", "carehome", "bike", "resident"] {
            assert!(stream_of(t, id).is_some(), "{t}");
        }
        assert_eq!(stream_of("ride", id), None);
    }
}

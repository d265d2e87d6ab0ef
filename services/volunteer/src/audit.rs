//! The audit trails of pilots: their stream and a few words on each volunteer event,
//! without personal data (`servicekit::audit`).

use serde_json::Value;
use servicekit::audit::{count, field, list, plural, words};
use uuid::Uuid;

/// The stream of a pilot.
pub fn stream_of(object_type: &str, id: Uuid) -> Option<String> {
    (object_type == "pilot").then(|| crate::grpc::stream(id))
}

/// A few words on a volunteer event, from its public payload (an unknown type, a newer
/// writer's, in words).
pub fn summary(event_type: &str, d: &Value) -> String {
    known(event_type, d).unwrap_or_else(|| words(event_type))
}

/// The words of the event types this service knows.
fn known(event_type: &str, d: &Value) -> Option<String> {
    Some(match event_type {
        "PilotRegistered" => "Pilot registered".into(),
        "PilotQualified" => format!("Qualified for {} until {}", field(d, "bike_type"), field(d, "valid_until")),
        "PilotQualificationRenewed" => {
            format!("Qualification for {} renewed until {}", field(d, "bike_type"), field(d, "valid_until"))
        }
        "PilotSuspended" => "Suspended".into(),
        "PilotReinstated" => "Reinstated".into(),
        "PilotRetired" => "Retired".into(),
        "PilotAvailabilityDeclared" => format!(
            "Availability declared ({}, {})",
            plural(count(d, "weekly"), "weekly window"),
            plural(count(d, "carehome_ids"), "care home")
        ),
        "PilotErased" => "Personal data erased".into(),
        "PilotDetailsCorrected" => format!("Corrected: {}", list(d, "fields")),
        "PilotAccountLinked" => format!("Linked to person {}", field(d, "person_id")),
        "PilotAccountUnlinked" => format!("Unlinked from person {}", field(d, "person_id")),
        "InvitationIssued" => format!("Invitation issued, valid until {}", field(d, "expires_at")),
        "InvitationRedeemed" => format!("Invitation redeemed by person {}", field(d, "person_id")),
        "InvitationRevoked" => "Invitation revoked".into(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::events::VolunteerEvent;
    use serde_json::json;

    #[test]
    fn every_volunteer_event_has_its_own_words() {
        for name in VolunteerEvent::NAMES {
            assert!(known(name, &json!({})).is_some(), "{name} has no summary of its own");
        }
        assert_eq!(
            summary("PilotQualified", &json!({"bike_type": "trishaw", "valid_until": "2028-01-01"})),
            "Qualified for trishaw until 2028-01-01"
        );
    }

    #[test]
    fn only_pilots_have_streams() {
        assert_eq!(stream_of("pilot", Uuid::nil()), Some(crate::grpc::stream(Uuid::nil())));
        assert_eq!(stream_of("ride", Uuid::nil()), None);
    }
}

//! The audit trails of booking's objects (rides and ride requests): their streams and a
//! few words on each booking event, without personal data (`servicekit::audit`).

use serde_json::Value;
use servicekit::audit::{count, field, plural, words};
use uuid::Uuid;

/// The stream of a ride or a ride request.
pub fn stream_of(object_type: &str, id: Uuid) -> Option<String> {
    match object_type {
        "ride" => Some(crate::rides::ride_stream(id)),
        "ride_request" => Some(crate::requests::request_stream(id)),
        "ride_series" => Some(crate::series::series_stream(id)),
        _ => None,
    }
}

/// A few words on a booking event, from its public payload (an unknown type, a newer
/// writer's, in words).
pub fn summary(event_type: &str, d: &Value) -> String {
    known(event_type, d).unwrap_or_else(|| words(event_type))
}

/// The words of the event types this service knows.
fn known(event_type: &str, d: &Value) -> Option<String> {
    Some(match event_type {
        "RideBooked" => format!(
            "Ride booked ({}) for {}, {} min, {}; status {}",
            field(d, "kind"),
            field(d, "start"),
            d["duration_minutes"],
            plural(count(d, "riders"), "rider"),
            field(d, "status")
        ),
        "RideConfirmed" => "Ride confirmed by the care home".into(),
        "RiderAddedToRoster" => "A rider was added to the roster".into(),
        "RiderRemovedFromRoster" => format!("A rider left the roster ({})", field(d, "cause")),
        "ResidentWaitlisted" => "A resident joined the waitlist".into(),
        "ResidentLeftWaitlist" => format!("A resident left the waitlist ({})", field(d, "cause")),
        "RiderPromotedFromWaitlist" => match count(d, "skipped") {
            0 => "A waiting resident took the freed seat".into(),
            n => format!("A waiting resident took the freed seat ({} passed over)", n),
        },
        "RideRescheduled" => format!("Ride rescheduled to {}, {} min", field(d, "start"), d["duration_minutes"]),
        "RideCancelled" => format!("Ride cancelled (reason: {})", field(d, "reason")),
        "RideStarted" => format!("Ride started at {}", field(d, "at")),
        "RiderCheckedIn" => "A rider was checked in".into(),
        "RideCompleted" => format!("Ride completed at {}, {} km", field(d, "ended_at"), d["distance_km"]),
        "RideMarkedNoShow" => match d["by"].as_str() {
            Some("pilot") => "Ride marked as no-show: the pilot did not come".into(),
            _ => "Ride marked as no-show: the riders did not come".into(),
        },
        "RideRecorded" => format!(
            "Ride recorded after the fact: {} to {}, {} km, {}",
            field(d, "started_at"),
            field(d, "ended_at"),
            d["distance_km"],
            plural(count(d, "riders"), "rider")
        ),
        "RideCorrected" => {
            let fields: Vec<&str> = d
                .as_object()
                .map(|m| m.keys().map(String::as_str).filter(|k| *k != "ride_id").collect())
                .unwrap_or_default();
            format!("Ride corrected: {}", fields.join(", "))
        }
        "RideReminderSent" => format!("Reminder sent {} min before the start", d["lead_minutes"]),
        "RideRequested" => format!(
            "Ride requested for {}, between {} and {}, {} min",
            plural(count(d, "resident_ids"), "resident"),
            field(d, "window_from"),
            field(d, "window_to"),
            d["duration_minutes"]
        ),
        "RideRequestClaimed" => format!("Request claimed: ride {} booked", field(d, "ride_id")),
        "RideRequestWithdrawn" => "Request withdrawn by the care home".into(),
        "RideRequestExpired" => "Request expired unclaimed".into(),
        "RideRequestOffered" => {
            format!("Request offered to {} (round {})", plural(count(d, "pilot_ids"), "pilot"), d["round"])
        }
        "DayCancelledForWeather" => format!("Day cancelled for weather ({})", field(d, "date")),
        "RideSeriesPlanned" => format!(
            "Ride series planned from {} at {} ({}), every {} week(s) on {}, {} min, {}",
            field(d, "start"),
            field(d, "local_time"),
            field(d, "timezone"),
            d["recurrence"]["interval_weeks"],
            d["recurrence"]["weekdays"]
                .as_array()
                .map_or(String::new(), |w| { w.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ") }),
            d["duration_minutes"],
            plural(count(d, "riders"), "rider")
        ),
        "RideSeriesOccurrenceBooked" => format!("{}: ride {} booked", field(d, "date"), field(d, "ride_id")),
        "RideSeriesOccurrenceSkipped" => format!("{}: not booked ({})", field(d, "date"), field(d, "code")),
        "RideSeriesCancelled" => format!(
            "Ride series cancelled from {} (reason: {}), {}",
            field(d, "from"),
            field(d, "reason"),
            plural(count(d, "rides"), "ride")
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::events::BookingEvent;
    use serde_json::json;

    #[test]
    fn summaries_hold_facts_and_no_free_text() {
        let d = json!({"ride_id": "r", "kind": "pleasure", "status": "booked", "start": "2027-05-03T08:00:00Z",
            "duration_minutes": 60, "riders": ["a", "b"]});
        assert_eq!(
            summary("RideBooked", &d),
            "Ride booked (pleasure) for 2027-05-03T08:00:00Z, 60 min, 2 riders; status booked"
        );
        let cancelled = json!({"reason": "weather", "by_role": "pilot", "note": "Jens was ill"});
        assert_eq!(summary("RideCancelled", &cancelled), "Ride cancelled (reason: weather)");
        assert_eq!(summary("SomethingNewHappened", &json!({})), "Something new happened");
    }

    #[test]
    fn every_public_booking_event_has_its_own_words() {
        for name in BookingEvent::NAMES.iter().filter(|n| !domain::events::INTERNAL_EVENT_TYPES.contains(n)) {
            assert!(known(name, &json!({})).is_some(), "{name} has no summary of its own");
        }
    }

    #[test]
    fn only_its_own_objects_have_streams() {
        let id = Uuid::nil();
        assert_eq!(stream_of("ride", id), Some(crate::rides::ride_stream(id)));
        assert!(stream_of("ride_request", id).is_some());
        assert_eq!(stream_of("pilot", id), None);
    }
}

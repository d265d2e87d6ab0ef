//! Value types of the domain, validated at construction so that services never handle raw
//! strings: weekdays, local clock times, ride hours, reasons, kinds, consent, sealed text.

use std::fmt;
use std::str::FromStr;

use chrono::{NaiveDate, NaiveTime};
use serde::{Deserialize, Serialize};

/// A value that failed validation, with the field it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    /// The offending field, as a JSON pointer relative to the request body (`/ride_hours/0/opens`).
    pub field: String,
    /// What is wrong, in English.
    pub message: String,
}

impl Invalid {
    /// A validation failure of `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Invalid { field: field.into(), message: message.into() }
    }
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(format!(
                        "must be one of {}",
                        [$($text),+].join(", ")
                    )),
                }
            }
        }
    };
}

string_enum!(
    /// A day of the week, lowercase English on the wire.
    Weekday {
        /// Monday.
        Monday = "monday",
        /// Tuesday.
        Tuesday = "tuesday",
        /// Wednesday.
        Wednesday = "wednesday",
        /// Thursday.
        Thursday = "thursday",
        /// Friday.
        Friday = "friday",
        /// Saturday.
        Saturday = "saturday",
        /// Sunday.
        Sunday = "sunday",
    }
);

impl From<chrono::Weekday> for Weekday {
    fn from(w: chrono::Weekday) -> Self {
        use chrono::Weekday as W;
        match w {
            W::Mon => Weekday::Monday,
            W::Tue => Weekday::Tuesday,
            W::Wed => Weekday::Wednesday,
            W::Thu => Weekday::Thursday,
            W::Fri => Weekday::Friday,
            W::Sat => Weekday::Saturday,
            W::Sun => Weekday::Sunday,
        }
    }
}

string_enum!(
    /// Why a ride was cancelled.
    CancellationReason {
        /// Weather.
        Weather = "weather",
        /// The rider (ill, unwilling).
        Rider = "rider",
        /// The care home.
        Facility = "facility",
        /// No pilot.
        Volunteer = "volunteer",
        /// The trishaw is broken.
        Equipment = "equipment",
        /// Nobody left on the roster.
        NoRiders = "no_riders",
    }
);

string_enum!(
    /// The three kinds of ride.
    RideKind {
        /// Starts and ends at the care home; at most `seats` riders.
        Pleasure = "pleasure",
        /// A block of consecutive short trips; roster of any length, each trip at most `seats`.
        Event = "event",
        /// From a pickup to a drop-off address; a round trip is two linked legs.
        Functional = "functional",
    }
);

string_enum!(
    /// Where a ride stands in its life cycle.
    RideStatus {
        /// The care home must confirm; the slot is held.
        PendingConfirmation = "pending_confirmation",
        /// Booked.
        Booked = "booked",
        /// Under way.
        Started = "started",
        /// Done.
        Completed = "completed",
        /// Cancelled (stays cancelled).
        Cancelled = "cancelled",
        /// The ride did not happen because nobody turned up.
        NoShow = "no_show",
    }
);

impl RideStatus {
    /// True for rides that still hold their slot and can change.
    pub fn is_active(self) -> bool {
        matches!(self, RideStatus::PendingConfirmation | RideStatus::Booked | RideStatus::Started)
    }
}

string_enum!(
    /// What a consent covers.
    ConsentScope {
        /// Taking part in rides.
        Rides = "rides",
        /// Stories written about rides.
        Stories = "stories",
    }
);

string_enum!(
    /// Who gave consent.
    GivenBy {
        /// The resident.
        Resident = "resident",
        /// A relative.
        Relative = "relative",
        /// A legal guardian.
        Guardian = "guardian",
    }
);

string_enum!(
    /// A trishaw's service status.
    BikeStatus {
        /// Bookable.
        InService = "in_service",
        /// Temporarily unavailable.
        OutOfService = "out_of_service",
        /// Gone for good.
        Retired = "retired",
    }
);

string_enum!(
    /// A pilot's status.
    PilotStatus {
        /// Bookable (with a valid qualification).
        Active = "active",
        /// May read but not book.
        Suspended = "suspended",
        /// No longer a pilot.
        Retired = "retired",
        /// Personal data erased.
        Erased = "erased",
    }
);

string_enum!(
    /// A resident's status.
    ResidentStatus {
        /// Lives at the care home.
        LivingHere = "living_here",
        /// Has moved out.
        MovedOut = "moved_out",
        /// Personal data erased.
        Erased = "erased",
    }
);

string_enum!(
    /// Where a ride request stands.
    RideRequestStatus {
        /// Waiting for a pilot.
        Open = "open",
        /// A pilot claimed it and a ride was booked.
        Claimed = "claimed",
        /// The care home withdrew it.
        Withdrawn = "withdrawn",
        /// Its window passed unclaimed.
        Expired = "expired",
    }
);

/// A local clock time `"HH:MM"` (24 h); `"24:00"` is accepted as the end of the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LocalTime {
    minutes: u16,
}

impl LocalTime {
    /// Minutes after local midnight (0..=1440).
    pub fn minutes(self) -> u32 {
        u32::from(self.minutes)
    }

    /// The clock time, `None` for `24:00`.
    pub fn naive(self) -> Option<NaiveTime> {
        NaiveTime::from_hms_opt(self.minutes() / 60, self.minutes() % 60, 0)
    }

    /// From minutes after midnight.
    pub fn from_minutes(m: u32) -> Option<LocalTime> {
        (m <= 1440).then_some(LocalTime { minutes: m as u16 })
    }
}

impl FromStr for LocalTime {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not a local time \"HH:MM\"");
        let (h, m) = s.split_once(':').ok_or_else(bad)?;
        if h.len() != 2 || m.len() != 2 {
            return Err(bad());
        }
        let h: u16 = h.parse().map_err(|_| bad())?;
        let m: u16 = m.parse().map_err(|_| bad())?;
        if m >= 60 || h > 24 || (h == 24 && m != 0) {
            return Err(bad());
        }
        Ok(LocalTime { minutes: h * 60 + m })
    }
}

impl fmt::Display for LocalTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.minutes / 60, self.minutes % 60)
    }
}

impl Serialize for LocalTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LocalTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// Opening hours for rides on one weekday, in the care home's local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RideHours {
    /// The weekday.
    pub weekday: Weekday,
    /// When rides may start.
    pub opens: LocalTime,
    /// When rides must have ended.
    pub closes: LocalTime,
}

/// A weekly window of a pilot's availability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeeklyWindow {
    /// The weekday.
    pub weekday: Weekday,
    /// From (local).
    pub from: LocalTime,
    /// To (local).
    pub to: LocalTime,
}

/// A date range, `from` inclusive, `to` exclusive (the API's convention for periods).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DateRange {
    /// First day.
    pub from: NaiveDate,
    /// First day after the range.
    pub to: NaiveDate,
}

impl DateRange {
    /// Whether `d` lies in the range.
    pub fn contains(&self, d: NaiveDate) -> bool {
        self.from <= d && d < self.to
    }
}

/// Text encrypted with one subject's key (see the keystore), as stored in events and read
/// models: `sealed:v1:<base64>`. It never holds plain personal data.
/// Public feeds leave sealed values out; a reader of such a payload sees the empty default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Sealed(pub String);

impl Sealed {
    /// The prefix every sealed value carries, so feeds can strip them without a schema.
    pub const PREFIX: &'static str = "sealed:v1:";
}

/// Parses a trimmed, non-empty label of at most `max` characters.
pub fn parse_label(field: &str, value: &str, max: usize) -> Result<String, Invalid> {
    let v = value.trim();
    if v.is_empty() {
        return Err(Invalid::new(field, "must not be empty"));
    }
    if v.chars().count() > max {
        return Err(Invalid::new(field, format!("must be at most {max} characters")));
    }
    if v.chars().any(|c| c.is_control()) {
        return Err(Invalid::new(field, "must not contain control characters"));
    }
    Ok(v.to_owned())
}

/// Parses a UUID id field.
pub fn parse_id(field: &str, value: &str) -> Result<uuid::Uuid, Invalid> {
    uuid::Uuid::parse_str(value).map_err(|_| Invalid::new(field, "must be a UUID"))
}

/// Parses a `"YYYY-MM-DD"` date.
pub fn parse_date(field: &str, value: &str) -> Result<NaiveDate, Invalid> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| Invalid::new(field, "must be a date \"YYYY-MM-DD\""))
}

/// Parses an IANA time zone name.
pub fn parse_timezone(field: &str, value: &str) -> Result<chrono_tz::Tz, Invalid> {
    value
        .parse::<chrono_tz::Tz>()
        .map_err(|_| Invalid::new(field, "must be an IANA time zone such as Europe/Copenhagen"))
}

/// Parses a string enum value.
pub fn parse_enum<T: FromStr<Err = String>>(field: &str, value: &str) -> Result<T, Invalid> {
    value.parse().map_err(|m| Invalid::new(field, m))
}

/// Parses weekly ride hours: valid weekdays and times, `opens < closes`, no overlaps.
pub fn parse_ride_hours<'a>(
    field: &str,
    rows: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
) -> Result<Vec<RideHours>, Invalid> {
    let mut out: Vec<RideHours> = Vec::new();
    for (i, (weekday, opens, closes)) in rows.into_iter().enumerate() {
        let weekday = parse_enum(&format!("{field}/{i}/weekday"), weekday)?;
        let opens: LocalTime = opens.parse().map_err(|m| Invalid::new(format!("{field}/{i}/opens"), m))?;
        let closes: LocalTime = closes.parse().map_err(|m| Invalid::new(format!("{field}/{i}/closes"), m))?;
        if opens >= closes {
            return Err(Invalid::new(format!("{field}/{i}/closes"), "must be after opens"));
        }
        if out.iter().any(|h| h.weekday == weekday && h.opens < closes && opens < h.closes) {
            return Err(Invalid::new(format!("{field}/{i}"), "overlaps other ride hours of that weekday"));
        }
        out.push(RideHours { weekday, opens, closes });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_times_parse_strictly() {
        assert_eq!("09:30".parse::<LocalTime>().unwrap().minutes(), 570);
        assert_eq!("24:00".parse::<LocalTime>().unwrap().minutes(), 1440);
        for bad in ["9:30", "24:01", "12:60", "ab:cd", "", "12:3"] {
            assert!(bad.parse::<LocalTime>().is_err(), "{bad}");
        }
        assert_eq!("07:05".parse::<LocalTime>().unwrap().to_string(), "07:05");
    }

    #[test]
    fn enums_name_their_choices_when_refusing() {
        let e = parse_enum::<CancellationReason>("/reason", "rain").unwrap_err();
        assert_eq!(e.field, "/reason");
        assert!(e.message.contains("weather"));
        assert_eq!("no_riders".parse::<CancellationReason>().unwrap(), CancellationReason::NoRiders);
    }

    #[test]
    fn ride_hours_refuse_overlaps_and_inverted_windows() {
        let ok = parse_ride_hours("/ride_hours", [("monday", "09:00", "12:00"), ("monday", "13:00", "17:00")]);
        assert_eq!(ok.unwrap().len(), 2);
        let e = parse_ride_hours("/ride_hours", [("monday", "09:00", "12:00"), ("monday", "11:00", "17:00")]);
        assert_eq!(e.unwrap_err().field, "/ride_hours/1");
        let e = parse_ride_hours("/ride_hours", [("tuesday", "12:00", "09:00")]);
        assert_eq!(e.unwrap_err().field, "/ride_hours/0/closes");
        let e = parse_ride_hours("/ride_hours", [("funday", "09:00", "10:00")]);
        assert_eq!(e.unwrap_err().field, "/ride_hours/0/weekday");
    }

    #[test]
    fn labels_are_trimmed_and_bounded() {
        assert_eq!(parse_label("/name", "  Lyngby  ", 10).unwrap(), "Lyngby");
        assert!(parse_label("/name", "   ", 10).is_err());
        assert!(parse_label("/name", "abcdefghijk", 10).is_err());
        assert!(parse_label("/name", "a\u{0}b", 10).is_err());
    }
}

//! The events each service publishes: the names of `domain.md`, payloads with a schema
//! version. They are the services' public contract: other services learn of them only
//! through the feeds. Personal fields are `Sealed` (ciphertext) and never in clear.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::types::*;

/// An event type of a service: its name and how to read it back from the log.
pub trait DomainEvent: Sized {
    /// The event's name, e.g. `RideBooked`.
    fn event_type(&self) -> &'static str;
    /// The payload as JSON.
    fn to_json(&self) -> serde_json::Value;
    /// Reads a stored event; `Ok(None)` for a type this enum does not know (a newer writer).
    fn from_stored(event_type: &str, payload: &str) -> Result<Option<Self>, serde_json::Error>;
}

macro_rules! events {
    ($(#[$meta:meta])* $enum:ident { $($(#[$vmeta:meta])* $name:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        pub enum $enum {
            $($(#[$vmeta])* $name($name)),+
        }

        impl $enum {
            /// Every event name of this service.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($name)),+];
        }

        impl DomainEvent for $enum {
            fn event_type(&self) -> &'static str {
                match self { $($enum::$name(_) => stringify!($name)),+ }
            }

            fn to_json(&self) -> serde_json::Value {
                match self {
                    $($enum::$name(e) => serde_json::to_value(e).expect("events serialise")),+
                }
            }

            fn from_stored(event_type: &str, payload: &str) -> Result<Option<Self>, serde_json::Error> {
                Ok(match event_type {
                    $(stringify!($name) => Some($enum::$name(serde_json::from_str(payload)?)),)+
                    _ => None,
                })
            }
        }

        $(
            impl From<$name> for $enum {
                fn from(e: $name) -> Self {
                    $enum::$name(e)
                }
            }
        )+
    };
}

// ---------------------------------------------------------------- volunteer

/// A pilot's personal fields, sealed together with the pilot's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PilotPersonal {
    /// Name as shown.
    pub display_name: String,
    /// E-mail, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Phone, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

/// A pilot joined a chapter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PilotRegistered {
    /// The pilot.
    pub pilot_id: Uuid,
    /// Their chapter.
    pub chapter_id: Uuid,
    /// Sealed `PilotPersonal`.
    #[serde(default)]
    pub personal: Sealed,
}

/// A pilot was trained for a trishaw type (also the payload of a renewal).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PilotQualified {
    /// The pilot.
    pub pilot_id: Uuid,
    /// The trishaw type.
    pub bike_type: String,
    /// Training date.
    pub qualified_on: NaiveDate,
    /// Valid through this date (inclusive, chapter's zone).
    pub valid_until: NaiveDate,
}

/// Refresher training renewed a qualification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PilotQualificationRenewed {
    /// The pilot.
    pub pilot_id: Uuid,
    /// The trishaw type.
    pub bike_type: String,
    /// Training date.
    pub qualified_on: NaiveDate,
    /// New end of validity.
    pub valid_until: NaiveDate,
}

/// A pilot was suspended (may read, may not book).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PilotSuspended {
    /// The pilot.
    pub pilot_id: Uuid,
}

/// A suspension ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PilotReinstated {
    /// The pilot.
    pub pilot_id: Uuid,
}

/// A pilot retired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PilotRetired {
    /// The pilot.
    pub pilot_id: Uuid,
}

/// A pilot said when and where they can ride.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PilotAvailabilityDeclared {
    /// The pilot.
    pub pilot_id: Uuid,
    /// Weekly windows.
    pub weekly: Vec<WeeklyWindow>,
    /// Care homes they ride at.
    pub carehome_ids: Vec<Uuid>,
}

/// A pilot's personal data was erased (their key deleted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PilotErased {
    /// The pilot.
    pub pilot_id: Uuid,
}

/// A pilot's personal fields were corrected (GDPR Art. 16). The whole corrected
/// `PilotPersonal` is sealed under the pilot's key, like the registration's, so erasure
/// reaches the old values and the new; `fields` names what changed (never the values).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PilotDetailsCorrected {
    /// The pilot.
    pub pilot_id: Uuid,
    /// Sealed `PilotPersonal`, as it is after the correction.
    #[serde(default)]
    pub personal: Sealed,
    /// The fields changed (`display_name`, `email`, `phone`).
    pub fields: Vec<String>,
}

events!(
    /// The volunteer service's events.
    VolunteerEvent {
        /// See the struct.
        PilotRegistered,
        /// See the struct.
        PilotQualified,
        /// See the struct.
        PilotQualificationRenewed,
        /// See the struct.
        PilotSuspended,
        /// See the struct.
        PilotReinstated,
        /// See the struct.
        PilotRetired,
        /// See the struct.
        PilotAvailabilityDeclared,
        /// See the struct.
        PilotErased,
        /// See the struct.
        PilotDetailsCorrected,
        /// See the struct.
        PilotAccountLinked,
        /// See the struct.
        PilotAccountUnlinked,
        /// See the struct.
        InvitationIssued,
        /// See the struct.
        InvitationRedeemed,
        /// See the struct.
        InvitationRevoked,
    }
);

// ---------------------------------------------------------------- care home

/// A chapter's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChapterSettings {
    /// Minimum minutes between booking and the ride's start.
    pub lead_time_minutes: u32,
    /// Turnaround for care homes that set none.
    pub default_turnaround_minutes: u32,
    /// Reminder lead times, minutes before a ride.
    pub reminder_lead_minutes: Vec<u32>,
    /// The riding season, if the chapter has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ride_season: Option<DateRange>,
    /// How many days back a pilot may record a ride after the fact (0–90).
    #[serde(default = "ChapterSettings::default_record_window_days")]
    pub record_window_days: u32,
    /// How far ahead a recurring series books its occurrences, in days (7–365).
    #[serde(default = "ChapterSettings::default_series_horizon_days")]
    pub series_horizon_days: u32,
    /// How many pilots a ride request is offered to at once (1–50).
    #[serde(default = "ChapterSettings::default_offer_fanout")]
    pub offer_fanout: u32,
}

impl ChapterSettings {
    /// 14 days.
    pub fn default_record_window_days() -> u32 {
        14
    }

    /// 56 days (eight weeks).
    pub fn default_series_horizon_days() -> u32 {
        56
    }

    /// Five pilots.
    pub fn default_offer_fanout() -> u32 {
        5
    }
}

impl Default for ChapterSettings {
    fn default() -> Self {
        ChapterSettings {
            lead_time_minutes: 60,
            default_turnaround_minutes: 15,
            reminder_lead_minutes: vec![1440, 60],
            ride_season: None,
            record_window_days: Self::default_record_window_days(),
            series_horizon_days: Self::default_series_horizon_days(),
            offer_fanout: Self::default_offer_fanout(),
        }
    }
}

/// A chapter was founded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChapterRegistered {
    /// The chapter.
    pub chapter_id: Uuid,
    /// Its name.
    pub name: String,
    /// IANA zone.
    pub timezone: String,
    /// Settings.
    pub settings: ChapterSettings,
}

/// A chapter changed its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChapterSettingsChanged {
    /// The chapter.
    pub chapter_id: Uuid,
    /// The new settings.
    pub settings: ChapterSettings,
}

/// A care home joined a chapter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CareHomeRegistered {
    /// The care home.
    pub carehome_id: Uuid,
    /// Its chapter.
    pub chapter_id: Uuid,
    /// Its name.
    pub name: String,
    /// Its (institutional) address.
    pub address: String,
    /// Its own zone, if it differs from the chapter's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Weekly ride hours, local time.
    pub ride_hours: Vec<RideHours>,
    /// Minimum minutes between two rides on one trishaw.
    pub turnaround_minutes: u32,
    /// Whether pilot-booked rides wait for the coordinator's confirmation.
    pub requires_confirmation: bool,
    /// Whether a pilot may put residents on its own rides (otherwise only those named in a
    /// request it claimed); absent from events written before the rule: false.
    #[serde(default)]
    pub pilots_choose_riders: bool,
}

/// A care home changed its weekly ride hours.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RideHoursChanged {
    /// The care home.
    pub carehome_id: Uuid,
    /// The new hours.
    pub ride_hours: Vec<RideHours>,
}

/// A care home closed for a date range (its rides then are cancelled, reason `facility`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CareHomeClosed {
    /// The care home.
    pub carehome_id: Uuid,
    /// The closed days, `to` exclusive.
    pub dates: DateRange,
    /// Why (institutional, e.g. "outbreak", "renovation"); sealed under the care home's
    /// key, so absent from the public payload.
    #[serde(default)]
    pub reason: String,
}

/// A care home's details were corrected. Only the changed fields are present; a change of
/// turnaround applies to the rides booked after it (booking cancels, reason `facility`, a
/// booked future ride the new turnaround would make overlap, as a booking that slipped in
/// past the gateway's check).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct CareHomeDetailsCorrected {
    /// The care home.
    pub carehome_id: Uuid,
    /// New name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New institutional address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// New turnaround.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turnaround_minutes: Option<u32>,
    /// New confirmation policy (for new bookings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires_confirmation: Option<bool>,
    /// New riders'-names rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pilots_choose_riders: Option<bool>,
}

/// A closure was lifted (rides it cancelled stay cancelled).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClosureLifted {
    /// The care home.
    pub carehome_id: Uuid,
    /// The closure: the id of its `CareHomeClosed` event.
    pub closure_id: Uuid,
    /// Its closed days, `to` exclusive (what followers fold by).
    pub dates: DateRange,
}

/// A trishaw was put into service at a care home.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BikeCommissioned {
    /// The trishaw.
    pub bike_id: Uuid,
    /// Its care home.
    pub carehome_id: Uuid,
    /// Its name.
    pub name: String,
    /// Its type, matched against pilots' qualifications.
    pub bike_type: String,
    /// Rider seats (1 or 2).
    pub seats: u32,
}

/// Someone reported a problem with a trishaw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BikeIssueReported {
    /// The trishaw.
    pub bike_id: Uuid,
    /// What is wrong with the equipment; sealed under the trishaw's key, so absent from
    /// the public payload.
    #[serde(default)]
    pub description: String,
    /// Whether it takes the trishaw out of service.
    pub grounding: bool,
}

/// A trishaw was taken out of service (its future rides are cancelled, reason `equipment`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BikeTakenOutOfService {
    /// The trishaw.
    pub bike_id: Uuid,
    /// Why; sealed under the trishaw's key, so absent from the public payload.
    #[serde(default)]
    pub reason: String,
    /// When it should be back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_back: Option<NaiveDate>,
}

/// A trishaw was repaired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BikeRepaired {
    /// The trishaw.
    pub bike_id: Uuid,
    /// What was done; sealed under the trishaw's key, so absent from the public payload.
    #[serde(default)]
    pub note: String,
}

/// A trishaw is bookable again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BikeReturnedToService {
    /// The trishaw.
    pub bike_id: Uuid,
}

/// A trishaw was retired (its future rides are cancelled, reason `equipment`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BikeRetired {
    /// The trishaw.
    pub bike_id: Uuid,
    /// Why; sealed under the trishaw's key, so absent from the public payload.
    #[serde(default)]
    pub reason: String,
}

/// A trishaw's details were corrected. Only the changed fields are present. Booking
/// cancels (reason `equipment`) a booked future ride the change breaks (more riders than
/// seats, a pilot not qualified for the new type), as a booking that slipped in past the
/// gateway's check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct BikeDetailsCorrected {
    /// The trishaw.
    pub bike_id: Uuid,
    /// New name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bike_type: Option<String>,
    /// New number of seats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seats: Option<u32>,
}

/// A trishaw moved to another care home of its chapter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BikeMoved {
    /// The trishaw.
    pub bike_id: Uuid,
    /// Where it was.
    pub from_carehome_id: Uuid,
    /// Where it is now.
    pub carehome_id: Uuid,
}

/// A resident's personal fields, sealed with the resident's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ResidentPersonal {
    /// Name as shown.
    pub display_name: String,
    /// Care notes: mobility, language, what they love to see.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

/// A resident was admitted to a care home's programme.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResidentAdmitted {
    /// The resident.
    pub resident_id: Uuid,
    /// Their care home.
    pub carehome_id: Uuid,
    /// Sealed `ResidentPersonal`.
    #[serde(default)]
    pub personal: Sealed,
}

/// A resident's personal fields were corrected (GDPR Art. 16): the whole corrected
/// `ResidentPersonal` sealed under the resident's key, so erasure reaches old values and
/// new; `fields` names what changed (never the values).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResidentDetailsCorrected {
    /// The resident.
    pub resident_id: Uuid,
    /// Sealed `ResidentPersonal`, as it is after the correction.
    #[serde(default)]
    pub personal: Sealed,
    /// The fields changed (`display_name`, `notes`).
    pub fields: Vec<String>,
}

/// Consent was recorded (replacing any earlier one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResidentConsentRecorded {
    /// The resident.
    pub resident_id: Uuid,
    /// Who gave it.
    pub given_by: GivenBy,
    /// When.
    pub given_at: DateTime<Utc>,
    /// What it covers.
    pub scope: Vec<ConsentScope>,
}

/// Consent was withdrawn (the resident leaves future rosters).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResidentConsentWithdrawn {
    /// The resident.
    pub resident_id: Uuid,
}

/// A resident moved out (they leave future rosters).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResidentMovedOut {
    /// The resident.
    pub resident_id: Uuid,
}

/// A resident's personal data was erased (their key deleted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResidentErased {
    /// The resident.
    pub resident_id: Uuid,
}

/// A user became a coordinator of a care home.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoordinatorAssigned {
    /// The care home.
    pub carehome_id: Uuid,
    /// The coordinator: a pseudonymous user id (a token's `sub`), never a name or e-mail.
    pub user_id: String,
}

/// A user stopped being a coordinator of a care home.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoordinatorRemoved {
    /// The care home.
    pub carehome_id: Uuid,
    /// The former coordinator: a pseudonymous user id (a token's `sub`), never a name or e-mail.
    pub user_id: String,
}

/// A person became an administrator of the whole network (stream `admins`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminAppointed {
    /// The grant.
    pub role_grant_id: Uuid,
    /// The person.
    pub person_id: Uuid,
    /// Who granted it (a person or actor id; `bootstrap` for the first).
    pub granted_by: String,
}

/// A person stopped being a network administrator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminRemoved {
    /// The grant.
    pub role_grant_id: Uuid,
    /// The person.
    pub person_id: Uuid,
}

/// A person became an administrator of a chapter (on the chapter's stream).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChapterAdminAppointed {
    /// The grant.
    pub role_grant_id: Uuid,
    /// The chapter.
    pub chapter_id: Uuid,
    /// The person.
    pub person_id: Uuid,
    /// Who granted it.
    pub granted_by: String,
}

/// A person stopped being an administrator of a chapter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChapterAdminRemoved {
    /// The grant.
    pub role_grant_id: Uuid,
    /// The chapter.
    pub chapter_id: Uuid,
    /// The person.
    pub person_id: Uuid,
}

/// An invitation to a role was issued (its own stream; only the code's hash is kept).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvitationIssued {
    /// The invitation (and its stream).
    pub invitation_id: Uuid,
    /// The role it grants.
    pub role: String,
    /// Scope: chapter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chapter_id: Option<Uuid>,
    /// Scope: care home.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carehome_id: Option<Uuid>,
    /// Scope: pilot record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pilot_id: Option<Uuid>,
    /// SHA-256 of the code's secret part (hex).
    pub code_sha256: String,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
    /// Until when it can be redeemed.
    pub expires_at: DateTime<Utc>,
    /// Who issued it.
    pub issued_by: String,
}

/// An invitation was redeemed by a person, making a grant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvitationRedeemed {
    /// The invitation.
    pub invitation_id: Uuid,
    /// The person.
    pub person_id: Uuid,
    /// The grant made.
    pub role_grant_id: Uuid,
}

/// An invitation was withdrawn before anyone redeemed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvitationRevoked {
    /// The invitation.
    pub invitation_id: Uuid,
}

/// A pilot record was linked to the person who signs in as that pilot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PilotAccountLinked {
    /// The pilot.
    pub pilot_id: Uuid,
    /// The person.
    pub person_id: Uuid,
    /// The grant.
    pub role_grant_id: Uuid,
    /// Who granted it (the invitation's issuer).
    pub granted_by: String,
}

/// A pilot record's link to a person was removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PilotAccountUnlinked {
    /// The pilot.
    pub pilot_id: Uuid,
    /// The person.
    pub person_id: Uuid,
    /// The grant.
    pub role_grant_id: Uuid,
}

/// An API key for an integrator was issued (its own stream; only the key's hash is kept).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyIssued {
    /// The key (and its stream).
    pub api_key_id: Uuid,
    /// What it is for (a name of an integration, never a person's).
    pub name: String,
    /// Scope: a chapter (none: the whole network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chapter_id: Option<Uuid>,
    /// SHA-256 of the key's secret part (hex).
    pub key_sha256: String,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
    /// When it stops working, if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Who issued it.
    pub issued_by: String,
}

/// An API key was revoked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyRevoked {
    /// The key.
    pub api_key_id: Uuid,
}

events!(
    /// The care-home service's events.
    CareHomeEvent {
        /// See the struct.
        ChapterRegistered,
        /// See the struct.
        ChapterSettingsChanged,
        /// See the struct.
        CareHomeRegistered,
        /// See the struct.
        RideHoursChanged,
        /// See the struct.
        CareHomeClosed,
        /// See the struct.
        CareHomeDetailsCorrected,
        /// See the struct.
        ClosureLifted,
        /// See the struct.
        CoordinatorAssigned,
        /// See the struct.
        CoordinatorRemoved,
        /// See the struct.
        AdminAppointed,
        /// See the struct.
        AdminRemoved,
        /// See the struct.
        ChapterAdminAppointed,
        /// See the struct.
        ChapterAdminRemoved,
        /// See the struct.
        InvitationIssued,
        /// See the struct.
        InvitationRedeemed,
        /// See the struct.
        InvitationRevoked,
        /// See the struct.
        ApiKeyIssued,
        /// See the struct.
        ApiKeyRevoked,
        /// See the struct.
        BikeCommissioned,
        /// See the struct.
        BikeIssueReported,
        /// See the struct.
        BikeTakenOutOfService,
        /// See the struct.
        BikeRepaired,
        /// See the struct.
        BikeReturnedToService,
        /// See the struct.
        BikeRetired,
        /// See the struct.
        BikeDetailsCorrected,
        /// See the struct.
        BikeMoved,
        /// See the struct.
        ResidentAdmitted,
        /// See the struct.
        ResidentConsentRecorded,
        /// See the struct.
        ResidentConsentWithdrawn,
        /// See the struct.
        ResidentMovedOut,
        /// See the struct.
        ResidentErased,
        /// See the struct.
        ResidentDetailsCorrected,
    }
);

// ---------------------------------------------------------------- booking

/// Where a functional ride goes; the addresses are sealed with the ride's key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionalRoute {
    /// Sealed pickup address (absent from public feeds).
    #[serde(default)]
    pub pickup: Sealed,
    /// Sealed drop-off address (absent from public feeds).
    #[serde(default)]
    pub dropoff: Sealed,
    /// `outbound` or `return`.
    pub leg: String,
    /// The other leg of a round trip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linked_ride_id: Option<Uuid>,
}

/// A ride was booked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RideBooked {
    /// The ride.
    pub ride_id: Uuid,
    /// Its kind.
    pub kind: RideKind,
    /// `booked`, or `pending_confirmation` where the care home requires it.
    pub status: RideStatus,
    /// The chapter.
    pub chapter_id: Uuid,
    /// The care home.
    pub carehome_id: Uuid,
    /// The trishaw.
    pub bike_id: Uuid,
    /// The pilot.
    pub pilot_id: Uuid,
    /// Start (UTC).
    pub start: DateTime<Utc>,
    /// Length in minutes.
    pub duration_minutes: u32,
    /// Turnaround kept after the ride on its trishaw (the care home's, when booked).
    pub turnaround_minutes: u32,
    /// The roster, in order.
    pub riders: Vec<Uuid>,
    /// Event rides: minutes per trip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trip_minutes: Option<u32>,
    /// Functional rides: where.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<FunctionalRoute>,
    /// The ride request it fulfils.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ride_request_id: Option<Uuid>,
    /// When it was booked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booked_at: Option<DateTime<Utc>>,
    /// An occurrence of a ride series: the series.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ride_series_id: Option<Uuid>,
}

/// The care home confirmed a pending ride.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RideConfirmed {
    /// The ride.
    pub ride_id: Uuid,
}

/// A rider joined a ride's roster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiderAddedToRoster {
    /// The ride.
    pub ride_id: Uuid,
    /// The rider.
    pub resident_id: Uuid,
}

/// A rider left a ride's roster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiderRemovedFromRoster {
    /// The ride.
    pub ride_id: Uuid,
    /// The rider.
    pub resident_id: Uuid,
    /// `removed`, `consent_withdrawn`, `moved_out` or `erased`.
    pub cause: String,
}

/// A resident joined a full ride's waitlist (last in line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResidentWaitlisted {
    /// The ride.
    pub ride_id: Uuid,
    /// The waiting resident.
    pub resident_id: Uuid,
}

/// A resident left a ride's waitlist without a seat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResidentLeftWaitlist {
    /// The ride.
    pub ride_id: Uuid,
    /// The resident.
    pub resident_id: Uuid,
    /// `removed` (by a coordinator), `promoted_elsewhere` (seated on an overlapping ride),
    /// `consent_withdrawn`, `moved_out` or `erased`.
    pub cause: String,
}

/// The first waiting resident who may ride took a seat that freed: off the waitlist and
/// on the roster, in the same append as the change that freed the seat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiderPromotedFromWaitlist {
    /// The ride.
    pub ride_id: Uuid,
    /// The resident now on the roster.
    pub resident_id: Uuid,
    /// Waiting residents passed over because they may not ride it now (busy elsewhere, moved
    /// out, no consent); they keep their place.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Uuid>,
}

/// A ride moved to another slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RideRescheduled {
    /// The ride.
    pub ride_id: Uuid,
    /// New start.
    pub start: DateTime<Utc>,
    /// New length.
    pub duration_minutes: u32,
}

/// A ride was cancelled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RideCancelled {
    /// The ride.
    pub ride_id: Uuid,
    /// Why.
    pub reason: CancellationReason,
    /// The role of who cancelled (`system` for cascades); the actor is in the metadata.
    pub by_role: String,
    /// Sealed free-text note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<Sealed>,
    /// The event that caused a cascade cancellation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caused_by: Option<Uuid>,
    /// When it was cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
}

/// The pilot set off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RideStarted {
    /// The ride.
    pub ride_id: Uuid,
    /// When.
    pub at: DateTime<Utc>,
}

/// A rider was checked in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiderCheckedIn {
    /// The ride.
    pub ride_id: Uuid,
    /// The rider.
    pub resident_id: Uuid,
}

/// A ride was completed and logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RideCompleted {
    /// The ride.
    pub ride_id: Uuid,
    /// When it actually ended.
    pub ended_at: DateTime<Utc>,
    /// Kilometres ridden.
    pub distance_km: f64,
    /// The trishaw's condition afterwards (`ok`, `needs_attention`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bike_condition: Option<String>,
    /// Sealed short story.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub story: Option<Sealed>,
    /// Riders on the roster who did not come (the whole set; they count in no figure).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub absent: Vec<Uuid>,
}

/// Nobody turned up: the riders (`riders`, the default and what events before the field
/// meant) or the pilot (`pilot`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RideMarkedNoShow {
    /// The ride.
    pub ride_id: Uuid,
    /// Who did not come: `riders` or `pilot`.
    #[serde(default = "RideMarkedNoShow::riders")]
    pub by: String,
}

impl RideMarkedNoShow {
    /// `riders`.
    pub fn riders() -> String {
        "riders".into()
    }
}

/// A ride that happened without a booking, recorded after the fact: it is completed from
/// the start. Checked against the facts of its own time (qualification, trishaw status,
/// residence, consent) and, on its actual times, against the other rides of its trishaw,
/// pilot and riders (it holds their schedule streams like a booking, without turnaround).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RideRecorded {
    /// The ride.
    pub ride_id: Uuid,
    /// `pleasure` or `event`.
    pub kind: RideKind,
    /// The chapter.
    pub chapter_id: Uuid,
    /// The trishaw's care home at the time.
    pub carehome_id: Uuid,
    /// The trishaw.
    pub bike_id: Uuid,
    /// The pilot.
    pub pilot_id: Uuid,
    /// When it actually started.
    pub started_at: DateTime<Utc>,
    /// When it actually ended.
    pub ended_at: DateTime<Utc>,
    /// Kilometres ridden.
    pub distance_km: f64,
    /// The riders on it (absent ones included).
    pub riders: Vec<Uuid>,
    /// Riders who did not come.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub absent: Vec<Uuid>,
    /// The trishaw's condition afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bike_condition: Option<String>,
    /// Sealed short story (ride's key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub story: Option<Sealed>,
    /// Sealed note of who recorded it (ride's key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<Sealed>,
}

/// A completed ride was corrected: only the changed facts are present.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RideCorrected {
    /// The ride.
    pub ride_id: Uuid,
    /// Corrected actual start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// Corrected actual end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
    /// Corrected kilometres.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distance_km: Option<f64>,
    /// The whole set of absent riders, when corrected (`[]` clears it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub absent: Option<Vec<Uuid>>,
    /// Sealed note on the correction (ride's key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<Sealed>,
}

/// A reminder went out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RideReminderSent {
    /// The ride.
    pub ride_id: Uuid,
    /// Minutes before the start.
    pub lead_minutes: u32,
}

/// How a ride series recurs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recurrence {
    /// The weekdays it rides on.
    pub weekdays: Vec<Weekday>,
    /// Every N weeks (1: every week).
    pub interval_weeks: u32,
    /// The last local date (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<NaiveDate>,
    /// How many dates, booked or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
}

/// A ride series was planned: the same trishaw, pilot, riders and local wall-clock time on
/// the given weekdays every N weeks. Its occurrences are booked as rides (each under every
/// rule) up to the chapter's `series_horizon_days` ahead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RideSeriesPlanned {
    /// The series.
    pub ride_series_id: Uuid,
    /// The chapter.
    pub chapter_id: Uuid,
    /// The care home.
    pub carehome_id: Uuid,
    /// The trishaw.
    pub bike_id: Uuid,
    /// The pilot.
    pub pilot_id: Uuid,
    /// The first occurrence (UTC).
    pub start: DateTime<Utc>,
    /// The local wall-clock time every occurrence starts at.
    pub local_time: LocalTime,
    /// The zone that time is kept in (the care home's).
    pub timezone: String,
    /// Length in minutes.
    pub duration_minutes: u32,
    /// The roster, in order.
    pub riders: Vec<Uuid>,
    /// Kind (`pleasure` or `event`).
    pub kind: RideKind,
    /// Event rides: minutes per trip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trip_minutes: Option<u32>,
    /// How it recurs.
    pub recurrence: Recurrence,
    /// The role it was planned under (its occurrences are booked as that role's bookings:
    /// a pilot's need the care home's confirmation where it requires it).
    pub planned_by_role: String,
    /// When.
    pub planned_at: DateTime<Utc>,
}

/// Internal to booking: an occurrence of a series was booked as a ride (kept on the
/// series' stream, so that a cancellation and the booking of a date never cross).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RideSeriesOccurrenceBooked {
    /// The series.
    pub ride_series_id: Uuid,
    /// The local date.
    pub date: NaiveDate,
    /// The ride.
    pub ride_id: Uuid,
}

/// An occurrence of a series broke a rule and was not booked (recorded once, not retried).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RideSeriesOccurrenceSkipped {
    /// The series.
    pub ride_series_id: Uuid,
    /// The local date.
    pub date: NaiveDate,
    /// The error code of the rule it broke (`closed`, `bike-taken`, ...).
    pub code: String,
    /// The ride it would have overlapped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict_with: Option<Uuid>,
}

/// A series was cancelled from a local date (its rides from then on cancelled in the same
/// append), or stopped by the system at a retired trishaw or pilot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RideSeriesCancelled {
    /// The series.
    pub ride_series_id: Uuid,
    /// The first local date cancelled.
    pub from: NaiveDate,
    /// Why.
    pub reason: CancellationReason,
    /// The role of who cancelled (`system` when it stopped at a retired trishaw or pilot).
    pub by_role: String,
    /// Sealed free-text note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<Sealed>,
    /// The event that stopped it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caused_by: Option<Uuid>,
    /// When.
    pub at: DateTime<Utc>,
    /// The rides cancelled with it (their `RideCancelled` in the same append).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rides: Vec<Uuid>,
}

/// A chapter called off a local day for weather.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DayCancelledForWeather {
    /// The chapter.
    pub chapter_id: Uuid,
    /// The local day (chapter's zone).
    pub date: NaiveDate,
}

/// A care home asked for a ride.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RideRequested {
    /// The request.
    pub ride_request_id: Uuid,
    /// The care home.
    pub carehome_id: Uuid,
    /// The chapter.
    pub chapter_id: Uuid,
    /// Who wants to ride.
    pub resident_ids: Vec<Uuid>,
    /// Earliest start.
    pub window_from: DateTime<Utc>,
    /// Latest end.
    pub window_to: DateTime<Utc>,
    /// Length in minutes.
    pub duration_minutes: u32,
    /// Kind of ride.
    pub kind: RideKind,
    /// Sealed free-text note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<Sealed>,
}

/// A pilot claimed a request; the ride was booked in the same append.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RideRequestClaimed {
    /// The request.
    pub ride_request_id: Uuid,
    /// The ride booked for it.
    pub ride_id: Uuid,
    /// The pilot.
    pub pilot_id: Uuid,
}

/// The care home withdrew a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RideRequestWithdrawn {
    /// The request.
    pub ride_request_id: Uuid,
}

/// A request's window passed unclaimed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RideRequestExpired {
    /// The request.
    pub ride_request_id: Uuid,
}

/// An open request was offered to pilots (its candidates, best placed first): a notice to
/// each, nothing reserved. Round 0 at posting, one more every 24 h; a window starting within
/// 24 h is offered to every candidate left at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RideRequestOffered {
    /// The request.
    pub ride_request_id: Uuid,
    /// The pilots offered it this round (none offered before).
    pub pilot_ids: Vec<Uuid>,
    /// The round (0: at posting).
    #[serde(default)]
    pub round: u32,
}

/// Internal to booking: a ride holds an interval on a schedule stream (a trishaw, pilot or
/// resident on one day). Not part of the public feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlotHeld {
    /// The ride.
    pub ride_id: Uuid,
    /// Start of the held interval.
    pub start: DateTime<Utc>,
    /// End of the held interval (a trishaw's includes the turnaround).
    pub end: DateTime<Utc>,
}

/// Internal to booking: a waiting resident's place on their schedule stream (not a hold:
/// nothing overlaps it; a promotion finds the resident's other waits by it, and a join
/// and a promotion of one resident touch the same streams).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlotAwaited {
    /// The ride waited for.
    pub ride_id: Uuid,
    /// Start of the ride's interval.
    pub start: DateTime<Utc>,
    /// End of the ride's interval.
    pub end: DateTime<Utc>,
}

/// Internal to booking: a ride let go of its interval on a schedule stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlotReleased {
    /// The ride.
    pub ride_id: Uuid,
}

events!(
    /// The booking service's events.
    BookingEvent {
        /// See the struct.
        RideBooked,
        /// See the struct.
        RideConfirmed,
        /// See the struct.
        RiderAddedToRoster,
        /// See the struct.
        RiderRemovedFromRoster,
        /// See the struct.
        ResidentWaitlisted,
        /// See the struct.
        ResidentLeftWaitlist,
        /// See the struct.
        RiderPromotedFromWaitlist,
        /// See the struct.
        RideRescheduled,
        /// See the struct.
        RideCancelled,
        /// See the struct.
        RideStarted,
        /// See the struct.
        RiderCheckedIn,
        /// See the struct.
        RideCompleted,
        /// See the struct.
        RideMarkedNoShow,
        /// See the struct.
        RideRecorded,
        /// See the struct.
        RideCorrected,
        /// See the struct.
        RideReminderSent,
        /// See the struct.
        DayCancelledForWeather,
        /// See the struct.
        RideRequested,
        /// See the struct.
        RideRequestClaimed,
        /// See the struct.
        RideRequestWithdrawn,
        /// See the struct.
        RideRequestExpired,
        /// See the struct.
        RideRequestOffered,
        /// See the struct.
        RideSeriesPlanned,
        /// See the struct.
        RideSeriesOccurrenceBooked,
        /// See the struct.
        RideSeriesOccurrenceSkipped,
        /// See the struct.
        RideSeriesCancelled,
        /// See the struct.
        SlotHeld,
        /// See the struct.
        SlotReleased,
        /// See the struct.
        SlotAwaited,
    }
);

/// Event types that stay inside their service (not in the public feed).
pub const INTERNAL_EVENT_TYPES: &[&str] = &["SlotHeld", "SlotReleased", "SlotAwaited", "RideSeriesOccurrenceBooked"];

/// The public form of a payload: every sealed value removed, so feeds carry ids and facts
/// but neither personal data nor ciphertext.
pub fn public_payload(payload: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match payload {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !matches!(v, Value::String(s) if s.starts_with(Sealed::PREFIX)))
                .map(|(k, v)| (k.clone(), public_payload(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(public_payload).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_their_stored_form() {
        let e = CareHomeEvent::from(BikeTakenOutOfService {
            bike_id: Uuid::nil(),
            reason: "flat tyre".into(),
            expected_back: NaiveDate::from_ymd_opt(2027, 5, 1),
        });
        assert_eq!(e.event_type(), "BikeTakenOutOfService");
        let text = e.to_json().to_string();
        assert_eq!(CareHomeEvent::from_stored("BikeTakenOutOfService", &text).unwrap(), Some(e));
        assert_eq!(CareHomeEvent::from_stored("SomethingNew", "{}").unwrap(), None);
        assert!(BookingEvent::NAMES.contains(&"RideBooked"));
    }

    #[test]
    fn equipment_and_closure_events_decode_from_their_public_payload() {
        // Their free text arrives sealed and the feed drops it: followers (booking) must
        // still read the facts.
        let sealed = || "sealed:v1:QUJD".to_owned();
        let dates = DateRange {
            from: NaiveDate::from_ymd_opt(2027, 7, 1).unwrap(),
            to: NaiveDate::from_ymd_opt(2027, 7, 3).unwrap(),
        };
        let bike_id = Uuid::nil();
        for e in [
            CareHomeEvent::from(CareHomeClosed { carehome_id: Uuid::nil(), dates, reason: sealed() }),
            BikeIssueReported { bike_id, description: sealed(), grounding: true }.into(),
            BikeTakenOutOfService { bike_id, reason: sealed(), expected_back: None }.into(),
            BikeRepaired { bike_id, note: sealed() }.into(),
            BikeRetired { bike_id, reason: sealed() }.into(),
        ] {
            let public = public_payload(&e.to_json());
            assert!(!public.to_string().contains("sealed:"), "{public}");
            let read = CareHomeEvent::from_stored(e.event_type(), &public.to_string()).unwrap();
            assert_eq!(read.map(|r| r.event_type()), Some(e.event_type()));
        }
    }

    #[test]
    fn coordinator_events_carry_only_ids() {
        let e = CareHomeEvent::from(CoordinatorAssigned { carehome_id: Uuid::nil(), user_id: "user-7f3a".into() });
        assert_eq!(e.event_type(), "CoordinatorAssigned");
        let json = e.to_json();
        assert_eq!(json, serde_json::json!({"carehome_id": Uuid::nil(), "user_id": "user-7f3a"}));
        assert_eq!(public_payload(&json), json);
        assert_eq!(CareHomeEvent::from_stored("CoordinatorAssigned", &json.to_string()).unwrap(), Some(e));
        assert!(CareHomeEvent::NAMES.contains(&"CoordinatorRemoved"));
    }

    #[test]
    fn public_payloads_drop_sealed_values_at_any_depth() {
        let p = serde_json::json!({
            "ride_id": "r", "story": "sealed:v1:QUJD",
            "route": {"pickup": "sealed:v1:eHl6", "leg": "outbound"},
            "riders": ["a", "b"]
        });
        assert_eq!(
            public_payload(&p),
            serde_json::json!({"ride_id": "r", "route": {"leg": "outbound"}, "riders": ["a", "b"]})
        );
    }
}

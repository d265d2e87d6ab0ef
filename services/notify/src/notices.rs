//! Notices: their kinds, their events in notify's log, their ids (one per kind, occasion,
//! recipient and channel, so that deciding one twice appends nothing: invariant 9) and
//! their words in Danish and English.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The kinds this service decides (docs/notifications.md).
pub mod kind {
    /// Before a ride, at each of the chapter's reminder lead times.
    pub const REMINDER: &str = "ride.reminder";
    /// A booking that waits for the home's confirmation.
    pub const PENDING_CONFIRMATION: &str = "ride.pending_confirmation";
    /// The home confirmed a pilot's booking.
    pub const CONFIRMED: &str = "ride.confirmed";
    /// The ride moved.
    pub const RESCHEDULED: &str = "ride.rescheduled";
    /// Riders joined or left.
    pub const ROSTER_CHANGED: &str = "ride.roster_changed";
    /// The ride was cancelled (any reason, cascades included).
    pub const CANCELLED: &str = "ride.cancelled";
    /// Someone else booked the pilot.
    pub const BOOKED_FOR_YOU: &str = "ride.booked_for_you";
    /// A day before a booked ride that has nobody on its roster.
    pub const NO_RIDERS: &str = "ride.no_riders";
    /// An open ride request was offered to the pilot.
    pub const OFFERED: &str = "request.offered";
    /// A pilot claimed a ride request.
    pub const CLAIMED: &str = "request.claimed";
    /// A waiting resident took a seat that freed.
    pub const WAITLIST_PROMOTED: &str = "waitlist.promoted";
    /// Nobody has claimed a ride request 72 h (and 48 h) before its window.
    pub const UNCLAIMED: &str = "request.unclaimed";
    /// A qualification runs out in 30 days.
    pub const QUALIFICATION_EXPIRING: &str = "qualification.expiring";
    /// A pilot invitation, e-mailed to the pilot record's address.
    pub const INVITATION: &str = "invitation";
    /// The code confirming a new address (not a kind anyone chooses or stops).
    pub const CONTACT_CONFIRMATION: &str = "contact.confirmation";

    /// The kinds a person chooses channels for (and may stop by e-mail).
    pub const ALL: &[&str] = &[
        REMINDER,
        PENDING_CONFIRMATION,
        CONFIRMED,
        RESCHEDULED,
        ROSTER_CHANGED,
        CANCELLED,
        BOOKED_FOR_YOU,
        NO_RIDERS,
        OFFERED,
        CLAIMED,
        UNCLAIMED,
        QUALIFICATION_EXPIRING,
        WAITLIST_PROMOTED,
    ];
}

/// The channels. The inbox gets every notice exactly once.
pub mod channel {
    /// The in-app inbox.
    pub const INBOX: &str = "inbox";
    /// E-mail (at least once, one `Message-ID` per notice).
    pub const EMAIL: &str = "email";
    /// SMS (at least once, one key per notice; only when the recipient chose it).
    pub const SMS: &str = "sms";
    /// Web Push (only when the recipient chose it).
    pub const PUSH: &str = "push";
}

/// A notice went out on its channel (the relay took it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoticeDelivered {
    /// The notice.
    pub notice_id: Uuid,
    /// The channel.
    pub channel: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Attempts it took.
    pub attempts: u32,
}

/// A notice will not go out on its channel: `failed` (retried for 24 h), `rejected` (the
/// relay refused the address for good), `not-configured` (no relay), `no-address`,
/// `opted-out` (the recipient stopped the kind on the channel), `erased`. No address and
/// no relay's words are kept (they may name the address).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoticeFailed {
    /// The notice.
    pub notice_id: Uuid,
    /// The channel.
    pub channel: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Why, as above.
    pub outcome: String,
    /// Attempts made.
    pub attempts: u32,
}

/// A notice was decided for a recipient on a channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoticeDecided {
    /// Its id ([`notice_id`]).
    pub notice_id: Uuid,
    /// Its kind.
    pub kind: String,
    /// What occasioned it (its kind's key: a ride, start and lead; an event).
    pub occasion: String,
    /// `pilot:<id>` or `person:<id>`.
    pub recipient: String,
    /// The channel.
    pub channel: String,
    /// When its occasion fell due.
    pub due_at: DateTime<Utc>,
    /// The facts its words are made of (no personal data).
    pub facts: Facts,
}

/// A notice whose occasion had passed when it fell due to be decided: never sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoticeSkipped {
    /// Its id.
    pub notice_id: Uuid,
    /// Its kind.
    pub kind: String,
    /// Its occasion.
    pub occasion: String,
    /// Its recipient.
    pub recipient: String,
    /// The channel.
    pub channel: String,
    /// When it fell due.
    pub due_at: DateTime<Utc>,
}

impl From<&NoticeDecided> for NoticeSkipped {
    fn from(d: &NoticeDecided) -> Self {
        NoticeSkipped {
            notice_id: d.notice_id,
            kind: d.kind.clone(),
            occasion: d.occasion.clone(),
            recipient: d.recipient.clone(),
            channel: d.channel.clone(),
            due_at: d.due_at,
        }
    }
}

/// The recipient read the notice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoticeRead {
    /// The notice.
    pub notice_id: Uuid,
    /// When.
    pub at: DateTime<Utc>,
}

/// Facts of a notice: ids, times, counts and a care home's name, never a person's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Facts {
    /// The ride.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ride_id: Option<Uuid>,
    /// Its start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<DateTime<Utc>>,
    /// The zone its times are told in.
    #[serde(default)]
    pub timezone: String,
    /// Its care home's name.
    #[serde(default)]
    pub carehome: String,
    /// Riders on it.
    #[serde(default)]
    pub riders: u32,
    /// A reminder's lead time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lead_minutes: Option<u32>,
    /// A cancellation's reason code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What only the message may carry (a confirmation code and the address it goes to,
    /// an invitation's code): [`Secret`] sealed under the recipient's key, unsealed at
    /// send time only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<domain::types::Sealed>,
    /// The ride request (a claim).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ride_request_id: Option<Uuid>,
    /// A qualification's trishaw type and last valid day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qualification: Option<(String, chrono::NaiveDate)>,
    /// The language fixed when it was decided (a code sent in the language it was asked in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// The sealed part of a notice's facts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Secret {
    /// The address to send to instead of the recipient's (a confirmation code's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The code.
    #[serde(default)]
    pub code: String,
}

/// The stream of a notice in notify's log.
pub fn stream(notice_id: Uuid) -> String {
    format!("notice-{notice_id}")
}

/// The notice's id: a digest of (kind, occasion, recipient, channel) as a UUID (version 8),
/// so every process that decides it names it alike and the log stores it once.
pub fn notice_id(kind: &str, occasion: &str, recipient: &str, channel: &str) -> Uuid {
    let mut h = Sha256::new();
    for part in [kind, occasion, recipient, channel] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// A reader's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// Danish.
    Da,
    /// English.
    En,
}

impl Language {
    /// `da` or `en`; anything else: none chosen.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "da" => Some(Language::Da),
            "en" => Some(Language::En),
            _ => None,
        }
    }

    /// The language of a notice for a reader who chose none: Danish for rides in the
    /// `Europe/Copenhagen` zone, else English (api.md: until a person chooses).
    pub fn default_for(f: &Facts) -> Self {
        if let Some(l) = f.language.as_deref().and_then(Language::parse) {
            return l;
        }
        if f.timezone == "Europe/Copenhagen" { Language::Da } else { Language::En }
    }
}

fn when(f: &Facts, lang: Language) -> String {
    let Some(start) = f.start else { return String::new() };
    let local = match f.timezone.parse::<chrono_tz::Tz>() {
        Ok(tz) => start.with_timezone(&tz).naive_local(),
        Err(_) => start.naive_utc(),
    };
    match lang {
        Language::Da => local.format("%d.%m.%Y kl. %H:%M").to_string(),
        Language::En => local.format("%Y-%m-%d at %H:%M").to_string(),
    }
}

fn riders(n: u32, lang: Language) -> String {
    match (lang, n) {
        (Language::Da, 1) => "1 passager".into(),
        (Language::Da, n) => format!("{n} passagerer"),
        (Language::En, 1) => "1 rider".into(),
        (Language::En, n) => format!("{n} riders"),
    }
}

/// A notice's title and body in `lang`. Riders are a count: the words hold no name.
pub fn words(kind: &str, f: &Facts, lang: Language) -> (String, String) {
    use Language::{Da, En};
    let (at, home, who) = (when(f, lang), f.carehome.as_str(), riders(f.riders, lang));
    let reason = f.reason.as_deref().unwrap_or("");
    match (kind, lang) {
        (kind::REMINDER, Da) => ("Påmindelse om din tur".into(), format!("Din tur fra {home} er {at} ({who}).")),
        (kind::REMINDER, En) => ("Your ride is coming up".into(), format!("Your ride from {home} is on {at} ({who}).")),
        (kind::PENDING_CONFIRMATION, Da) => {
            ("En tur venter på bekræftelse".into(), format!("En pilot har booket en tur fra {home} {at}."))
        }
        (kind::PENDING_CONFIRMATION, En) => {
            ("A ride awaits confirmation".into(), format!("A pilot booked a ride from {home} on {at}."))
        }
        (kind::CONFIRMED, Da) => ("Turen er bekræftet".into(), format!("Turen fra {home} {at} er bekræftet.")),
        (kind::CONFIRMED, En) => ("Ride confirmed".into(), format!("The ride from {home} on {at} is confirmed.")),
        (kind::RESCHEDULED, Da) => ("Turen er flyttet".into(), format!("Turen fra {home} er nu {at}.")),
        (kind::RESCHEDULED, En) => ("Ride moved".into(), format!("The ride from {home} is now on {at}.")),
        (kind::ROSTER_CHANGED, Da) => ("Nye passagerer".into(), format!("Turen fra {home} {at} har nu {who}.")),
        (kind::ROSTER_CHANGED, En) => ("Riders changed".into(), format!("The ride from {home} on {at} now has {who}.")),
        (kind::CANCELLED, Da) => ("Turen er aflyst".into(), format!("Turen fra {home} {at} er aflyst ({reason}).")),
        (kind::CANCELLED, En) => {
            ("Ride cancelled".into(), format!("The ride from {home} on {at} was cancelled ({reason})."))
        }
        (kind::NO_RIDERS, Da) => (
            "Ingen passagerer på turen".into(),
            format!("Turen fra {home} {at} har ingen passagerer endnu. Sæt nogen på, eller aflys den."),
        ),
        (kind::NO_RIDERS, En) => (
            "No riders on the ride".into(),
            format!("The ride from {home} on {at} has nobody on its roster yet. Add riders, or cancel it."),
        ),
        (kind::WAITLIST_PROMOTED, Da) => (
            "En ventende beboer fik en plads".into(),
            format!("En plads blev ledig på turen fra {home} {at}, og den første på ventelisten har fået den ({who})."),
        ),
        (kind::WAITLIST_PROMOTED, En) => (
            "A waiting resident got a seat".into(),
            format!("A seat freed on the ride from {home} on {at}, and the first on the waitlist took it ({who})."),
        ),
        (kind::BOOKED_FOR_YOU, Da) => ("Du er booket til en tur".into(), format!("Du kører fra {home} {at} ({who}).")),
        (kind::BOOKED_FOR_YOU, En) => {
            ("You were booked for a ride".into(), format!("You ride from {home} on {at} ({who})."))
        }
        (kind::CLAIMED, Da) => {
            ("En pilot har taget en tur".into(), format!("En pilot har taget ønsket om en tur fra {home} ({at})."))
        }
        (kind::CLAIMED, En) => {
            ("A pilot took a ride".into(), format!("A pilot took the ride request from {home} ({at})."))
        }
        (kind::OFFERED, Da) => (
            "En tur søger en pilot".into(),
            format!("Et ønske om en tur fra {home} fra {at} mangler en pilot, og du har tid. Tag den, hvis du vil."),
        ),
        (kind::OFFERED, En) => (
            "A ride needs a pilot".into(),
            format!(
                "A ride request from {home} from {at} needs a pilot, and you are free for it. Claim it if you like."
            ),
        ),
        (kind::UNCLAIMED, Da) => (
            "Ingen pilot til en tur endnu".into(),
            format!("Ingen pilot har taget ønsket om en tur fra {home} ({at}) endnu."),
        ),
        (kind::UNCLAIMED, En) => {
            ("No pilot for a ride yet".into(), format!("No pilot has claimed the ride request from {home} ({at}) yet."))
        }
        (kind::QUALIFICATION_EXPIRING, lang) => {
            let (t, until) = f.qualification.clone().unwrap_or_default();
            match lang {
                Da => (
                    "Et kørekort udløber snart".into(),
                    format!("Godkendelsen til {t} gælder til og med {}.", until.format("%d.%m.%Y")),
                ),
                En => (
                    "A qualification runs out soon".into(),
                    format!("The qualification for {t} is valid until {}.", until.format("%Y-%m-%d")),
                ),
            }
        }
        (kind::INVITATION, Da) => (
            "Du er inviteret som pilot".into(),
            "Du er inviteret som pilot i Cykling uden alder. Din invitationskode står nedenfor.".into(),
        ),
        (kind::INVITATION, En) => (
            "You are invited as a pilot".into(),
            "You are invited as a pilot with Cycling Without Age. Your invitation code is below.".into(),
        ),
        (kind::CONTACT_CONFIRMATION, Da) => (
            "Bekræft din adresse".into(),
            "Skriv koden nedenfor for at bekræfte din adresse (gyldig i 24 timer).".into(),
        ),
        (kind::CONTACT_CONFIRMATION, En) => {
            ("Confirm your address".into(), "Enter the code below to confirm your address (valid for 24 hours).".into())
        }
        (other, _) => (other.to_owned(), String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_id_names_kind_occasion_recipient_and_channel() {
        let a = notice_id(kind::REMINDER, "r/1/60", "pilot:p", channel::INBOX);
        assert_eq!(a, notice_id(kind::REMINDER, "r/1/60", "pilot:p", channel::INBOX));
        assert_eq!(a.get_version_num(), 8);
        for other in [
            notice_id(kind::CANCELLED, "r/1/60", "pilot:p", channel::INBOX),
            notice_id(kind::REMINDER, "r/1/1440", "pilot:p", channel::INBOX),
            notice_id(kind::REMINDER, "r/1/60", "pilot:q", channel::INBOX),
            notice_id(kind::REMINDER, "r/1/60", "pilot:p", "email"),
            // Parts are length-prefixed: moving a separator makes another id.
            notice_id(kind::REMINDER, "r/1/6", "0pilot:p", channel::INBOX),
        ] {
            assert_ne!(a, other);
        }
    }

    #[test]
    fn words_tell_local_time_in_the_readers_language_and_count_riders() {
        let f = Facts {
            start: Some("2027-03-29T08:00:00Z".parse().unwrap()),
            timezone: "Europe/Copenhagen".into(),
            carehome: "Egeparken".into(),
            riders: 2,
            ..Facts::default()
        };
        let (title, body) = words(kind::REMINDER, &f, Language::Da);
        assert_eq!(title, "Påmindelse om din tur");
        assert_eq!(body, "Din tur fra Egeparken er 29.03.2027 kl. 10:00 (2 passagerer).");
        let (_, body) = words(kind::REMINDER, &f, Language::En);
        assert_eq!(body, "Your ride from Egeparken is on 2027-03-29 at 10:00 (2 riders).");
    }
}

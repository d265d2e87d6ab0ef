//! Chapters: the tenancy boundary. A chapter has a time zone and settings (lead time,
//! default turnaround, reminder lead times, ride season). Pure domain: validation of the
//! inputs, the folded state and a decision per command; no I/O.

use chrono::NaiveDate;
use domain::Invalid;
use domain::events::{CareHomeEvent, ChapterRegistered, ChapterSettings, ChapterSettingsChanged};
use domain::types::{DateRange, parse_label, parse_timezone};
use domain::{Aggregate, DomainError, ErrorCode};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::validation::{Violations, optional_date};

/// Longest chapter name.
pub const NAME_MAX: usize = 200;
/// Longest lead time and reminder lead time: a week.
pub const MAX_LEAD_MINUTES: u32 = 10_080;
/// Longest turnaround between two rides on one trishaw.
pub const MAX_TURNAROUND_MINUTES: u32 = 240;
/// Most reminders per ride.
pub const MAX_REMINDERS: usize = 5;

/// The stream of a chapter.
pub fn stream(chapter_id: Uuid) -> String {
    format!("chapter-{chapter_id}")
}

/// A chapter as folded from its stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chapter {
    /// Id.
    pub chapter_id: Uuid,
    /// Name.
    pub name: String,
    /// IANA zone.
    pub timezone: String,
    /// Settings.
    pub settings: ChapterSettings,
    /// Its administrators: (person, role grant), in order of appointment.
    #[serde(default)]
    pub admins: Vec<(Uuid, Uuid)>,
}

impl Aggregate for Chapter {
    type Event = CareHomeEvent;

    fn apply(state: Option<Self>, event: &CareHomeEvent) -> Option<Self> {
        match event {
            CareHomeEvent::ChapterRegistered(e) => Some(Chapter {
                chapter_id: e.chapter_id,
                name: e.name.clone(),
                timezone: e.timezone.clone(),
                settings: e.settings.clone(),
                admins: Vec::new(),
            }),
            CareHomeEvent::ChapterSettingsChanged(e) => state.map(|c| Chapter { settings: e.settings.clone(), ..c }),
            CareHomeEvent::ChapterAdminAppointed(e) => state.map(|mut c| {
                c.admins.push((e.person_id, e.role_grant_id));
                c
            }),
            CareHomeEvent::ChapterAdminRemoved(e) => state.map(|mut c| {
                c.admins.retain(|(_, g)| *g != e.role_grant_id);
                c
            }),
            _ => state,
        }
    }

    fn tenant(&self) -> Option<Uuid> {
        Some(self.chapter_id)
    }
}

/// Settings as they arrive, before validation.
#[derive(Debug, Clone, Default)]
pub struct SettingsInput<'a> {
    /// Minimum minutes between booking and start.
    pub lead_time_minutes: u32,
    /// Turnaround for care homes that set none.
    pub default_turnaround_minutes: u32,
    /// Reminder lead times.
    pub reminder_lead_minutes: &'a [u32],
    /// Season `(starts, ends)`, `"YYYY-MM-DD"` each, `ends` exclusive; both empty: none.
    pub ride_season: (&'a str, &'a str),
    /// Record window in days (none: the default or the value kept).
    pub record_window_days: Option<u32>,
    /// Series horizon in days.
    pub series_horizon_days: Option<u32>,
    /// Pilots a request is offered to at once.
    pub offer_fanout: Option<u32>,
}

/// The ranges of the December 2026 settings: (field, least, most).
pub const RANGES: [(&str, u32, u32); 3] =
    [("record_window_days", 0, 90), ("series_horizon_days", 7, 365), ("offer_fanout", 1, 50)];

/// Validates settings; `prefix` is where they sit in the request body (`/settings` or "").
pub fn parse_settings(prefix: &str, input: &SettingsInput<'_>) -> Result<ChapterSettings, Vec<Invalid>> {
    let mut v = Violations::new();
    if input.lead_time_minutes > MAX_LEAD_MINUTES {
        v.push(format!("{prefix}/lead_time_minutes"), format!("must be at most {MAX_LEAD_MINUTES} (a week)"));
    }
    if input.default_turnaround_minutes > MAX_TURNAROUND_MINUTES {
        v.push(format!("{prefix}/default_turnaround_minutes"), format!("must be at most {MAX_TURNAROUND_MINUTES}"));
    }
    if input.reminder_lead_minutes.len() > MAX_REMINDERS {
        v.push(format!("{prefix}/reminder_lead_minutes"), format!("at most {MAX_REMINDERS} reminders"));
    }
    for (i, m) in input.reminder_lead_minutes.iter().enumerate() {
        if *m > MAX_LEAD_MINUTES {
            v.push(
                format!("{prefix}/reminder_lead_minutes/{i}"),
                format!("must be at most {MAX_LEAD_MINUTES} (a week)"),
            );
        }
    }
    let ride_season = parse_season(&mut v, prefix, input.ride_season);
    let given = [input.record_window_days, input.series_horizon_days, input.offer_fanout];
    for ((name, least, most), value) in RANGES.iter().zip(given) {
        if let Some(value) = value
            && !(*least..=*most).contains(&value)
        {
            v.push(format!("{prefix}/{name}"), format!("must be from {least} to {most}"));
        }
    }
    if !v.is_empty() {
        return Err(v.into_list());
    }
    Ok(ChapterSettings {
        lead_time_minutes: input.lead_time_minutes,
        default_turnaround_minutes: input.default_turnaround_minutes,
        reminder_lead_minutes: input.reminder_lead_minutes.to_vec(),
        ride_season,
        record_window_days: input.record_window_days.unwrap_or_else(ChapterSettings::default_record_window_days),
        series_horizon_days: input.series_horizon_days.unwrap_or_else(ChapterSettings::default_series_horizon_days),
        offer_fanout: input.offer_fanout.unwrap_or_else(ChapterSettings::default_offer_fanout),
    })
}

fn parse_season(v: &mut Violations, prefix: &str, (starts, ends): (&str, &str)) -> Option<DateRange> {
    let starts: Option<NaiveDate> = v.check(optional_date(&format!("{prefix}/ride_season/starts"), starts)).flatten();
    let ends: Option<NaiveDate> = v.check(optional_date(&format!("{prefix}/ride_season/ends"), ends)).flatten();
    match (starts, ends) {
        (Some(from), Some(to)) if from < to => Some(DateRange { from, to }),
        (Some(_), Some(_)) => {
            v.push(format!("{prefix}/ride_season/ends"), "must be after starts");
            None
        }
        (Some(_), None) => {
            v.push(format!("{prefix}/ride_season/ends"), "is required with starts");
            None
        }
        (None, Some(_)) => {
            v.push(format!("{prefix}/ride_season/starts"), "is required with ends");
            None
        }
        (None, None) => None,
    }
}

/// Found a chapter.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisterChapter {
    /// The new chapter's id.
    pub chapter_id: Uuid,
    /// Name.
    pub name: String,
    /// IANA zone.
    pub timezone: String,
    /// Settings (the defaults when the request gives none).
    pub settings: ChapterSettings,
}

impl RegisterChapter {
    /// Validates the request's fields.
    pub fn parse(
        chapter_id: Uuid,
        name: &str,
        timezone: &str,
        settings: Option<&SettingsInput<'_>>,
    ) -> Result<Self, DomainError> {
        let mut v = Violations::new();
        let name = v.check(parse_label("/name", name, NAME_MAX));
        let timezone = v.check(parse_timezone("/timezone", timezone.trim())).map(|tz| tz.name().to_owned());
        let settings = match settings {
            Some(s) => v.check_all(parse_settings("/settings", s)),
            None => Some(ChapterSettings::default()),
        };
        v.finish(|| Some(RegisterChapter { chapter_id, name: name?, timezone: timezone?, settings: settings? }))
    }
}

/// Decides a chapter's founding.
pub fn register(state: Option<&Chapter>, cmd: &RegisterChapter) -> Result<Vec<CareHomeEvent>, DomainError> {
    if state.is_some() {
        return Err(DomainError::conflict(ErrorCode::IllegalTransition, "the chapter already exists", None));
    }
    Ok(vec![
        ChapterRegistered {
            chapter_id: cmd.chapter_id,
            name: cmd.name.clone(),
            timezone: cmd.timezone.clone(),
            settings: cmd.settings.clone(),
        }
        .into(),
    ])
}

/// Decides a change of settings; unchanged settings write nothing.
pub fn change_settings(state: Option<&Chapter>, settings: &ChapterSettings) -> Result<Vec<CareHomeEvent>, DomainError> {
    let chapter = state.ok_or_else(|| DomainError::NotFound("chapter".into()))?;
    if &chapter.settings == settings {
        return Ok(vec![]);
    }
    Ok(vec![ChapterSettingsChanged { chapter_id: chapter.chapter_id, settings: settings.clone() }.into()])
}

#[cfg(test)]
mod tests;

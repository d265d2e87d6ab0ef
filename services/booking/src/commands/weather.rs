//! A weather day: a chapter calls off one local day; the day is recorded once on its own
//! stream, and the cascade then cancels that day's rides one by one (each its own command,
//! caused by this event). Pure.

use chrono::NaiveDate;
use domain::events::{BookingEvent, DayCancelledForWeather};
use domain::{Decision, DomainError};
use uuid::Uuid;

use crate::facts::ChapterFact;

/// The stream of one chapter's weather day.
pub fn weather_stream(chapter_id: Uuid, date: NaiveDate) -> String {
    format!("weatherday-{chapter_id}-{}", date.format("%Y%m%d"))
}

/// What calling off a day decides on.
#[derive(Debug, Clone, Default)]
pub struct WeatherInput {
    /// The chapter (`None`: unknown).
    pub chapter: Option<ChapterFact>,
    /// Whether the day is already called off.
    pub recorded: bool,
}

/// Records the day once (again: nothing new).
pub fn cancel_day(
    input: &WeatherInput,
    chapter_id: Uuid,
    date: NaiveDate,
) -> Result<Decision<BookingEvent>, DomainError> {
    if input.chapter.is_none() {
        return Err(DomainError::NotFound("chapter".into()));
    }
    if input.recorded {
        return Ok(Decision::nothing());
    }
    Ok(Decision::on(
        weather_stream(chapter_id, date),
        vec![DayCancelledForWeather { chapter_id, date }.into()],
        Some(chapter_id),
    ))
}

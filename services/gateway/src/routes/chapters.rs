//! Chapters: the tenancy boundary, with their time zone and settings.

use access::{Action, Object};
use axum::extract::State;
use samskab_proto::carehome::v1 as cpb;
use samskab_proto::volunteer::v1 as vpb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::caller::Caller;
use crate::clients::Found;
use crate::extract::{Body, Command, Ids};
use crate::problem::{ApiError, Problem};
use crate::views::{Created, Versioned};

/// A chapter's riding season (`ends` exclusive).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RideSeason {
    /// First day, `YYYY-MM-DD`.
    #[schema(format = Date)]
    pub starts: String,
    /// First day after the season.
    #[schema(format = Date)]
    pub ends: String,
}

/// A chapter's settings.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Minimum minutes between booking and a ride's start (at most a week).
    #[schema(maximum = 10080)]
    pub lead_time_minutes: u32,
    /// Turnaround for care homes that set none (at most 240 minutes).
    #[schema(maximum = 240)]
    pub default_turnaround_minutes: u32,
    /// Reminder lead times in minutes: at most 5, each at most a week.
    #[schema(schema_with = reminder_leads)]
    pub reminder_lead_minutes: Vec<u32>,
    /// Riding season, if any (`ends` after `starts`: a 400 otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ride_season: Option<RideSeason>,
    /// How many days back a pilot may record a ride after the fact (default 14). Left
    /// out of a change: kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 90)]
    pub record_window_days: Option<u32>,
    /// How far ahead a recurring series books, in days (default 56). Left out: kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 7, maximum = 365)]
    pub series_horizon_days: Option<u32>,
    /// How many pilots a ride request is offered to at once (default 5). Left out: kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 50)]
    pub offer_fanout: Option<u32>,
}

/// The document's limits are the care-home service's (`carehome::chapters`, with the
/// turnaround's 240 in the attribute above); a test below keeps them equal.
const MAX_LEAD_MINUTES: u32 = 10_080;
const MAX_REMINDERS: usize = 5;

/// `reminder_lead_minutes`: at most [`MAX_REMINDERS`] items, each at most [`MAX_LEAD_MINUTES`].
fn reminder_leads() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::{ArrayBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
                .minimum(Some(0))
                .maximum(Some(MAX_LEAD_MINUTES)),
        )
        .max_items(Some(MAX_REMINDERS))
        .build()
}

impl From<Settings> for cpb::ChapterSettings {
    fn from(s: Settings) -> Self {
        cpb::ChapterSettings {
            lead_time_minutes: s.lead_time_minutes,
            default_turnaround_minutes: s.default_turnaround_minutes,
            reminder_lead_minutes: s.reminder_lead_minutes,
            ride_season: s.ride_season.map(|r| cpb::RideSeason { starts: r.starts, ends: r.ends }),
            record_window_days: s.record_window_days,
            series_horizon_days: s.series_horizon_days,
            offer_fanout: s.offer_fanout,
        }
    }
}

impl From<cpb::ChapterSettings> for Settings {
    fn from(s: cpb::ChapterSettings) -> Self {
        Settings {
            lead_time_minutes: s.lead_time_minutes,
            default_turnaround_minutes: s.default_turnaround_minutes,
            reminder_lead_minutes: s.reminder_lead_minutes,
            ride_season: s.ride_season.map(|r| RideSeason { starts: r.starts, ends: r.ends }),
            record_window_days: s.record_window_days,
            series_horizon_days: s.series_horizon_days,
            offer_fanout: s.offer_fanout,
        }
    }
}

/// `POST /v1/chapters`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewChapter {
    /// Name.
    #[schema(
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$",
        max_length = 200
    )]
    pub name: String,
    /// IANA time zone, e.g. `Europe/Copenhagen`.
    #[schema(schema_with = crate::views::timezone)]
    pub timezone: String,
    /// Settings (defaults: lead time 60, turnaround 15, reminders 1440 and 60 minutes).
    #[serde(default)]
    pub settings: Option<Settings>,
}

/// A chapter.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChapterView {
    /// Id.
    pub chapter_id: String,
    /// Name.
    pub name: String,
    /// IANA time zone.
    pub timezone: String,
    /// Settings.
    pub settings: Settings,
    /// Care homes.
    pub carehome_count: u32,
    /// Trishaws (not retired).
    pub bike_count: u32,
    /// Active pilots.
    pub active_pilot_count: u32,
}

async fn active_pilots(s: &AppState, chapter: &str) -> Result<u32, ApiError> {
    let mut n = 0;
    let mut cursor = String::new();
    loop {
        let page = s
            .clients
            .volunteer()
            .list_pilots(vpb::ListPilotsRequest {
                chapter_id: chapter.to_owned(),
                limit: 500,
                cursor,
                on: String::new(),
            })
            .await?
            .into_inner();
        n += page.pilots.iter().filter(|p| p.status == domain::types::PilotStatus::Active.as_str()).count() as u32;
        if page.next_cursor.is_empty() {
            return Ok(n);
        }
        cursor = page.next_cursor;
    }
}

async fn view(s: &AppState, c: cpb::Chapter) -> Result<Versioned<ChapterView>, ApiError> {
    let active_pilot_count = active_pilots(s, &c.chapter_id).await?;
    let version = c.version;
    Ok(Versioned(
        ChapterView {
            chapter_id: c.chapter_id,
            name: c.name,
            timezone: c.timezone,
            settings: c.settings.unwrap_or_default().into(),
            carehome_count: c.carehome_count,
            bike_count: c.bike_count,
            active_pilot_count,
        },
        version,
    ))
}

/// Loads a chapter the caller may read (404 otherwise).
pub async fn visible(s: &AppState, caller: &Caller, id: Uuid) -> Result<cpb::Chapter, ApiError> {
    if !caller.may_read(&access::Object::Chapter(id)) {
        return Err(ApiError::not_found());
    }
    s.clients.carehome().get_chapter(cpb::IdRequest { id: id.to_string() }).await.reply()
}

/// Register a chapter (admin).
#[utoipa::path(post, path = "/v1/chapters", tag = "chapters", request_body = NewChapter,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe")),
    responses((status = 201, body = ChapterView), (status = 400, description = "Malformed (`malformed`, `validation`), or a ride season whose `ends` is not after `starts` (`validation` on `.../ride_season/ends`: a rule between two fields, which the schema cannot state)", body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(s): State<AppState>,
    cmd: Command,
    Body(b): Body<NewChapter>,
) -> Result<Created<ChapterView>, ApiError> {
    let caller = &cmd.caller;
    if !caller.may(Action::Administer, &Object::Network) {
        return Err(ApiError::forbidden());
    }
    let c = s
        .clients
        .carehome()
        .register_chapter(cpb::RegisterChapterRequest {
            context: cmd.context(),
            name: b.name,
            timezone: b.timezone,
            settings: b.settings.map(Into::into),
        })
        .await?
        .into_inner();
    let Versioned(v, version) = view(&s, c).await?;
    Ok(Created(format!("/v1/chapters/{}", v.chapter_id), v, version))
}

/// Read a chapter (anyone in it).
#[utoipa::path(get, path = "/v1/chapters/{id}", tag = "chapters", params(("id" = Uuid, Path)),
    responses((status = 200, body = ChapterView), (status = 401, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Ids(id): Ids<Uuid>,
) -> Result<Versioned<ChapterView>, ApiError> {
    let c = visible(&s, &caller, id).await?;
    view(&s, c).await
}

/// Change a chapter's settings (its chapter admin).
#[utoipa::path(put, path = "/v1/chapters/{id}/settings", tag = "chapters", request_body = Settings, params(("id" = Uuid, Path)),
    responses((status = 200, body = ChapterView), (status = 400, description = "Malformed (`malformed`, `validation`), or a ride season whose `ends` is not after `starts` (`validation` on `.../ride_season/ends`: a rule between two fields, which the schema cannot state)", body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 412, body = Problem)),
    security(("bearer" = [])))]
pub async fn put_settings(
    State(s): State<AppState>,
    cmd: Command,
    Ids(id): Ids<Uuid>,
    Body(b): Body<Settings>,
) -> Result<Versioned<ChapterView>, ApiError> {
    let caller = &cmd.caller;
    visible(&s, caller, id).await?;
    if !caller.may(Action::Administer, &Object::Chapter(id)) {
        return Err(ApiError::forbidden());
    }
    let c = s
        .clients
        .carehome()
        .change_chapter_settings(cpb::ChangeChapterSettingsRequest {
            context: cmd.context(),
            chapter_id: id.to_string(),
            settings: Some(b.into()),
        })
        .await?
        .into_inner();
    view(&s, c).await
}

/// The chapter routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create)).routes(routes!(get)).routes(routes!(put_settings))
}

#[cfg(test)]
mod tests {
    use utoipa::PartialSchema;

    use super::*;

    #[test]
    fn the_documented_limits_are_the_care_home_services() {
        assert_eq!(MAX_LEAD_MINUTES, carehome::chapters::MAX_LEAD_MINUTES);
        assert_eq!(MAX_REMINDERS, carehome::chapters::MAX_REMINDERS);
        let doc = serde_json::to_value(Settings::schema()).unwrap();
        let props = &doc["properties"];
        assert_eq!(props["lead_time_minutes"]["maximum"], MAX_LEAD_MINUTES);
        assert_eq!(props["default_turnaround_minutes"]["maximum"], carehome::chapters::MAX_TURNAROUND_MINUTES);
        assert_eq!(props["reminder_lead_minutes"]["maxItems"], MAX_REMINDERS);
        assert_eq!(props["reminder_lead_minutes"]["items"]["maximum"], MAX_LEAD_MINUTES);
    }
}

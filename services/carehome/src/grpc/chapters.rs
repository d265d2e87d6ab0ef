//! Chapter calls: register, change settings, read (with counts from the read model).

use domain::events::ChapterSettings;
use samskab_proto::carehome::v1 as pb;
use servicekit::aggregate::execute;
use servicekit::{CommandCtx, Loaded, ServiceError, ServiceResult};

use super::{Handlers, id, load_existing};
use crate::chapters::{self as chaps, Chapter, RegisterChapter, SettingsInput};
use crate::readmodel;

fn input(s: &pb::ChapterSettings) -> SettingsInput<'_> {
    let season = s.ride_season.as_ref().map_or(("", ""), |r| (r.starts.as_str(), r.ends.as_str()));
    SettingsInput {
        lead_time_minutes: s.lead_time_minutes,
        default_turnaround_minutes: s.default_turnaround_minutes,
        reminder_lead_minutes: &s.reminder_lead_minutes,
        ride_season: season,
        record_window_days: s.record_window_days,
        series_horizon_days: s.series_horizon_days,
        offer_fanout: s.offer_fanout,
    }
}

fn settings_view(s: &ChapterSettings) -> pb::ChapterSettings {
    pb::ChapterSettings {
        lead_time_minutes: s.lead_time_minutes,
        default_turnaround_minutes: s.default_turnaround_minutes,
        reminder_lead_minutes: s.reminder_lead_minutes.clone(),
        ride_season: s.ride_season.map(|r| pb::RideSeason { starts: r.from.to_string(), ends: r.to.to_string() }),
        record_window_days: Some(s.record_window_days),
        series_horizon_days: Some(s.series_horizon_days),
        offer_fanout: Some(s.offer_fanout),
    }
}

async fn view(h: &Handlers, c: &Chapter, version: u64) -> ServiceResult<pb::Chapter> {
    Ok(pb::Chapter {
        chapter_id: c.chapter_id.to_string(),
        name: c.name.clone(),
        timezone: c.timezone.clone(),
        settings: Some(settings_view(&c.settings)),
        carehome_count: readmodel::count_carehomes(&h.store, c.chapter_id).await?,
        bike_count: readmodel::count_bikes(&h.store, c.chapter_id).await?,
        version,
    })
}

async fn view_loaded(h: &Handlers, loaded: Loaded<Chapter>) -> ServiceResult<pb::Chapter> {
    let state = loaded.state.ok_or_else(|| ServiceError::NotFound("chapter".into()))?;
    view(h, &state, loaded.version).await
}

/// RegisterChapter.
pub async fn register(h: &Handlers, req: pb::RegisterChapterRequest) -> ServiceResult<pb::Chapter> {
    let ctx = CommandCtx::from_proto(req.context)?;
    let chapter_id = ctx.new_object_id("chapter");
    let cmd = RegisterChapter::parse(chapter_id, &req.name, &req.timezone, req.settings.as_ref().map(input).as_ref())?;
    let loaded = execute(&h.store, &ctx, &chaps::stream(chapter_id), |s| chaps::register(s, &cmd)).await?;
    view_loaded(h, loaded).await
}

/// ChangeChapterSettings.
pub async fn change_settings(h: &Handlers, req: pb::ChangeChapterSettingsRequest) -> ServiceResult<pb::Chapter> {
    let ctx = CommandCtx::from_proto(req.context)?;
    let chapter_id = id("/chapter_id", &req.chapter_id)?;
    let mut given = req.settings.ok_or_else(|| ServiceError::invalid("", "the settings are required"))?;
    // The December 2026 settings keep their value when a change leaves them out.
    let (current, _) = load_existing::<Chapter>(&h.store, &chaps::stream(chapter_id), "chapter").await?;
    given.record_window_days = given.record_window_days.or(Some(current.settings.record_window_days));
    given.series_horizon_days = given.series_horizon_days.or(Some(current.settings.series_horizon_days));
    given.offer_fanout = given.offer_fanout.or(Some(current.settings.offer_fanout));
    let settings = chaps::parse_settings("", &input(&given)).map_err(ServiceError::Invalid)?;
    let loaded = execute(&h.store, &ctx, &chaps::stream(chapter_id), |s| chaps::change_settings(s, &settings)).await?;
    view_loaded(h, loaded).await
}

/// GetChapter.
pub async fn get(h: &Handlers, req: pb::IdRequest) -> ServiceResult<pb::Chapter> {
    let chapter_id = id("/id", &req.id)?;
    let (c, version) = load_existing::<Chapter>(&h.store, &chaps::stream(chapter_id), "chapter").await?;
    view(h, &c, version).await
}

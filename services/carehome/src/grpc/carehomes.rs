//! Care-home calls: register, change ride hours, close, assign and remove coordinators,
//! read one (from its stream) and list a chapter's (from the read model).

use domain::DomainEvent;
use domain::events::CareHomeEvent;
use domain::types::{DateRange, RideHours};
use samskab_proto::carehome::v1 as pb;
use servicekit::aggregate::execute;
use servicekit::{CommandCtx, Loaded, ServiceError, ServiceResult};
use uuid::Uuid;

use super::{Handlers, carehome_subject, chapter, id, load_existing, open_text, seal_text};
use crate::carehomes::{
    self as homes, CareHome, RegisterCareHome, RegisterCareHomeInput, RideHoursInput, coordinators,
};
use crate::readmodel::{self, PageRequest};

fn hours_input(rows: &[pb::RideHours]) -> RideHoursInput<'_> {
    rows.iter().map(|r| (r.weekday.trim(), r.opens.trim(), r.closes.trim())).collect()
}

fn hours_view(h: &RideHours) -> pb::RideHours {
    pb::RideHours { weekday: h.weekday.to_string(), opens: h.opens.to_string(), closes: h.closes.to_string() }
}

/// The proto form of a care home; `chapter_timezone` fills in the effective zone.
pub(super) async fn view(
    h: &Handlers,
    home: &CareHome,
    chapter_timezone: &str,
    version: u64,
) -> ServiceResult<pb::CareHome> {
    let mut closures = Vec::with_capacity(home.closures.len());
    let ids = if home.closures.is_empty() { Vec::new() } else { closure_ids(h, home.carehome_id).await? };
    for c in &home.closures {
        let closure_id = ids.iter().rev().find(|(_, d)| *d == c.dates).map(|(id, _)| id.to_string());
        closures.push(pb::Closure {
            from: c.dates.from.to_string(),
            to: c.dates.to.to_string(),
            reason: open_text(h, &carehome_subject(home.carehome_id), &c.reason).await?,
            closure_id: closure_id.unwrap_or_default(),
        });
    }
    Ok(pb::CareHome {
        carehome_id: home.carehome_id.to_string(),
        chapter_id: home.chapter_id.to_string(),
        name: home.name.clone(),
        address: home.address.clone(),
        timezone: home.timezone.clone().unwrap_or_default(),
        effective_timezone: home.effective_timezone(chapter_timezone).to_owned(),
        ride_hours: home.ride_hours.iter().map(hours_view).collect(),
        turnaround_minutes: home.turnaround_minutes,
        requires_confirmation: home.requires_confirmation,
        pilots_choose_riders: home.pilots_choose_riders,
        closures,
        version,
        coordinator_ids: home.coordinator_ids.clone(),
    })
}

/// The closures ever recorded on a care home's stream: each `CareHomeClosed` event's id
/// (a closure's id) and its days, in the order recorded. The closure in force for some
/// days is the last one recorded for them.
async fn closure_ids(h: &Handlers, carehome_id: Uuid) -> ServiceResult<Vec<(Uuid, DateRange)>> {
    let events = h.store.read_whole_stream(&homes::stream(carehome_id)).await?;
    let mut out = Vec::new();
    for e in events.iter().filter(|e| e.event_type == "CareHomeClosed") {
        if let Ok(Some(CareHomeEvent::CareHomeClosed(c))) = CareHomeEvent::from_stored(&e.event_type, e.payload.get()) {
            out.push((e.id, c.dates));
        }
    }
    Ok(out)
}

/// CorrectCareHome: the changed fields only (`If-Match` in the context).
pub async fn correct(h: &Handlers, req: pb::CorrectCareHomeRequest) -> ServiceResult<pb::CareHome> {
    let ctx = CommandCtx::from_proto(req.context)?;
    let carehome_id = id("/carehome_id", &req.carehome_id)?;
    let input = homes::CorrectionInput {
        name: req.name.as_deref(),
        address: req.address.as_deref(),
        turnaround_minutes: req.turnaround_minutes,
        requires_confirmation: req.requires_confirmation,
        pilots_choose_riders: req.pilots_choose_riders,
    };
    let correction = homes::parse_correction(&input)?;
    let loaded = execute(&h.store, &ctx, &homes::stream(carehome_id), |s| homes::correct(s, &correction)).await?;
    view_loaded(h, loaded).await
}

/// LiftClosure: the closure is named by its event's id; an unknown id is 404, a closure
/// lifted already (or closed again since, under a new id) writes nothing.
pub async fn lift_closure(h: &Handlers, req: pb::LiftClosureRequest) -> ServiceResult<pb::CareHome> {
    let ctx = CommandCtx::from_proto(req.context)?;
    let carehome_id = id("/carehome_id", &req.carehome_id)?;
    let closure_id = id("/closure_id", &req.closure_id)?;
    load_existing::<CareHome>(&h.store, &homes::stream(carehome_id), "care home").await?;
    let ids = closure_ids(h, carehome_id).await?;
    let dates = ids
        .iter()
        .find(|(id, _)| *id == closure_id)
        .map(|(_, d)| *d)
        .ok_or_else(|| ServiceError::NotFound("closure".into()))?;
    let current = ids.iter().rev().find(|(_, d)| *d == dates).is_some_and(|(id, _)| *id == closure_id);
    let loaded =
        execute(&h.store, &ctx, &homes::stream(carehome_id), |s| homes::lift(s, closure_id, dates, current)).await?;
    view_loaded(h, loaded).await
}

async fn view_loaded(h: &Handlers, loaded: Loaded<CareHome>) -> ServiceResult<pb::CareHome> {
    let home = loaded.state.ok_or_else(|| ServiceError::NotFound("care home".into()))?;
    let chapter = chapter(&h.store, home.chapter_id).await?;
    view(h, &home, &chapter.timezone, loaded.version).await
}

/// RegisterCareHome.
pub async fn register(h: &Handlers, req: pb::RegisterCareHomeRequest) -> ServiceResult<pb::CareHome> {
    let ctx = CommandCtx::from_proto(req.context)?;
    let chapter_id = id("/chapter_id", &req.chapter_id)?;
    let carehome_id = ctx.new_object_id("carehome");
    let input = RegisterCareHomeInput {
        name: &req.name,
        address: &req.address,
        timezone: &req.timezone,
        ride_hours: hours_input(&req.ride_hours),
        turnaround_minutes: req.turnaround_minutes,
        requires_confirmation: req.requires_confirmation,
        pilots_choose_riders: req.pilots_choose_riders,
    };
    let cmd = RegisterCareHome::parse(carehome_id, chapter_id, input)?;
    let chapter = chapter(&h.store, chapter_id).await?;
    let loaded = execute(&h.store, &ctx, &homes::stream(carehome_id), |s| homes::register(s, &cmd)).await?;
    let home = loaded.state.ok_or_else(|| ServiceError::NotFound("care home".into()))?;
    view(h, &home, &chapter.timezone, loaded.version).await
}

/// ChangeRideHours.
pub async fn change_ride_hours(h: &Handlers, req: pb::ChangeRideHoursRequest) -> ServiceResult<pb::CareHome> {
    let ctx = CommandCtx::from_proto(req.context)?;
    let carehome_id = id("/carehome_id", &req.carehome_id)?;
    let hours = homes::parse_new_ride_hours(hours_input(&req.ride_hours))?;
    let loaded = execute(&h.store, &ctx, &homes::stream(carehome_id), |s| homes::change_ride_hours(s, &hours)).await?;
    view_loaded(h, loaded).await
}

/// CloseCareHome.
pub async fn close(h: &Handlers, req: pb::CloseCareHomeRequest) -> ServiceResult<pb::CareHome> {
    let ctx = CommandCtx::from_proto(req.context)?;
    let carehome_id = id("/carehome_id", &req.carehome_id)?;
    let c = req.closure.unwrap_or_default();
    let mut closure = homes::parse_closure(&c.from, &c.to, &c.reason)?;
    closure.reason = seal_text(h, &carehome_subject(carehome_id), &closure.reason).await?;
    let loaded = execute(&h.store, &ctx, &homes::stream(carehome_id), |s| homes::close(s, &closure)).await?;
    view_loaded(h, loaded).await
}

/// AssignCoordinator.
pub async fn assign_coordinator(h: &Handlers, req: pb::CoordinatorRequest) -> ServiceResult<pb::CareHome> {
    let ctx = CommandCtx::from_proto(req.context)?;
    let carehome_id = id("/carehome_id", &req.carehome_id)?;
    let user_id = coordinators::parse_user_id(&req.user_id)?;
    let loaded = execute(&h.store, &ctx, &homes::stream(carehome_id), |s| coordinators::assign(s, &user_id)).await?;
    view_loaded(h, loaded).await
}

/// RemoveCoordinator.
pub async fn remove_coordinator(h: &Handlers, req: pb::CoordinatorRequest) -> ServiceResult<pb::CareHome> {
    let ctx = CommandCtx::from_proto(req.context)?;
    let carehome_id = id("/carehome_id", &req.carehome_id)?;
    let user_id = coordinators::parse_user_id(&req.user_id)?;
    let loaded = execute(&h.store, &ctx, &homes::stream(carehome_id), |s| coordinators::remove(s, &user_id)).await?;
    view_loaded(h, loaded).await
}

/// GetCareHome.
pub async fn get(h: &Handlers, req: pb::IdRequest) -> ServiceResult<pb::CareHome> {
    let carehome_id = id("/id", &req.id)?;
    let (home, version) = load_existing::<CareHome>(&h.store, &homes::stream(carehome_id), "care home").await?;
    let chapter = chapter(&h.store, home.chapter_id).await?;
    view(h, &home, &chapter.timezone, version).await
}

/// ListCareHomes: a chapter's care homes, in id order.
pub async fn list(h: &Handlers, req: pb::ListRequest) -> ServiceResult<pb::ListCareHomesResponse> {
    let chapter_id: Uuid = id("/parent_id", &req.parent_id)?;
    let paging = PageRequest::parse(req.limit, &req.cursor)?;
    let chapter = chapter(&h.store, chapter_id).await?;
    let page = readmodel::page::<CareHome>(&h.store, chapter_id, &paging).await?;
    let mut carehomes = Vec::with_capacity(page.items.len());
    for d in &page.items {
        carehomes.push(view(h, &d.state, &chapter.timezone, d.version).await?);
    }
    Ok(pb::ListCareHomesResponse { carehomes, next_cursor: page.next_cursor })
}

//! Trishaw calls: commission, report an issue, out of / return to service, retire, read
//! one (from its stream), list a care home's (from the read model), and the maintenance
//! log (the trishaw's own events, with the role of who recorded each).

use domain::DomainEvent;
use domain::events::CareHomeEvent;
use domain::types::BikeStatus;
use samskab_proto::carehome::v1 as pb;
use servicekit::{CommandCtx, ServiceError, ServiceResult};
use uuid::Uuid;

use super::{Handlers, bike_subject, chapter_of, id, load_existing, open_text, rfc3339, seal_text};
use crate::bikes::{self, Bike, CommissionBike, ReportIssue, ServiceChange};
use crate::readmodel::{self, PageRequest};
use servicekit::aggregate::execute_in;

/// The proto form of a trishaw of a care home in `chapter_id` (its reason opened).
async fn view(h: &Handlers, b: &Bike, chapter_id: Uuid, version: u64) -> ServiceResult<pb::Bike> {
    let out = b.status != BikeStatus::InService;
    let reason = match (&b.reason, out) {
        (Some(r), true) => open_text(h, &bike_subject(b.bike_id), r).await?,
        _ => String::new(),
    };
    Ok(pb::Bike {
        bike_id: b.bike_id.to_string(),
        carehome_id: b.carehome_id.to_string(),
        chapter_id: chapter_id.to_string(),
        name: b.name.clone(),
        bike_type: b.bike_type.clone(),
        seats: b.seats,
        status: b.status.to_string(),
        out_of_service_reason: reason,
        expected_back: b.expected_back.map(|d| d.to_string()).unwrap_or_default(),
        version,
    })
}

/// CommissionBike.
pub async fn commission(h: &Handlers, req: pb::CommissionBikeRequest) -> ServiceResult<pb::Bike> {
    let ctx = CommandCtx::from_proto(req.context)?;
    let carehome_id = id("/carehome_id", &req.carehome_id)?;
    let bike_id = ctx.new_object_id("bike");
    let cmd = CommissionBike::parse(bike_id, carehome_id, &req.name, &req.bike_type, req.seats)?;
    let home_chapter = chapter_of(h, carehome_id).await?;
    let stream = bikes::stream(bike_id);
    let loaded = execute_in(&h.store, &ctx, &stream, Some(home_chapter), |s| bikes::commission(s, &cmd)).await?;
    let bike = loaded.state.ok_or_else(|| ServiceError::NotFound("trishaw".into()))?;
    view(h, &bike, home_chapter, loaded.version).await
}

/// Runs a command on an existing trishaw, in its care home's chapter.
async fn on_bike<F>(
    h: &Handlers,
    context: Option<samskab_proto::common::v1::CommandContext>,
    bike_id: &str,
    decide: F,
) -> ServiceResult<pb::Bike>
where
    F: Fn(Option<&Bike>) -> Result<Vec<CareHomeEvent>, servicekit::DomainError>,
{
    let ctx = CommandCtx::from_proto(context)?;
    let bike_id = id("/bike_id", bike_id)?;
    let stream = bikes::stream(bike_id);
    let (bike, _) = load_existing::<Bike>(&h.store, &stream, "trishaw").await?;
    let home_chapter = chapter_of(h, bike.carehome_id).await?;
    let loaded = execute_in(&h.store, &ctx, &stream, Some(home_chapter), decide).await?;
    let bike = loaded.state.ok_or_else(|| ServiceError::NotFound("trishaw".into()))?;
    view(h, &bike, home_chapter, loaded.version).await
}

/// Seals a change's free text under the trishaw's key (validated in clear first).
async fn sealed_change(h: &Handlers, bike_id: &str, mut change: ServiceChange) -> ServiceResult<ServiceChange> {
    if let Some(r) = &change.reason {
        change.reason = Some(seal_text(h, &bike_subject(id("/bike_id", bike_id)?), r).await?);
    }
    Ok(change)
}

/// ReportBikeIssue.
pub async fn report_issue(h: &Handlers, req: pb::ReportBikeIssueRequest) -> ServiceResult<pb::Bike> {
    let mut cmd = ReportIssue::parse(&req.description, req.grounding)?;
    cmd.description = seal_text(h, &bike_subject(id("/bike_id", &req.bike_id)?), &cmd.description).await?;
    on_bike(h, req.context, &req.bike_id, |s| bikes::report_issue(s, &cmd)).await
}

/// TakeBikeOutOfService.
pub async fn take_out_of_service(h: &Handlers, req: pb::BikeServiceRequest) -> ServiceResult<pb::Bike> {
    let change = ServiceChange::parse(&req.reason, &req.expected_back, true)?;
    let change = sealed_change(h, &req.bike_id, change).await?;
    on_bike(h, req.context, &req.bike_id, |s| bikes::take_out_of_service(s, &change)).await
}

/// ReturnBikeToService.
pub async fn return_to_service(h: &Handlers, req: pb::BikeServiceRequest) -> ServiceResult<pb::Bike> {
    let change = ServiceChange::parse(&req.reason, &req.expected_back, false)?;
    let change = sealed_change(h, &req.bike_id, change).await?;
    on_bike(h, req.context, &req.bike_id, |s| bikes::return_to_service(s, &change)).await
}

/// RetireBike.
pub async fn retire(h: &Handlers, req: pb::BikeServiceRequest) -> ServiceResult<pb::Bike> {
    let change = ServiceChange::parse(&req.reason, &req.expected_back, false)?;
    let change = sealed_change(h, &req.bike_id, change).await?;
    on_bike(h, req.context, &req.bike_id, |s| bikes::retire(s, &change)).await
}

/// CorrectBike: the changed fields only (`If-Match` in the context).
pub async fn correct(h: &Handlers, req: pb::CorrectBikeRequest) -> ServiceResult<pb::Bike> {
    let c = bikes::parse_correction(req.name.as_deref(), req.bike_type.as_deref(), req.seats)?;
    on_bike(h, req.context, &req.bike_id, |s| bikes::correct(s, &c)).await
}

/// MoveBike: to another care home of the same chapter (another chapter's is 404: it is not
/// known here to the caller's chapter).
pub async fn move_to(h: &Handlers, req: pb::MoveBikeRequest) -> ServiceResult<pb::Bike> {
    let to = id("/carehome_id", &req.carehome_id)?;
    let bike_id = id("/bike_id", &req.bike_id)?;
    let (bike, _) = load_existing::<Bike>(&h.store, &bikes::stream(bike_id), "trishaw").await?;
    let from_chapter = chapter_of(h, bike.carehome_id).await?;
    let target_chapter = chapter_of(h, to).await?;
    if target_chapter != from_chapter {
        return Err(ServiceError::NotFound("care home".into()));
    }
    on_bike(h, req.context, &req.bike_id, |s| bikes::move_to(s, to)).await
}

/// GetBike.
pub async fn get(h: &Handlers, req: pb::IdRequest) -> ServiceResult<pb::Bike> {
    let bike_id = id("/id", &req.id)?;
    let (bike, version) = load_existing::<Bike>(&h.store, &bikes::stream(bike_id), "trishaw").await?;
    let home_chapter = chapter_of(h, bike.carehome_id).await?;
    view(h, &bike, home_chapter, version).await
}

/// ListBikes: a care home's trishaws, in id order.
pub async fn list(h: &Handlers, req: pb::ListRequest) -> ServiceResult<pb::ListBikesResponse> {
    let carehome_id = id("/parent_id", &req.parent_id)?;
    let paging = PageRequest::parse(req.limit, &req.cursor)?;
    let home_chapter = chapter_of(h, carehome_id).await?;
    let page = readmodel::page::<Bike>(&h.store, carehome_id, &paging).await?;
    let mut bikes = Vec::with_capacity(page.items.len());
    for d in &page.items {
        bikes.push(view(h, &d.state, home_chapter, d.version).await?);
    }
    Ok(pb::ListBikesResponse { bikes, next_cursor: page.next_cursor })
}

/// GetMaintenanceLog: every event of the trishaw's stream, in order.
pub async fn maintenance_log(h: &Handlers, req: pb::IdRequest) -> ServiceResult<pb::MaintenanceLog> {
    let bike_id = id("/id", &req.id)?;
    let events = h.store.read_whole_stream(&bikes::stream(bike_id)).await?;
    if events.is_empty() {
        return Err(ServiceError::NotFound("trishaw".into()));
    }
    let mut entries = Vec::with_capacity(events.len());
    for e in &events {
        let Some(event) = CareHomeEvent::from_stored(&e.event_type, e.payload.get())
            .map_err(|err| ServiceError::Internal(format!("{} v{}: {err}", e.stream_id, e.version)))?
        else {
            continue;
        };
        let mut entry = entry(&event);
        entry.description = open_text(h, &bike_subject(bike_id), &entry.description).await?;
        entry.reason = open_text(h, &bike_subject(bike_id), &entry.reason).await?;
        entry.at = rfc3339(e.occurred_at);
        entry.actor_role = e.metadata.actor.as_ref().map(|a| a.role.clone()).unwrap_or_default();
        entries.push(entry);
    }
    Ok(pb::MaintenanceLog { entries })
}

fn entry(event: &CareHomeEvent) -> pb::MaintenanceEntry {
    use CareHomeEvent as E;
    let kind = |k: &str| pb::MaintenanceEntry { kind: k.to_owned(), ..Default::default() };
    match event {
        E::BikeCommissioned(_) => kind("commissioned"),
        E::BikeIssueReported(i) => pb::MaintenanceEntry {
            description: i.description.clone(),
            grounding: i.grounding,
            ..kind("issue_reported")
        },
        E::BikeTakenOutOfService(t) => pb::MaintenanceEntry {
            reason: t.reason.clone(),
            expected_back: t.expected_back.map(|d| d.to_string()).unwrap_or_default(),
            ..kind("taken_out_of_service")
        },
        E::BikeRepaired(r) => pb::MaintenanceEntry { description: r.note.clone(), ..kind("repaired") },
        E::BikeReturnedToService(_) => kind("returned_to_service"),
        E::BikeRetired(r) => pb::MaintenanceEntry { reason: r.reason.clone(), ..kind("retired") },
        E::BikeDetailsCorrected(_) => kind("details_corrected"),
        E::BikeMoved(_) => kind("moved"),
        other => kind(other.event_type()),
    }
}

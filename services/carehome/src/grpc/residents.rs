//! Resident calls. Personal fields are sealed before they reach the log and opened only
//! to answer a read of the resident (empty, `erased: true`, once the key is gone). Erasure
//! deletes the key before it records `ResidentErased`.

use domain::events::{CareHomeEvent, ResidentPersonal};
use domain::types::{ResidentStatus, Sealed};
use samskab_proto::carehome::v1 as pb;
use servicekit::aggregate::{landed, load};
use servicekit::executor::Loader;
use servicekit::{CommandCtx, ServiceError, ServiceResult};
use uuid::Uuid;

use super::{Handlers, chapter_of, id, key_error, load_existing, rfc3339};
use crate::readmodel::{self, PageRequest};
use crate::residents::{self, AdmitResident, Consent, ConsentInput, PERSONAL_FIELD, Resident, subject};
use crate::validation::Violations;
use servicekit::aggregate::execute_in;

mod export;

pub use export::export;

/// Opens a resident's personal fields; `None` once erased.
async fn personal(h: &Handlers, r: &Resident) -> ServiceResult<Option<ResidentPersonal>> {
    match &r.personal {
        Some(sealed) => open(h, r.resident_id, sealed).await,
        None => Ok(None),
    }
}

async fn open(h: &Handlers, resident_id: Uuid, sealed: &Sealed) -> ServiceResult<Option<ResidentPersonal>> {
    h.keys.unseal_json(&subject(resident_id), PERSONAL_FIELD, sealed).await.map_err(key_error)
}

fn consent_view(c: &Consent) -> pb::Consent {
    pb::Consent {
        given_by: c.given_by.to_string(),
        given_at: rfc3339(c.given_at),
        scope: c.scope.iter().map(|s| s.to_string()).collect(),
    }
}

/// The proto form of a resident, personal fields opened.
async fn view(h: &Handlers, r: &Resident, chapter_id: Uuid, version: u64) -> ServiceResult<pb::Resident> {
    Ok(view_opened(r, personal(h, r).await?, chapter_id, version))
}

/// The proto form of a resident whose personal fields are opened (`None`: erased).
fn view_opened(r: &Resident, personal: Option<ResidentPersonal>, chapter_id: Uuid, version: u64) -> pb::Resident {
    let erased = r.status == ResidentStatus::Erased || personal.is_none();
    let personal = personal.unwrap_or_default();
    pb::Resident {
        resident_id: r.resident_id.to_string(),
        carehome_id: r.carehome_id.to_string(),
        chapter_id: chapter_id.to_string(),
        display_name: personal.display_name,
        notes: personal.notes.unwrap_or_default(),
        consent: r.consent.as_ref().map(consent_view),
        status: r.status.to_string(),
        version,
        erased,
    }
}

fn consent_input(c: &pb::Consent) -> ConsentInput<'_> {
    ConsentInput { given_by: &c.given_by, given_at: &c.given_at, scope: &c.scope }
}

/// AdmitResident: validates, seals the personal fields with the resident's new key, records.
pub async fn admit(h: &Handlers, req: pb::AdmitResidentRequest) -> ServiceResult<pb::Resident> {
    let ctx = CommandCtx::from_proto(req.context)?;
    let carehome_id = id("/carehome_id", &req.carehome_id)?;
    let mut v = Violations::new();
    let fields = v.check_all(residents::parse_personal(&req.display_name, &req.notes));
    let consent = v.check_all(residents::parse_consent("/consent", req.consent.as_ref().map(consent_input)));
    let (fields, consent) = v.finish(|| fields.zip(consent))?;
    let home_chapter = chapter_of(h, carehome_id).await?;
    let resident_id = ctx.new_object_id("resident");
    let stream = residents::stream(resident_id);
    let existing = load::<Resident>(&h.store, &stream).await?;
    let retry = landed(&h.store, &ctx, &stream).await?;
    if let Some(r) = existing.state.as_ref().filter(|_| retry) {
        return view(h, r, home_chapter, existing.version).await; // a retry: its original outcome
    }
    let sealed = h.keys.seal_json(&subject(resident_id), PERSONAL_FIELD, &fields).await.map_err(key_error)?;
    let cmd = AdmitResident { resident_id, carehome_id, personal: sealed, consent };
    let loaded = execute_in(&h.store, &ctx, &stream, Some(home_chapter), |s| residents::admit(s, &cmd)).await?;
    let r = loaded.state.ok_or_else(|| ServiceError::NotFound("resident".into()))?;
    view(h, &r, home_chapter, loaded.version).await
}

/// A resident, their stream's version and their chapter.
async fn existing(h: &Handlers, resident_id: Uuid) -> ServiceResult<(Resident, u64, Uuid)> {
    let (r, version) = load_existing::<Resident>(&h.store, &residents::stream(resident_id), "resident").await?;
    let home_chapter = chapter_of(h, r.carehome_id).await?;
    Ok((r, version, home_chapter))
}

/// Runs a command on an existing resident, in their care home's chapter.
async fn on_resident<F>(h: &Handlers, ctx: &CommandCtx, resident_id: Uuid, decide: F) -> ServiceResult<pb::Resident>
where
    F: Fn(Option<&Resident>) -> Result<Vec<CareHomeEvent>, servicekit::DomainError>,
{
    let (_, _, chapter_id) = existing(h, resident_id).await?;
    let stream = residents::stream(resident_id);
    let loaded = execute_in(&h.store, ctx, &stream, Some(chapter_id), decide).await?;
    let r = loaded.state.ok_or_else(|| ServiceError::NotFound("resident".into()))?;
    view(h, &r, chapter_id, loaded.version).await
}

/// RecordConsent (the body is the consent itself: fields `/given_by`, `/given_at`, `/scope`).
pub async fn record_consent(h: &Handlers, req: pb::RecordConsentRequest) -> ServiceResult<pb::Resident> {
    let ctx = CommandCtx::from_proto(req.context)?;
    let resident_id = id("/resident_id", &req.resident_id)?;
    let consent =
        residents::parse_consent("", req.consent.as_ref().map(consent_input)).map_err(ServiceError::Invalid)?;
    on_resident(h, &ctx, resident_id, |s| residents::record_consent(s, &consent)).await
}

/// WithdrawConsent.
pub async fn withdraw_consent(h: &Handlers, req: pb::ResidentCommandRequest) -> ServiceResult<pb::Resident> {
    let ctx = CommandCtx::from_proto(req.context)?;
    let resident_id = id("/resident_id", &req.resident_id)?;
    on_resident(h, &ctx, resident_id, residents::withdraw_consent).await
}

/// MoveOutResident.
pub async fn move_out(h: &Handlers, req: pb::ResidentCommandRequest) -> ServiceResult<pb::Resident> {
    let ctx = CommandCtx::from_proto(req.context)?;
    let resident_id = id("/resident_id", &req.resident_id)?;
    on_resident(h, &ctx, resident_id, residents::move_out).await
}

/// CorrectResident: the changed fields are merged into the opened personal fields and the
/// whole is sealed again under the resident's own key (so erasure reaches old values and
/// new); the event names the changed fields only. Nothing changed writes nothing.
pub async fn correct(h: &Handlers, req: pb::CorrectResidentRequest) -> ServiceResult<pb::Resident> {
    let ctx = CommandCtx::from_proto(req.context)?;
    let resident_id = id("/resident_id", &req.resident_id)?;
    let (display_name, notes) = residents::parse_correction(req.display_name.as_deref(), req.notes.as_deref())
        .map_err(ServiceError::Invalid)?;
    let (r, _, _) = existing(h, resident_id).await?;
    let (sealed, fields) = match personal(h, &r).await? {
        Some(current) if r.status != ResidentStatus::Erased => {
            let (next, fields) = residents::corrected(&current, display_name, notes);
            if fields.is_empty() {
                (Sealed::default(), fields)
            } else {
                (h.keys.seal_json(&subject(resident_id), PERSONAL_FIELD, &next).await.map_err(key_error)?, fields)
            }
        }
        // Erased: the decider refuses.
        _ => (Sealed::default(), vec!["display_name".to_owned()]),
    };
    on_resident(h, &ctx, resident_id, |s| residents::correct(s, &sealed, &fields)).await
}

/// EraseResident: deletes the key first, then records the erasure (once; again is harmless).
pub async fn erase(h: &Handlers, req: pb::ResidentCommandRequest) -> ServiceResult<pb::Resident> {
    let ctx = CommandCtx::from_proto(req.context)?;
    let resident_id = id("/resident_id", &req.resident_id)?;
    let stream = residents::stream(resident_id);
    let loaded = load::<Resident>(&h.store, &stream).await?;
    let r = loaded.state.ok_or_else(|| ServiceError::NotFound("resident".into()))?;
    if !landed(&h.store, &ctx, &stream).await? {
        ctx.check_version(loaded.version)?; // a refused request must not delete the key either
    }
    let home_chapter = chapter_of(h, r.carehome_id).await?;
    h.keys.erase(&subject(resident_id)).await.map_err(key_error)?;
    let loaded = execute_in(&h.store, &ctx, &stream, Some(home_chapter), residents::erase).await?;
    let r = loaded.state.ok_or_else(|| ServiceError::NotFound("resident".into()))?;
    view(h, &r, home_chapter, loaded.version).await
}

/// GetResident.
pub async fn get(h: &Handlers, req: pb::IdRequest) -> ServiceResult<pb::Resident> {
    let resident_id = id("/id", &req.id)?;
    let (r, version, chapter_id) = existing(h, resident_id).await?;
    view(h, &r, chapter_id, version).await
}

/// Residents [`get_many`] reads per call at most.
pub const RESIDENTS_AT_ONCE: usize = 200;

/// GetResidents: the residents of the ids that name one, in the order asked (each once),
/// as [`get`] would show each; their streams and their keys read in one statement each.
pub async fn get_many(h: &Handlers, req: pb::IdsRequest) -> ServiceResult<pb::ListResidentsResponse> {
    if req.ids.len() > RESIDENTS_AT_ONCE {
        return Err(ServiceError::invalid("/ids", format!("at most {RESIDENTS_AT_ONCE} ids")));
    }
    let mut ids = Vec::with_capacity(req.ids.len());
    for (i, raw) in req.ids.iter().enumerate() {
        let resident_id = id(&format!("/ids/{i}"), raw)?;
        if !ids.contains(&resident_id) {
            ids.push(resident_id);
        }
    }
    let streams: Vec<String> = ids.iter().map(|r| residents::stream(*r)).collect();
    let mut loader = Loader::detached(h.store.clone());
    loader.read_all_of(&streams).await?;
    let mut found = Vec::with_capacity(ids.len());
    for (resident_id, stream) in ids.iter().zip(&streams) {
        if let Some(r) = loader.fold::<Resident>(stream).await? {
            let chapter_id = chapter_of(h, r.carehome_id).await?;
            found.push((*resident_id, r, loader.version(stream), chapter_id));
        }
    }
    let subjects: Vec<String> = found.iter().map(|(resident_id, ..)| subject(*resident_id)).collect();
    let sealed: Vec<(&str, &str, &Sealed)> = found
        .iter()
        .zip(&subjects)
        .filter_map(|((_, r, ..), s)| r.personal.as_ref().map(|p| (s.as_str(), PERSONAL_FIELD, p)))
        .collect();
    let mut opened = h.keys.unseal_json_many::<ResidentPersonal>(&sealed).await.map_err(key_error)?.into_iter();
    let residents = found
        .into_iter()
        .map(|(_, r, version, chapter_id)| {
            let personal = if r.personal.is_some() { opened.next().flatten() } else { None };
            view_opened(&r, personal, chapter_id, version)
        })
        .collect();
    Ok(pb::ListResidentsResponse { residents, next_cursor: String::new() })
}

/// ListResidents: a care home's residents, in id order, personal fields opened.
pub async fn list(h: &Handlers, req: pb::ListRequest) -> ServiceResult<pb::ListResidentsResponse> {
    let carehome_id = id("/parent_id", &req.parent_id)?;
    let paging = PageRequest::parse(req.limit, &req.cursor)?;
    let home_chapter = chapter_of(h, carehome_id).await?;
    let page = readmodel::page::<Resident>(&h.store, carehome_id, &paging).await?;
    let mut out = Vec::with_capacity(page.items.len());
    for d in &page.items {
        out.push(view(h, &d.state, home_chapter, d.version).await?);
    }
    Ok(pb::ListResidentsResponse { residents: out, next_cursor: page.next_cursor })
}

//! The gRPC face of the volunteer service: validates requests into commands, runs them
//! against the pilot aggregate, and answers with pilots whose personal fields are opened
//! with the pilot's key (empty once erased).

use domain::events::PilotPersonal;
use domain::types::{self, Invalid, LocalTime, PilotStatus, WeeklyWindow};
use eventlog::EventStore;
use keystore::KeyStore;
use samskab_proto::volunteer::v1::{self as pb, volunteer_service_server::VolunteerService};
use servicekit::aggregate::{self, Loaded};
use servicekit::{CommandCtx, ServiceError, ServiceResult};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::pilots::{self, Command, Pilot};
use crate::readmodel;

/// The service's handlers.
#[derive(Clone)]
pub struct Volunteer {
    pub(crate) store: EventStore,
    pub(crate) keys: KeyStore,
}

/// The stream of a pilot.
pub fn stream(pilot_id: Uuid) -> String {
    format!("pilot-{pilot_id}")
}

fn subject(pilot_id: Uuid) -> String {
    format!("pilot:{pilot_id}")
}

const MAX_NAME: usize = 200;

fn invalid_all(errors: Vec<Invalid>) -> Result<(), ServiceError> {
    if errors.is_empty() { Ok(()) } else { Err(ServiceError::Invalid(errors)) }
}

fn optional_label(field: &str, value: &str, max: usize, errors: &mut Vec<Invalid>) -> Option<String> {
    if value.trim().is_empty() {
        return None;
    }
    types::parse_label(field, value, max).map_err(|e| errors.push(e)).ok()
}

fn parse_email(value: &str, errors: &mut Vec<Invalid>) -> Option<String> {
    let v = optional_label("/email", value, 254, errors)?;
    let ok = v.split_once('@').is_some_and(|(a, b)| !a.is_empty() && b.contains('.') && !v.contains(' '));
    if !ok {
        errors.push(Invalid::new("/email", "must be an e-mail address"));
        return None;
    }
    Some(v)
}

fn parse_phone(value: &str, errors: &mut Vec<Invalid>) -> Option<String> {
    let v = optional_label("/phone", value, 40, errors)?;
    let ok = v.chars().all(|c| c.is_ascii_digit() || " +-()".contains(c)) && v.chars().any(|c| c.is_ascii_digit());
    if !ok {
        errors.push(Invalid::new("/phone", "must be a phone number"));
        return None;
    }
    Some(v)
}

impl Volunteer {
    /// Handlers over a store and its key store.
    pub fn new(store: EventStore, keys: KeyStore) -> Self {
        Volunteer { store, keys }
    }

    async fn run(&self, ctx: &CommandCtx, pilot_id: Uuid, command: Command) -> ServiceResult<pb::Pilot> {
        let loaded = aggregate::execute::<Pilot, _>(&self.store, ctx, &stream(pilot_id), |state| {
            pilots::decide(state, command.clone())
        })
        .await?;
        self.to_proto(loaded).await
    }

    async fn load(&self, pilot_id: Uuid) -> ServiceResult<Loaded<Pilot>> {
        let loaded = aggregate::load::<Pilot>(&self.store, &stream(pilot_id)).await?;
        if loaded.state.is_none() {
            return Err(ServiceError::NotFound("pilot".into()));
        }
        Ok(loaded)
    }

    async fn personal(&self, p: &Pilot) -> ServiceResult<Option<PilotPersonal>> {
        let Some(sealed) = &p.personal else { return Ok(None) };
        self.keys.unseal_json(&subject(p.pilot_id), "personal", sealed).await.map_err(ServiceError::from)
    }

    pub(crate) async fn to_proto(&self, loaded: Loaded<Pilot>) -> ServiceResult<pb::Pilot> {
        let p = loaded.state.ok_or_else(|| ServiceError::NotFound("pilot".into()))?;
        let personal = self.personal(&p).await?;
        Ok(pilot_proto(&p, loaded.version, personal))
    }

    async fn pilot_id(&self, id: &str) -> ServiceResult<Uuid> {
        Ok(types::parse_id("/pilot_id", id)?)
    }

    /// Everything held about a pilot, decrypted: the current record and every event of
    /// their stream with sealed fields opened.
    async fn export(&self, pilot_id: Uuid) -> ServiceResult<serde_json::Value> {
        let loaded = self.load(pilot_id).await?;
        let events = self.store.read_whole_stream(&stream(pilot_id)).await?;
        let current = self.to_proto(loaded).await?;
        let mut history = Vec::new();
        for e in events {
            let mut data: serde_json::Value = serde_json::from_str(e.payload.get()).unwrap_or_default();
            if let Some(sealed) = data.get("personal").and_then(|v| v.as_str()).map(|s| types::Sealed(s.to_owned())) {
                let opened: Option<PilotPersonal> =
                    self.keys.unseal_json(&subject(pilot_id), "personal", &sealed).await.map_err(ServiceError::from)?;
                data["personal"] = serde_json::to_value(opened).unwrap_or_default();
            }
            history.push(serde_json::json!({
                "type": e.event_type, "occurred_at": e.occurred_at, "data": data,
                "actor_role": e.metadata.actor.map(|a| a.role),
            }));
        }
        Ok(serde_json::json!({
            "pilot_id": current.pilot_id,
            "chapter_id": current.chapter_id,
            "status": current.status,
            "display_name": current.display_name,
            "email": current.email,
            "phone": current.phone,
            "erased": current.erased,
            "qualifications": current.qualifications.iter().map(|q| serde_json::json!({
                "bike_type": q.bike_type, "qualified_on": q.qualified_on, "valid_until": q.valid_until
            })).collect::<Vec<_>>(),
            "events": history,
        }))
    }
}

/// The proto form of a pilot.
pub fn pilot_proto(p: &Pilot, version: u64, personal: Option<PilotPersonal>) -> pb::Pilot {
    let personal = personal.unwrap_or_default();
    pb::Pilot {
        pilot_id: p.pilot_id.to_string(),
        chapter_id: p.chapter_id.to_string(),
        status: p.status.to_string(),
        display_name: personal.display_name,
        email: personal.email.unwrap_or_default(),
        phone: personal.phone.unwrap_or_default(),
        qualifications: p
            .qualifications
            .iter()
            .map(|(t, q)| pb::Qualification {
                bike_type: t.clone(),
                qualified_on: q.qualified_on.to_string(),
                valid_until: q.valid_until.to_string(),
                ..pb::Qualification::default()
            })
            .collect(),
        availability: Some(pb::Availability {
            weekly: p
                .weekly
                .iter()
                .map(|w| pb::WeeklyWindow {
                    weekday: w.weekday.to_string(),
                    from: w.from.to_string(),
                    to: w.to.to_string(),
                })
                .collect(),
            carehome_ids: p.carehome_ids.iter().map(Uuid::to_string).collect(),
        }),
        version,
        erased: p.status == PilotStatus::Erased,
    }
}

fn parse_availability(a: Option<pb::Availability>) -> Result<(Vec<WeeklyWindow>, Vec<Uuid>), ServiceError> {
    let a = a.unwrap_or_default();
    let mut errors = Vec::new();
    let mut weekly = Vec::new();
    for (i, w) in a.weekly.iter().enumerate() {
        let weekday = types::parse_enum(&format!("/weekly/{i}/weekday"), &w.weekday).map_err(|e| errors.push(e)).ok();
        let from =
            w.from.parse::<LocalTime>().map_err(|m| errors.push(Invalid::new(format!("/weekly/{i}/from"), m))).ok();
        let to = w.to.parse::<LocalTime>().map_err(|m| errors.push(Invalid::new(format!("/weekly/{i}/to"), m))).ok();
        if let (Some(weekday), Some(from), Some(to)) = (weekday, from, to) {
            if from >= to {
                errors.push(Invalid::new(format!("/weekly/{i}/to"), "must be after from"));
            } else {
                weekly.push(WeeklyWindow { weekday, from, to });
            }
        }
    }
    let mut carehome_ids = Vec::new();
    for (i, id) in a.carehome_ids.iter().enumerate() {
        match types::parse_id(&format!("/carehome_ids/{i}"), id) {
            Ok(id) if !carehome_ids.contains(&id) => carehome_ids.push(id),
            Ok(_) => {}
            Err(e) => errors.push(e),
        }
    }
    invalid_all(errors)?;
    Ok((weekly, carehome_ids))
}

#[tonic::async_trait]
impl VolunteerService for Volunteer {
    async fn register_pilot(&self, req: Request<pb::RegisterPilotRequest>) -> Result<Response<pb::Pilot>, Status> {
        let r = req.into_inner();
        let ctx = CommandCtx::from_proto(r.context)?;
        let mut errors = Vec::new();
        let chapter_id = types::parse_id("/chapter_id", &r.chapter_id).map_err(|e| errors.push(e)).ok();
        let display_name =
            types::parse_label("/display_name", &r.display_name, MAX_NAME).map_err(|e| errors.push(e)).ok();
        let email = parse_email(&r.email, &mut errors);
        let phone = parse_phone(&r.phone, &mut errors);
        invalid_all(errors)?;
        let (Some(chapter_id), Some(display_name)) = (chapter_id, display_name) else {
            return Err(ServiceError::Internal("a checked field was missing".into()).into());
        };
        let pilot_id = ctx.new_object_id("pilot");
        // A retry of a registration that already landed must not seal again.
        if let Ok(existing) = self.load(pilot_id).await {
            return Ok(Response::new(self.to_proto(existing).await?));
        }
        let personal = self
            .keys
            .seal_json(&subject(pilot_id), "personal", &PilotPersonal { display_name, email, phone })
            .await
            .map_err(ServiceError::from)?;
        Ok(Response::new(self.run(&ctx, pilot_id, Command::Register { pilot_id, chapter_id, personal }).await?))
    }

    async fn qualify_pilot(&self, req: Request<pb::QualifyPilotRequest>) -> Result<Response<pb::Pilot>, Status> {
        let r = req.into_inner();
        let ctx = CommandCtx::from_proto(r.context)?;
        let pilot_id = self.pilot_id(&r.pilot_id).await?;
        let q = r.qualification.unwrap_or_default();
        let mut errors = Vec::new();
        let bike_type = if q.bike_type.trim().is_empty() {
            Some("trishaw".to_owned())
        } else {
            types::parse_label("/bike_type", &q.bike_type, 60).map_err(|e| errors.push(e)).ok()
        };
        let qualified_on = types::parse_date("/qualified_on", &q.qualified_on).map_err(|e| errors.push(e)).ok();
        let valid_until = types::parse_date("/valid_until", &q.valid_until).map_err(|e| errors.push(e)).ok();
        invalid_all(errors)?;
        let (Some(bike_type), Some(qualified_on), Some(valid_until)) = (bike_type, qualified_on, valid_until) else {
            return Err(ServiceError::Internal("a checked field was missing".into()).into());
        };
        let cmd = Command::Qualify { bike_type, qualified_on, valid_until };
        Ok(Response::new(self.run(&ctx, pilot_id, cmd).await?))
    }

    async fn suspend_pilot(&self, req: Request<pb::PilotCommandRequest>) -> Result<Response<pb::Pilot>, Status> {
        let r = req.into_inner();
        let ctx = CommandCtx::from_proto(r.context)?;
        Ok(Response::new(self.run(&ctx, self.pilot_id(&r.pilot_id).await?, Command::Suspend).await?))
    }

    async fn reinstate_pilot(&self, req: Request<pb::PilotCommandRequest>) -> Result<Response<pb::Pilot>, Status> {
        let r = req.into_inner();
        let ctx = CommandCtx::from_proto(r.context)?;
        Ok(Response::new(self.run(&ctx, self.pilot_id(&r.pilot_id).await?, Command::Reinstate).await?))
    }

    async fn retire_pilot(&self, req: Request<pb::PilotCommandRequest>) -> Result<Response<pb::Pilot>, Status> {
        let r = req.into_inner();
        let ctx = CommandCtx::from_proto(r.context)?;
        Ok(Response::new(self.run(&ctx, self.pilot_id(&r.pilot_id).await?, Command::Retire).await?))
    }

    async fn declare_availability(
        &self,
        req: Request<pb::DeclareAvailabilityRequest>,
    ) -> Result<Response<pb::Pilot>, Status> {
        let r = req.into_inner();
        let ctx = CommandCtx::from_proto(r.context)?;
        let pilot_id = self.pilot_id(&r.pilot_id).await?;
        let (weekly, carehome_ids) = parse_availability(r.availability)?;
        Ok(Response::new(self.run(&ctx, pilot_id, Command::DeclareAvailability { weekly, carehome_ids }).await?))
    }

    async fn correct_pilot(&self, req: Request<pb::CorrectPilotRequest>) -> Result<Response<pb::Pilot>, Status> {
        let r = req.into_inner();
        let ctx = CommandCtx::from_proto(r.context)?;
        let pilot_id = self.pilot_id(&r.pilot_id).await?;
        let mut errors = Vec::new();
        let display_name = r
            .display_name
            .as_deref()
            .and_then(|v| types::parse_label("/display_name", v, MAX_NAME).map_err(|e| errors.push(e)).ok());
        // An empty e-mail or phone clears it (`null` in the merge patch).
        let email = r.email.as_deref().map(|v| parse_email(v, &mut errors));
        let phone = r.phone.as_deref().map(|v| parse_phone(v, &mut errors));
        invalid_all(errors)?;
        let loaded = self.load(pilot_id).await?;
        let p = loaded.state.as_ref().ok_or_else(|| ServiceError::NotFound("pilot".into()))?;
        let current = self.personal(p).await?.unwrap_or_default();
        let mut next = current.clone();
        let mut fields = Vec::new();
        if let Some(name) = display_name.filter(|n| *n != current.display_name) {
            next.display_name = name;
            fields.push("display_name".to_owned());
        }
        if let Some(email) = email.filter(|e| *e != current.email) {
            next.email = email;
            fields.push("email".to_owned());
        }
        if let Some(phone) = phone.filter(|p| *p != current.phone) {
            next.phone = phone;
            fields.push("phone".to_owned());
        }
        // The corrected whole is sealed under the pilot's own key: erasure reaches it and
        // every older value alike. Nothing changed: nothing is sealed or written.
        let personal = if fields.is_empty() || p.status == PilotStatus::Erased {
            types::Sealed::default()
        } else {
            self.keys.seal_json(&subject(pilot_id), "personal", &next).await.map_err(ServiceError::from)?
        };
        Ok(Response::new(self.run(&ctx, pilot_id, Command::Correct { personal, fields }).await?))
    }

    async fn erase_pilot(&self, req: Request<pb::PilotCommandRequest>) -> Result<Response<pb::Pilot>, Status> {
        let r = req.into_inner();
        let ctx = CommandCtx::from_proto(r.context)?;
        let pilot_id = self.pilot_id(&r.pilot_id).await?;
        self.load(pilot_id).await?;
        // The key goes first: from this moment no read can show the pilot's data.
        self.keys.erase(&subject(pilot_id)).await.map_err(ServiceError::from)?;
        Ok(Response::new(self.run(&ctx, pilot_id, Command::Erase).await?))
    }

    async fn get_pilot(&self, req: Request<pb::GetPilotRequest>) -> Result<Response<pb::Pilot>, Status> {
        let pilot_id = self.pilot_id(&req.into_inner().pilot_id).await?;
        let loaded = self.load(pilot_id).await?;
        Ok(Response::new(self.to_proto(loaded).await?))
    }

    async fn list_pilots(
        &self,
        req: Request<pb::ListPilotsRequest>,
    ) -> Result<Response<pb::ListPilotsResponse>, Status> {
        let r = req.into_inner();
        let chapter_id = types::parse_id("/chapter_id", &r.chapter_id).map_err(ServiceError::from)?;
        let limit = match r.limit {
            0 => 50,
            n if n <= 500 => n as usize,
            _ => return Err(ServiceError::invalid("/limit", "must be at most 500").into()),
        };
        let after = if r.cursor.is_empty() {
            None
        } else {
            Some(types::parse_id("/cursor", &r.cursor).map_err(ServiceError::from)?)
        };
        let on =
            if r.on.is_empty() { None } else { Some(types::parse_date("/on", &r.on).map_err(ServiceError::from)?) };
        let docs = readmodel::list(&self.store, chapter_id, after, limit + 1).await.map_err(ServiceError::from)?;
        let more = docs.len() > limit;
        let mut pilots = Vec::with_capacity(limit);
        for d in docs.iter().take(limit) {
            let p = d.to_pilot();
            let personal = self.personal(&p).await?;
            let mut proto = pilot_proto(&p, d.version, personal);
            if let Some(on) = on {
                for q in &mut proto.qualifications {
                    (q.state, q.days_left) = match types::parse_date("/valid_until", &q.valid_until) {
                        Ok(until) => {
                            let (state, left) = crate::pilots::qualification_state(until, on);
                            (state.to_owned(), left)
                        }
                        Err(_) => ("expired".to_owned(), 0),
                    };
                }
            }
            pilots.push(proto);
        }
        let next_cursor =
            if more { pilots.last().map(|p| p.pilot_id.clone()).unwrap_or_default() } else { String::new() };
        Ok(Response::new(pb::ListPilotsResponse { pilots, next_cursor }))
    }

    async fn export_pilot(&self, req: Request<pb::ExportPilotRequest>) -> Result<Response<pb::PersonalExport>, Status> {
        let pilot_id = self.pilot_id(&req.into_inner().pilot_id).await?;
        let json = self.export(pilot_id).await?;
        Ok(Response::new(pb::PersonalExport { json: json.to_string() }))
    }
}

//! Pilot links and pilot invitations (`samskab.common.v1.Access`): a chapter admin
//! invites a person to sign in as a pilot record; redeeming the code links the record to
//! the person (`PilotAccountLinked` on the pilot's stream, so one pilot is linked to one
//! person, atomically); the person's pilot grants are read from the pilots' streams.
//!
//! The invitation's stream holds only the code's hash; the code names the stream
//! (`domain::access`), so redemption reads the write model and is in force at once.

use chrono::{DateTime, Utc};
use domain::access::{self, Invitation, Redemption};
use domain::events::{InvitationIssued, InvitationRedeemed, PilotAccountLinked, PilotAccountUnlinked, VolunteerEvent};
use domain::types::{PilotStatus, parse_id};
use domain::{Aggregate, Decision, DomainError, DomainEvent, ErrorCode};
use eventlog::EventStore;
use rand::Rng;
use samskab_proto::common::v1::{self as pb, access_server::Access};
use servicekit::access::invitation_proto;
use servicekit::executor::{self, Loader};
use servicekit::{CommandCtx, ServiceError, ServiceResult};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::grpc::stream;
use crate::pilots::Pilot;
use crate::readmodel;

/// Events left out of the integrator feed: who may sign in as whom is nobody else's.
pub const INTERNAL: &[&str] =
    &["PilotAccountLinked", "PilotAccountUnlinked", "InvitationIssued", "InvitationRedeemed", "InvitationRevoked"];

/// The stream of an invitation.
pub fn invitation_stream(invitation_id: Uuid) -> String {
    format!("invitation-{invitation_id}")
}

/// An invitation folded from the volunteer log.
#[derive(Debug, Clone, PartialEq)]
pub struct PilotInvitation(pub Invitation);

impl Aggregate for PilotInvitation {
    type Event = VolunteerEvent;

    fn apply(state: Option<Self>, event: &VolunteerEvent) -> Option<Self> {
        match event {
            VolunteerEvent::InvitationIssued(e) => Some(PilotInvitation(Invitation::issued(e))),
            VolunteerEvent::InvitationRedeemed(e) => state.map(|s| PilotInvitation(s.0.redeemed(e))),
            VolunteerEvent::InvitationRevoked(e) => state.map(|s| PilotInvitation(s.0.revoked(e))),
            _ => state,
        }
    }

    fn tenant(&self) -> Option<Uuid> {
        self.0.chapter_id
    }
}

/// The Access service of the volunteer service.
#[derive(Clone)]
pub struct PilotAccess {
    store: EventStore,
}

impl PilotAccess {
    /// Over the volunteer store.
    pub fn new(store: EventStore) -> Self {
        PilotAccess { store }
    }

    /// The gRPC server.
    pub fn into_server(self) -> pb::access_server::AccessServer<Self> {
        pb::access_server::AccessServer::new(self)
    }
}

/// Decides issuing a pilot invitation: the pilot must exist and be active or suspended.
pub fn decide_issue(pilot: Option<&Pilot>, issued: InvitationIssued) -> Result<Decision<VolunteerEvent>, DomainError> {
    let pilot = pilot.ok_or_else(|| DomainError::NotFound("pilot".into()))?;
    if matches!(pilot.status, PilotStatus::Retired | PilotStatus::Erased) {
        return Err(DomainError::conflict(ErrorCode::IllegalTransition, "the pilot is no longer active", None));
    }
    let stream = invitation_stream(issued.invitation_id);
    Ok(Decision::on(stream, vec![issued.into()], Some(pilot.chapter_id)))
}

/// Decides a redemption: the invitation's rules, then its pilot's (retired or erased:
/// expired; linked to another person: 409 `pilot-already-linked`).
pub fn decide_redeem(
    invitation: Option<&PilotInvitation>,
    pilot: Option<&Pilot>,
    secret_ok: bool,
    person: Uuid,
    now: DateTime<Utc>,
) -> Result<(Decision<VolunteerEvent>, Uuid), DomainError> {
    let inv = invitation.map(|i| &i.0);
    let grant = match access::redeem(inv, secret_ok, person, now)? {
        Redemption::Again(grant) => return Ok((Decision::nothing(), grant)),
        Redemption::Redeem(grant) => grant,
    };
    let inv = inv.expect("redeem checked it");
    let pilot = pilot.ok_or_else(|| access::target_gone("pilot"))?;
    if matches!(pilot.status, PilotStatus::Retired | PilotStatus::Erased) {
        return Err(access::target_gone("pilot"));
    }
    let mut d = Decision::in_tenant(Some(pilot.chapter_id));
    match pilot.account {
        Some((p, _)) if p != person => {
            return Err(DomainError::conflict(
                ErrorCode::PilotAlreadyLinked,
                "this pilot is already linked to another person",
                None,
            ));
        }
        Some(_) => {}
        None => d.push(
            stream(pilot.pilot_id),
            PilotAccountLinked {
                pilot_id: pilot.pilot_id,
                person_id: person,
                role_grant_id: grant,
                granted_by: inv.issued_by.clone(),
            },
        ),
    }
    let grant = pilot.account.map_or(grant, |(_, g)| g);
    d.push(
        invitation_stream(inv.invitation_id),
        InvitationRedeemed { invitation_id: inv.invitation_id, person_id: person, role_grant_id: grant },
    );
    Ok((d, grant))
}

fn status(e: impl Into<ServiceError>) -> Status {
    e.into().into()
}

fn time(t: DateTime<Utc>) -> Option<prost_types::Timestamp> {
    Some(samskab_proto::time::to_proto(t))
}

impl PilotAccess {
    async fn invitation(&self, id: &str) -> ServiceResult<(Invitation, u64)> {
        let id = parse_id("/invitation_id", id)?;
        let mut loader = Loader::detached(self.store.clone());
        let inv = loader.fold::<PilotInvitation>(&invitation_stream(id)).await?;
        let inv = inv.ok_or_else(|| ServiceError::NotFound("invitation".into()))?;
        Ok((inv.0, loader.version(&invitation_stream(id))))
    }

    /// The grant of a pilot's link, with the time it was made.
    async fn grant_of(&self, pilot_id: Uuid) -> ServiceResult<Option<pb::RoleGrant>> {
        let events = self.store.read_whole_stream(&stream(pilot_id)).await?;
        let mut state: Option<Pilot> = None;
        let mut linked: Option<(PilotAccountLinked, DateTime<Utc>)> = None;
        for e in &events {
            let Some(ev) = VolunteerEvent::from_stored(&e.event_type, e.payload.get())
                .map_err(|err| ServiceError::Internal(err.to_string()))?
            else {
                continue;
            };
            match &ev {
                VolunteerEvent::PilotAccountLinked(l) => linked = Some((l.clone(), e.occurred_at)),
                VolunteerEvent::PilotAccountUnlinked(_) | VolunteerEvent::PilotErased(_) => linked = None,
                _ => {}
            }
            state = Pilot::apply(state, &ev);
        }
        let Some(pilot) = state else { return Ok(None) };
        if matches!(pilot.status, PilotStatus::Retired | PilotStatus::Erased) {
            return Ok(None);
        }
        Ok(linked.map(|(l, at)| pb::RoleGrant {
            role_grant_id: l.role_grant_id.to_string(),
            person_id: l.person_id.to_string(),
            role: "pilot".into(),
            chapter_id: pilot.chapter_id.to_string(),
            carehome_id: String::new(),
            pilot_id: pilot.pilot_id.to_string(),
            granted_at: time(at),
            granted_by: l.granted_by,
        }))
    }

    /// Waits until the pilots read model has applied everything committed, so that a
    /// link made a moment ago on any replica is found.
    async fn caught_up(&self) -> ServiceResult<()> {
        servicekit::access::wait_caught_up(&self.store, readmodel::NAME, "pilots").await
    }
}

#[tonic::async_trait]
impl Access for PilotAccess {
    async fn issue_invitation(
        &self,
        req: Request<pb::IssueInvitationRequest>,
    ) -> Result<Response<pb::IssuedInvitation>, Status> {
        let req = req.into_inner();
        let ctx = CommandCtx::from_proto(req.context).map_err(status)?;
        if req.role != "pilot" {
            return Err(status(ServiceError::invalid("/role", "the volunteer service invites pilots only")));
        }
        let pilot_id = parse_id("/pilot_id", &req.pilot_id).map_err(status)?;
        let hours = match req.expires_in_hours {
            0 => access::DEFAULT_INVITATION_HOURS,
            h if h > access::MAX_INVITATION_HOURS => {
                let msg = format!("must be at most {}", access::MAX_INVITATION_HOURS);
                return Err(status(ServiceError::invalid("/expires_in_hours", msg)));
            }
            h => h,
        };
        let invitation_id = ctx.new_object_id("invitation");
        let mut secret = [0u8; access::INVITATION_SECRET_BYTES];
        rand::rng().fill_bytes(&mut secret);
        let code = access::encode_secret(access::INVITATION_PREFIX, invitation_id, &secret);
        let primary = invitation_stream(invitation_id);
        let (issued_by, hash) = (ctx.actor.id.clone(), access::hash_secret(&secret));
        let ran = executor::run(
            &self.store,
            &ctx,
            &primary,
            |mut loader: Loader| async move {
                let pilot = loader.fold::<Pilot>(&stream(pilot_id)).await?;
                let now = loader.now();
                Ok((loader, (pilot, now)))
            },
            |(pilot, now): &(Option<Pilot>, DateTime<Utc>)| {
                let issued = InvitationIssued {
                    invitation_id,
                    role: "pilot".into(),
                    chapter_id: pilot.as_ref().map(|p| p.chapter_id),
                    carehome_id: None,
                    pilot_id: Some(pilot_id),
                    code_sha256: hash.clone(),
                    issued_at: *now,
                    expires_at: *now + chrono::Duration::hours(i64::from(hours)),
                    issued_by: issued_by.clone(),
                };
                decide_issue(pilot.as_ref(), issued)
            },
        )
        .await
        .map_err(status)?;
        if ran.replayed {
            // The code of the first attempt was shown then; it is not kept.
            return Err(status(ServiceError::conflict(
                ErrorCode::IllegalTransition,
                "this invitation was issued before; its code was shown then",
                None,
            )));
        }
        let (inv, version) = self.invitation(&invitation_id.to_string()).await.map_err(status)?;
        Ok(Response::new(pb::IssuedInvitation {
            invitation: Some(invitation_proto(&inv, version, servicekit::clock::now())),
            code,
        }))
    }

    async fn get_invitation(&self, req: Request<pb::InvitationRequest>) -> Result<Response<pb::Invitation>, Status> {
        let (inv, version) = self.invitation(&req.into_inner().invitation_id).await.map_err(status)?;
        Ok(Response::new(invitation_proto(&inv, version, servicekit::clock::now())))
    }

    async fn revoke_invitation(&self, req: Request<pb::InvitationRequest>) -> Result<Response<pb::Invitation>, Status> {
        let req = req.into_inner();
        let ctx = CommandCtx::from_proto(req.context).map_err(status)?;
        let id = parse_id("/invitation_id", &req.invitation_id).map_err(status)?;
        let s = invitation_stream(id);
        servicekit::aggregate::execute::<PilotInvitation, _>(&self.store, &ctx, &s, |inv| {
            let inv = inv.ok_or_else(|| DomainError::NotFound("invitation".into()))?;
            Ok(inv.0.revoke()?.into_iter().map(Into::into).collect())
        })
        .await
        .map_err(status)?;
        let (inv, version) = self.invitation(&req.invitation_id).await.map_err(status)?;
        Ok(Response::new(invitation_proto(&inv, version, servicekit::clock::now())))
    }

    async fn redeem(&self, req: Request<pb::RedeemRequest>) -> Result<Response<pb::RoleGrant>, Status> {
        let req = req.into_inner();
        let ctx = CommandCtx::from_proto(req.context).map_err(status)?;
        let person = parse_id("/person_id", &req.person_id).map_err(status)?;
        let Some((id, secret)) =
            access::decode_secret(access::INVITATION_PREFIX, &req.code, access::INVITATION_SECRET_BYTES)
        else {
            return Err(status(ServiceError::NotFound("invitation".into())));
        };
        let primary = invitation_stream(id);
        let p = primary.clone();
        let ran = executor::run(
            &self.store,
            &ctx,
            &primary,
            move |mut loader: Loader| {
                let p = p.clone();
                async move {
                    let inv = loader.fold::<PilotInvitation>(&p).await?;
                    let pilot = match inv.as_ref().and_then(|i| i.0.pilot_id) {
                        Some(pilot_id) => loader.fold::<Pilot>(&stream(pilot_id)).await?,
                        None => None,
                    };
                    // The invitation again, after its pilot: a redemption by someone else
                    // that committed between the two reads then shows as the used
                    // invitation it is (409 `invitation-used`), never as a pilot linked
                    // to another person (the reads are not one snapshot).
                    loader.read_again(&p);
                    let inv = loader.fold::<PilotInvitation>(&p).await?;
                    let now = loader.now();
                    Ok((loader, (inv, pilot, now)))
                }
            },
            |(inv, pilot, now): &(Option<PilotInvitation>, Option<Pilot>, DateTime<Utc>)| {
                let ok = inv.as_ref().is_some_and(|i| access::secret_matches(&secret, &i.0.code_sha256));
                decide_redeem(inv.as_ref(), pilot.as_ref(), ok, person, *now).map(|(d, _)| d)
            },
        )
        .await
        .map_err(status)?;
        let _ = ran;
        let (inv, _) = self.invitation(&id.to_string()).await.map_err(status)?;
        let pilot_id =
            inv.pilot_id.ok_or_else(|| status(ServiceError::Internal("pilot invitation without pilot".into())))?;
        let grant = self.grant_of(pilot_id).await.map_err(status)?;
        match grant {
            Some(g) if g.person_id == person.to_string() => Ok(Response::new(g)),
            _ => Err(status(DomainError::conflict(
                ErrorCode::PilotAlreadyLinked,
                "this pilot is linked to another person",
                None,
            ))),
        }
    }

    async fn person_grants(&self, req: Request<pb::PersonRequest>) -> Result<Response<pb::RoleGrants>, Status> {
        let person = parse_id("/person_id", &req.into_inner().person_id).map_err(status)?;
        self.caught_up().await.map_err(status)?;
        let mut grants = Vec::new();
        for pilot in readmodel::linked_to(&self.store, person).await.map_err(|e| status(ServiceError::from(e)))? {
            // Confirmed from the pilot's stream: an unlink, retirement or erasure there is in
            // force even before the read model has it.
            if let Some(g) = self.grant_of(pilot).await.map_err(status)?
                && g.person_id == person.to_string()
            {
                grants.push(g);
            }
        }
        Ok(Response::new(pb::RoleGrants { grants }))
    }

    async fn get_grant(&self, req: Request<pb::GrantRequest>) -> Result<Response<pb::RoleGrant>, Status> {
        let id = parse_id("/role_grant_id", &req.into_inner().role_grant_id).map_err(status)?;
        self.caught_up().await.map_err(status)?;
        let pilot = readmodel::pilot_of_grant(&self.store, id)
            .await
            .map_err(|e| status(ServiceError::from(e)))?
            .ok_or_else(|| status(ServiceError::NotFound("role grant".into())))?;
        self.grant_of(pilot)
            .await
            .map_err(status)?
            .filter(|g| g.role_grant_id == id.to_string())
            .map(Response::new)
            .ok_or_else(|| status(ServiceError::NotFound("role grant".into())))
    }

    async fn list_grants(&self, req: Request<pb::ListGrantsRequest>) -> Result<Response<pb::RoleGrants>, Status> {
        let chapter = req.into_inner().chapter_id;
        if chapter.is_empty() {
            return Ok(Response::new(pb::RoleGrants::default()));
        }
        let chapter = parse_id("/chapter_id", &chapter).map_err(status)?;
        let mut grants = Vec::new();
        for pilot in
            readmodel::links_in_chapter(&self.store, chapter).await.map_err(|e| status(ServiceError::from(e)))?
        {
            grants.extend(self.grant_of(pilot).await.map_err(status)?);
        }
        Ok(Response::new(pb::RoleGrants { grants }))
    }

    async fn list_invitations(
        &self,
        req: Request<pb::ListInvitationsRequest>,
    ) -> Result<Response<pb::Invitations>, Status> {
        let chapter = req.into_inner().chapter_id;
        if chapter.is_empty() {
            return Ok(Response::new(pb::Invitations::default()));
        }
        let chapter = parse_id("/chapter_id", &chapter).map_err(status)?;
        let now = servicekit::clock::now();
        let list =
            readmodel::invitations_in_chapter(&self.store, chapter).await.map_err(|e| status(ServiceError::from(e)))?;
        Ok(Response::new(pb::Invitations { invitations: list.iter().map(|i| invitation_proto(i, 0, now)).collect() }))
    }

    async fn issue_api_key(&self, _: Request<pb::IssueApiKeyRequest>) -> Result<Response<pb::IssuedApiKey>, Status> {
        Err(unimplemented())
    }

    async fn get_api_key(&self, _: Request<pb::ApiKeyRequest>) -> Result<Response<pb::ApiKey>, Status> {
        Err(unimplemented())
    }

    async fn list_api_keys(&self, _: Request<pb::ListApiKeysRequest>) -> Result<Response<pb::ApiKeys>, Status> {
        Err(unimplemented())
    }

    async fn revoke_api_key(&self, _: Request<pb::ApiKeyRequest>) -> Result<Response<pb::ApiKey>, Status> {
        Err(unimplemented())
    }

    async fn check_api_key(&self, _: Request<pb::CheckApiKeyRequest>) -> Result<Response<pb::ApiKey>, Status> {
        Err(unimplemented())
    }

    async fn revoke_grant(&self, req: Request<pb::RevokeGrantRequest>) -> Result<Response<pb::RoleGrant>, Status> {
        let req = req.into_inner();
        let ctx = CommandCtx::from_proto(req.context).map_err(status)?;
        let grant_id = parse_id("/role_grant_id", &req.role_grant_id).map_err(status)?;
        // The grant names its pilot only through the read model: find it there, then
        // unlink on the pilot's stream (which decides against its current link).
        self.caught_up().await.map_err(status)?;
        let pilot = readmodel::pilot_of_grant(&self.store, grant_id)
            .await
            .map_err(|e| status(ServiceError::from(e)))?
            .ok_or_else(|| status(ServiceError::NotFound("role grant".into())))?;
        let before = self.grant_of(pilot).await.map_err(status)?;
        servicekit::aggregate::execute::<Pilot, _>(&self.store, &ctx, &stream(pilot), |p| {
            let p = p.ok_or_else(|| DomainError::NotFound("role grant".into()))?;
            match p.account {
                Some((person, g)) if g == grant_id => {
                    Ok(vec![PilotAccountUnlinked { pilot_id: p.pilot_id, person_id: person, role_grant_id: g }.into()])
                }
                _ => Ok(vec![]),
            }
        })
        .await
        .map_err(status)?;
        before
            .filter(|g| g.role_grant_id == grant_id.to_string())
            .map(Response::new)
            .ok_or_else(|| status(ServiceError::NotFound("role grant".into())))
    }
}

fn unimplemented() -> Status {
    Status::unimplemented("API keys are kept by the care-home service")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn pilot(status: PilotStatus, account: Option<(Uuid, Uuid)>) -> Pilot {
        Pilot {
            pilot_id: Uuid::from_u128(5),
            chapter_id: Uuid::from_u128(1),
            status,
            personal: None,
            qualifications: BTreeMap::new(),
            weekly: vec![],
            carehome_ids: vec![],
            account,
        }
    }

    fn invitation(now: DateTime<Utc>) -> PilotInvitation {
        PilotInvitation(Invitation::issued(&InvitationIssued {
            invitation_id: Uuid::from_u128(9),
            role: "pilot".into(),
            chapter_id: Some(Uuid::from_u128(1)),
            carehome_id: None,
            pilot_id: Some(Uuid::from_u128(5)),
            code_sha256: access::hash_secret(b"s"),
            issued_at: now,
            expires_at: now + chrono::Duration::hours(1),
            issued_by: "admin-person".into(),
        }))
    }

    #[test]
    fn redeeming_links_the_pilot_once() {
        let now = Utc::now();
        let (me, other) = (Uuid::from_u128(100), Uuid::from_u128(101));
        let inv = invitation(now);
        let (d, grant) = decide_redeem(Some(&inv), Some(&pilot(PilotStatus::Active, None)), true, me, now).unwrap();
        assert_eq!(d.streams().len(), 2, "the pilot's stream and the invitation's");
        assert!(
            matches!(d.of(&stream(Uuid::from_u128(5))).next(), Some(VolunteerEvent::PilotAccountLinked(l)) if l.person_id == me && l.role_grant_id == grant)
        );
        // A suspended pilot can still be linked (it may read).
        assert!(decide_redeem(Some(&inv), Some(&pilot(PilotStatus::Suspended, None)), true, me, now).is_ok());
        let code = |r: Result<(Decision<VolunteerEvent>, Uuid), DomainError>| r.unwrap_err().code();
        let linked = pilot(PilotStatus::Active, Some((other, Uuid::from_u128(7))));
        assert_eq!(code(decide_redeem(Some(&inv), Some(&linked), true, me, now)), ErrorCode::PilotAlreadyLinked);
        for gone in [PilotStatus::Retired, PilotStatus::Erased] {
            assert_eq!(
                code(decide_redeem(Some(&inv), Some(&pilot(gone, None)), true, me, now)),
                ErrorCode::InvitationExpired
            );
        }
        assert_eq!(code(decide_redeem(Some(&inv), None, false, me, now)), ErrorCode::NotFound);
    }
}

//! Staff access over gRPC (`samskab.common.v1.Access`): invitations to the admin, chapter
//! admin and coordinator roles, their redemption, the grants in force, and integrators' API
//! keys. Deciders are in [`crate::people`]; secrets are shown once and stored as hashes.

use chrono::{DateTime, Utc};
use domain::access::{self, Invitation};
use domain::events::{ApiKeyIssued, InvitationIssued};
use domain::types::parse_id;
use domain::{DomainError, ErrorCode};
use eventlog::EventStore;
use rand::Rng;
use samskab_proto::common::v1::{self as pb, access_server::Access};
use servicekit::access::invitation_proto;
use servicekit::executor::{self, Loader};
use servicekit::{CommandCtx, ServiceError, ServiceResult};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::people::{self, ApiKey, Scope, StaffInvitation};
use crate::readmodel::{self, GrantDoc};
use crate::{carehomes, chapters};

/// Events left out of the integrator feed: who may sign in as whom is nobody else's.
pub const INTERNAL: &[&str] = &[
    "AdminAppointed",
    "AdminRemoved",
    "ChapterAdminAppointed",
    "ChapterAdminRemoved",
    "InvitationIssued",
    "InvitationRedeemed",
    "InvitationRevoked",
    "ApiKeyIssued",
    "ApiKeyRevoked",
];

/// Longest API key name.
pub const API_KEY_NAME_MAX: usize = 200;

/// The Access service of the care-home service.
#[derive(Clone)]
pub struct StaffAccess {
    store: EventStore,
}

fn status(e: impl Into<ServiceError>) -> Status {
    e.into().into()
}

fn time(t: DateTime<Utc>) -> Option<prost_types::Timestamp> {
    Some(samskab_proto::time::to_proto(t))
}

fn opt(id: Option<Uuid>) -> String {
    id.map(|i| i.to_string()).unwrap_or_default()
}

fn optional_id(field: &str, s: &str) -> Result<Option<Uuid>, ServiceError> {
    if s.is_empty() { Ok(None) } else { Ok(Some(parse_id(field, s)?)) }
}

fn grant_proto(g: &GrantDoc) -> pb::RoleGrant {
    pb::RoleGrant {
        role_grant_id: g.role_grant_id.to_string(),
        person_id: g.person_id.to_string(),
        role: g.role.clone(),
        chapter_id: opt(g.chapter_id),
        carehome_id: opt(g.carehome_id),
        pilot_id: String::new(),
        granted_at: time(g.granted_at),
        granted_by: g.granted_by.clone(),
    }
}

fn api_key_proto(k: &ApiKey, version: u64, last_used: Option<i64>, now: DateTime<Utc>) -> pb::ApiKey {
    pb::ApiKey {
        api_key_id: k.api_key_id.to_string(),
        name: k.name.clone(),
        chapter_id: opt(k.chapter_id),
        network: k.chapter_id.is_none(),
        issued_at: time(k.issued_at),
        expires_at: k.expires_at.and_then(time),
        status: k.status(now).to_owned(),
        last_used_at: last_used.and_then(|t| DateTime::from_timestamp(t, 0)).and_then(time),
        issued_by: k.issued_by.clone(),
        version,
    }
}

/// Loads the scope of a staff role through the loader.
async fn load_scope(
    loader: &mut Loader,
    role: &str,
    chapter: Option<Uuid>,
    home: Option<Uuid>,
) -> ServiceResult<Scope> {
    Ok(match role {
        "admin" => Scope::Network(loader.fold(people::ADMINS_STREAM).await?),
        "chapter_admin" => match chapter {
            Some(c) => Scope::Chapter(loader.fold(&chapters::stream(c)).await?),
            None => Scope::Chapter(None),
        },
        _ => match home {
            Some(h) => Scope::Home(loader.fold(&carehomes::stream(h)).await?),
            None => Scope::Home(None),
        },
    })
}

impl StaffAccess {
    /// Over the care-home store.
    pub fn new(store: EventStore) -> Self {
        StaffAccess { store }
    }

    /// The gRPC server.
    pub fn into_server(self) -> pb::access_server::AccessServer<Self> {
        pb::access_server::AccessServer::new(self)
    }

    async fn invitation(&self, id: Uuid) -> ServiceResult<(Invitation, u64)> {
        let mut loader = Loader::detached(self.store.clone());
        let s = people::invitation_stream(id);
        let inv =
            loader.fold::<StaffInvitation>(&s).await?.ok_or_else(|| ServiceError::NotFound("invitation".into()))?;
        Ok((inv.0, loader.version(&s)))
    }

    async fn api_key(&self, id: Uuid) -> ServiceResult<pb::ApiKey> {
        let mut loader = Loader::detached(self.store.clone());
        let s = people::api_key_stream(id);
        let key = loader.fold::<ApiKey>(&s).await?.ok_or_else(|| ServiceError::NotFound("API key".into()))?;
        let last = readmodel::api_key_last_used(&self.store, id).await?;
        Ok(api_key_proto(&key, loader.version(&s), last, servicekit::clock::now()))
    }

    /// Waits until the read model has applied everything committed: a grant made or
    /// removed a moment ago, on any replica, is then seen.
    async fn caught_up(&self) -> ServiceResult<()> {
        servicekit::access::wait_caught_up(&self.store, readmodel::PROJECTION_NAME, "care-home").await
    }

    /// Issues an invitation (also used by `samskab invite` to bootstrap the first admin).
    pub async fn issue(
        &self,
        ctx: &CommandCtx,
        req: &pb::IssueInvitationRequest,
    ) -> ServiceResult<pb::IssuedInvitation> {
        let role = req.role.clone();
        let (mut chapter, mut home) = (None, None);
        match role.as_str() {
            "admin" => {}
            "chapter_admin" => chapter = Some(parse_id("/chapter_id", &req.chapter_id)?),
            "coordinator" => home = Some(parse_id("/carehome_id", &req.carehome_id)?),
            _ => return Err(ServiceError::invalid("/role", "must be admin, chapter_admin or coordinator")),
        }
        let hours = match req.expires_in_hours {
            0 => access::DEFAULT_INVITATION_HOURS,
            h if h > access::MAX_INVITATION_HOURS => {
                return Err(ServiceError::invalid(
                    "/expires_in_hours",
                    format!("must be at most {}", access::MAX_INVITATION_HOURS),
                ));
            }
            h => h,
        };
        let invitation_id = ctx.new_object_id("invitation");
        let mut secret = [0u8; access::INVITATION_SECRET_BYTES];
        rand::rng().fill_bytes(&mut secret);
        let code = access::encode_secret(access::INVITATION_PREFIX, invitation_id, &secret);
        let (issued_by, hash) = (ctx.actor.id.clone(), access::hash_secret(&secret));
        let r = role.clone();
        let ran = executor::run(
            &self.store,
            ctx,
            &people::invitation_stream(invitation_id),
            move |mut loader: Loader| {
                let r = r.clone();
                async move {
                    let scope = load_scope(&mut loader, &r, chapter, home).await?;
                    let now = loader.now();
                    Ok((loader, (scope, now)))
                }
            },
            |(scope, now): &(Scope, DateTime<Utc>)| {
                people::issue(
                    scope,
                    InvitationIssued {
                        invitation_id,
                        role: role.clone(),
                        chapter_id: None,
                        carehome_id: home,
                        pilot_id: None,
                        code_sha256: hash.clone(),
                        issued_at: *now,
                        expires_at: *now + chrono::Duration::hours(i64::from(hours)),
                        issued_by: issued_by.clone(),
                    },
                )
            },
        )
        .await?;
        if ran.replayed {
            return Err(ServiceError::conflict(
                ErrorCode::IllegalTransition,
                "this invitation was issued before; its code was shown then",
                None,
            ));
        }
        let (inv, version) = self.invitation(invitation_id).await?;
        Ok(pb::IssuedInvitation { invitation: Some(invitation_proto(&inv, version, servicekit::clock::now())), code })
    }
}

#[tonic::async_trait]
impl Access for StaffAccess {
    async fn issue_invitation(
        &self,
        req: Request<pb::IssueInvitationRequest>,
    ) -> Result<Response<pb::IssuedInvitation>, Status> {
        let req = req.into_inner();
        let ctx = CommandCtx::from_proto(req.context.clone()).map_err(status)?;
        Ok(Response::new(self.issue(&ctx, &req).await.map_err(status)?))
    }

    async fn get_invitation(&self, req: Request<pb::InvitationRequest>) -> Result<Response<pb::Invitation>, Status> {
        let id = parse_id("/invitation_id", &req.into_inner().invitation_id).map_err(status)?;
        let (inv, version) = self.invitation(id).await.map_err(status)?;
        Ok(Response::new(invitation_proto(&inv, version, servicekit::clock::now())))
    }

    async fn revoke_invitation(&self, req: Request<pb::InvitationRequest>) -> Result<Response<pb::Invitation>, Status> {
        let req = req.into_inner();
        let ctx = CommandCtx::from_proto(req.context).map_err(status)?;
        let id = parse_id("/invitation_id", &req.invitation_id).map_err(status)?;
        servicekit::aggregate::execute::<StaffInvitation, _>(
            &self.store,
            &ctx,
            &people::invitation_stream(id),
            |inv| {
                let inv = inv.ok_or_else(|| DomainError::NotFound("invitation".into()))?;
                Ok(inv.0.revoke()?.into_iter().map(Into::into).collect())
            },
        )
        .await
        .map_err(status)?;
        let (inv, version) = self.invitation(id).await.map_err(status)?;
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
        let primary = people::invitation_stream(id);
        let p = primary.clone();
        executor::run(
            &self.store,
            &ctx,
            &primary,
            move |mut loader: Loader| {
                let p = p.clone();
                async move {
                    let inv = loader.fold::<StaffInvitation>(&p).await?;
                    let scope = match &inv {
                        Some(i) => load_scope(&mut loader, &i.0.role, i.0.chapter_id, i.0.carehome_id).await?,
                        None => Scope::Network(None),
                    };
                    let now = loader.now();
                    Ok((loader, (inv, scope, now)))
                }
            },
            |(inv, scope, now): &(Option<StaffInvitation>, Scope, DateTime<Utc>)| {
                let ok = inv.as_ref().is_some_and(|i| access::secret_matches(&secret, &i.0.code_sha256));
                people::redeem(inv.as_ref(), scope, ok, person, *now).map(|(d, _)| d)
            },
        )
        .await
        .map_err(status)?;
        let (inv, _) = self.invitation(id).await.map_err(status)?;
        let grant = inv.redeemed.map(|r| r.1).ok_or_else(|| status(ServiceError::Internal("not redeemed".into())))?;
        self.caught_up().await.map_err(status)?;
        let doc = readmodel::grant(&self.store, grant).await.map_err(status)?;
        doc.map(|d| Response::new(grant_proto(&d))).ok_or_else(|| status(access::target_gone("grant")))
    }

    async fn person_grants(&self, req: Request<pb::PersonRequest>) -> Result<Response<pb::RoleGrants>, Status> {
        let person = parse_id("/person_id", &req.into_inner().person_id).map_err(status)?;
        self.caught_up().await.map_err(status)?;
        let grants = readmodel::grants_of_person(&self.store, person).await.map_err(status)?;
        Ok(Response::new(pb::RoleGrants { grants: grants.iter().map(grant_proto).collect() }))
    }

    async fn get_grant(&self, req: Request<pb::GrantRequest>) -> Result<Response<pb::RoleGrant>, Status> {
        let id = parse_id("/role_grant_id", &req.into_inner().role_grant_id).map_err(status)?;
        self.caught_up().await.map_err(status)?;
        let g = readmodel::grant(&self.store, id).await.map_err(status)?;
        g.map(|g| Response::new(grant_proto(&g))).ok_or_else(|| status(ServiceError::NotFound("role grant".into())))
    }

    async fn list_grants(&self, req: Request<pb::ListGrantsRequest>) -> Result<Response<pb::RoleGrants>, Status> {
        let chapter = req.into_inner().chapter_id;
        if !chapter.is_empty() {
            parse_id("/chapter_id", &chapter).map_err(status)?;
        }
        let grants = readmodel::grants_in_chapter(&self.store, &chapter).await.map_err(status)?;
        Ok(Response::new(pb::RoleGrants { grants: grants.iter().map(grant_proto).collect() }))
    }

    async fn revoke_grant(&self, req: Request<pb::RevokeGrantRequest>) -> Result<Response<pb::RoleGrant>, Status> {
        let req = req.into_inner();
        let ctx = CommandCtx::from_proto(req.context).map_err(status)?;
        let id = parse_id("/role_grant_id", &req.role_grant_id).map_err(status)?;
        self.caught_up().await.map_err(status)?;
        let g = readmodel::grant(&self.store, id)
            .await
            .map_err(status)?
            .ok_or_else(|| status(ServiceError::NotFound("role grant".into())))?;
        let erasure = req.erasure;
        let by_admin = ctx.actor.role == "admin" || erasure;
        let (role, chapter, home, person) = (g.role.clone(), g.chapter_id, g.carehome_id, g.person_id);
        let primary = match role.as_str() {
            "admin" => people::ADMINS_STREAM.to_owned(),
            "chapter_admin" => chapters::stream(chapter.unwrap_or_default()),
            _ => carehomes::stream(home.unwrap_or_default()),
        };
        executor::run(
            &self.store,
            &ctx,
            &primary,
            move |mut loader: Loader| {
                let role = role.clone();
                async move {
                    let scope = load_scope(&mut loader, &role, chapter, home).await?;
                    Ok((loader, scope))
                }
            },
            |scope: &Scope| people::revoke(scope, person, id, by_admin, erasure),
        )
        .await
        .map_err(status)?;
        Ok(Response::new(grant_proto(&g)))
    }

    async fn list_invitations(
        &self,
        req: Request<pb::ListInvitationsRequest>,
    ) -> Result<Response<pb::Invitations>, Status> {
        let chapter = req.into_inner().chapter_id;
        if !chapter.is_empty() {
            parse_id("/chapter_id", &chapter).map_err(status)?;
        }
        let now = servicekit::clock::now();
        let list = readmodel::invitations_in_chapter(&self.store, &chapter).await.map_err(status)?;
        Ok(Response::new(pb::Invitations { invitations: list.iter().map(|i| invitation_proto(i, 0, now)).collect() }))
    }

    async fn issue_api_key(&self, req: Request<pb::IssueApiKeyRequest>) -> Result<Response<pb::IssuedApiKey>, Status> {
        let req = req.into_inner();
        let ctx = CommandCtx::from_proto(req.context).map_err(status)?;
        let name = req.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > API_KEY_NAME_MAX || name.chars().any(char::is_control) {
            let msg = format!("must be 1 to {API_KEY_NAME_MAX} printable characters");
            return Err(status(ServiceError::invalid("/name", msg)));
        }
        let chapter = optional_id("/chapter_id", &req.chapter_id).map_err(status)?;
        if req.network == chapter.is_some() {
            return Err(status(ServiceError::invalid("/chapter_id", "name a chapter or the network, not both")));
        }
        let expires_at = req.expires_at.as_ref().and_then(samskab_proto::time::from_proto);
        let now = servicekit::clock::now();
        if expires_at.is_some_and(|e| e <= now) {
            return Err(status(ServiceError::invalid("/expires_at", "must be in the future")));
        }
        let api_key_id = ctx.new_object_id("api-key");
        let mut secret = [0u8; access::API_KEY_SECRET_BYTES];
        rand::rng().fill_bytes(&mut secret);
        let key = access::encode_secret(access::API_KEY_PREFIX, api_key_id, &secret);
        let (issued_by, hash, network) = (ctx.actor.id.clone(), access::hash_secret(&secret), req.network);
        let ran = executor::run(
            &self.store,
            &ctx,
            &people::api_key_stream(api_key_id),
            move |mut loader: Loader| async move {
                let c = match chapter {
                    Some(c) => loader.fold::<chapters::Chapter>(&chapters::stream(c)).await?,
                    None => None,
                };
                let now = loader.now();
                Ok((loader, (c, now)))
            },
            |(c, now): &(Option<chapters::Chapter>, DateTime<Utc>)| {
                people::issue_api_key(
                    c.as_ref(),
                    network,
                    ApiKeyIssued {
                        api_key_id,
                        name: name.clone(),
                        chapter_id: None,
                        key_sha256: hash.clone(),
                        issued_at: *now,
                        expires_at,
                        issued_by: issued_by.clone(),
                    },
                )
            },
        )
        .await
        .map_err(status)?;
        if ran.replayed {
            return Err(status(ServiceError::conflict(
                ErrorCode::IllegalTransition,
                "this key was issued before; it was shown then",
                None,
            )));
        }
        let api_key = self.api_key(api_key_id).await.map_err(status)?;
        Ok(Response::new(pb::IssuedApiKey { api_key: Some(api_key), key }))
    }

    async fn get_api_key(&self, req: Request<pb::ApiKeyRequest>) -> Result<Response<pb::ApiKey>, Status> {
        let id = parse_id("/api_key_id", &req.into_inner().api_key_id).map_err(status)?;
        Ok(Response::new(self.api_key(id).await.map_err(status)?))
    }

    async fn list_api_keys(&self, req: Request<pb::ListApiKeysRequest>) -> Result<Response<pb::ApiKeys>, Status> {
        let req = req.into_inner();
        let chapter = if req.network { String::new() } else { req.chapter_id };
        if !chapter.is_empty() {
            parse_id("/chapter_id", &chapter).map_err(status)?;
        }
        let now = servicekit::clock::now();
        let mut out = Vec::new();
        for k in readmodel::api_keys_in_chapter(&self.store, &chapter).await.map_err(status)? {
            let last = readmodel::api_key_last_used(&self.store, k.api_key_id).await.map_err(status)?;
            out.push(api_key_proto(&k, 0, last, now));
        }
        Ok(Response::new(pb::ApiKeys { api_keys: out }))
    }

    async fn revoke_api_key(&self, req: Request<pb::ApiKeyRequest>) -> Result<Response<pb::ApiKey>, Status> {
        let req = req.into_inner();
        let ctx = CommandCtx::from_proto(req.context).map_err(status)?;
        let id = parse_id("/api_key_id", &req.api_key_id).map_err(status)?;
        servicekit::aggregate::execute::<ApiKey, _>(&self.store, &ctx, &people::api_key_stream(id), |k| {
            people::revoke_api_key(k)
        })
        .await
        .map_err(status)?;
        Ok(Response::new(self.api_key(id).await.map_err(status)?))
    }

    async fn check_api_key(&self, req: Request<pb::CheckApiKeyRequest>) -> Result<Response<pb::ApiKey>, Status> {
        let refused = || status(ServiceError::rule(ErrorCode::Unauthenticated, "unknown, revoked or expired API key"));
        let key = req.into_inner().key;
        let (id, secret) =
            access::decode_secret(access::API_KEY_PREFIX, &key, access::API_KEY_SECRET_BYTES).ok_or_else(refused)?;
        let mut loader = Loader::detached(self.store.clone());
        let k = loader.fold::<ApiKey>(&people::api_key_stream(id)).await.map_err(status)?.ok_or_else(refused)?;
        let now = servicekit::clock::now();
        if !access::secret_matches(&secret, &k.key_sha256) || k.status(now) != "active" {
            return Err(refused());
        }
        // Outside any command: at most one write a minute per key.
        if let Err(e) = readmodel::touch_api_key(&self.store, id, now.timestamp()).await {
            tracing::warn!(error = %e, "could not mark an API key used");
        }
        Ok(Response::new(self.api_key(id).await.map_err(status)?))
    }
}

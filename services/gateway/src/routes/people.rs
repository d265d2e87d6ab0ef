//! People and their access: `GET /v1/me`, invitations and their redemption. A person's
//! roles are role grants kept by the services that own their scope; so far the volunteer
//! service keeps pilot links and pilot invitations (`api.md` → *People and access*).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use access::Object;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use samskab_proto::carehome::v1 as cpb;
use samskab_proto::common::v1 as common;
use samskab_proto::notify::v1 as npb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::caller::{Caller, Person};
use crate::clients::{Found, Service, actor_context};
use crate::extract::{Body, Command, IdempotencyKey, Ids, NoBody, Params};
use crate::problem::{ApiError, Problem};
use crate::routes::{carehomes, chapters, pilots};
use crate::views::{Created, Versioned, time};
use servicekit::ErrorCode;

/// A role grant.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleGrantView {
    /// Id.
    pub role_grant_id: Uuid,
    /// The person.
    pub person_id: Uuid,
    /// `admin`, `chapter_admin`, `coordinator` or `pilot`.
    pub role: String,
    /// Scope: the chapter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chapter_id: Option<Uuid>,
    /// Scope: the care home.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub carehome_id: Option<Uuid>,
    /// Scope: the pilot record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pilot_id: Option<Uuid>,
    /// When it was granted.
    pub granted_at: Option<String>,
    /// Who granted it (a person id).
    pub granted_by: String,
}

fn id(s: &str) -> Option<Uuid> {
    s.parse().ok()
}

fn grant_view(g: common::RoleGrant) -> RoleGrantView {
    RoleGrantView {
        role_grant_id: id(&g.role_grant_id).unwrap_or_default(),
        person_id: id(&g.person_id).unwrap_or_default(),
        role: g.role,
        chapter_id: id(&g.chapter_id),
        carehome_id: id(&g.carehome_id),
        pilot_id: id(&g.pilot_id),
        granted_at: time(&g.granted_at),
        granted_by: g.granted_by,
    }
}

/// Who is signed in.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// The pseudonymous person id.
    pub person_id: Uuid,
    /// The role grants in force.
    pub roles: Vec<RoleGrantView>,
    /// For Samskab's own tokens: the role their claims carry (development and tests).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_role: Option<String>,
}

/// Who is signed in, with their role grants (anyone signed in, with or without roles).
#[utoipa::path(get, path = "/v1/me", tag = "people",
    responses((status = 200, body = Me), (status = 401, body = Problem)),
    security(("bearer" = [])))]
pub async fn me(person: Person) -> Result<axum::Json<Me>, ApiError> {
    Ok(axum::Json(Me {
        person_id: person.person_id,
        roles: person.grants.into_iter().map(grant_view).collect(),
        token_role: person.claimed.map(|r| r.name().to_owned()),
    }))
}

/// `POST /v1/invitations`: the role and exactly the scope field it needs.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInvitation {
    /// The role it grants: `admin` (no scope), `chapter_admin` (`chapter_id`),
    /// `coordinator` (`carehome_id`) or `pilot` (`pilot_id`, the record the person will
    /// sign in as).
    #[schema(pattern = "^(admin|chapter_admin|coordinator|pilot)$")]
    pub role: String,
    /// Scope of a `chapter_admin`.
    pub chapter_id: Option<Uuid>,
    /// Scope of a `coordinator`.
    pub carehome_id: Option<Uuid>,
    /// Scope of a `pilot`.
    pub pilot_id: Option<Uuid>,
    /// Hours until it expires (default 168, at most 2160).
    #[schema(minimum = 1, maximum = 2160)]
    pub expires_in_hours: Option<u32>,
}

/// An invitation (never its code, except in the answer that issued it).
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationView {
    /// Id.
    pub invitation_id: Uuid,
    /// The role it grants.
    pub role: String,
    /// Scope: the chapter (every role but admin).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chapter_id: Option<Uuid>,
    /// Scope: the care home (coordinator).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub carehome_id: Option<Uuid>,
    /// Scope: the pilot record (pilot).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pilot_id: Option<Uuid>,
    /// `open`, `redeemed`, `revoked` or `expired`.
    pub status: String,
    /// When it was issued.
    pub issued_at: Option<String>,
    /// When it expires.
    pub expires_at: Option<String>,
    /// Who issued it (a person id).
    pub issued_by: String,
    /// Who redeemed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redeemed_by: Option<Uuid>,
    /// The grant it made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_grant_id: Option<Uuid>,
    /// The code, shown once: in the answer that issued it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

fn invitation_view(i: common::Invitation, code: Option<String>) -> Versioned<InvitationView> {
    let version = i.version;
    Versioned(
        InvitationView {
            invitation_id: id(&i.invitation_id).unwrap_or_default(),
            role: i.role,
            chapter_id: id(&i.chapter_id),
            carehome_id: id(&i.carehome_id),
            pilot_id: id(&i.pilot_id),
            status: i.status,
            issued_at: time(&i.issued_at),
            expires_at: time(&i.expires_at),
            issued_by: i.issued_by,
            redeemed_by: id(&i.redeemed_by),
            role_grant_id: id(&i.role_grant_id),
            code,
        },
        version,
    )
}

/// The service that keeps a role's grants and invitations.
fn owner(role: &str) -> Service {
    if role == "pilot" { Service::Volunteer } else { Service::CareHome }
}

/// 404 unless the caller may read the chapter; 403 unless it administers it (the network,
/// for `None`: admin alone).
pub(crate) async fn administers(s: &AppState, caller: &Caller, chapter: Option<Uuid>) -> Result<(), ApiError> {
    match chapter {
        // The network names no object to hide: everyone but admin is refused (403), as
        // for creating a chapter.
        None if caller.may(access::Action::Administer, &Object::Network) => Ok(()),
        None => Err(ApiError::forbidden()),
        Some(c) => {
            chapters::visible(s, caller, c).await?;
            caller.check(access::Action::Administer, &Object::Chapter(c))
        }
    }
}

/// The chapter an invitation's scope is in (404 for what the caller may not read).
async fn scope_chapter(s: &AppState, caller: &Caller, b: &NewInvitation) -> Result<Option<Uuid>, ApiError> {
    let (needs, given) = match b.role.as_str() {
        "admin" => ("", None),
        "chapter_admin" => ("/chapter_id", b.chapter_id),
        "coordinator" => ("/carehome_id", b.carehome_id),
        "pilot" => ("/pilot_id", b.pilot_id),
        _ => return Err(ApiError::invalid("/role", "must be admin, chapter_admin, coordinator or pilot")),
    };
    for (field, value) in [("/chapter_id", b.chapter_id), ("/carehome_id", b.carehome_id), ("/pilot_id", b.pilot_id)] {
        if value.is_some() && field != needs {
            return Err(ApiError::invalid(field, format!("a {} invitation does not take it", b.role)));
        }
    }
    if !needs.is_empty() && given.is_none() {
        return Err(ApiError::invalid(needs, format!("a {} invitation names it", b.role)));
    }
    Ok(match b.role.as_str() {
        "admin" => None,
        "chapter_admin" => b.chapter_id,
        "coordinator" => {
            let h = carehomes::visible(s, caller, b.carehome_id.unwrap_or_default()).await?;
            Some(h.chapter_id.parse().map_err(|_| ApiError::new(ErrorCode::Internal))?)
        }
        _ => {
            let p = pilots::visible(s, caller, b.pilot_id.unwrap_or_default()).await?;
            Some(p.chapter_id.parse().map_err(|_| ApiError::new(ErrorCode::Internal))?)
        }
    })
}

/// Invite a person to a role: 201 with the `code`, shown this once (a chapter admin for
/// its chapter's coordinators, pilots and chapter admins; admin for any, and for admins).
#[utoipa::path(post, path = "/v1/invitations", tag = "people", request_body = NewInvitation,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe")),
    responses((status = 201, body = InvitationView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, description = "The pilot is retired or erased", body = Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(s): State<AppState>,
    cmd: Command,
    Body(b): Body<NewInvitation>,
) -> Result<Created<InvitationView>, ApiError> {
    if b.expires_in_hours == Some(0) || b.expires_in_hours.is_some_and(|h| h > 2160) {
        return Err(ApiError::invalid("/expires_in_hours", "must be 1 to 2160"));
    }
    let chapter = scope_chapter(&s, &cmd.caller, &b).await?;
    administers(&s, &cmd.caller, chapter).await?;
    let opt = |u: Option<Uuid>| u.map(|u| u.to_string()).unwrap_or_default();
    let issued = s
        .clients
        .access(owner(&b.role))
        .issue_invitation(common::IssueInvitationRequest {
            context: cmd.context(),
            role: b.role.clone(),
            chapter_id: opt(b.chapter_id),
            carehome_id: opt(b.carehome_id),
            pilot_id: opt(b.pilot_id),
            expires_in_hours: b.expires_in_hours.unwrap_or(0),
        })
        .await
        .reply()?;
    let inv = issued.invitation.ok_or_else(|| ApiError::new(ErrorCode::Internal))?;
    if b.role == "pilot" {
        email_invitation(&s, &inv, &issued.code, chapter).await;
    }
    let Versioned(v, version) = invitation_view(inv, Some(issued.code));
    Ok(Created(format!("/v1/invitations/{}", v.invitation_id), v, version))
}

/// Hands a pilot invitation's code to notify, which e-mails it to the pilot record's
/// address (once per invitation, also on a retry). The answer carries the code whatever
/// happens here: without notify, or when it fails, the inviter passes the code on.
async fn email_invitation(s: &AppState, inv: &common::Invitation, code: &str, chapter: Option<Uuid>) {
    let Ok(mut notify) = s.clients.notify() else { return };
    let mut language = "en";
    if let Some(c) = chapter
        && let Ok(Some(ch)) = s.clients.carehome().get_chapter(cpb::IdRequest { id: c.to_string() }).await.found()
        && ch.timezone == "Europe/Copenhagen"
    {
        language = "da";
    }
    let req = npb::SendInvitationRequest {
        pilot_id: inv.pilot_id.clone(),
        invitation_id: inv.invitation_id.clone(),
        code: code.to_owned(),
        expires_at: inv.expires_at,
        language: language.into(),
        chapter_id: chapter.map(|c| c.to_string()).unwrap_or_default(),
    };
    if let Err(e) = notify.send_invitation(req).await {
        tracing::warn!(status = ?e.code(), invitation_id = %inv.invitation_id, "the invitation was not handed to notify: its code is in the answer only");
    }
}

/// An invitation from whichever service keeps it, with that service.
async fn find_invitation(s: &AppState, invitation_id: Uuid) -> Result<(common::Invitation, Service), ApiError> {
    for service in [Service::CareHome, Service::Volunteer] {
        let req = common::InvitationRequest { context: None, invitation_id: invitation_id.to_string() };
        if let Some(inv) = s.clients.access(service).get_invitation(req).await.found()? {
            return Ok((inv, service));
        }
    }
    Err(ApiError::not_found())
}

/// 404 unless the caller administers the chapter (the network: admin): invitations,
/// grants and keys are read only by those who manage them, and to everyone else they
/// look like unknown ids.
pub(crate) fn administers_or_404(caller: &Caller, chapter: Option<Uuid>) -> Result<(), ApiError> {
    let object = chapter.map_or(Object::Network, Object::Chapter);
    if caller.may(access::Action::Administer, &object) { Ok(()) } else { Err(ApiError::not_found()) }
}

async fn managed_invitation(
    s: &AppState,
    caller: &Caller,
    invitation_id: Uuid,
) -> Result<(common::Invitation, Service), ApiError> {
    let (inv, service) = find_invitation(s, invitation_id).await?;
    administers_or_404(caller, id(&inv.chapter_id))?;
    Ok((inv, service))
}

/// Read an invitation (never its code).
#[utoipa::path(get, path = "/v1/invitations/{id}", tag = "people", params(("id" = Uuid, Path)),
    responses((status = 200, body = InvitationView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Ids(invitation): Ids<Uuid>,
) -> Result<Versioned<InvitationView>, ApiError> {
    Ok(invitation_view(managed_invitation(&s, &caller, invitation).await?.0, None))
}

/// Withdraw an invitation nobody has redeemed (a redeemed one: 409; revoke the grant).
#[utoipa::path(delete, path = "/v1/invitations/{id}", tag = "people", params(("id" = Uuid, Path)),
    responses((status = 200, body = InvitationView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn revoke(
    State(s): State<AppState>,
    cmd: Command,
    Ids(invitation): Ids<Uuid>,
    _: NoBody,
) -> Result<Versioned<InvitationView>, ApiError> {
    let (_, service) = managed_invitation(&s, &cmd.caller, invitation).await?;
    let req = common::InvitationRequest { context: cmd.context(), invitation_id: invitation.to_string() };
    let inv = s.clients.access(service).revoke_invitation(req).await.reply()?;
    Ok(invitation_view(inv, None))
}

/// `?chapter_id=`: a chapter's (omitted: for admin, the network's).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ChapterQuery {
    /// The chapter (omitted: the caller's chapter; for admin, the network's).
    pub chapter_id: Option<Uuid>,
}

fn chapter_of_list(caller: &Caller, q: &ChapterQuery) -> Option<Uuid> {
    q.chapter_id.or(match caller.role() {
        access::Role::ChapterAdmin(c) => Some(c),
        _ => None,
    })
}

/// Invitations of a chapter (its chapter admin, admin) or, for admin without
/// `chapter_id`, of the network; never their codes.
#[utoipa::path(get, path = "/v1/invitations", tag = "people", params(ChapterQuery),
    responses((status = 200, body = InvitationList), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Params(q): Params<ChapterQuery>,
) -> Result<axum::Json<InvitationList>, ApiError> {
    let chapter = chapter_of_list(&caller, &q);
    administers(&s, &caller, chapter).await?;
    let req = common::ListInvitationsRequest { chapter_id: chapter.map(|c| c.to_string()).unwrap_or_default() };
    let (mut c, mut v) = (s.clients.access(Service::CareHome), s.clients.access(Service::Volunteer));
    let (staff, pilots) = tokio::join!(c.list_invitations(req.clone()), v.list_invitations(req));
    let mut items: Vec<InvitationView> =
        staff.reply()?.invitations.into_iter().map(|i| invitation_view(i, None).0).collect();
    items.extend(pilots.reply()?.invitations.into_iter().map(|i| invitation_view(i, None).0));
    items.sort_by_key(|i| i.invitation_id);
    Ok(axum::Json(InvitationList { items, next_cursor: None }))
}

/// A list of invitations.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationList {
    /// The invitations, in id order.
    pub items: Vec<InvitationView>,
    /// Always null: one page.
    pub next_cursor: Option<String>,
}

/// A list of role grants.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleGrantList {
    /// The grants in force.
    pub items: Vec<RoleGrantView>,
    /// Always null: one page.
    pub next_cursor: Option<String>,
}

/// Role grants in force in a chapter (its chapter admin, admin) or, for admin without
/// `chapter_id`, the network's admins.
#[utoipa::path(get, path = "/v1/role-grants", tag = "people", params(ChapterQuery),
    responses((status = 200, body = RoleGrantList), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn grants(
    State(s): State<AppState>,
    caller: Caller,
    Params(q): Params<ChapterQuery>,
) -> Result<axum::Json<RoleGrantList>, ApiError> {
    let chapter = chapter_of_list(&caller, &q);
    administers(&s, &caller, chapter).await?;
    let req = common::ListGrantsRequest { chapter_id: chapter.map(|c| c.to_string()).unwrap_or_default() };
    let (mut c, mut v) = (s.clients.access(Service::CareHome), s.clients.access(Service::Volunteer));
    let (staff, pilots) = tokio::join!(c.list_grants(req.clone()), v.list_grants(req));
    let mut items: Vec<RoleGrantView> = staff.reply()?.grants.into_iter().map(grant_view).collect();
    items.extend(pilots.reply()?.grants.into_iter().map(grant_view));
    items.sort_by_key(|g| g.role_grant_id);
    Ok(axum::Json(RoleGrantList { items, next_cursor: None }))
}

/// Revoke a role grant: refused on every replica within 2 s. A chapter's last chapter
/// admin stays (409 `last-admin`) unless an admin revokes it; the network's last admin
/// stays.
#[utoipa::path(delete, path = "/v1/role-grants/{id}", tag = "people", params(("id" = Uuid, Path)),
    responses((status = 200, body = RoleGrantView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn revoke_grant(
    State(s): State<AppState>,
    cmd: Command,
    Ids(grant): Ids<Uuid>,
    _: NoBody,
) -> Result<axum::Json<RoleGrantView>, ApiError> {
    let mut found = None;
    for service in [Service::CareHome, Service::Volunteer] {
        let req = common::GrantRequest { role_grant_id: grant.to_string() };
        if let Some(g) = s.clients.access(service).get_grant(req).await.found()? {
            found = Some((g, service));
            break;
        }
    }
    let (g, service) = found.ok_or_else(ApiError::not_found)?;
    administers_or_404(&cmd.caller, id(&g.chapter_id))?;
    let req = common::RevokeGrantRequest { context: cmd.context(), role_grant_id: grant.to_string(), erasure: false };
    let revoked = s.clients.access(service).revoke_grant(req).await.reply()?;
    if let Some(person) = id(&revoked.person_id) {
        s.grants.forget(person);
    }
    Ok(axum::Json(grant_view(revoked)))
}

/// What Samskab keeps about a person (`GET /v1/me/export`).
#[derive(Debug, Serialize, ToSchema)]
pub struct PersonExport {
    /// The pseudonymous person id (derived from the provider's subject; the subject, the
    /// e-mail and the name are never stored).
    pub person_id: Uuid,
    /// The role grants in force, with who granted them and when.
    pub roles: Vec<RoleGrantView>,
    /// For Samskab's own tokens: the role their claims carry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_role: Option<String>,
    /// What else is kept: the person id as the actor of the events the person caused
    /// (audit trails), and the answers to their idempotent requests (24 h, sealed).
    pub also_kept: Vec<String>,
    /// What the notify service keeps: contact details, preferences, inbox and deliveries,
    /// for the person and each pilot record they act as (absent without notify).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub notifications: Option<serde_json::Value>,
}

/// Everything kept about the signed-in person.
#[utoipa::path(get, path = "/v1/me/export", tag = "people",
    responses((status = 200, body = PersonExport), (status = 401, body = Problem)),
    security(("bearer" = [])))]
pub async fn export(State(s): State<AppState>, person: Person) -> Result<axum::Json<PersonExport>, ApiError> {
    let notifications = match s.clients.notify() {
        Ok(mut notify) => {
            let recipients = crate::routes::notifications::recipients(&person);
            let got = notify.export_recipients(npb::ExportRecipientsRequest { recipients }).await.reply()?;
            Some(export_json(got))
        }
        Err(_) => None,
    };
    Ok(axum::Json(PersonExport {
        notifications,
        person_id: person.person_id,
        roles: person.grants.into_iter().map(grant_view).collect(),
        token_role: person.claimed.map(|r| r.name().to_owned()),
        also_kept: vec![
            "the person id as the actor of events the person caused, in the audit trails".into(),
            "answers to the person's requests with an Idempotency-Key, sealed, for 24 hours".into(),
        ],
    }))
}

fn export_json(got: npb::ExportRecipientsResponse) -> serde_json::Value {
    let time = |t: &Option<prost_types::Timestamp>| {
        t.as_ref()
            .and_then(samskab_proto::time::from_proto)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    };
    let opt = |s: String| if s.is_empty() { serde_json::Value::Null } else { serde_json::Value::String(s) };
    serde_json::Value::Array(
        got.recipients
            .into_iter()
            .map(|r| {
                let prefs = r.preferences.unwrap_or_default();
                serde_json::json!({
                    "recipient": r.recipient,
                    "contact": {"email": opt(r.email), "phone": opt(r.phone),
                        "pending_email": opt(r.pending_email), "pending_phone": opt(r.pending_phone)},
                    "preferences": {
                        "language": prefs.language,
                        "quiet_hours": prefs.quiet_hours.map(|q| serde_json::json!({"from": q.from, "to": q.to, "timezone": opt(q.timezone)})),
                        "channels": prefs.channels.into_iter().map(|(k, v)| (k, serde_json::json!(v.channels))).collect::<serde_json::Map<_, _>>(),
                    },
                    "notifications": r.notices.into_iter().map(|n| serde_json::json!({
                        "notification_id": n.notice_id, "kind": n.kind, "created_at": time(&n.created_at),
                        "read_at": time(&n.read_at), "title": n.title, "body": n.body,
                    })).collect::<Vec<_>>(),
                    "deliveries": r.deliveries.into_iter().map(|d| serde_json::json!({
                        "notification_id": d.notice_id, "kind": d.kind, "channel": d.channel,
                        "outcome": d.outcome, "at": time(&d.at),
                    })).collect::<Vec<_>>(),
                    "push_subscriptions": r.push_subscriptions.into_iter().map(|p| serde_json::json!({
                        "push_subscription_id": p.push_subscription_id, "endpoint": p.endpoint,
                        "created_at": time(&p.created_at),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

/// What an erasure did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Erasure {
    /// The person.
    pub person_id: Uuid,
    /// The grants revoked.
    pub revoked: Vec<RoleGrantView>,
}

/// Revokes every grant of the person (a chapter's last admin too), forgets them on this
/// replica and records the erasure in the ledger; in force on every replica within 2 s.
async fn erase(s: &AppState, person: Uuid, context: Option<common::CommandContext>) -> Result<Erasure, ApiError> {
    s.keystore.erase(&format!("person:{person}")).await.map_err(|e| {
        tracing::error!(error = %e, "could not record an erasure");
        ApiError::new(ErrorCode::Unavailable)
    })?;
    let req = common::PersonRequest { person_id: person.to_string() };
    let mut revoked = Vec::new();
    for service in [Service::CareHome, Service::Volunteer] {
        let grants = s.clients.access(service).person_grants(req.clone()).await.reply()?.grants;
        for g in grants {
            let r = common::RevokeGrantRequest {
                context: context.clone(),
                role_grant_id: g.role_grant_id.clone(),
                erasure: true,
            };
            s.clients.access(service).revoke_grant(r).await.found()?;
            revoked.push(grant_view(g));
        }
    }
    // What notify keeps of the person (contact details, preferences, inbox): gone, and
    // nothing more is decided for them. Pilot records they acted as are the pilot's, erased
    // with the pilot record.
    if let Ok(mut notify) = s.clients.notify() {
        notify.erase_recipient(npb::EraseRecipientRequest { recipient: format!("person:{person}") }).await.reply()?;
    }
    s.grants.forget(person);
    s.idempotency.forget_subject(person).await?;
    Ok(Erasure { person_id: person, revoked })
}

/// Erase the signed-in person: their grants are revoked and the erasure recorded.
#[utoipa::path(delete, path = "/v1/me", tag = "people",
    responses((status = 200, body = Erasure), (status = 401, body = Problem)),
    security(("bearer" = [])))]
pub async fn erase_me(State(s): State<AppState>, person: Person) -> Result<axum::Json<Erasure>, ApiError> {
    let id = person.person_id.to_string();
    let context = actor_context(&id, "person", "erasure", Some(&id), None);
    Ok(axum::Json(erase(&s, person.person_id, context).await?))
}

/// Erase a person (admin; the chapter admin of a chapter the person holds a grant in):
/// their grants are revoked before the answer and the erasure is recorded in the ledger.
#[utoipa::path(post, path = "/v1/people/{id}/erasure", tag = "people",
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe")),
    responses((status = 200, body = Erasure), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn erase_person(
    State(s): State<AppState>,
    cmd: Command,
    Ids(person): Ids<Uuid>,
    _: NoBody,
) -> Result<axum::Json<Erasure>, ApiError> {
    if !matches!(cmd.caller.role(), access::Role::Admin) {
        // A chapter admin erases people of its chapter only: a person without a grant
        // there is unknown to it.
        let grants = crate::caller::grants_of(&s, person).await?;
        let ours = grants.iter().any(|g| {
            id(&g.chapter_id).is_some_and(|c| cmd.caller.may(access::Action::Administer, &Object::Chapter(c)))
        });
        if !ours {
            return Err(ApiError::not_found());
        }
    }
    Ok(axum::Json(erase(&s, person, cmd.context()).await?))
}

/// `POST /v1/invitations/redeem`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Redeem {
    /// The invitation code.
    #[schema(min_length = 1, max_length = 200)]
    pub code: String,
}

/// Failed redemptions a person may make per hour before 429.
pub const FAILED_REDEMPTIONS_PER_HOUR: usize = 10;

/// Failed redemptions per person in the last hour (this replica's count).
#[derive(Default)]
pub struct RedemptionFailures {
    by_person: Mutex<HashMap<Uuid, Vec<Instant>>>,
}

/// The window failed redemptions are counted in.
const FAILURE_WINDOW: Duration = Duration::from_secs(3600);

impl RedemptionFailures {
    /// When the person is over the limit: the seconds until the oldest failure of the
    /// window ages out (the `Retry-After`).
    fn blocked(&self, person: Uuid) -> Option<u64> {
        let mut map = self.by_person.lock().expect("lock");
        let list = map.entry(person).or_default();
        list.retain(|t| t.elapsed() < FAILURE_WINDOW);
        if list.len() < FAILED_REDEMPTIONS_PER_HOUR {
            return None;
        }
        let oldest = list.iter().min().expect("not empty");
        Some(FAILURE_WINDOW.saturating_sub(oldest.elapsed()).as_secs().max(1))
    }

    fn record(&self, person: Uuid) {
        let mut map = self.by_person.lock().expect("lock");
        if map.len() > 100_000 {
            map.retain(|_, l| l.iter().any(|t| t.elapsed() < FAILURE_WINDOW));
        }
        map.entry(person).or_default().push(Instant::now());
    }
}

/// Redeem an invitation: 200 with the grant, in force at the next request (anyone signed in).
#[utoipa::path(post, path = "/v1/invitations/redeem", tag = "people", request_body = Redeem,
    responses((status = 200, body = RoleGrantView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 404, description = "Unknown code", body = Problem),
        (status = 409, description = "`invitation-used` by another person, `pilot-already-linked`", body = Problem),
        (status = 410, description = "`invitation-expired`: expired, revoked, or its pilot retired or erased", body = Problem),
        (status = 429, description = "Over 10 failed redemptions in an hour", body = Problem)),
    security(("bearer" = [])))]
pub async fn redeem(
    State(s): State<AppState>,
    person: Person,
    IdempotencyKey(key): IdempotencyKey,
    Body(b): Body<Redeem>,
) -> Result<impl IntoResponse, ApiError> {
    // The schema's bounds (1 to 200 characters); anything else is an unknown code (404).
    if b.code.is_empty() || b.code.chars().count() > 200 {
        return Err(ApiError::invalid("/code", "must be an invitation code"));
    }
    if let Some(wait) = s.redemption_failures.blocked(person.person_id) {
        let mut e = ApiError::new(ErrorCode::RateLimited).detail("too many failed redemptions; try again later");
        e.retry_after = Some(wait);
        return Err(e);
    }
    let id = person.person_id.to_string();
    let context = actor_context(&id, "person", "post /v1/invitations/redeem", key.as_deref(), None);
    let req = common::RedeemRequest { context, code: b.code, person_id: id };
    // The code names its invitation's stream; whichever service holds it answers.
    let staff = s.clients.access(Service::CareHome).redeem(req.clone()).await.found();
    let answer = match staff {
        Ok(Some(grant)) => Ok(grant),
        Ok(None) => s.clients.access(Service::Volunteer).redeem(req).await.reply(),
        Err(e) => Err(e),
    };
    match answer {
        Ok(grant) => {
            s.grants.forget(person.person_id);
            Ok((StatusCode::OK, axum::Json(grant_view(grant))))
        }
        Err(e) => {
            if e.code != ErrorCode::Unavailable && e.code != ErrorCode::Internal {
                s.redemption_failures.record(person.person_id);
            }
            Err(e)
        }
    }
}

/// The routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me, erase_me))
        .routes(routes!(export))
        .routes(routes!(erase_person))
        .routes(routes!(create, list))
        .routes(routes!(redeem))
        .routes(routes!(get, revoke))
        .routes(routes!(grants))
        .routes(routes!(revoke_grant))
}

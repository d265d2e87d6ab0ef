//! Staff access as records, pure: network admins (stream `admins-network`), chapter
//! admins (on their chapter's stream), coordinators (on their care home's stream), the
//! invitations to those roles and integrators' API keys. Each grant lives on the stream of
//! its scope, so the rules about it (one grant per person, a chapter's last admin) are
//! decided there, atomically.

use chrono::{DateTime, Utc};
use domain::access::{self, Invitation, Redemption};
use domain::events::{
    AdminAppointed, AdminRemoved, ApiKeyIssued, ApiKeyRevoked, CareHomeEvent, ChapterAdminAppointed,
    ChapterAdminRemoved, CoordinatorAssigned, CoordinatorRemoved, InvitationIssued, InvitationRedeemed,
};
use domain::{Aggregate, Decision, DomainError, ErrorCode};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::carehomes::{self, CareHome};
use crate::chapters::{self, Chapter};

/// The stream of the network's administrators.
pub const ADMINS_STREAM: &str = "admins-network";

/// The stream of an invitation.
pub fn invitation_stream(invitation_id: Uuid) -> String {
    format!("invitation-{invitation_id}")
}

/// The stream of an API key.
pub fn api_key_stream(api_key_id: Uuid) -> String {
    format!("apikey-{api_key_id}")
}

/// The network's administrators: (person, grant).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Admins {
    /// In order of appointment.
    pub admins: Vec<(Uuid, Uuid)>,
}

impl Aggregate for Admins {
    type Event = CareHomeEvent;

    fn apply(state: Option<Self>, event: &CareHomeEvent) -> Option<Self> {
        match event {
            CareHomeEvent::AdminAppointed(e) => {
                let mut s = state.unwrap_or_default();
                s.admins.push((e.person_id, e.role_grant_id));
                Some(s)
            }
            CareHomeEvent::AdminRemoved(e) => state.map(|mut s| {
                s.admins.retain(|(_, g)| *g != e.role_grant_id);
                s
            }),
            _ => state,
        }
    }

    fn tenant(&self) -> Option<Uuid> {
        None
    }
}

/// An invitation folded from the care-home log.
#[derive(Debug, Clone, PartialEq)]
pub struct StaffInvitation(pub Invitation);

impl Aggregate for StaffInvitation {
    type Event = CareHomeEvent;

    fn apply(state: Option<Self>, event: &CareHomeEvent) -> Option<Self> {
        match event {
            CareHomeEvent::InvitationIssued(e) => Some(StaffInvitation(Invitation::issued(e))),
            CareHomeEvent::InvitationRedeemed(e) => state.map(|s| StaffInvitation(s.0.redeemed(e))),
            CareHomeEvent::InvitationRevoked(e) => state.map(|s| StaffInvitation(s.0.revoked(e))),
            _ => state,
        }
    }

    fn tenant(&self) -> Option<Uuid> {
        self.0.chapter_id
    }
}

/// An API key as folded from its stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Id.
    pub api_key_id: Uuid,
    /// Its name.
    pub name: String,
    /// Its chapter (none: the network).
    pub chapter_id: Option<Uuid>,
    /// SHA-256 of the secret part.
    pub key_sha256: String,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: Option<DateTime<Utc>>,
    /// Who issued it.
    pub issued_by: String,
    /// Whether it was revoked.
    pub revoked: bool,
}

impl ApiKey {
    /// `active`, `revoked` or `expired` at `now`.
    pub fn status(&self, now: DateTime<Utc>) -> &'static str {
        if self.revoked {
            "revoked"
        } else if self.expires_at.is_some_and(|e| now >= e) {
            "expired"
        } else {
            "active"
        }
    }
}

impl Aggregate for ApiKey {
    type Event = CareHomeEvent;

    fn apply(state: Option<Self>, event: &CareHomeEvent) -> Option<Self> {
        match event {
            CareHomeEvent::ApiKeyIssued(e) => Some(ApiKey {
                api_key_id: e.api_key_id,
                name: e.name.clone(),
                chapter_id: e.chapter_id,
                key_sha256: e.key_sha256.clone(),
                issued_at: e.issued_at,
                expires_at: e.expires_at,
                issued_by: e.issued_by.clone(),
                revoked: false,
            }),
            CareHomeEvent::ApiKeyRevoked(_) => state.map(|k| ApiKey { revoked: true, ..k }),
            _ => state,
        }
    }

    fn tenant(&self) -> Option<Uuid> {
        self.chapter_id
    }
}

/// What a staff grant is scoped to, as loaded.
#[derive(Debug, Clone, PartialEq)]
pub enum Scope {
    /// The network (admin).
    Network(Option<Admins>),
    /// A chapter (chapter_admin).
    Chapter(Option<Chapter>),
    /// A care home (coordinator).
    Home(Option<CareHome>),
}

impl Scope {
    /// The stream the grant is kept on.
    pub fn stream(&self, id: Uuid) -> String {
        match self {
            Scope::Network(_) => ADMINS_STREAM.to_owned(),
            Scope::Chapter(_) => chapters::stream(id),
            Scope::Home(_) => carehomes::stream(id),
        }
    }

    /// The chapter the grant is in (none for admin), or 404 when the target is unknown.
    pub fn chapter(&self) -> Result<Option<Uuid>, DomainError> {
        match self {
            Scope::Network(_) => Ok(None),
            Scope::Chapter(c) => {
                c.as_ref().map(|c| Some(c.chapter_id)).ok_or_else(|| DomainError::NotFound("chapter".into()))
            }
            Scope::Home(h) => {
                h.as_ref().map(|h| Some(h.chapter_id)).ok_or_else(|| DomainError::NotFound("care home".into()))
            }
        }
    }

    /// The grant `person` holds here, if any.
    pub fn held_by(&self, person: Uuid) -> Option<Uuid> {
        match self {
            Scope::Network(a) => a.as_ref()?.admins.iter().find(|(p, _)| *p == person).map(|(_, g)| *g),
            Scope::Chapter(c) => c.as_ref()?.admins.iter().find(|(p, _)| *p == person).map(|(_, g)| *g),
            Scope::Home(h) => {
                let h = h.as_ref()?;
                let id = person.to_string();
                h.coordinator_ids.contains(&id).then(|| access::grant_id("coordinator", Some(h.carehome_id), person))
            }
        }
    }
}

/// The role a scope grants.
pub fn role_of(scope: &Scope) -> &'static str {
    match scope {
        Scope::Network(_) => "admin",
        Scope::Chapter(_) => "chapter_admin",
        Scope::Home(_) => "coordinator",
    }
}

/// The id of the scope object (none for the network).
fn scope_id(scope: &Scope) -> Option<Uuid> {
    match scope {
        Scope::Network(_) => None,
        Scope::Chapter(c) => c.as_ref().map(|c| c.chapter_id),
        Scope::Home(h) => h.as_ref().map(|h| h.carehome_id),
    }
}

/// The events granting `scope`'s role to `person` (nothing if held already), and the grant.
pub fn grant(scope: &Scope, person: Uuid, granted_by: &str) -> Result<(Decision<CareHomeEvent>, Uuid), DomainError> {
    let chapter = scope.chapter()?;
    if let Some(g) = scope.held_by(person) {
        return Ok((Decision::in_tenant(chapter), g));
    }
    let grant = access::grant_id(role_of(scope), scope_id(scope), person);
    let granted_by = granted_by.to_owned();
    let (stream, event): (String, CareHomeEvent) = match scope {
        Scope::Network(_) => {
            (ADMINS_STREAM.to_owned(), AdminAppointed { role_grant_id: grant, person_id: person, granted_by }.into())
        }
        Scope::Chapter(c) => {
            let c = c.as_ref().expect("checked by chapter()");
            let e =
                ChapterAdminAppointed { role_grant_id: grant, chapter_id: c.chapter_id, person_id: person, granted_by };
            (chapters::stream(c.chapter_id), e.into())
        }
        Scope::Home(h) => {
            let h = h.as_ref().expect("checked by chapter()");
            let e = CoordinatorAssigned { carehome_id: h.carehome_id, user_id: person.to_string() };
            (carehomes::stream(h.carehome_id), e.into())
        }
    };
    Ok((Decision::on(stream, vec![event], chapter), grant))
}

/// Decides revoking the grant `grant` of `person` in `scope`. A chapter's last admin stays
/// unless an admin removes it (409 `last-admin`); so does the network's last admin. A
/// person's erasure removes every grant (`samskab invite` bootstraps a new admin).
pub fn revoke(
    scope: &Scope,
    person: Uuid,
    grant: Uuid,
    by_admin: bool,
    erasure: bool,
) -> Result<Decision<CareHomeEvent>, DomainError> {
    let chapter = scope.chapter()?;
    if scope.held_by(person) != Some(grant) {
        return Ok(Decision::in_tenant(chapter));
    }
    let last =
        |what: &str| DomainError::conflict(ErrorCode::LastAdmin, format!("the last {what} cannot be removed"), None);
    let (stream, event): (String, CareHomeEvent) = match scope {
        Scope::Network(a) => {
            if a.as_ref().is_some_and(|a| a.admins.len() <= 1) && !erasure {
                return Err(last("network administrator"));
            }
            (ADMINS_STREAM.to_owned(), AdminRemoved { role_grant_id: grant, person_id: person }.into())
        }
        Scope::Chapter(c) => {
            let c = c.as_ref().expect("checked by chapter()");
            if c.admins.len() <= 1 && !by_admin {
                return Err(last("chapter administrator"));
            }
            let e = ChapterAdminRemoved { role_grant_id: grant, chapter_id: c.chapter_id, person_id: person };
            (chapters::stream(c.chapter_id), e.into())
        }
        Scope::Home(h) => {
            let h = h.as_ref().expect("checked by chapter()");
            let e = CoordinatorRemoved { carehome_id: h.carehome_id, user_id: person.to_string() };
            (carehomes::stream(h.carehome_id), e.into())
        }
    };
    Ok(Decision::on(stream, vec![event], chapter))
}

/// Decides issuing an invitation to `scope`'s role (404 for an unknown target).
pub fn issue(scope: &Scope, issued: InvitationIssued) -> Result<Decision<CareHomeEvent>, DomainError> {
    let chapter = scope.chapter()?;
    let issued = InvitationIssued { chapter_id: chapter, ..issued };
    Ok(Decision::on(invitation_stream(issued.invitation_id), vec![issued.into()], chapter))
}

/// Decides a redemption: the invitation's rules, then the grant on its scope's stream.
pub fn redeem(
    invitation: Option<&StaffInvitation>,
    scope: &Scope,
    secret_ok: bool,
    person: Uuid,
    now: DateTime<Utc>,
) -> Result<(Decision<CareHomeEvent>, Uuid), DomainError> {
    let inv = invitation.map(|i| &i.0);
    if let Redemption::Again(g) = access::redeem(inv, secret_ok, person, now)? {
        return Ok((Decision::nothing(), g));
    }
    let inv = inv.expect("redeem checked it");
    let what = match scope {
        Scope::Network(_) => "network",
        Scope::Chapter(_) => "chapter",
        Scope::Home(_) => "care home",
    };
    scope.chapter().map_err(|_| access::target_gone(what))?;
    let (mut d, grant) = grant(scope, person, &inv.issued_by)?;
    d.push(
        invitation_stream(inv.invitation_id),
        InvitationRedeemed { invitation_id: inv.invitation_id, person_id: person, role_grant_id: grant },
    );
    Ok((d, grant))
}

/// Decides issuing an API key.
pub fn issue_api_key(
    chapter: Option<&Chapter>,
    network: bool,
    issued: ApiKeyIssued,
) -> Result<Decision<CareHomeEvent>, DomainError> {
    let tenant = match (network, chapter) {
        (true, _) => None,
        (false, Some(c)) => Some(c.chapter_id),
        (false, None) => return Err(DomainError::NotFound("chapter".into())),
    };
    let issued = ApiKeyIssued { chapter_id: tenant, ..issued };
    Ok(Decision::on(api_key_stream(issued.api_key_id), vec![issued.into()], tenant))
}

/// Decides revoking an API key (twice: nothing).
pub fn revoke_api_key(key: Option<&ApiKey>) -> Result<Vec<CareHomeEvent>, DomainError> {
    let key = key.ok_or_else(|| DomainError::NotFound("API key".into()))?;
    Ok(if key.revoked { vec![] } else { vec![ApiKeyRevoked { api_key_id: key.api_key_id }.into()] })
}

#[cfg(test)]
mod tests;

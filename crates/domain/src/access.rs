//! People's access as records: role grants, invitations and API keys, shared by the
//! services that own them (care-home: admins, chapter admins, coordinators, their
//! invitations, API keys; volunteer: pilot links and pilot invitations).
//!
//! Secrets (invitation codes, API keys) carry the id of the stream that holds them, so
//! the owner finds the record in its write model at once (no index to lag behind), and
//! only the SHA-256 of the secret part is stored; comparison is in constant time.

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::events::{InvitationIssued, InvitationRedeemed, InvitationRevoked};
use crate::{DomainError, ErrorCode};

/// Bytes of randomness in an invitation code (≥ 128 bits as `api.md` asks).
pub const INVITATION_SECRET_BYTES: usize = 24;
/// Bytes of randomness in an API key (256 bits).
pub const API_KEY_SECRET_BYTES: usize = 32;
/// The prefix of an invitation code.
pub const INVITATION_PREFIX: &str = "inv_";
/// The prefix of an API key.
pub const API_KEY_PREFIX: &str = "sk_";
/// Default hours an invitation stays valid.
pub const DEFAULT_INVITATION_HOURS: u32 = 168;
/// Longest an invitation may stay valid (hours).
pub const MAX_INVITATION_HOURS: u32 = 24 * 90;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The roles a person can hold by grant (never `integrator`: integrators are API keys).
pub const GRANTABLE: &[&str] = &["admin", "chapter_admin", "coordinator", "pilot"];

/// The id of a role grant: the same person, role and scope always make the same grant, so
/// granting twice is the same grant (and a redemption's retry finds it).
pub fn grant_id(role: &str, scope: Option<Uuid>, person: Uuid) -> Uuid {
    let mut h = Sha256::new();
    h.update(b"samskab role grant v1\0");
    h.update(role.as_bytes());
    h.update([0]);
    h.update(scope.unwrap_or_default().as_bytes());
    h.update(person.as_bytes());
    let d = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&d[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// A secret as shown once: `<prefix>` + base64url(id ‖ random bytes).
pub fn encode_secret(prefix: &str, id: Uuid, random: &[u8]) -> String {
    let mut raw = id.as_bytes().to_vec();
    raw.extend_from_slice(random);
    format!("{prefix}{}", B64.encode(raw))
}

/// The id a secret names and its random part (`None`: not a secret of this kind).
pub fn decode_secret(prefix: &str, secret: &str, random_len: usize) -> Option<(Uuid, Vec<u8>)> {
    let raw = B64.decode(secret.trim().strip_prefix(prefix)?).ok()?;
    if raw.len() != 16 + random_len {
        return None;
    }
    let id = Uuid::from_slice(&raw[..16]).ok()?;
    Some((id, raw[16..].to_vec()))
}

/// What is stored of a secret: the hex SHA-256 of its random part.
pub fn hash_secret(random: &[u8]) -> String {
    hex::encode(Sha256::digest(random))
}

/// Whether `random` hashes to `stored`, compared in constant time.
pub fn secret_matches(random: &[u8], stored: &str) -> bool {
    let got = hash_secret(random);
    got.len() == stored.len() && got.bytes().zip(stored.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// An invitation as folded from its stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invitation {
    /// Id (the stream's).
    pub invitation_id: Uuid,
    /// The role it grants.
    pub role: String,
    /// Scope: chapter (every role but admin; a coordinator's and pilot's too).
    pub chapter_id: Option<Uuid>,
    /// Scope: care home (coordinator).
    pub carehome_id: Option<Uuid>,
    /// Scope: pilot record (pilot).
    pub pilot_id: Option<Uuid>,
    /// SHA-256 of the code's random part.
    pub code_sha256: String,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
    /// Until when it can be redeemed.
    pub expires_at: DateTime<Utc>,
    /// Who issued it (person or actor id).
    pub issued_by: String,
    /// Who redeemed it, with the grant it made.
    pub redeemed: Option<(Uuid, Uuid)>,
    /// Whether it was revoked.
    pub revoked: bool,
}

impl Invitation {
    /// The invitation an `InvitationIssued` starts.
    pub fn issued(e: &InvitationIssued) -> Invitation {
        Invitation {
            invitation_id: e.invitation_id,
            role: e.role.clone(),
            chapter_id: e.chapter_id,
            carehome_id: e.carehome_id,
            pilot_id: e.pilot_id,
            code_sha256: e.code_sha256.clone(),
            issued_at: e.issued_at,
            expires_at: e.expires_at,
            issued_by: e.issued_by.clone(),
            redeemed: None,
            revoked: false,
        }
    }

    /// Folds a redemption.
    pub fn redeemed(mut self, e: &InvitationRedeemed) -> Invitation {
        self.redeemed = Some((e.person_id, e.role_grant_id));
        self
    }

    /// Folds a revocation.
    pub fn revoked(mut self, _: &InvitationRevoked) -> Invitation {
        self.revoked = true;
        self
    }

    /// Decides revoking: an open (or expired) invitation is revoked; a redeemed one cannot
    /// be (revoke its grant instead); revoking twice writes nothing.
    pub fn revoke(&self) -> Result<Option<InvitationRevoked>, DomainError> {
        if self.redeemed.is_some() {
            return Err(DomainError::conflict(
                ErrorCode::IllegalTransition,
                "the invitation has been redeemed; revoke the role grant instead",
                None,
            ));
        }
        Ok((!self.revoked).then_some(InvitationRevoked { invitation_id: self.invitation_id }))
    }

    /// Its status at `now`: `open`, `redeemed`, `revoked` or `expired`.
    pub fn status(&self, now: DateTime<Utc>) -> &'static str {
        if self.redeemed.is_some() {
            "redeemed"
        } else if self.revoked {
            "revoked"
        } else if now >= self.expires_at {
            "expired"
        } else {
            "open"
        }
    }
}

/// What redeeming an invitation comes to before the owner checks its target.
#[derive(Debug, Clone, PartialEq)]
pub enum Redemption {
    /// Redeem it now: the grant to make.
    Redeem(Uuid),
    /// This person redeemed it already: the grant it made (answered again, nothing written).
    Again(Uuid),
}

/// The rules of `api.md` for redeeming: an unknown code or a wrong secret is 404; used by
/// another person 409 `invitation-used`; by the same person again, the same grant;
/// revoked or expired 410 `invitation-expired`.
pub fn redeem(
    invitation: Option<&Invitation>,
    secret_ok: bool,
    person: Uuid,
    now: DateTime<Utc>,
) -> Result<Redemption, DomainError> {
    let inv = invitation.filter(|_| secret_ok).ok_or_else(|| DomainError::NotFound("invitation".into()))?;
    match inv.redeemed {
        Some((p, grant)) if p == person => return Ok(Redemption::Again(grant)),
        Some(_) => {
            return Err(DomainError::conflict(
                ErrorCode::InvitationUsed,
                "someone else has redeemed this invitation",
                None,
            ));
        }
        None => {}
    }
    if inv.revoked {
        return Err(DomainError::rule(ErrorCode::InvitationExpired, "the invitation was withdrawn"));
    }
    if now >= inv.expires_at {
        return Err(DomainError::rule(ErrorCode::InvitationExpired, "the invitation has expired"));
    }
    let scope = match inv.role.as_str() {
        "admin" => None,
        "chapter_admin" => inv.chapter_id,
        "coordinator" => inv.carehome_id,
        _ => inv.pilot_id,
    };
    Ok(Redemption::Redeem(grant_id(&inv.role, scope, person)))
}

/// An expired target (retired or erased pilot, for example) makes its invitation expired.
pub fn target_gone(what: &str) -> DomainError {
    DomainError::rule(ErrorCode::InvitationExpired, format!("the invitation's {what} is no longer active"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invitation() -> Invitation {
        let now = Utc::now();
        Invitation {
            invitation_id: Uuid::from_u128(1),
            role: "coordinator".into(),
            chapter_id: Some(Uuid::from_u128(2)),
            carehome_id: Some(Uuid::from_u128(3)),
            pilot_id: None,
            code_sha256: hash_secret(b"secret"),
            issued_at: now,
            expires_at: now + chrono::Duration::hours(1),
            issued_by: "x".into(),
            redeemed: None,
            revoked: false,
        }
    }

    #[test]
    fn secrets_round_trip_and_only_their_hash_matches() {
        let id = Uuid::now_v7();
        let code = encode_secret(INVITATION_PREFIX, id, &[7u8; INVITATION_SECRET_BYTES]);
        let (got, random) = decode_secret(INVITATION_PREFIX, &code, INVITATION_SECRET_BYTES).unwrap();
        assert_eq!(got, id);
        assert!(secret_matches(&random, &hash_secret(&[7u8; INVITATION_SECRET_BYTES])));
        assert!(!secret_matches(&[8u8; INVITATION_SECRET_BYTES], &hash_secret(&random)));
        assert!(decode_secret(API_KEY_PREFIX, &code, INVITATION_SECRET_BYTES).is_none(), "wrong prefix");
        assert!(decode_secret(INVITATION_PREFIX, &code[..code.len() - 2], INVITATION_SECRET_BYTES).is_none());
        assert!(decode_secret(INVITATION_PREFIX, "inv_!!", INVITATION_SECRET_BYTES).is_none());
    }

    #[test]
    fn grant_ids_are_stable_and_distinct() {
        let (p, q, h) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        assert_eq!(grant_id("coordinator", Some(h), p), grant_id("coordinator", Some(h), p));
        assert_ne!(grant_id("coordinator", Some(h), p), grant_id("coordinator", Some(h), q));
        assert_ne!(grant_id("coordinator", Some(h), p), grant_id("pilot", Some(h), p));
        assert_eq!(grant_id("admin", None, p).get_version_num(), 8);
    }

    #[test]
    fn redemption_outcomes() {
        let now = Utc::now();
        let (me, other) = (Uuid::from_u128(10), Uuid::from_u128(11));
        let inv = invitation();
        let code = |e: DomainError| e.code();
        assert_eq!(code(redeem(None, true, me, now).unwrap_err()), ErrorCode::NotFound);
        assert_eq!(code(redeem(Some(&inv), false, me, now).unwrap_err()), ErrorCode::NotFound);
        let Redemption::Redeem(grant) = redeem(Some(&inv), true, me, now).unwrap() else { panic!() };
        assert_eq!(grant, grant_id("coordinator", Some(Uuid::from_u128(3)), me));
        let used = Invitation { redeemed: Some((me, grant)), ..inv.clone() };
        assert_eq!(redeem(Some(&used), true, me, now).unwrap(), Redemption::Again(grant));
        assert_eq!(code(redeem(Some(&used), true, other, now).unwrap_err()), ErrorCode::InvitationUsed);
        let revoked = Invitation { revoked: true, ..inv.clone() };
        assert_eq!(code(redeem(Some(&revoked), true, me, now).unwrap_err()), ErrorCode::InvitationExpired);
        let later = now + chrono::Duration::hours(2);
        assert_eq!(code(redeem(Some(&inv), true, me, later).unwrap_err()), ErrorCode::InvitationExpired);
        assert_eq!(inv.status(later), "expired");
        assert_eq!(used.status(later), "redeemed");
    }
}

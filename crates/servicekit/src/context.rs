//! The context every command carries: the caller's idempotency key (from which the ids of
//! the events it writes derive, so a retried command finds its original outcome), the
//! actor, the correlation id and the version the caller expects (If-Match).

use eventlog::{Actor, Metadata};
use samskab_proto::common::v1 as pb;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::ServiceError;

/// A validated command context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandCtx {
    /// The caller's key; a random one when the caller sent none (then a retry is a new command).
    pub idempotency_key: String,
    /// Who issues the command.
    pub actor: Actor,
    /// The request it belongs to.
    pub correlation_id: Uuid,
    /// If-Match: the version the caller expects the target object to have.
    pub expected_version: Option<u64>,
}

/// Longest idempotency key accepted.
pub const MAX_KEY_LEN: usize = 255;

impl CommandCtx {
    /// Validates the proto context.
    pub fn from_proto(ctx: Option<pb::CommandContext>) -> Result<Self, ServiceError> {
        let ctx = ctx.unwrap_or_default();
        let key = if ctx.idempotency_key.is_empty() { Uuid::new_v4().to_string() } else { ctx.idempotency_key };
        if key.len() > MAX_KEY_LEN || key.chars().any(|c| c.is_control()) {
            return Err(ServiceError::invalid("/context/idempotency_key", "must be at most 255 printable characters"));
        }
        let actor = ctx.actor.unwrap_or_default();
        if actor.id.is_empty() || actor.role.is_empty() {
            return Err(ServiceError::invalid("/context/actor", "actor id and role are required"));
        }
        let correlation_id = if ctx.correlation_id.is_empty() {
            Uuid::now_v7()
        } else {
            Uuid::parse_str(&ctx.correlation_id)
                .map_err(|_| ServiceError::invalid("/context/correlation_id", "must be a UUID"))?
        };
        Ok(CommandCtx {
            idempotency_key: key,
            actor: Actor { id: actor.id, role: actor.role },
            correlation_id,
            expected_version: (ctx.expected_version > 0).then_some(ctx.expected_version),
        })
    }

    /// A context for work the system does on its own (cascades), keyed by what caused it.
    pub fn system(cause: Uuid, purpose: &str) -> Self {
        CommandCtx {
            idempotency_key: format!("{purpose}:{cause}"),
            actor: Actor { id: "system".into(), role: "system".into() },
            correlation_id: cause,
            expected_version: None,
        }
    }

    /// The id of the `n`-th event this command writes for `scope` (usually the target
    /// object). Deterministic in (actor, key, scope, n): a retry of the command computes
    /// the same ids, and the log recognises them. The bits carry the UUID v7 version and
    /// variant; the timestamp field holds hash bits, not a clock reading.
    pub fn event_id(&self, scope: &str, n: u32) -> Uuid {
        derive_id(&[self.actor.id.as_bytes(), self.idempotency_key.as_bytes(), scope.as_bytes(), &n.to_be_bytes()])
    }

    /// An id for a new object created by this command (a ride, a pilot), deterministic in
    /// the same way, so a retried creation names the same object.
    pub fn new_object_id(&self, kind: &str) -> Uuid {
        derive_id(&[b"object", self.actor.id.as_bytes(), self.idempotency_key.as_bytes(), kind.as_bytes()])
    }

    /// Metadata for the events this command writes.
    pub fn metadata(&self, tenant: Option<Uuid>) -> Metadata {
        Metadata {
            tenant,
            actor: Some(self.actor.clone()),
            correlation_id: Some(self.correlation_id),
            causation_id: None,
            traceparent: telemetry::current_traceparent(),
        }
    }

    /// Refuses with `PreconditionFailed` when the caller expected another version.
    pub fn check_version(&self, current: u64) -> Result<(), ServiceError> {
        match self.expected_version {
            Some(v) if v != current => Err(ServiceError::PreconditionFailed { current_version: current }),
            _ => Ok(()),
        }
    }
}

fn derive_id(parts: &[&[u8]]) -> Uuid {
    let mut h = Sha256::new();
    h.update(b"samskab-id\0");
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    let digest = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x70;
    b[8] = (b[8] & 0x3f) | 0x80;
    Uuid::from_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(key: &str) -> CommandCtx {
        CommandCtx::from_proto(Some(pb::CommandContext {
            idempotency_key: key.into(),
            actor: Some(pb::Actor { id: "u-1".into(), role: "pilot".into() }),
            correlation_id: String::new(),
            expected_version: 0,
        }))
        .unwrap()
    }

    #[test]
    fn event_ids_are_deterministic_per_key_and_scope() {
        let a = ctx("k1");
        assert_eq!(a.event_id("ride-1", 0), ctx("k1").event_id("ride-1", 0));
        assert_ne!(a.event_id("ride-1", 0), a.event_id("ride-1", 1));
        assert_ne!(a.event_id("ride-1", 0), ctx("k2").event_id("ride-1", 0));
        assert_eq!(a.event_id("ride-1", 0).get_version_num(), 7);
        assert_eq!(a.new_object_id("ride"), ctx("k1").new_object_id("ride"));
    }

    #[test]
    fn the_context_is_validated() {
        assert!(CommandCtx::from_proto(None).is_err(), "an actor is required");
        let long = "x".repeat(300);
        assert!(
            CommandCtx::from_proto(Some(pb::CommandContext {
                idempotency_key: long,
                actor: Some(pb::Actor { id: "u".into(), role: "r".into() }),
                ..Default::default()
            }))
            .is_err()
        );
        assert_eq!(ctx("k").expected_version, None);
    }
}

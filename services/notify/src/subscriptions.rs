//! A person's Web Push subscriptions: added (the endpoint checked as webhook URLs are, the
//! keys checked as RFC 8291 needs them, at most ten a person, the same endpoint again
//! answered with its subscription), listed and deleted by the person; deleted by the sender
//! when the push service says the subscription is gone. Each is an event of the person's
//! stream, appended at the version read, so concurrent adds cannot pass the limit.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use domain::ErrorCode;
use domain::types::Invalid;
use samskab_proto::notify::v1 as pb;
use servicekit::error::ServiceError;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::grpc::{Notify, erased, person_recipient};
use crate::people::{self, PushSubscriptionAdded, PushSubscriptionRemoved, PushTarget};

/// The most subscriptions a person may have.
pub const MAX_PER_PERSON: usize = 10;

fn decoded(field: &str, value: &str, len: usize, bad: &mut Vec<Invalid>) -> Vec<u8> {
    match B64.decode(value.trim_end_matches('=')) {
        Ok(b) if b.len() == len && (len != 65 || b[0] == 4) => b,
        _ => {
            let what = if len == 65 { "an uncompressed P-256 public key (65 bytes)" } else { "16 bytes" };
            bad.push(Invalid::new(field, format!("must be base64url of {what}")));
            Vec::new()
        }
    }
}

fn view(id: &str, endpoint: String, created_at: i64) -> pb::PushSubscription {
    pb::PushSubscription {
        push_subscription_id: id.to_owned(),
        endpoint,
        created_at: Some(samskab_proto::time::to_proto(crate::facts::from_micros(created_at))),
    }
}

/// The person's subscriptions (as their stream tells: what they just added is there) with
/// their endpoints unsealed, oldest first.
pub async fn list_of(n: &Notify, who: &str) -> Result<Vec<pb::PushSubscription>, ServiceError> {
    let state = people::load(&n.store, who).await?;
    let mut out = Vec::new();
    for a in &state.push {
        let Ok(Some(target)) = n.keys.unseal_json::<PushTarget>(who, "push", &a.target).await else { continue };
        out.push(view(&a.subscription_id.to_string(), target.endpoint, crate::facts::micros(a.created_at)));
    }
    Ok(out)
}

pub(crate) async fn add(
    n: &Notify,
    req: Request<pb::AddPushSubscriptionRequest>,
) -> Result<Response<pb::AddPushSubscriptionResponse>, Status> {
    let r = req.into_inner();
    let who = person_recipient(&r.recipient)?;
    let mut bad = Vec::new();
    let endpoint = match crate::push::Pusher::check_endpoint(&r.endpoint, n.pusher.allow_loopback()) {
        Ok(u) => Some(u),
        Err(why) => {
            bad.push(Invalid::new("/endpoint", why));
            None
        }
    };
    decoded("/keys/p256dh", &r.p256dh, 65, &mut bad);
    decoded("/keys/auth", &r.auth, 16, &mut bad);
    if let Some(u) = &endpoint {
        match servicekit::ssrf::resolve(u, n.pusher.allow_loopback()).await {
            Ok(a) if a.is_empty() => bad.push(Invalid::new("/endpoint", "the push service's host does not resolve")),
            Ok(_) => {}
            Err(why) => bad.push(Invalid::new("/endpoint", why)),
        }
    }
    if !bad.is_empty() {
        return Err(ServiceError::Invalid(bad).into());
    }
    let target = PushTarget { endpoint: r.endpoint.clone(), p256dh: r.p256dh.clone(), auth: r.auth.clone() };
    let digest = n.keys.digest("push-endpoint", r.endpoint.as_bytes());
    // No key is made for an erased person; the change checks again.
    if people::load(&n.store, &who).await.map_err(ServiceError::from)?.erased {
        return Err(erased().into());
    }
    // Sealed once: a retry after a lost race adds the same subscription.
    let sealed = n.keys.seal_json(&who, "push", &target).await.map_err(|e| ServiceError::Unavailable(e.to_string()))?;
    let (subscription_id, created_at) = (Uuid::now_v7(), servicekit::clock::now());
    let (subscription, created) = people::change(&n.store, &who, |state| {
        if state.erased {
            return Err(erased());
        }
        if let Some(a) = state.push.iter().find(|a| people::same_digest(&a.endpoint_digest, &digest)) {
            let s = view(&a.subscription_id.to_string(), r.endpoint.clone(), crate::facts::micros(a.created_at));
            return Ok(((s, false), None));
        }
        if state.push.len() >= MAX_PER_PERSON {
            return Err(ServiceError::rule(
                ErrorCode::LimitReached,
                format!("at most {MAX_PER_PERSON} push subscriptions a person; delete one first"),
            ));
        }
        let event = PushSubscriptionAdded {
            recipient: who.clone(),
            subscription_id,
            target: sealed.clone(),
            endpoint_digest: digest.clone(),
            created_at,
        };
        let s = view(&subscription_id.to_string(), r.endpoint.clone(), crate::facts::micros(created_at));
        let payload = serde_json::to_value(&event).map_err(|e| ServiceError::Internal(e.to_string()))?;
        Ok(((s, true), Some(("PushSubscriptionAdded", payload, Vec::new()))))
    })
    .await?;
    Ok(Response::new(pb::AddPushSubscriptionResponse { subscription: Some(subscription), created }))
}

pub(crate) async fn list(
    n: &Notify,
    req: Request<pb::ListPushSubscriptionsRequest>,
) -> Result<Response<pb::ListPushSubscriptionsResponse>, Status> {
    let who = person_recipient(&req.into_inner().recipient)?;
    Ok(Response::new(pb::ListPushSubscriptionsResponse { subscriptions: list_of(n, &who).await? }))
}

/// Appends the removal of `id` if it is still `who`'s; whether it was.
pub async fn remove(store: &eventlog::EventStore, who: &str, id: Uuid, reason: &str) -> Result<bool, ServiceError> {
    people::change(store, who, |state| {
        if state.erased || !state.push.iter().any(|a| a.subscription_id == id) {
            return Ok((false, None));
        }
        let event = PushSubscriptionRemoved { recipient: who.to_owned(), subscription_id: id, reason: reason.into() };
        let payload = serde_json::to_value(&event).map_err(|e| ServiceError::Internal(e.to_string()))?;
        Ok((true, Some(("PushSubscriptionRemoved", payload, Vec::new()))))
    })
    .await
}

pub(crate) async fn delete(
    n: &Notify,
    req: Request<pb::DeletePushSubscriptionRequest>,
) -> Result<Response<pb::DeletePushSubscriptionResponse>, Status> {
    let r = req.into_inner();
    let who = person_recipient(&r.recipient)?;
    let not_found = || ServiceError::NotFound("push subscription".into());
    let id: Uuid = r.push_subscription_id.parse().map_err(|_| not_found())?;
    if !remove(&n.store, &who, id, "deleted").await? {
        return Err(not_found().into());
    }
    Ok(Response::new(pb::DeletePushSubscriptionResponse {}))
}

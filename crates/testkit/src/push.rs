//! A Web Push service stand-in for tests: a real HTTP server on loopback that acts as a
//! browser's push service. For each push it checks the VAPID signature (RFC 8292: an ES256
//! JWT under the key in `k=`, its audience this service's origin, not expired and not
//! valid for more than a day) and decrypts the payload as the browser would (RFC 8291),
//! with the browser keys of RFC 8291's worked example ([`UA_PUBLIC`], [`AUTH`]). A
//! subscription marked gone is answered 410.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf::{HKDF_SHA256, KeyType, Salt};

/// RFC 8291 §5's browser public key (`p256dh`).
pub const UA_PUBLIC: &str = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
/// Its private key.
pub const UA_PRIVATE: &str = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94";
/// Its auth secret (`auth`).
pub const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";

/// One push the service received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The subscription's name (the endpoint's last segment).
    pub subscription: String,
    /// `Topic`, `Urgency`, `TTL`.
    pub topic: String,
    pub urgency: String,
    pub ttl: String,
    /// The VAPID public key it was signed with (`k=`).
    pub vapid_key: String,
    /// The decrypted payload as JSON (null when it could not be checked or decrypted).
    pub payload: serde_json::Value,
    /// What failed, if anything (then the push was answered 400).
    pub error: Option<String>,
    /// The status it was answered with.
    pub status: u16,
}

#[derive(Clone, Default)]
struct Shared {
    origin: Arc<Mutex<String>>,
    received: Arc<Mutex<Vec<Received>>>,
    gone: Arc<Mutex<HashSet<String>>>,
}

/// A running push service; stopped when dropped.
pub struct PushService {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PushService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Len(usize);

impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn expand(prk: &ring::hkdf::Prk, info: &[&[u8]], len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    prk.expand(info, Len(len)).and_then(|o| o.fill(&mut out)).expect("hkdf");
    out
}

/// Decrypts an `aes128gcm` push body (RFC 8291, one record) with the browser's keys.
pub fn decrypt(ua_private: &[u8], ua_public: &[u8], auth: &[u8], body: &[u8]) -> Result<Vec<u8>, String> {
    if body.len() < 86 + 17 {
        return Err("body too short".into());
    }
    let (salt, rest) = body.split_at(16);
    let rs = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes"));
    let idlen = rest[4] as usize;
    if idlen != 65 || rs < 18 {
        return Err(format!("header: rs {rs}, idlen {idlen}"));
    }
    let as_public = &rest[5..5 + 65];
    let record = &rest[5 + 65..];
    if record.len() > rs as usize {
        return Err("more than one record".into());
    }
    let secret = p256::SecretKey::from_slice(ua_private).map_err(|e| format!("ua key: {e}"))?;
    let public = p256::PublicKey::from_sec1_bytes(as_public).map_err(|e| format!("sender key: {e}"))?;
    let shared = p256::ecdh::diffie_hellman(secret.to_nonzero_scalar(), public.as_affine());
    let prk_key = Salt::new(HKDF_SHA256, auth).extract(shared.raw_secret_bytes().as_slice());
    let ikm = expand(&prk_key, &[b"WebPush: info\0", ua_public, as_public], 32);
    let prk = Salt::new(HKDF_SHA256, salt).extract(&ikm);
    let cek = expand(&prk, &[b"Content-Encoding: aes128gcm\0"], 16);
    let nonce = expand(&prk, &[b"Content-Encoding: nonce\0"], 12);
    let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &cek).map_err(|_| "cek")?);
    let mut buf = record.to_vec();
    let nonce = Nonce::try_assume_unique_for_key(&nonce).map_err(|_| "nonce")?;
    let plain = key.open_in_place(nonce, Aad::empty(), &mut buf).map_err(|_| "the payload does not decrypt")?;
    // Padding is zeros after the delimiter: 2 for the last record.
    let end = plain.iter().rposition(|b| *b != 0).ok_or("no delimiter")?;
    if plain[end] != 2 {
        return Err("not the last record's delimiter".into());
    }
    Ok(plain[..end].to_vec())
}

/// Checks `Authorization: vapid t=<jwt>, k=<key>` for `audience`; returns the key.
pub fn verify_vapid(header: &str, audience: &str) -> Result<String, String> {
    let rest = header.strip_prefix("vapid ").ok_or("not the vapid scheme")?;
    let mut t = None;
    let mut k = None;
    for part in rest.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = Some(v.to_owned()),
            Some(("k", v)) => k = Some(v.to_owned()),
            _ => {}
        }
    }
    let (t, k) = (t.ok_or("no t=")?, k.ok_or("no k=")?);
    let (input, sig) = t.rsplit_once('.').ok_or("not a JWT")?;
    let key = B64.decode(&k).map_err(|_| "k is not base64url")?;
    let sig = B64.decode(sig).map_err(|_| "the signature is not base64url")?;
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, &key)
        .verify(input.as_bytes(), &sig)
        .map_err(|_| "the VAPID signature does not verify")?;
    let (header, claims) = input.split_once('.').ok_or("not a JWT")?;
    let header: serde_json::Value =
        serde_json::from_slice(&B64.decode(header).map_err(|_| "header")?).map_err(|_| "header")?;
    if header["alg"] != "ES256" {
        return Err("not ES256".into());
    }
    let claims: serde_json::Value =
        serde_json::from_slice(&B64.decode(claims).map_err(|_| "claims")?).map_err(|_| "claims")?;
    if claims["aud"] != audience {
        return Err(format!("audience {} is not {audience}", claims["aud"]));
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64;
    let exp = claims["exp"].as_i64().ok_or("no exp")?;
    if exp <= now || exp > now + 24 * 3600 {
        return Err(format!("exp {exp} is not within a day of {now}"));
    }
    let sub = claims["sub"].as_str().ok_or("no sub")?;
    if !(sub.starts_with("mailto:") || sub.starts_with("https:")) {
        return Err(format!("sub {sub} is neither mailto: nor https:"));
    }
    Ok(k)
}

async fn push(
    State(s): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let origin = s.origin.lock().expect("origin").clone();
    let key = |v: &str| B64.decode(v).expect("test key");
    let checked = verify_vapid(&header("authorization"), &origin).and_then(|k| {
        if header("content-encoding") != "aes128gcm" {
            return Err("Content-Encoding is not aes128gcm".into());
        }
        let plain = decrypt(&key(UA_PRIVATE), &key(UA_PUBLIC), &key(AUTH), &body)?;
        let payload = serde_json::from_slice(&plain).map_err(|e| format!("payload: {e}"))?;
        Ok((k, payload))
    });
    let gone = s.gone.lock().expect("gone").contains(&name);
    let (status, vapid_key, payload, error) = match checked {
        Ok((k, p)) if gone => (StatusCode::GONE, k, p, None),
        Ok((k, p)) => (StatusCode::CREATED, k, p, None),
        Err(e) => (StatusCode::BAD_REQUEST, String::new(), serde_json::Value::Null, Some(e)),
    };
    s.received.lock().expect("received").push(Received {
        subscription: name,
        topic: header("topic"),
        urgency: header("urgency"),
        ttl: header("ttl"),
        vapid_key,
        payload,
        error,
        status: status.as_u16(),
    });
    status
}

impl PushService {
    /// Starts one on a free loopback port.
    pub async fn start() -> PushService {
        let shared = Shared::default();
        let app = axum::Router::new().route("/push/{name}", axum::routing::post(push)).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        *shared.origin.lock().expect("origin") = base.clone();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        PushService { base, shared, task }
    }

    /// The endpoint of subscription `name`.
    pub fn endpoint(&self, name: &str) -> String {
        format!("{}/push/{name}", self.base)
    }

    /// From now on, pushes to `name` are answered 410 Gone.
    pub fn gone(&self, name: &str) {
        self.shared.gone.lock().expect("gone").insert(name.to_owned());
    }

    /// Every push so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().expect("received").clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worked_example_of_rfc_8291_decrypts() {
        let body = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN";
        let key = |v: &str| B64.decode(v).unwrap();
        let plain = decrypt(&key(UA_PRIVATE), &key(UA_PUBLIC), &key(AUTH), &key(body)).unwrap();
        assert_eq!(plain, b"When I grow up, I want to be a watermelon");
        let mut tampered = key(body);
        *tampered.last_mut().unwrap() ^= 1;
        assert!(decrypt(&key(UA_PRIVATE), &key(UA_PUBLIC), &key(AUTH), &tampered).is_err());
    }
}

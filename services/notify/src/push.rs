//! Web Push: a notice to each of a person's browsers through their push services (RFC
//! 8030), its payload encrypted for the browser (RFC 8291: ECDH on P-256 with the
//! browser's key, HKDF-SHA-256 with its auth secret, `aes128gcm` content coding of RFC
//! 8188), the request signed as this application server (VAPID, RFC 8292: an ES256 JWT
//! whose audience is the push service's origin, and the public key browsers subscribed
//! with).
//!
//! The primitives are `ring`'s (already the TLS provider here); the composition follows
//! the RFCs and is checked against RFC 8291's worked example by the test receiver
//! (`testkit::push`). The `web-push` crate needs OpenSSL and `web-push-native` a second
//! generation of the RustCrypto curves beside the one this workspace builds, so neither
//! was taken.
//!
//! The key pair is generated once (the first notify process to need it) and kept in
//! notify's database, the private key sealed under the service's own data key (rewrapped
//! with the master key like every other). A push service is reached only at a public
//! address (`servicekit::ssrf`, pinned, no redirects; `--push-allow-loopback` for tests).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};
use eventlog::{Arg, Error, EventStore};
use keystore::KeyStore;
use ring::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::agreement::{ECDH_P256, EphemeralPrivateKey, UnparsedPublicKey, agree_ephemeral};
use ring::hkdf::{HKDF_SHA256, KeyType, Salt};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

use crate::mail::SendError;
use crate::people::PushTarget;

/// How Web Push is sent.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PushConfig {
    /// The contact a push service may reach the operator at (VAPID `sub`): `mailto:` or
    /// `https:`. Unset: the public URL of the REST API.
    #[arg(id = "vapid_subject", long = "vapid-subject", env = "SAMSKAB_VAPID_SUBJECT")]
    pub subject: Option<String>,
    /// Tests only: allow push services on loopback (and plain http there).
    #[arg(id = "push_allow_loopback", long = "push-allow-loopback", env = "SAMSKAB_PUSH_ALLOW_LOOPBACK", hide = true)]
    pub allow_loopback: bool,
}

/// The VAPID service key's subject in the key store.
const SUBJECT: &str = "service:vapid";
/// Record size of the one record a payload is (RFC 8188).
const RECORD_SIZE: u32 = 4096;
/// The most a payload may be (one record, its tag and delimiter; push services take 4 KiB).
pub const MAX_PAYLOAD: usize = 3000;

/// The application server's key pair.
pub struct Vapid {
    pair: EcdsaKeyPair,
    /// The public key, uncompressed, base64url.
    pub public_key: String,
}

impl std::fmt::Debug for Vapid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vapid").field("public_key", &self.public_key).finish_non_exhaustive()
    }
}

fn crypto(what: &str) -> Error {
    Error::Corrupt(format!("web push: {what}"))
}

impl Vapid {
    /// The stored pair, or a new one stored now (the first of two processes wins).
    pub async fn load_or_generate(store: &EventStore, keys: &KeyStore) -> Result<Vapid, Error> {
        if let Some(v) = Self::load(store, keys).await? {
            return Ok(v);
        }
        let rng = SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).map_err(|_| crypto("keygen"))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| crypto("key"))?;
        let public = B64.encode(pair.public_key().as_ref());
        let sealed = keys.seal(SUBJECT, "vapid", &B64.encode(pkcs8.as_ref())).await.map_err(key_error)?;
        let sealed = serde_json::to_string(&sealed).map_err(Error::Payload)?;
        store
            .transaction(move |tx| {
                Box::pin(async move {
                    tx.execute(
                        "INSERT INTO notify_vapid (id, sealed, public_key) VALUES (1, $1, $2) \
                         ON CONFLICT (id) DO NOTHING",
                        &[sealed.into(), public.into()],
                    )
                    .await
                })
            })
            .await?;
        Self::load(store, keys).await?.ok_or_else(|| crypto("the key pair was not kept"))
    }

    async fn load(store: &EventStore, keys: &KeyStore) -> Result<Option<Vapid>, Error> {
        let rows: Vec<(String, String)> =
            store.fetch_rows("SELECT sealed, public_key FROM notify_vapid WHERE id = 1", &[]).await?;
        let Some((sealed, public_key)) = rows.into_iter().next() else { return Ok(None) };
        let sealed: domain::types::Sealed = serde_json::from_str(&sealed).map_err(Error::Payload)?;
        let pkcs8 =
            keys.unseal(SUBJECT, "vapid", &sealed).await.map_err(key_error)?.ok_or_else(|| crypto("key gone"))?;
        let pkcs8 = B64.decode(pkcs8).map_err(|_| crypto("key encoding"))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &SystemRandom::new())
            .map_err(|_| crypto("key"))?;
        if B64.encode(pair.public_key().as_ref()) != public_key {
            return Err(crypto("the stored public key is not the private key's"));
        }
        Ok(Some(Vapid { pair, public_key }))
    }

    /// `Authorization: vapid t=<JWT>, k=<public key>` for a push to `endpoint`'s origin,
    /// valid 12 hours from `now`.
    pub fn authorization(&self, endpoint: &url::Url, subject: &str, now: DateTime<Utc>) -> Result<String, SendError> {
        let audience = endpoint.origin().ascii_serialization();
        let header = B64.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = serde_json::json!({"aud": audience, "exp": now.timestamp() + 12 * 3600, "sub": subject});
        let input = format!("{header}.{}", B64.encode(claims.to_string()));
        let signature = self
            .pair
            .sign(&SystemRandom::new(), input.as_bytes())
            .map_err(|_| SendError::Transient("VAPID signature".into()))?;
        Ok(format!("vapid t={input}.{}, k={}", B64.encode(signature.as_ref()), self.public_key))
    }
}

fn key_error(e: keystore::Error) -> Error {
    Error::Corrupt(format!("web push key: {e}"))
}

struct Len(usize);

impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn expand(prk: &ring::hkdf::Prk, info: &[&[u8]], len: usize) -> Result<Vec<u8>, SendError> {
    let mut out = vec![0u8; len];
    prk.expand(info, Len(len)).and_then(|okm| okm.fill(&mut out)).map_err(|_| SendError::Permanent("HKDF".into()))?;
    Ok(out)
}

/// Encrypts `payload` for a browser (RFC 8291 over RFC 8188 `aes128gcm`, one record):
/// the body of the push request.
pub fn encrypt(p256dh: &[u8], auth: &[u8], payload: &[u8]) -> Result<Vec<u8>, SendError> {
    let bad = |what: &str| SendError::Permanent(format!("push subscription: {what}"));
    if p256dh.len() != 65 || p256dh[0] != 4 {
        return Err(bad("p256dh is not an uncompressed P-256 point"));
    }
    if auth.len() != 16 {
        return Err(bad("auth is not 16 bytes"));
    }
    if payload.len() > MAX_PAYLOAD {
        return Err(bad("payload too long"));
    }
    let rng = SystemRandom::new();
    let ephemeral = EphemeralPrivateKey::generate(&ECDH_P256, &rng).map_err(|_| bad("keygen"))?;
    let as_public = ephemeral.compute_public_key().map_err(|_| bad("key"))?;
    let as_public = as_public.as_ref().to_vec();
    let ecdh = agree_ephemeral(ephemeral, &UnparsedPublicKey::new(&ECDH_P256, p256dh), |secret| secret.to_vec())
        .map_err(|_| bad("p256dh is not a point on P-256"))?;
    // IKM = HKDF(auth, ecdh, "WebPush: info" || 0 || ua_public || as_public, 32)
    let prk_key = Salt::new(HKDF_SHA256, auth).extract(&ecdh);
    let ikm = expand(&prk_key, &[b"WebPush: info\0", p256dh, &as_public], 32)?;
    let mut salt = [0u8; 16];
    rng.fill(&mut salt).map_err(|_| bad("random"))?;
    let prk = Salt::new(HKDF_SHA256, &salt).extract(&ikm);
    let cek = expand(&prk, &[b"Content-Encoding: aes128gcm\0"], 16)?;
    let nonce = expand(&prk, &[b"Content-Encoding: nonce\0"], 12)?;
    let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &cek).map_err(|_| bad("key"))?);
    let mut record = payload.to_vec();
    record.push(2); // the last (and only) record's delimiter, no padding
    let nonce = Nonce::try_assume_unique_for_key(&nonce).map_err(|_| bad("nonce"))?;
    key.seal_in_place_append_tag(nonce, Aad::empty(), &mut record).map_err(|_| bad("seal"))?;
    let mut body = Vec::with_capacity(16 + 4 + 1 + 65 + record.len());
    body.extend_from_slice(&salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(65);
    body.extend_from_slice(&as_public);
    body.extend_from_slice(&record);
    Ok(body)
}

/// What a push service said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Taken (201).
    Sent,
    /// The subscription expired (404, 410): it is deleted.
    Gone,
}

/// Sends pushes.
#[derive(Clone)]
pub struct Pusher {
    vapid: std::sync::Arc<Vapid>,
    subject: String,
    allow_loopback: bool,
}

impl std::fmt::Debug for Pusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pusher").field("subject", &self.subject).finish_non_exhaustive()
    }
}

impl Pusher {
    /// A pusher signing with `vapid` as `subject` (a `mailto:` or `https:` URL).
    pub fn new(vapid: Vapid, subject: String, allow_loopback: bool) -> Self {
        Pusher { vapid: std::sync::Arc::new(vapid), subject, allow_loopback }
    }

    /// The public key browsers subscribe with.
    pub fn public_key(&self) -> &str {
        &self.vapid.public_key
    }

    /// Whether push services on loopback are allowed (tests).
    pub fn allow_loopback(&self) -> bool {
        self.allow_loopback
    }

    /// Whether `endpoint` may be a push service: https (http only on loopback when
    /// allowed), no credentials, and as `servicekit::ssrf` checks webhook URLs.
    pub fn check_endpoint(endpoint: &str, allow_loopback: bool) -> Result<url::Url, &'static str> {
        let u = servicekit::ssrf::check_url(endpoint)?;
        let loopback = servicekit::ssrf::literal_ip(&u).is_some_and(|ip| ip.is_loopback());
        if u.scheme() != "https" && !(allow_loopback && loopback) {
            return Err("must be an https:// URL");
        }
        Ok(u)
    }

    /// Pushes `payload` (JSON) to `target` under `topic` (every copy of one notice: one
    /// topic, so a push service replaces an undelivered copy).
    pub async fn send(
        &self,
        target: &PushTarget,
        payload: &[u8],
        topic: &str,
        urgent: bool,
    ) -> Result<Pushed, SendError> {
        let url = Self::check_endpoint(&target.endpoint, self.allow_loopback)
            .map_err(|why| SendError::Permanent(format!("push endpoint {why}")))?;
        let addrs = match servicekit::ssrf::resolve(&url, self.allow_loopback).await {
            Ok(a) if a.is_empty() => return Err(SendError::Transient("the push service does not resolve".into())),
            Ok(a) => a,
            Err(why) => return Err(SendError::Permanent(why)),
        };
        let key =
            |s: &str| B64.decode(s.trim_end_matches('=')).map_err(|_| SendError::Permanent("key encoding".into()));
        let body = encrypt(&key(&target.p256dh)?, &key(&target.auth)?, payload)?;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).no_proxy();
        if servicekit::ssrf::literal_ip(&url).is_none() {
            // Connect to the address just checked, not to whatever DNS says next.
            client = client.resolve(url.host_str().unwrap_or(""), addrs[0]);
        }
        let client = client
            .timeout(Duration::from_secs(20))
            .build()
            .map_err(|e| SendError::Transient(format!("push client: {e}")))?;
        // The token's expiry is the push service's wall clock, not the domain's (a test
        // clock moves only the domain's).
        let auth = self.vapid.authorization(&url, &self.subject, Utc::now())?;
        let sent = client
            .post(url)
            .header("TTL", "86400")
            .header("Urgency", if urgent { "high" } else { "normal" })
            .header("Topic", topic)
            .header("Content-Encoding", "aes128gcm")
            .header("Content-Type", "application/octet-stream")
            .header(reqwest::header::AUTHORIZATION, auth)
            .body(body)
            .send()
            .await;
        // The push service's answer only: its URL is a capability and is never logged.
        let status = match sent {
            Ok(r) => r.status().as_u16(),
            Err(e) if e.is_timeout() => return Err(SendError::Transient("push service: timed out".into())),
            Err(_) => return Err(SendError::Transient("push service: could not connect".into())),
        };
        match status {
            200..=299 => Ok(Pushed::Sent),
            404 | 410 => Ok(Pushed::Gone),
            400 | 403 | 413 => Err(SendError::Permanent(format!("push service refused it: {status}"))),
            _ => Err(SendError::Transient(format!("push service: {status}"))),
        }
    }
}

/// The subscriptions of `person_id`: (id, sealed target as JSON), oldest first.
pub async fn subscriptions(store: &EventStore, person_id: &str) -> Result<Vec<(String, String, i64)>, Error> {
    store
        .fetch_rows(
            "SELECT subscription_id, sealed, created_at FROM notify_push_subscriptions WHERE person_id = $1 \
             ORDER BY created_at, subscription_id",
            &[Arg::Text(person_id.to_owned())],
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_keys_are_refused_before_anything_is_sent() {
        let point = [4u8; 65];
        assert!(encrypt(&point[..64], &[0; 16], b"x").is_err());
        assert!(encrypt(&point, &[0; 15], b"x").is_err());
        assert!(encrypt(&point, &[0; 16], b"x").is_err(), "not a point on the curve");
        assert!(encrypt(&point, &[0; 16], &[0; MAX_PAYLOAD + 1]).is_err());
    }

    #[test]
    fn endpoints_are_https_and_public() {
        assert!(Pusher::check_endpoint("https://fcm.googleapis.com/fcm/send/abc", false).is_ok());
        for (bad, loopback) in [
            ("http://push.example.org/x", false),
            ("http://127.0.0.1:9/x", false),
            ("https://user:pw@push.example.org/x", false),
            ("ftp://push.example.org/x", false),
            ("http://push.example.org/x", true),
        ] {
            assert!(Pusher::check_endpoint(bad, loopback).is_err(), "{bad}");
        }
        assert!(Pusher::check_endpoint("http://127.0.0.1:9/x", true).is_ok(), "tests only");
    }
}

//! Bearer tokens: HS256 JWTs, the algorithm pinned, `exp`, `iss`, `aud` and `sub`
//! required, the key chosen by `kid` so keys can rotate. The secret comes from
//! `SAMSKAB_JWT_SECRET` (or `SAMSKAB_JWT_KEYS` for several), or is generated into the
//! data directory on first start.

use std::path::Path;

use hmac::{Hmac, KeyInit, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::problem::ApiError;

/// The issuer and audience tokens must name.
pub const ISSUER: &str = "samskab";
/// The audience.
pub const AUDIENCE: &str = "samskab-api";

/// The roles of the API contract with their scope (the read rules' own type).
pub use access::Role;

/// A token's claims.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    /// Pseudonymous user id.
    pub sub: String,
    /// Role name.
    pub role: String,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// Issued at.
    #[serde(default)]
    pub iat: i64,
    /// Scope: chapter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chapter_id: Option<Uuid>,
    /// Scope: care home.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carehome_id: Option<Uuid>,
    /// Scope: pilot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pilot_id: Option<Uuid>,
    /// Scope: the whole network (an integrator's; `api.md`: an integrator token with
    /// neither `chapter_id` nor `network: true` is refused).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub network: bool,
}

impl Claims {
    /// The role with its scope, or why the claims do not make one.
    pub fn role(&self) -> Result<Role, &'static str> {
        Ok(match self.role.as_str() {
            "admin" => Role::Admin,
            "chapter_admin" => Role::ChapterAdmin(self.chapter_id.ok_or("chapter_admin needs chapter_id")?),
            "coordinator" => Role::Coordinator(self.carehome_id.ok_or("coordinator needs carehome_id")?),
            "pilot" => Role::Pilot(self.pilot_id.ok_or("pilot needs pilot_id")?),
            "integrator" => match (self.chapter_id, self.network) {
                (Some(c), false) => Role::Integrator(Some(c)),
                (None, true) => Role::Integrator(None),
                (Some(_), true) => return Err("an integrator token names a chapter or the network, not both"),
                (None, false) => return Err("integrator needs chapter_id or network: true"),
            },
            _ => return Err("unknown role"),
        })
    }

    /// Claims for `role`, valid for `ttl`.
    pub fn new(sub: &str, role: Role, ttl: chrono::Duration) -> Claims {
        let now = chrono::Utc::now().timestamp();
        let (chapter_id, carehome_id, pilot_id) = match role {
            Role::Admin => (None, None, None),
            Role::ChapterAdmin(c) => (Some(c), None, None),
            Role::Coordinator(h) => (None, Some(h), None),
            Role::Pilot(p) => (None, None, Some(p)),
            Role::Integrator(c) => (c, None, None),
        };
        Claims {
            sub: sub.to_owned(),
            role: role.name().to_owned(),
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            exp: now + ttl.num_seconds(),
            iat: now,
            chapter_id,
            carehome_id,
            pilot_id,
            network: role == Role::Integrator(None),
        }
    }
}

/// The signing keys: the first signs new tokens; all verify (rotation).
#[derive(Clone)]
pub struct Keys {
    keys: Vec<(String, Vec<u8>)>,
    /// The deployment's person key: `person_id`s are HMACs under it.
    person_key: Vec<u8>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|(k, _)| k.as_str()).collect();
        write!(f, "Keys({kids:?})")
    }
}

/// The file a generated secret is kept in.
pub const SECRET_FILE: &str = "jwt.keys";

impl Keys {
    /// Keys from `kid=secret;kid=secret` (the first signs).
    pub fn parse(spec: &str) -> Result<Keys, String> {
        let mut keys = Vec::new();
        for part in spec.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (kid, secret) = part.split_once('=').unwrap_or(("k1", part));
            if secret.len() < 32 {
                return Err(format!("the secret of key {kid} is shorter than 32 characters"));
            }
            keys.push((kid.trim().to_owned(), secret.trim().as_bytes().to_vec()));
        }
        if keys.is_empty() {
            return Err("no keys".into());
        }
        // Tests and tools that parse keys alone get a person key derived from them; a
        // running gateway loads its own (`from_env_or_data_dir`).
        let person_key = Sha256::digest([b"samskab person key\0".as_slice(), spec.as_bytes()].concat()).to_vec();
        Ok(Keys { keys, person_key })
    }

    /// From `SAMSKAB_JWT_KEYS`, else `SAMSKAB_JWT_SECRET` (kid `k1`), else the data
    /// directory's `jwt.keys`, generated (mode 0600) on first start; the person key from
    /// `SAMSKAB_PERSON_KEY` (64 hex digits), else the data directory's `person.key`.
    pub fn from_env_or_data_dir(data_dir: &Path) -> Result<Keys, String> {
        Keys::load(data_dir, true)
    }

    /// The same, generating missing keys only when `generate` (the embedded default);
    /// otherwise a missing key is an error. Every secret given is checked
    /// (`keystore::secret::check`); a variable that is set must not be empty.
    pub fn load(data_dir: &Path, generate: bool) -> Result<Keys, String> {
        let mut keys = Keys::token_keys(data_dir, generate)?;
        keys.person_key = person_key(data_dir, generate)?;
        Ok(keys)
    }

    /// [`Keys::parse`] of a spec given to this binary: each secret checked.
    fn parse_checked(what: &str, spec: &str) -> Result<Keys, String> {
        keystore::secret::check(what, spec)?;
        for part in spec.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (kid, secret) = part.split_once('=').unwrap_or(("k1", part));
            keystore::secret::check(&format!("{what} (key {})", kid.trim()), secret)?;
        }
        Keys::parse(spec)
    }

    /// The person a provider's subject is: UUIDv8 of HMAC-SHA256(person key, issuer ‖ 0x00
    /// ‖ subject): stable, pseudonymous, not computable without the deployment's key.
    pub fn person_id(&self, issuer: &str, subject: &str) -> Uuid {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.person_key).expect("HMAC takes any key");
        mac.update(issuer.as_bytes());
        mac.update(&[0]);
        mac.update(subject.as_bytes());
        let d = mac.finalize().into_bytes();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&d[..16]);
        Uuid::new_v8(bytes)
    }

    fn token_keys(data_dir: &Path, generate: bool) -> Result<Keys, String> {
        for var in ["SAMSKAB_JWT_KEYS", "SAMSKAB_JWT_SECRET"] {
            if let Ok(spec) = std::env::var(var) {
                return Keys::parse_checked(var, &spec);
            }
        }
        let path = data_dir.join(SECRET_FILE);
        if let Ok(spec) = std::fs::read_to_string(&path) {
            return Keys::parse_checked(&format!("the token keys in {}", path.display()), &spec);
        }
        if !generate {
            return Err(format!(
                "no token signing key: set SAMSKAB_JWT_KEYS or SAMSKAB_JWT_SECRET, or put one in {} \
                 (`samskab keys --out DIR` makes one); only `samskab serve` generates its own",
                path.display()
            ));
        }
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        let spec = format!("k1={}", hex::encode(secret));
        std::fs::create_dir_all(data_dir).map_err(|e| e.to_string())?;
        write_private(&path, &spec).map_err(|e| format!("{}: {e}", path.display()))?;
        Keys::parse(&spec)
    }

    /// Signs claims with the current key.
    pub fn sign(&self, claims: &Claims) -> String {
        let (kid, secret) = &self.keys[0];
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.clone());
        let key = EncodingKey::from_secret(secret).expect("an HMAC key of any length is valid");
        jsonwebtoken::encode(&header, claims, &key).expect("HS256 signing does not fail")
    }

    /// Verifies a token: HS256 only, a known `kid`, signature, `exp`, `iss`, `aud`, `sub`.
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| ApiError::unauthenticated("malformed token"))?;
        if header.alg != Algorithm::HS256 {
            return Err(ApiError::unauthenticated("unsupported algorithm"));
        }
        let kid = header.kid.as_deref().unwrap_or("k1");
        let (_, secret) =
            self.keys.iter().find(|(k, _)| k == kid).ok_or_else(|| ApiError::unauthenticated("unknown key id"))?;
        let mut v = Validation::new(Algorithm::HS256);
        v.set_issuer(&[ISSUER]);
        v.set_audience(&[AUDIENCE]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.leeway = 30;
        let key = DecodingKey::from_secret(secret).map_err(|_| ApiError::unauthenticated("unusable key"))?;
        jsonwebtoken::decode::<Claims>(token, &key, &v)
            .map(|d| d.claims)
            .map_err(|e| ApiError::unauthenticated(&format!("token refused: {}", e.kind_name())))
    }
}

/// The file a generated person key is kept in.
pub const PERSON_KEY_FILE: &str = "person.key";

fn person_key(data_dir: &Path, generate: bool) -> Result<Vec<u8>, String> {
    let parse = |what: &str, text: &str| -> Result<Vec<u8>, String> {
        keystore::secret::check(what, text)?;
        let k = hex::decode(text.trim()).map_err(|_| format!("{what} must be 64 hex digits"))?;
        if k.len() != 32 {
            return Err(format!("{what} must be 64 hex digits"));
        }
        if keystore::secret::low_entropy(&k) {
            return Err(format!("{what} is one byte repeated or a run of consecutive bytes"));
        }
        Ok(k)
    };
    if let Ok(spec) = std::env::var("SAMSKAB_PERSON_KEY") {
        return parse("SAMSKAB_PERSON_KEY", &spec);
    }
    let path = data_dir.join(PERSON_KEY_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        return parse(&format!("the person key in {}", path.display()), &text);
    }
    if !generate {
        return Err(format!(
            "no person key: set SAMSKAB_PERSON_KEY, or put one in {} (`samskab keys --out DIR` makes one); \
             every gateway replica needs the same one, and only `samskab serve` generates its own",
            path.display()
        ));
    }
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    std::fs::create_dir_all(data_dir).map_err(|e| e.to_string())?;
    write_private(&path, &hex::encode(key)).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(key.to_vec())
}

trait KindName {
    fn kind_name(&self) -> &'static str;
}

impl KindName for jsonwebtoken::errors::Error {
    fn kind_name(&self) -> &'static str {
        use jsonwebtoken::errors::ErrorKind as K;
        match self.kind() {
            K::ExpiredSignature => "expired",
            K::InvalidIssuer => "wrong issuer",
            K::InvalidAudience => "wrong audience",
            K::InvalidSignature => "bad signature",
            K::MissingRequiredClaim(_) => "a required claim is missing",
            K::InvalidAlgorithm => "unsupported algorithm",
            _ => "invalid",
        }
    }
}

/// Creates `path` (mode 0600, never over an existing file) holding `text`, synced.
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn keys() -> Keys {
        Keys::parse("k2=0123456789abcdef0123456789abcdef;k1=fedcba9876543210fedcba9876543210").unwrap()
    }

    #[test]
    fn an_integrator_token_names_its_chapter_or_the_network() {
        let chapter = Uuid::from_u128(7);
        let network = Claims::new("i", Role::Integrator(None), chrono::Duration::hours(1));
        assert!(network.network && network.chapter_id.is_none());
        assert_eq!(network.role(), Ok(Role::Integrator(None)));
        let one = Claims::new("i", Role::Integrator(Some(chapter)), chrono::Duration::hours(1));
        assert!(!one.network);
        assert_eq!(one.role(), Ok(Role::Integrator(Some(chapter))));
        // Minted without either, it used to become network-wide silently.
        let neither = Claims { network: false, ..network.clone() };
        assert!(neither.role().is_err());
        let both = Claims { chapter_id: Some(chapter), ..network };
        assert!(both.role().is_err());
        // A token without the claim reads as `network: false`.
        let json = serde_json::json!({"sub": "i", "role": "integrator", "iss": ISSUER, "aud": AUDIENCE, "exp": 1});
        assert!(!serde_json::from_value::<Claims>(json).unwrap().network);
    }

    #[test]
    fn tokens_round_trip_and_old_keys_still_verify() {
        let k = keys();
        let c = Claims::new("u-1", Role::Pilot(Uuid::nil()), chrono::Duration::hours(1));
        assert_eq!(k.verify(&k.sign(&c)).unwrap(), c);
        let old = Keys::parse("k1=fedcba9876543210fedcba9876543210").unwrap();
        assert_eq!(k.verify(&old.sign(&c)).unwrap().sub, "u-1");
        assert_eq!(c.role(), Ok(Role::Pilot(Uuid::nil())));
    }

    #[test]
    fn hostile_tokens_are_refused() {
        let k = keys();
        let mut c = Claims::new("u-1", Role::Admin, chrono::Duration::hours(1));
        c.exp = chrono::Utc::now().timestamp() - 3600;
        assert!(k.verify(&k.sign(&c)).is_err(), "expired");
        let mut c = Claims::new("u-1", Role::Admin, chrono::Duration::hours(1));
        c.aud = "someone-else".into();
        assert!(k.verify(&k.sign(&c)).is_err(), "wrong audience");
        let other = Keys::parse("k2=ffffffffffffffffffffffffffffffff").unwrap();
        assert!(
            k.verify(&other.sign(&Claims::new("u", Role::Admin, chrono::Duration::hours(1)))).is_err(),
            "wrong key"
        );
        // alg: none
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let claims = serde_json::to_vec(&Claims::new("u", Role::Admin, chrono::Duration::hours(1))).unwrap();
        let none = format!("{}.{}.", b64.encode(br#"{"alg":"none","typ":"JWT"}"#), b64.encode(claims));
        assert!(k.verify(&none).is_err(), "alg none");
        assert!(k.verify("not.a.token").is_err());
    }
}

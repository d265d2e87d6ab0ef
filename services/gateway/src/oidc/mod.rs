//! OpenID Connect sign-in: the gateway trusts the issuers an operator configured
//! (`SAMSKAB_OIDC_ISSUERS`) and verifies their tokens against their published keys.
//!
//! - **What is accepted.** Per issuer, either JWT access tokens (RFC 9068: `typ` `at+jwt`
//!   or `JWT`) whose `aud` holds the configured audience, or, with `|id_token`, ID tokens
//!   whose `aud` is the configured client id (for providers whose access tokens are
//!   opaque, such as Google). Only RS256, ES256 and EdDSA; `HS*` (a provider's public key
//!   used as an HMAC secret) and `alg: none` are refused before any key is looked at.
//! - **Claims.** `iss`, `aud`, `exp`, `nbf`, `iat` checked with [`LEEWAY_SECS`];
//!   `exp − iat` at most the configured maximum. Only `iss`, `sub`, `aud`, `exp`, `nbf`,
//!   `iat` are read; e-mail, name and every other claim are never decoded.
//! - **Keys.** Discovery (`/.well-known/openid-configuration`) once, then the JWKS,
//!   cached; a token with an unknown `kid` makes the gateway fetch the JWKS again, at
//!   most once per [`REFETCH_COOLDOWN`] per issuer, so a flood of bogus `kid`s reaches the
//!   provider at most once per cooldown. The cache is refreshed after [`MAX_KEY_AGE`].
//! - **Where.** Issuers are https, except on loopback addresses (a provider on the same
//!   machine, tests). The operator configured them, so discovery and JWKS fetches are not
//!   subject to the webhook SSRF guard.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::problem::ApiError;

/// Seconds of clock skew allowed on `exp`, `nbf` and `iat`.
pub const LEEWAY_SECS: u64 = 60;
/// The least time between two JWKS fetches of one issuer caused by unknown `kid`s.
pub const REFETCH_COOLDOWN: Duration = Duration::from_secs(5);
/// How long fetched keys are used before they are fetched again.
pub const MAX_KEY_AGE: Duration = Duration::from_secs(3600);
/// How long a discovery or JWKS fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest discovery document or JWKS read.
const MAX_DOCUMENT: usize = 256 * 1024;

/// OpenID Connect settings of the gateway.
#[derive(Debug, Clone, clap::Args)]
pub struct OidcConfig {
    /// Trusted OpenID Connect issuers: `<issuer URL>|<audience>[|id_token]`, comma
    /// separated. With `|id_token` the issuer's ID tokens are accepted (audience = the
    /// client id), otherwise its JWT access tokens (audience = the API's identifier).
    /// When any is set, Samskab's own tokens are off unless `--auth-local-tokens on`.
    #[arg(long = "oidc-issuers", env = "SAMSKAB_OIDC_ISSUERS", default_value = "")]
    pub issuers: String,
    /// The longest lifetime (`exp − iat`, seconds) of a provider's token that is accepted.
    #[arg(long = "oidc-max-token-secs", env = "SAMSKAB_OIDC_MAX_TOKEN_SECS", default_value_t = 86_400)]
    pub max_token_secs: u64,
}

impl Default for OidcConfig {
    fn default() -> Self {
        OidcConfig { issuers: String::new(), max_token_secs: 86_400 }
    }
}

/// One trusted issuer as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct IssuerConfig {
    /// The issuer URL, exactly as its tokens' `iss`.
    pub issuer: String,
    /// The audience its tokens must name.
    pub audience: String,
    /// Whether ID tokens (not access tokens) are accepted.
    pub id_token: bool,
}

/// Parses `SAMSKAB_OIDC_ISSUERS`.
pub fn parse_issuers(spec: &str) -> Result<Vec<IssuerConfig>, String> {
    let mut out: Vec<IssuerConfig> = Vec::new();
    for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let parts: Vec<&str> = entry.split('|').map(str::trim).collect();
        let (issuer, audience, id_token) = match parts[..] {
            [i, a] => (i, a, false),
            [i, a, "id_token"] => (i, a, true),
            _ => return Err(format!("`{entry}`: expected <issuer URL>|<audience>[|id_token]")),
        };
        if audience.is_empty() {
            return Err(format!("`{entry}`: the audience is empty"));
        }
        check_url(issuer)?;
        if out.iter().any(|o| o.issuer == issuer) {
            return Err(format!("`{issuer}` is configured twice"));
        }
        out.push(IssuerConfig { issuer: issuer.to_owned(), audience: audience.to_owned(), id_token });
    }
    Ok(out)
}

/// An issuer or JWKS URL must be https, or http on a loopback address.
fn check_url(url: &str) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    let host = parsed.host_str().ok_or_else(|| format!("`{url}` has no host"))?;
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if loopback => Ok(parsed),
        _ => Err(format!("`{url}` must be https (http only on a loopback address)")),
    }
}

/// Who a verified token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The issuer.
    pub issuer: String,
    /// The provider's subject id.
    pub subject: String,
}

/// The only claims read from a provider's token.
#[derive(Deserialize)]
struct Claims {
    sub: String,
    iat: i64,
    exp: i64,
}

/// Just the issuer, read before verification to choose the issuer's keys.
#[derive(Deserialize)]
struct IssuerOnly {
    iss: Option<String>,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

#[derive(Deserialize)]
struct RawKeySet {
    keys: Vec<serde_json::Value>,
}

#[derive(Default)]
struct KeyCache {
    jwks_uri: Option<reqwest::Url>,
    keys: HashMap<String, Jwk>,
    fetched: Option<Instant>,
    /// When a fetch caused by an unknown `kid` last ran.
    refetched: Option<Instant>,
}

struct Issuer {
    config: IssuerConfig,
    cache: Mutex<KeyCache>,
}

/// Verifies tokens of the configured issuers.
pub struct Verifier {
    issuers: Vec<Issuer>,
    http: reqwest::Client,
    max_token_secs: u64,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let issuers: Vec<&str> = self.issuers.iter().map(|i| i.config.issuer.as_str()).collect();
        write!(f, "Verifier({issuers:?})")
    }
}

fn refused(why: &str) -> ApiError {
    ApiError::unauthenticated(why)
}

impl Verifier {
    /// A verifier from the configuration (an error names what is wrong in it).
    pub fn new(config: &OidcConfig) -> Result<Verifier, String> {
        let issuers = parse_issuers(&config.issuers)?;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Verifier {
            issuers: issuers.into_iter().map(|config| Issuer { config, cache: Mutex::default() }).collect(),
            http,
            max_token_secs: config.max_token_secs,
        })
    }

    /// Whether any issuer is configured.
    pub fn is_configured(&self) -> bool {
        !self.issuers.is_empty()
    }

    /// Whether the (unverified) token names one of the configured issuers.
    pub fn claims_issuer(&self, token: &str) -> bool {
        self.issuer_of(token).is_some()
    }

    fn issuer_of(&self, token: &str) -> Option<&Issuer> {
        let iss = jsonwebtoken::dangerous::insecure_decode::<IssuerOnly>(token).ok()?.claims.iss?;
        self.issuers.iter().find(|i| i.config.issuer == iss)
    }

    /// Verifies a provider's token (401 with the reason otherwise).
    pub async fn verify(&self, token: &str) -> Result<Identity, ApiError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| refused("malformed token"))?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256 | Algorithm::EdDSA) {
            return Err(refused("unsupported algorithm (RS256, ES256 or EdDSA)"));
        }
        let issuer = self.issuer_of(token).ok_or_else(|| refused("the token's issuer is not trusted here"))?;
        let typ = header.typ.as_deref().map(str::to_ascii_lowercase);
        let typ_ok = matches!(
            (issuer.config.id_token, typ.as_deref()),
            (true, None | Some("jwt")) | (false, Some("at+jwt" | "application/at+jwt" | "jwt"))
        );
        if !typ_ok {
            return Err(refused(if issuer.config.id_token {
                "an ID token is expected from this issuer"
            } else {
                "a JWT access token (typ at+jwt) is expected from this issuer"
            }));
        }
        let kid = header.kid.as_deref().ok_or_else(|| refused("the token names no key (kid)"))?;
        let jwk = self.key(issuer, kid).await?;
        if jwk.common.key_algorithm.is_some_and(|a| a.to_string() != format!("{:?}", header.alg)) {
            return Err(refused("the key is not for this algorithm"));
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| refused("the provider's key is unusable"))?;
        let mut v = Validation::new(header.alg);
        v.algorithms = vec![header.alg];
        v.leeway = LEEWAY_SECS;
        v.validate_nbf = true;
        v.set_issuer(&[&issuer.config.issuer]);
        v.set_audience(&[&issuer.config.audience]);
        v.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &v).map_err(|e| refused(reason(&e)))?.claims;
        let now = chrono::Utc::now().timestamp();
        if claims.iat > now + LEEWAY_SECS as i64 {
            return Err(refused("token refused: issued in the future"));
        }
        if claims.exp - claims.iat > self.max_token_secs as i64 {
            return Err(refused("token refused: its lifetime is longer than this gateway accepts"));
        }
        if claims.sub.is_empty() {
            return Err(refused("token refused: empty subject"));
        }
        Ok(Identity { issuer: issuer.config.issuer.clone(), subject: claims.sub })
    }

    /// The issuer's key `kid`: from the cache, or fetched again (rate-limited).
    async fn key(&self, issuer: &Issuer, kid: &str) -> Result<Jwk, ApiError> {
        let mut cache = issuer.cache.lock().await;
        let stale = cache.fetched.is_none_or(|at| at.elapsed() > MAX_KEY_AGE);
        if !stale && let Some(k) = cache.keys.get(kid) {
            return Ok(k.clone());
        }
        let cooling = cache.refetched.is_some_and(|at| at.elapsed() < REFETCH_COOLDOWN);
        if !stale && cooling {
            return Err(refused("unknown key id"));
        }
        if !stale {
            cache.refetched = Some(Instant::now());
        }
        self.fetch(issuer, &mut cache).await.map_err(|why| {
            tracing::warn!(issuer = %issuer.config.issuer, %why, "could not fetch the provider's keys");
            ApiError::new(servicekit::ErrorCode::Unavailable)
                .detail("the identity provider's keys could not be fetched")
        })?;
        cache.keys.get(kid).cloned().ok_or_else(|| refused("unknown key id"))
    }

    async fn fetch(&self, issuer: &Issuer, cache: &mut KeyCache) -> Result<(), String> {
        if cache.jwks_uri.is_none() {
            let base = issuer.config.issuer.trim_end_matches('/');
            let doc: Discovery = self.get_json(&format!("{base}/.well-known/openid-configuration")).await?;
            if doc.issuer != issuer.config.issuer {
                return Err(format!("the discovery document names the issuer `{}`", doc.issuer));
            }
            cache.jwks_uri = Some(check_url(&doc.jwks_uri)?);
        }
        let uri = cache.jwks_uri.clone().expect("set above");
        // Key by key: one key of a kind this gateway cannot use (an encryption key, a new
        // curve) must not hide the others.
        let set: RawKeySet = self.get_json(uri.as_str()).await?;
        cache.keys = set
            .keys
            .into_iter()
            .filter_map(|k| serde_json::from_value::<Jwk>(k).ok())
            .filter_map(|k| Some((k.common.key_id.clone()?, k)))
            .collect();
        cache.fetched = Some(Instant::now());
        Ok(())
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        let r = self.http.get(url).send().await.map_err(|e| format!("{url}: {e}"))?;
        if !r.status().is_success() {
            return Err(format!("{url} answered {}", r.status()));
        }
        let body = r.bytes().await.map_err(|e| format!("{url}: {e}"))?;
        if body.len() > MAX_DOCUMENT {
            return Err(format!("{url}: the document is too large"));
        }
        serde_json::from_slice(&body).map_err(|e| format!("{url}: {e}"))
    }
}

fn reason(e: &jsonwebtoken::errors::Error) -> &'static str {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::ExpiredSignature => "token refused: expired",
        K::ImmatureSignature => "token refused: not yet valid",
        K::InvalidIssuer => "token refused: wrong issuer",
        K::InvalidAudience => "token refused: wrong audience",
        K::InvalidSignature => "token refused: bad signature",
        K::MissingRequiredClaim(_) => "token refused: a required claim is missing",
        K::InvalidAlgorithm => "token refused: the key is not for this algorithm",
        _ => "token refused: invalid",
    }
}

#[cfg(test)]
mod tests;

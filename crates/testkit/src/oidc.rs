//! A real OpenID Provider for end-to-end tests of OIDC sign-in: panva's `oidc-provider` on
//! Node.js (`tests/oidc-provider/server.mjs`, which documents the clients, resources and
//! test-only endpoints), one process per [`OidcProvider`], on a free loopback port.
//!
//! [`OidcProvider::start`] installs the provider's npm packages first when they are missing
//! (`npm ci`, once: a lock directory keeps parallel test processes from installing at the
//! same time; `scripts/test` installs them up front). The process ends when the
//! [`OidcProvider`] is dropped, and by itself when the test process dies (its stdin closes).
//!
//! Tokens are real: JWT access tokens (`typ` `at+jwt`, RS256 unless asked otherwise) whose
//! `aud` is the requested resource, signed by keys the provider made at start and
//! publishes at `<issuer>/jwks`. A resource may carry options after `;`:
//! `samskab-api;ttl=172800` is a token for `samskab-api` valid for two days,
//! `samskab-api;alg=ES256` one signed ES256.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The confidential client of the client-credentials grant.
pub const CC_CLIENT_ID: &str = "samskab-cc";
/// Its secret.
pub const CC_CLIENT_SECRET: &str = "samskab-cc-secret";
/// The public client (PKCE) of the authorization-code flow; the `aud` of its ID tokens.
pub const WEB_CLIENT_ID: &str = "samskab-web";
/// The redirect URI of [`WEB_CLIENT_ID`] (any loopback port matches it).
pub const WEB_REDIRECT_URI: &str = "http://127.0.0.1/callback";
/// The API's resource indicator, and so the `aud` of its access tokens.
pub const API_RESOURCE: &str = "samskab-api";
/// A resource whose tokens live two days (and whose `aud` is this name, not
/// [`API_RESOURCE`]; for a long-lived token of the API itself ask for
/// `samskab-api;ttl=172800`).
pub const LONG_RESOURCE: &str = "samskab-api-long";

/// How long `npm ci` of another process may hold the install lock before it is thought dead.
const STALE_LOCK: Duration = Duration::from_secs(600);

/// A running provider. Dropping it stops the process.
pub struct OidcProvider {
    /// `http://127.0.0.1:<port>`: the `iss` of its tokens, the base of its endpoints.
    pub issuer: String,
    http: reqwest::Client,
    _stdin: tokio::process::ChildStdin,
    _child: tokio::process::Child,
}

/// What a sign-in (authorization-code flow) gave the client.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// A JWT access token for the requested resource, `sub` = the subject.
    pub access_token: String,
    /// The ID token, `aud` = [`WEB_CLIENT_ID`].
    pub id_token: String,
}

/// The provider's directory (`tests/oidc-provider` of the workspace).
pub fn provider_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/oidc-provider")
}

impl OidcProvider {
    /// Starts a provider on a free port, installing its npm packages first if needed.
    /// Panics when Node.js or the packages cannot be had, or it does not start.
    pub async fn start() -> OidcProvider {
        let (child, stdin, line) = crate::node::start("OIDC test provider", &provider_dir(), &[]).await;
        let ready: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("OIDC test provider: ready line `{line}` is not JSON: {e}"));
        let issuer = ready["issuer"].as_str().unwrap_or_else(|| panic!("no issuer in `{line}`")).to_owned();
        // Where reqwest is linked with rustls and no default provider (the workspace's
        // build), one must be installed before a client is built.
        let _ = rustls::crypto::ring::default_provider().install_default();
        // Node closes an idle keep-alive connection after 5 s: a client that reused one just
        // then got "error sending request". Idle connections are dropped well before.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(30))
            .build()
            .expect("http client");
        OidcProvider { issuer, http, _stdin: stdin, _child: child }
    }

    /// The token endpoint.
    pub fn token_endpoint(&self) -> String {
        format!("{}/token", self.issuer)
    }

    /// The JWKS URI.
    pub fn jwks_uri(&self) -> String {
        format!("{}/jwks", self.issuer)
    }

    /// A client-credentials access token of [`CC_CLIENT_ID`] (`sub` = the client id) for
    /// the resource `audience` (options after `;` allowed, see the module doc).
    pub async fn client_credentials_token(&self, audience: &str) -> String {
        let body = form(&[("grant_type", "client_credentials"), ("resource", audience), ("scope", "api")]);
        let tokens = self
            .token_request(self.http.post(self.token_endpoint()).basic_auth(CC_CLIENT_ID, Some(CC_CLIENT_SECRET)), body)
            .await;
        string_field(&tokens, "access_token")
    }

    /// Signs `subject` in with the authorization-code flow and PKCE (S256) as
    /// [`WEB_CLIENT_ID`] for [`API_RESOURCE`], scope `openid api`.
    pub async fn sign_in(&self, subject: &str) -> SignedIn {
        self.sign_in_for(subject, API_RESOURCE).await
    }

    /// [`sign_in`](Self::sign_in) for another resource (options after `;` allowed).
    ///
    /// No browser and no cookies: the authorization request names the subject in
    /// `login_hint`, and the provider's interaction logs it in and consents by itself; the
    /// redirects are followed here until the one to [`WEB_REDIRECT_URI`].
    pub async fn sign_in_for(&self, subject: &str, resource: &str) -> SignedIn {
        let verifier = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let state = uuid::Uuid::new_v4().simple().to_string();
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let query = form(&[
            ("client_id", WEB_CLIENT_ID),
            ("response_type", "code"),
            ("redirect_uri", WEB_REDIRECT_URI),
            ("scope", "openid api"),
            ("resource", resource),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("state", &state),
            ("nonce", &nonce),
            ("login_hint", subject),
        ]);
        let mut url = format!("{}/auth?{query}", self.issuer);
        let callback = 'follow: {
            for _ in 0..10 {
                // A GET is safe to send again when the connection failed under it.
                let resp = match self.http.get(&url).send().await {
                    Err(e) if e.is_request() || e.is_connect() => self.http.get(&url).send().await,
                    other => other,
                }
                .unwrap_or_else(|e| panic!("GET {url}: {e}"));
                let status = resp.status();
                let location = resp.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok());
                let Some(location) = location.filter(|_| status.is_redirection()) else {
                    let body = resp.text().await.unwrap_or_default();
                    panic!("sign-in of {subject}: GET {url} answered {status}, not a redirect: {body}");
                };
                let next =
                    if location.starts_with('/') { format!("{}{location}", self.issuer) } else { location.to_owned() };
                if next.starts_with(&format!("{WEB_REDIRECT_URI}?")) {
                    break 'follow next;
                }
                url = next;
            }
            panic!("sign-in of {subject}: more than 10 redirects, last to {url}");
        };
        let params = query_params(&callback);
        let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        if let Some(error) = param("error") {
            panic!("sign-in of {subject}: {error}: {}", param("error_description").unwrap_or(""));
        }
        assert_eq!(param("state"), Some(state.as_str()), "state of the callback {callback}");
        assert_eq!(param("iss"), Some(self.issuer.as_str()), "iss of the callback {callback}");
        let code = param("code").unwrap_or_else(|| panic!("no code in the callback {callback}"));
        let body = form(&[
            ("grant_type", "authorization_code"),
            ("client_id", WEB_CLIENT_ID),
            ("code", code),
            ("redirect_uri", WEB_REDIRECT_URI),
            ("code_verifier", &verifier),
            ("resource", resource),
        ]);
        let tokens = self.token_request(self.http.post(self.token_endpoint()), body).await;
        SignedIn { access_token: string_field(&tokens, "access_token"), id_token: string_field(&tokens, "id_token") }
    }

    /// Replaces the signing key by a new one (new `kid`), which signs every token from now
    /// on; the key it replaces stays in the JWKS (the one before that goes). Returns the
    /// new `kid`.
    pub async fn rotate_keys(&self) -> String {
        self.rotate("").await
    }

    /// [`rotate_keys`](Self::rotate_keys), dropping every earlier RSA key from the JWKS
    /// (tokens they signed can no longer be verified).
    pub async fn rotate_keys_dropping_old(&self) -> String {
        self.rotate("?keep_old=false").await
    }

    async fn rotate(&self, query: &str) -> String {
        let v = self.admin(self.http.post(format!("{}/__rotate{query}", self.issuer))).await;
        string_field(&v, "kid")
    }

    /// Requests so far to the JWKS (including [`jwks`](Self::jwks)'s own).
    pub async fn jwks_requests(&self) -> u64 {
        self.stats("jwks_requests").await
    }

    /// Requests so far to `/.well-known/openid-configuration`.
    pub async fn discovery_requests(&self) -> u64 {
        self.stats("discovery_requests").await
    }

    async fn stats(&self, name: &str) -> u64 {
        let v = self.admin(self.http.get(format!("{}/__stats", self.issuer))).await;
        v[name].as_u64().unwrap_or_else(|| panic!("no {name} in {v}"))
    }

    /// The published JWKS (counts as a JWKS request).
    pub async fn jwks(&self) -> Value {
        self.admin(self.http.get(self.jwks_uri())).await
    }

    /// The `kid`s the JWKS lists (counts as a JWKS request).
    pub async fn jwks_kids(&self) -> Vec<String> {
        let jwks = self.jwks().await;
        jwks["keys"].as_array().into_iter().flatten().filter_map(|k| k["kid"].as_str().map(str::to_owned)).collect()
    }

    async fn admin(&self, req: reqwest::RequestBuilder) -> Value {
        let resp = req.send().await.unwrap_or_else(|e| panic!("OIDC test provider: {e}"));
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        assert!(status.is_success(), "OIDC test provider answered {status}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("OIDC test provider: `{text}`: {e}"))
    }

    async fn token_request(&self, req: reqwest::RequestBuilder, body: String) -> Value {
        let resp = req
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("token request: {e}"));
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        assert!(status.is_success(), "token endpoint answered {status}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("token response `{text}`: {e}"))
    }
}

/// A JWT's header and payload, decoded without any verification.
pub fn jwt_parts(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut part = |what: &str| -> Value {
        let b64 = parts.next().unwrap_or_else(|| panic!("no {what} in the JWT `{token}`"));
        let bytes = URL_SAFE_NO_PAD.decode(b64).unwrap_or_else(|e| panic!("JWT {what} is not base64url: {e}"));
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("JWT {what} is not JSON: {e}"))
    };
    let header = part("header");
    let payload = part("payload");
    (header, payload)
}

fn string_field(v: &Value, name: &str) -> String {
    v[name].as_str().unwrap_or_else(|| panic!("no {name} in {v}")).to_owned()
}

/// `application/x-www-form-urlencoded` (also a query string).
fn form(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v))).collect::<Vec<_>>().join("&")
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The decoded query parameters of a URL.
fn query_params(url: &str) -> Vec<(String, String)> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let query = query.split_once('#').map_or(query, |(q, _)| q);
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `npm ci` finished in `dir` (npm writes this file last) after the last change
/// of `package-lock.json`.
fn installed(dir: &Path) -> bool {
    let modified = |path: &str| std::fs::metadata(dir.join(path)).and_then(|m| m.modified());
    match (modified("node_modules/.package-lock.json"), modified("package-lock.json")) {
        (Ok(installed), Ok(locked)) => installed > locked,
        (Ok(_), Err(_)) => true,
        (Err(_), _) => false,
    }
}

/// Runs `npm ci` in `dir` unless its packages are installed, at most one install at a time
/// across threads and processes (test runners such as nextest run each test in a process
/// of its own): whoever creates the lock directory installs, the others wait for it.
pub(crate) fn ensure_installed(dir: &Path) -> Result<(), String> {
    static IN_PROCESS: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _in_process = IN_PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    let lock = dir.join(".install.lock");
    let started = Instant::now();
    loop {
        if installed(dir) {
            return Ok(());
        }
        match std::fs::create_dir(&lock) {
            Ok(()) => {
                struct Unlock<'a>(&'a Path);
                impl Drop for Unlock<'_> {
                    fn drop(&mut self) {
                        let _ = std::fs::remove_dir(self.0);
                    }
                }
                let _unlock = Unlock(&lock);
                if installed(dir) {
                    return Ok(());
                }
                eprintln!("test server: npm ci in {}", dir.display());
                let out = std::process::Command::new("npm")
                    .args(["ci", "--no-audit", "--no-fund"])
                    .current_dir(dir)
                    .stdin(Stdio::null())
                    .output()
                    .map_err(|e| format!("cannot run `npm` (Node.js 20 or later with npm is needed): {e}"))?;
                if !out.status.success() || !installed(dir) {
                    return Err(format!(
                        "`npm ci` in {} failed ({}):\n{}{}",
                        dir.display(),
                        out.status,
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    ));
                }
                return Ok(());
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let age = std::fs::metadata(&lock)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| SystemTime::now().duration_since(t).ok())
                    .unwrap_or_default();
                if age > STALE_LOCK {
                    // Its holder died mid-install; the next round takes the lock.
                    let _ = std::fs::remove_dir(&lock);
                } else if started.elapsed() > STALE_LOCK + Duration::from_secs(60) {
                    return Err(format!("waited too long for {} (another npm ci)", lock.display()));
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(format!("cannot create {}: {e}", lock.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_and_query_round_trip() {
        let f = form(&[("scope", "openid api"), ("resource", "samskab-api;ttl=1"), ("r", "http://127.0.0.1/cb")]);
        assert_eq!(f, "scope=openid%20api&resource=samskab-api%3Bttl%3D1&r=http%3A%2F%2F127.0.0.1%2Fcb");
        let q = query_params(&format!("http://x/cb?{f}&plus=a+b&bad=%zz&end=%4"));
        assert_eq!(q[0], ("scope".into(), "openid api".into()));
        assert_eq!(q[1], ("resource".into(), "samskab-api;ttl=1".into()));
        assert_eq!(q[2], ("r".into(), "http://127.0.0.1/cb".into()));
        assert_eq!(q[3], ("plus".into(), "a b".into()));
        assert_eq!(q[4], ("bad".into(), "%zz".into()));
        assert_eq!(q[5], ("end".into(), "%4".into()));
    }
}

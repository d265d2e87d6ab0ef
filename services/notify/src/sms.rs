//! SMS through an HTTP provider. Samskab speaks one documented request shape
//! (`SAMSKAB_SMS_FORMAT=samskab`, the default) and, as a worked mapping of a common
//! provider's JSON API, GatewayAPI's (`gatewayapi`); docs/notifications.md shows both and
//! how to put a small relay in front of any other provider.
//!
//! `samskab`: `POST <SAMSKAB_SMS_URL>` with `Authorization: Bearer <token>`,
//! `Idempotency-Key: <notice id>` and `{"to": "+4512345678", "text": "...", "reference":
//! "<notice id>"}`. A 2xx is sent; 400, 404 and 422 are a refusal for good (an invalid or
//! unreachable number: recorded `rejected`, not retried); 401 and 403 (a wrong token),
//! 408, 429 and 5xx, and no answer, are retried.
//!
//! `gatewayapi`: `POST https://gatewayapi.com/rest/mtsms` (or the EU endpoint) with
//! `Authorization: Token <token>` and `{"sender": "<SAMSKAB_SMS_SENDER>", "message": "...",
//! "recipients": [{"msisdn": 4512345678}], "userref": "<notice id>"}`; its answers are read
//! as above.
//!
//! Every copy of one notice carries one key (the notice's id), so a provider that honours
//! it, or a relay, sends it once. The token is read from a file, never from the
//! environment or the command line; it and the number are never logged.

use std::path::PathBuf;
use std::time::Duration;

use uuid::Uuid;

use crate::mail::SendError;

/// How SMS are sent.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SmsConfig {
    /// The provider's HTTP endpoint (https, or http on loopback). Unset: SMS notices are
    /// recorded once as `not-configured`.
    #[arg(id = "sms_url", long = "sms-url", env = "SAMSKAB_SMS_URL")]
    pub url: Option<String>,
    /// A file holding the provider's API token.
    #[arg(id = "sms_token_file", long = "sms-token-file", env = "SAMSKAB_SMS_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// The request shape: `samskab` (documented in docs/notifications.md) or `gatewayapi`.
    #[arg(id = "sms_format", long = "sms-format", env = "SAMSKAB_SMS_FORMAT", default_value = "samskab")]
    pub format: String,
    /// The sender name or number shown on the phone (`gatewayapi`; at most 11 letters).
    #[arg(id = "sms_sender", long = "sms-sender", env = "SAMSKAB_SMS_SENDER", default_value = "Samskab")]
    pub sender: String,
}

/// A request shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Samskab's own (docs/notifications.md).
    Samskab,
    /// GatewayAPI's `/rest/mtsms`.
    GatewayApi,
}

/// One text message.
#[derive(Debug, Clone)]
pub struct Sms {
    /// The number, E.164 (unsealed just before sending, never stored in clear).
    pub to: String,
    /// The text.
    pub text: String,
    /// The notice it carries (the key of every copy).
    pub notice_id: Uuid,
}

/// A configured provider.
#[derive(Clone)]
pub struct SmsSender {
    client: reqwest::Client,
    url: reqwest::Url,
    token: String,
    format: Format,
    sender: String,
}

impl std::fmt::Debug for SmsSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsSender").field("url", &self.url.as_str()).field("format", &self.format).finish()
    }
}

impl SmsSender {
    /// The provider of `cfg`, or `None` when no URL is configured.
    pub fn from_config(cfg: &SmsConfig) -> Result<Option<Self>, SendError> {
        let Some(url) = cfg.url.as_deref().filter(|u| !u.is_empty()) else { return Ok(None) };
        let bad = |why: String| SendError::Config(format!("SAMSKAB_SMS_URL: {why}"));
        let url = reqwest::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
        if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
            return Err(bad("must be https (http only on loopback)".into()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("no credentials in the URL: put the token in SAMSKAB_SMS_TOKEN_FILE".into()));
        }
        let format = match cfg.format.as_str() {
            "samskab" | "" => Format::Samskab,
            "gatewayapi" => Format::GatewayApi,
            other => return Err(SendError::Config(format!("SAMSKAB_SMS_FORMAT {other:?}: `samskab` or `gatewayapi`"))),
        };
        let Some(file) = &cfg.token_file else {
            return Err(SendError::Config("SAMSKAB_SMS_URL is set but SAMSKAB_SMS_TOKEN_FILE is not".into()));
        };
        let token = std::fs::read_to_string(file)
            .map_err(|e| SendError::Config(format!("SAMSKAB_SMS_TOKEN_FILE {}: {e}", file.display())))?
            .trim()
            .to_owned();
        if token.is_empty() {
            return Err(SendError::Config(format!("SAMSKAB_SMS_TOKEN_FILE {} is empty", file.display())));
        }
        // reqwest's TLS with the process's one provider (ring, as everywhere here).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| SendError::Config(format!("SMS client: {e}")))?;
        tracing::info!(url = %url, format = ?format, "SMS notices go through this provider");
        Ok(Some(SmsSender { client, url, token, format, sender: cfg.sender.clone() }))
    }

    /// The request's body.
    pub fn body(&self, sms: &Sms) -> serde_json::Value {
        match self.format {
            Format::Samskab => serde_json::json!({
                "to": sms.to,
                "text": sms.text,
                "reference": sms.notice_id.to_string(),
            }),
            Format::GatewayApi => {
                let msisdn: u64 = sms.to.trim_start_matches('+').parse().unwrap_or(0);
                serde_json::json!({
                    "sender": self.sender,
                    "message": sms.text,
                    "recipients": [{"msisdn": msisdn}],
                    "userref": sms.notice_id.to_string(),
                })
            }
        }
    }

    /// Sends `sms`.
    pub async fn send(&self, sms: &Sms) -> Result<(), SendError> {
        let auth = match self.format {
            Format::Samskab => format!("Bearer {}", self.token),
            Format::GatewayApi => format!("Token {}", self.token),
        };
        let sent = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::AUTHORIZATION, auth)
            .header("Idempotency-Key", sms.notice_id.to_string())
            .json(&self.body(sms))
            .send()
            .await;
        let status = match sent {
            Ok(r) => r.status(),
            // reqwest's error names the URL, never the body: safe to keep.
            Err(e) => return Err(SendError::Transient(format!("SMS provider: {}", e.without_url()))),
        };
        match status.as_u16() {
            200..=299 => Ok(()),
            400 | 404 | 422 => Err(SendError::Permanent(format!("SMS provider refused it: {status}"))),
            _ => Err(SendError::Transient(format!("SMS provider: {status}"))),
        }
    }
}

/// A text's length limit: one concatenated message of three parts (GSM-7: 153 characters
/// a part); a longer text is cut at a word and ends in `…`.
pub const MAX_CHARS: usize = 459;

/// The text of a notice for SMS: the title and the body on one line, cut to [`MAX_CHARS`].
pub fn text_of(title: &str, body: &str) -> String {
    let text = format!("{title}: {body}");
    if text.chars().count() <= MAX_CHARS {
        return text;
    }
    let cut: String = text.chars().take(MAX_CHARS - 1).collect();
    let at = cut.rfind(' ').unwrap_or(cut.len());
    format!("{}…", cut[..at].trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: &str, token: Option<&std::path::Path>) -> SmsConfig {
        SmsConfig {
            url: Some(url.into()),
            token_file: token.map(Into::into),
            format: "samskab".into(),
            sender: "Samskab".into(),
        }
    }

    #[test]
    fn a_provider_is_https_with_a_token_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "s3cret\n").unwrap();
        assert!(SmsSender::from_config(&cfg("https://sms.example.org/send", Some(&token))).unwrap().is_some());
        assert!(SmsSender::from_config(&cfg("http://127.0.0.1:9/send", Some(&token))).unwrap().is_some());
        for refused in ["http://sms.example.org/send", "https://user:pw@sms.example.org/send", "nonsense"] {
            assert!(SmsSender::from_config(&cfg(refused, Some(&token))).is_err(), "{refused}");
        }
        assert!(SmsSender::from_config(&cfg("https://sms.example.org/send", None)).is_err(), "no token");
        let mut other = cfg("https://sms.example.org/send", Some(&token));
        other.format = "twilio".into();
        assert!(SmsSender::from_config(&other).is_err());
        assert!(SmsSender::from_config(&SmsConfig::default()).unwrap().is_none());
    }

    #[test]
    fn gatewayapi_gets_its_own_shape() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "s3cret").unwrap();
        let mut c = cfg("https://gatewayapi.com/rest/mtsms", Some(&token));
        c.format = "gatewayapi".into();
        let s = SmsSender::from_config(&c).unwrap().unwrap();
        let sms = Sms { to: "+4512345678".into(), text: "Hej".into(), notice_id: Uuid::nil() };
        assert_eq!(
            s.body(&sms),
            serde_json::json!({"sender": "Samskab", "message": "Hej", "recipients": [{"msisdn": 4512345678u64}],
                "userref": Uuid::nil().to_string()})
        );
    }

    #[test]
    fn a_long_text_is_cut_at_a_word() {
        let body = "ord ".repeat(200);
        let t = text_of("Turen er aflyst", &body);
        assert!(t.chars().count() <= MAX_CHARS);
        assert!(t.ends_with("ord…"), "{t}");
        assert_eq!(text_of("A", "b"), "A: b");
    }
}

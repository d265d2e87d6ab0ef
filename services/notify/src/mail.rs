//! E-mail over SMTP (`lettre`): the relay's URL (never its password, which comes from a
//! file), the message of a notice (multipart text and HTML, its `Message-ID` from the
//! notice's id so every copy of one notice is recognisable, `List-Unsubscribe` and
//! `List-Unsubscribe-Post` for one-click unsubscribing, RFC 8058) and sending it.
//!
//! URLs, as lettre reads them:
//! - `smtp://host:port`: plain SMTP, for a relay on loopback or a private network;
//! - `smtp://host:port?tls=required`: STARTTLS, refusing a relay that does not offer it;
//! - `smtps://host:port`: TLS from the first byte (port 465).
//!
//! A user name may be in the URL; the password is read from `SAMSKAB_SMTP_PASSWORD_FILE`.
//! The URL is logged with any password masked.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use lettre::message::header::{self, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use uuid::Uuid;

/// How e-mail is sent.
#[derive(Debug, Clone, clap::Args)]
pub struct MailConfig {
    /// The SMTP relay: `smtp://host:port` (plain: loopback or a private network only),
    /// `smtp://host:port?tls=required` (STARTTLS) or `smtps://host:port`; a user name may
    /// be in the URL, the password never (SAMSKAB_SMTP_PASSWORD_FILE). Unset: e-mail
    /// notices are recorded once as `not-configured`.
    #[arg(long = "smtp-url", env = "SAMSKAB_SMTP_URL")]
    pub smtp_url: Option<String>,
    /// A file holding the SMTP password (with a user name in the URL).
    #[arg(long = "smtp-password-file", env = "SAMSKAB_SMTP_PASSWORD_FILE")]
    pub smtp_password_file: Option<PathBuf>,
    /// A PEM file of a CA to trust for the relay's certificate besides the system's (a
    /// relay on a private network with its own CA).
    #[arg(long = "smtp-ca-file", env = "SAMSKAB_SMTP_CA_FILE")]
    pub smtp_ca_file: Option<PathBuf>,
    /// The sender of every e-mail.
    #[arg(long = "mail-from", env = "SAMSKAB_MAIL_FROM", default_value = "Samskab <noreply@samskab.invalid>")]
    pub from: String,
    /// The public address of the REST API, for links in e-mails (unsubscribing).
    #[arg(long = "public-url", env = "SAMSKAB_PUBLIC_URL", default_value = "http://127.0.0.1:8080")]
    pub public_url: String,
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            smtp_url: None,
            smtp_password_file: None,
            smtp_ca_file: None,
            from: "Samskab <noreply@samskab.invalid>".into(),
            public_url: "http://127.0.0.1:8080".into(),
        }
    }
}

/// The URL with any password replaced by `***` (for logs and errors).
pub fn masked(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// `mailto:` the address of `from` (`Name <address>` or an address): the VAPID subject
/// when none is configured.
pub fn vapid_subject_of(from: &str) -> String {
    let address = from.rsplit_once('<').map_or(from, |(_, a)| a.trim_end_matches('>')).trim();
    format!("mailto:{address}")
}

/// Whether plain SMTP to `host` stays on this machine or a private network.
fn private_host(host: &str) -> bool {
    if host == "localhost" {
        return true;
    }
    match host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        Ok(IpAddr::V6(v6)) => v6.is_loopback() || v6.is_unique_local(),
        // A name: a service name on a private network (compose, Kubernetes) is the usual
        // case; the operator is warned below.
        Err(_) => !host.contains('.'),
    }
}

/// Why configuring or sending failed (e-mail, SMS).
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The configuration is unusable (at start).
    #[error("configuration: {0}")]
    Config(String),
    /// The relay refused for good (an unknown mailbox): not retried.
    #[error("refused: {0}")]
    Permanent(String),
    /// Anything else (the relay is down, a timeout, a 4xx): retried.
    #[error("{0}")]
    Transient(String),
}

/// One e-mail to send.
#[derive(Debug, Clone)]
pub struct Email {
    /// The recipient's address (unsealed just before sending, never stored).
    pub to: String,
    /// Its subject.
    pub subject: String,
    /// Plain text.
    pub text: String,
    /// The notice it carries: every copy has `Message-ID: <notice id@domain>`.
    pub notice_id: Uuid,
    /// The one-click unsubscribe URL, if the notice's kind may be stopped.
    pub unsubscribe: Option<String>,
    /// Its language (`da`, `en`).
    pub language: &'static str,
}

/// A configured relay.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    domain: String,
    /// For links.
    pub public_url: String,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").field("from", &self.from).finish_non_exhaustive()
    }
}

impl Mailer {
    /// The relay of `cfg`, or `None` when no URL is configured.
    pub fn from_config(cfg: &MailConfig) -> Result<Option<Self>, SendError> {
        let Some(url) = cfg.smtp_url.as_deref().filter(|u| !u.is_empty()) else { return Ok(None) };
        let shown = masked(url);
        let parsed = url::Url::parse(url).map_err(|e| SendError::Config(format!("SAMSKAB_SMTP_URL {shown}: {e}")))?;
        let host = parsed.host_str().unwrap_or_default().to_owned();
        if host.is_empty() {
            return Err(SendError::Config(format!("SAMSKAB_SMTP_URL {shown}: no host")));
        }
        if parsed.password().is_some() {
            tracing::warn!(url = %shown, "the SMTP URL holds a password: put it in SAMSKAB_SMTP_PASSWORD_FILE instead");
        }
        let tls_required = parsed.query_pairs().any(|(k, v)| k == "tls" && v == "required");
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| SendError::Config(format!("SAMSKAB_SMTP_URL {shown}: {e}")))?
            .timeout(Some(Duration::from_secs(30)));
        let implicit = parsed.scheme() == "smtps";
        if implicit || tls_required {
            let mut params = TlsParameters::builder(host.clone());
            if let Some(ca) = &cfg.smtp_ca_file {
                let pem = std::fs::read(ca)
                    .map_err(|e| SendError::Config(format!("SAMSKAB_SMTP_CA_FILE {}: {e}", ca.display())))?;
                let cert = Certificate::from_pem(&pem)
                    .map_err(|e| SendError::Config(format!("SAMSKAB_SMTP_CA_FILE {}: {e}", ca.display())))?;
                params = params.add_root_certificate(cert);
            }
            let params = params.build().map_err(|e| SendError::Config(format!("TLS for {shown}: {e}")))?;
            builder = builder.tls(if implicit { Tls::Wrapper(params) } else { Tls::Required(params) });
        } else if !private_host(&host) {
            tracing::warn!(url = %shown, "plain SMTP to a host that is not on loopback or a private network: add ?tls=required or use smtps://");
        }
        if let Some(file) = &cfg.smtp_password_file {
            let password = std::fs::read_to_string(file)
                .map_err(|e| SendError::Config(format!("SAMSKAB_SMTP_PASSWORD_FILE {}: {e}", file.display())))?;
            let user = percent_decode(parsed.username());
            if user.is_empty() {
                return Err(SendError::Config(format!(
                    "SAMSKAB_SMTP_PASSWORD_FILE is set but {shown} names no user (smtp://user@host)"
                )));
            }
            builder = builder.credentials(Credentials::new(user, password.trim_end_matches(['\r', '\n']).to_owned()));
        }
        let from: Mailbox =
            cfg.from.parse().map_err(|e| SendError::Config(format!("SAMSKAB_MAIL_FROM {:?}: {e}", cfg.from)))?;
        let domain = from.email.domain().to_owned();
        tracing::info!(url = %shown, "e-mail notices go through this SMTP relay");
        Ok(Some(Mailer {
            transport: builder.build(),
            from,
            domain,
            public_url: cfg.public_url.trim_end_matches('/').to_owned(),
        }))
    }

    /// The `Message-ID` of a notice's every copy.
    pub fn message_id(&self, notice_id: Uuid) -> String {
        format!("<{notice_id}@{}>", self.domain)
    }

    /// The message for `email`.
    pub fn message(&self, email: &Email) -> Result<Message, SendError> {
        let to: Mailbox = email.to.parse().map_err(|_| SendError::Permanent("not an e-mail address".into()))?;
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.subject.clone())
            .message_id(Some(self.message_id(email.notice_id)))
            .header(ContentLanguage(email.language.to_owned()));
        if let Some(link) = &email.unsubscribe {
            builder = builder.header(ListUnsubscribe(format!("<{link}>"))).header(ListUnsubscribePost);
        }
        let html = html_of(&email.subject, &email.text, email.unsubscribe.as_deref(), email.language);
        let body = MultiPart::alternative()
            .singlepart(SinglePart::plain(text_of(&email.text, email.unsubscribe.as_deref(), email.language)))
            .singlepart(SinglePart::html(html));
        builder.multipart(body).map_err(|e| SendError::Permanent(e.to_string()))
    }

    /// Sends `email`.
    pub async fn send(&self, email: &Email) -> Result<(), SendError> {
        let message = self.message(email)?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(SendError::Permanent(e.to_string())),
            Err(e) => Err(SendError::Transient(e.to_string())),
        }
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("u={s}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
}

fn footer(unsubscribe: Option<&str>, language: &str) -> Option<String> {
    let link = unsubscribe?;
    Some(match language {
        "da" => format!("Vil du ikke have denne slags e-mails? Afmeld her: {link}"),
        _ => format!("Don't want e-mails like this? Unsubscribe: {link}"),
    })
}

fn text_of(text: &str, unsubscribe: Option<&str>, language: &str) -> String {
    match footer(unsubscribe, language) {
        Some(f) => format!("{text}\n\n-- \n{f}\n"),
        None => format!("{text}\n"),
    }
}

/// Escapes text for HTML.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn html_of(subject: &str, text: &str, unsubscribe: Option<&str>, language: &str) -> String {
    let unsub = match unsubscribe {
        Some(link) => {
            let words =
                if language == "da" { "Afmeld denne slags e-mails" } else { "Unsubscribe from e-mails like this" };
            format!(r#"<p style="color:#666;font-size:small"><a href="{}">{words}</a></p>"#, escape(link))
        }
        None => String::new(),
    };
    format!(
        "<!DOCTYPE html><html lang=\"{language}\"><head><meta charset=\"utf-8\"><title>{}</title></head>\
         <body><h1 style=\"font-size:1.2em\">{}</h1><p>{}</p>{unsub}</body></html>",
        escape(subject),
        escape(subject),
        escape(text)
    )
}

#[derive(Clone)]
struct ContentLanguage(String);

impl header::Header for ContentLanguage {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Content-Language")
    }
    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(ContentLanguage(s.to_owned()))
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

#[derive(Clone)]
struct ListUnsubscribe(String);

impl header::Header for ListUnsubscribe {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe")
    }
    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(ListUnsubscribe(s.to_owned()))
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

#[derive(Clone)]
struct ListUnsubscribePost;

impl header::Header for ListUnsubscribePost {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe-Post")
    }
    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(ListUnsubscribePost)
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "List-Unsubscribe=One-Click".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_the_url_is_masked() {
        assert_eq!(masked("smtp://mailer:s3cret@relay:587?tls=required"), "smtp://mailer:***@relay:587?tls=required");
        assert_eq!(masked("smtps://mailer@relay"), "smtps://mailer@relay");
        assert_eq!(masked("smtp://relay:25"), "smtp://relay:25");
    }

    #[test]
    fn a_message_carries_its_notice_id_unsubscribe_headers_and_both_parts() {
        let cfg = MailConfig { smtp_url: Some("smtp://127.0.0.1:2525".into()), ..MailConfig::default() };
        let mailer = Mailer::from_config(&cfg).unwrap().unwrap();
        let id = Uuid::nil();
        let email = Email {
            to: "pilot@example.org".into(),
            subject: "Påmindelse <om> din tur".into(),
            text: "Din tur fra Egeparken er i morgen.".into(),
            notice_id: id,
            unsubscribe: Some("http://127.0.0.1:8080/v1/unsubscribe?token=abc".into()),
            language: "da",
        };
        let raw = String::from_utf8(mailer.message(&email).unwrap().formatted()).unwrap();
        assert!(raw.contains(&format!("Message-ID: <{id}@samskab.invalid>")), "{raw}");
        assert!(raw.contains("List-Unsubscribe: <http://127.0.0.1:8080/v1/unsubscribe?token=abc>"), "{raw}");
        assert!(raw.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"), "{raw}");
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert!(raw.contains("text/plain") && raw.contains("text/html"), "{raw}");
        assert!(matches!(
            mailer.message(&Email { to: "not an address".into(), ..email }),
            Err(SendError::Permanent(_))
        ));
    }

    #[test]
    fn a_password_file_without_a_user_is_refused_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "x\n").unwrap();
        let cfg = MailConfig {
            smtp_url: Some("smtp://127.0.0.1:2525".into()),
            smtp_password_file: Some(file),
            ..MailConfig::default()
        };
        assert!(matches!(Mailer::from_config(&cfg), Err(SendError::Config(_))));
    }
}

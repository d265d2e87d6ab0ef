//! What a person chooses about their notifications, kept by the notify service: their
//! preferences (`/v1/me/notification-preferences`), their contact details with the codes
//! that confirm them (`/v1/me/contact`), and the one-click unsubscribe link of every
//! e-mail (`/v1/unsubscribe`, RFC 8058: no sign-in, the signed token is the credential).
//!
//! Preferences and contact details are only for a person with at least one role grant
//! (403 otherwise): a person signed in at a provider who holds a grant in force, or a
//! Samskab token whose claimed role is a person's (admin, chapter admin, coordinator,
//! pilot). An integrator's role stands for an API key, which is no person (403).

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use samskab_proto::carehome::v1 as cpb;
use samskab_proto::notify::v1 as npb;
use serde::{Deserialize, Serialize};
use servicekit::ErrorCode;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::Role;
use crate::caller::{self, Person};
use crate::clients::Found;
use crate::extract::{Body, Params};
use crate::problem::{ApiError, Lang, Problem};

/// The kinds of notice a person may choose channels for, with what they are about in
/// Danish and English (the unsubscribe page). The same list as notify's
/// `notices::kind::ALL`: notify refuses any other kind (400 naming it), and
/// `GET /v1/me/notification-preferences` answers with notify's list.
pub const KINDS: &[(&str, &str, &str)] = &[
    ("ride.reminder", "påmindelser om ture", "ride reminders"),
    ("ride.pending_confirmation", "ture, der venter på bekræftelse", "rides awaiting confirmation"),
    ("ride.confirmed", "bekræftede ture", "confirmed rides"),
    ("ride.rescheduled", "flyttede ture", "rescheduled rides"),
    ("ride.roster_changed", "ændringer af passagerlister", "changes to a ride's riders"),
    ("ride.cancelled", "aflyste ture", "cancelled rides"),
    ("ride.booked_for_you", "ture booket til dig", "rides booked for you"),
    ("ride.no_riders", "ture uden passagerer", "rides without riders"),
    ("request.offered", "turønsker tilbudt dig", "ride requests offered to you"),
    ("request.claimed", "turønsker, som en pilot har taget", "ride requests a pilot claimed"),
    ("request.unclaimed", "turønsker, som ingen har taget", "ride requests nobody claimed"),
    ("qualification.expiring", "uddannelser, der udløber", "expiring qualifications"),
    ("waitlist.promoted", "pladser fra ventelisten", "places from the waiting list"),
];

/// The channels a kind can go by.
const CHANNELS: [&str; 3] = ["email", "sms", "push"];

/// An unsubscribe token: the signed recipient and kind (base64url), a dot, an HMAC (hex).
pub const UNSUBSCRIBE_TOKEN: &str = r"^[A-Za-z0-9_-]{1,256}\.[0-9a-f]{64}$";

/// The zone whose chapters read Danish until a person chooses a language.
const DANISH_ZONE: &str = "Europe/Copenhagen";

fn is_hh_mm(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 5
        && b[2] == b':'
        && [0, 1, 3, 4].iter().all(|&i| b[i].is_ascii_digit())
        && (b[0] < b'2' || (b[0] == b'2' && b[1] <= b'3'))
        && b[3] <= b'5'
}

fn is_unsubscribe_token(s: &str) -> bool {
    let Some((body, mac)) = s.split_once('.') else { return false };
    (1..=256).contains(&body.len())
        && body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && mac.len() == 64
        && mac.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The schema of `channels`: each kind (and no other) with a list of distinct channels.
fn channels_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{AdditionalProperties, ArrayBuilder};
    use utoipa::openapi::{ObjectBuilder, Type};
    let list = || {
        ArrayBuilder::new()
            .items(ObjectBuilder::new().schema_type(Type::String).enum_values(Some(CHANNELS)))
            .unique_items(true)
            .max_items(Some(CHANNELS.len()))
            .build()
    };
    KINDS
        .iter()
        .fold(
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .description(Some(
                    "Each kind of notice with the channels it goes by (`email`, `sms`, `push`, each once; \
                     `[]`: the inbox only). A kind left out goes by e-mail.",
                ))
                .additional_properties(Some(AdditionalProperties::<utoipa::openapi::Schema>::FreeForm(false))),
            |o, (kind, ..)| o.property(*kind, list()),
        )
        .build()
}

/// When SMS and push are held (`from > to` wraps midnight; `from == to` is refused).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    /// Start, `HH:MM` local time.
    #[schema(pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub from: String,
    /// End, `HH:MM` local time; a held notice goes out then (or at once if its ride starts
    /// before it).
    #[schema(pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub to: String,
    /// The zone `from` and `to` are in; absent or null when set: the zone of the chapter
    /// of the person's first grant, which is then kept and shown (a person with no
    /// chapter: the zone of what each notice is about).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::views::optional_timezone)]
    pub timezone: Option<String>,
}

/// A person's notification preferences: as sent, and as in force (every kind listed).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotificationPreferences {
    /// `da` or `en`: the language of notices (until chosen: `da` where the chapter of the
    /// person's first grant is in `Europe/Copenhagen`'s zone, else `en`).
    #[schema(pattern = "^(da|en)$")]
    pub language: String,
    /// Quiet hours (SMS and push only); absent or null: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<QuietHours>,
    /// Each kind with its channels.
    #[schema(schema_with = channels_schema)]
    pub channels: BTreeMap<String, Vec<String>>,
}

impl NotificationPreferences {
    /// What the gateway checks itself (notify checks kinds, channels, zone and
    /// `from == to`, naming the field too).
    fn check(&self) -> Result<(), ApiError> {
        if !["da", "en"].contains(&self.language.as_str()) {
            return Err(ApiError::invalid("/language", "must be `da` or `en`"));
        }
        if let Some(q) = &self.quiet_hours {
            for (field, v) in [("/quiet_hours/from", &q.from), ("/quiet_hours/to", &q.to)] {
                if !is_hh_mm(v) {
                    return Err(ApiError::invalid(field, "must be HH:MM (00:00 to 23:59)"));
                }
            }
            if q.timezone.as_deref() == Some("") {
                return Err(ApiError::invalid("/quiet_hours/timezone", "must be an IANA time zone, or left out"));
            }
        }
        Ok(())
    }

    fn into_proto(self) -> npb::Preferences {
        npb::Preferences {
            language: self.language,
            quiet_hours: self.quiet_hours.map(|q| npb::QuietHours {
                from: q.from,
                to: q.to,
                timezone: q.timezone.unwrap_or_default(),
            }),
            channels: self.channels.into_iter().map(|(k, v)| (k, npb::ChannelList { channels: v })).collect(),
        }
    }

    fn from_view(v: npb::PreferencesView) -> Self {
        NotificationPreferences {
            language: v.language,
            quiet_hours: v.quiet_hours.map(|q| QuietHours {
                from: q.from,
                to: q.to,
                timezone: (!q.timezone.is_empty()).then_some(q.timezone),
            }),
            channels: v.channels.into_iter().map(|(k, v)| (k, v.channels)).collect(),
        }
    }
}

/// A person who may choose: signed in, with at least one grant (403 otherwise).
pub(crate) struct Granted {
    person: Person,
    /// The person's roles, most powerful first.
    roles: Vec<Role>,
}

impl Granted {
    pub(crate) fn of(person: Person) -> Result<Self, ApiError> {
        let roles: Vec<Role> = match person.claimed {
            Some(Role::Integrator(_)) => {
                return Err(ApiError::forbidden().detail("an integrator's token is no person's: it has no preferences"));
            }
            Some(role) => vec![role],
            None => person.acting(None)?.into_iter().map(|(_, role)| role).collect(),
        };
        if roles.is_empty() {
            return Err(ApiError::forbidden().detail("you hold no role here yet; redeem an invitation"));
        }
        Ok(Granted { person, roles })
    }

    /// `person:<id>`.
    pub(crate) fn recipient(&self) -> String {
        format!("person:{}", self.person.person_id)
    }

    /// The language shown until the person chooses one: `da` where the chapter of their
    /// first grant that has a chapter (admin has none) is in Copenhagen's zone, else `en`.
    /// A Samskab token's role that no longer resolves (a retired pilot) is 401, as for
    /// every other route; a grant that does not is passed over.
    async fn default_language(&self, s: &AppState) -> Result<&'static str, ApiError> {
        Ok(self.defaults(s).await?.0)
    }

    /// The default language (as above) and the zone of that chapter (empty: none).
    async fn defaults(&self, s: &AppState) -> Result<(&'static str, String), ApiError> {
        for role in &self.roles {
            let chapter = match caller::resolve(s, *role).await {
                Ok((Some(chapter), _)) => chapter,
                Ok((None, _)) => continue,
                Err(e) if self.person.claimed.is_some() => return Err(e),
                Err(_) => continue,
            };
            let found = s.clients.carehome().get_chapter(cpb::IdRequest { id: chapter.to_string() }).await.found()?;
            let zone = found.map(|c| c.timezone).unwrap_or_default();
            return Ok((if zone == DANISH_ZONE { "da" } else { "en" }, zone));
        }
        Ok(("en", String::new()))
    }
}

/// The signed-in person's notification preferences in force (anyone signed in with a grant).
#[utoipa::path(get, path = "/v1/me/notification-preferences", tag = "notifications",
    responses((status = 200, body = NotificationPreferences), (status = 401, body = Problem),
        (status = 403, description = "No role grant (or an API key, an integrator): no preferences", body = Problem),
        (status = 503, description = "The notify service is not configured or not reachable", body = Problem)),
    security(("bearer" = [])))]
pub async fn get_preferences(
    State(s): State<AppState>,
    person: Person,
) -> Result<axum::Json<NotificationPreferences>, ApiError> {
    let who = Granted::of(person)?;
    let notify = s.clients.notify()?;
    let req = npb::GetPreferencesRequest {
        recipient: who.recipient(),
        default_language: who.default_language(&s).await?.to_owned(),
    };
    let view = notify.clone().get_preferences(req).await.reply()?;
    Ok(axum::Json(NotificationPreferences::from_view(view)))
}

/// Replaces the signed-in person's notification preferences; answers them as in force
/// (anyone signed in with a grant).
#[utoipa::path(put, path = "/v1/me/notification-preferences", tag = "notifications",
    request_body = NotificationPreferences,
    responses((status = 200, body = NotificationPreferences),
        (status = 400, description = "`validation`, naming the field: an unknown kind (`/channels/<kind>`), a channel twice, `HH:MM`, `from == to` (`/quiet_hours/to`), an unknown zone", body = Problem),
        (status = 401, body = Problem),
        (status = 403, description = "No role grant (or an API key, an integrator): no preferences", body = Problem),
        (status = 404, description = "The person was erased", body = Problem),
        (status = 503, description = "The notify service is not configured or not reachable", body = Problem)),
    security(("bearer" = [])))]
pub async fn set_preferences(
    State(s): State<AppState>,
    person: Person,
    Body(b): Body<NotificationPreferences>,
) -> Result<axum::Json<NotificationPreferences>, ApiError> {
    let who = Granted::of(person)?;
    b.check()?;
    let notify = s.clients.notify()?;
    let (language, zone) = who.defaults(&s).await?;
    let req = npb::SetPreferencesRequest {
        recipient: who.recipient(),
        preferences: Some(b.into_proto()),
        default_language: language.to_owned(),
        default_timezone: zone,
    };
    let view = notify.clone().set_preferences(req).await.reply()?;
    Ok(axum::Json(NotificationPreferences::from_view(view)))
}

/// `PUT /v1/me/contact`: a new e-mail address, phone number, or both.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactDetails {
    /// An e-mail address (personal, stored sealed with the person's key); a code is sent
    /// to it.
    #[serde(default)]
    #[schema(format = Email, min_length = 3, max_length = 254)]
    pub email: Option<String>,
    /// A mobile number in E.164 form (`+4512345678`); a code is sent to it by SMS.
    #[serde(default)]
    #[schema(pattern = r"^\+[1-9][0-9]{7,14}$")]
    pub phone: Option<String>,
}

/// What waits for its code.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactPending {
    /// The channels whose new address waits for its code: `email`, `sms`.
    pub pending: Vec<PendingChannel>,
}

/// A channel whose address waits for its code.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PendingChannel {
    /// The e-mail address.
    Email,
    /// The phone number.
    Sms,
}

/// The language a code's message is in: the one `Accept-Language` names (`da` or `en`),
/// else the person's preference (its default included).
async fn code_language(s: &AppState, who: &Granted, headers: &HeaderMap) -> Result<String, ApiError> {
    let named = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(',').any(|part| {
            let tag = part.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            ["da", "en"].iter().any(|l| tag == *l || tag.starts_with(&format!("{l}-")))
        })
    });
    if named {
        return Ok(match Lang::from_headers(headers) {
            Lang::Da => "da",
            Lang::En => "en",
        }
        .to_owned());
    }
    let req = npb::GetPreferencesRequest {
        recipient: who.recipient(),
        default_language: who.default_language(s).await?.to_owned(),
    };
    Ok(s.clients.notify()?.get_preferences(req).await.reply()?.language)
}

/// Sets a new e-mail address and/or phone number: each is used once confirmed with the
/// 6-digit code sent to it (5 tries, 24 hours). 202: the codes are on their way (anyone
/// signed in with a grant).
#[utoipa::path(put, path = "/v1/me/contact", tag = "notifications", request_body = ContactDetails,
    responses((status = 202, description = "Codes are sent to the new address and number", body = ContactPending),
        (status = 400, description = "`validation`: not an e-mail address (`/email`), not E.164 (`/phone`), neither given (`/email`)", body = Problem),
        (status = 401, body = Problem),
        (status = 403, description = "No role grant (or an API key, an integrator)", body = Problem),
        (status = 404, description = "The person was erased", body = Problem),
        (status = 503, description = "The notify service is not configured or not reachable", body = Problem)),
    security(("bearer" = [])))]
pub async fn set_contact(
    State(s): State<AppState>,
    person: Person,
    headers: HeaderMap,
    Body(b): Body<ContactDetails>,
) -> Result<(StatusCode, axum::Json<ContactPending>), ApiError> {
    let who = Granted::of(person)?;
    if b.email.as_ref().is_some_and(|e| e.len() < 3 || e.len() > 254) {
        return Err(ApiError::invalid("/email", "must be an e-mail address (3 to 254 characters)"));
    }
    if b.phone.as_deref() == Some("") {
        return Err(ApiError::invalid("/phone", "must be in E.164 form (+4512345678)"));
    }
    let language = code_language(&s, &who, &headers).await?;
    let req = npb::SetContactRequest { recipient: who.recipient(), email: b.email, phone: b.phone, language };
    let answer = s.clients.notify()?.set_contact(req).await.reply()?;
    let pending = answer
        .pending
        .iter()
        .filter_map(|c| match c.as_str() {
            "email" => Some(PendingChannel::Email),
            "sms" => Some(PendingChannel::Sms),
            _ => None,
        })
        .collect();
    Ok((StatusCode::ACCEPTED, axum::Json(ContactPending { pending })))
}

/// `POST /v1/me/contact/confirm`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactConfirmation {
    /// `email` or `sms`.
    #[schema(pattern = "^(email|sms)$")]
    pub channel: String,
    /// The 6 digits sent.
    #[schema(pattern = "^[0-9]{6}$")]
    pub code: String,
}

/// A confirmed address.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactConfirmed {
    /// `email` or `sms`.
    pub channel: String,
    /// Always true: the address is used from now on.
    pub confirmed: bool,
}

/// Confirms a new address or number with the code sent to it (anyone signed in with a grant).
#[utoipa::path(post, path = "/v1/me/contact/confirm", tag = "notifications", request_body = ContactConfirmation,
    responses((status = 200, body = ContactConfirmed),
        (status = 400, description = "`validation`: `/channel`, `/code` (6 digits)", body = Problem),
        (status = 401, body = Problem),
        (status = 403, description = "No role grant (or an API key, an integrator)", body = Problem),
        (status = 404, description = "Nothing waits for a code on this channel", body = Problem),
        (status = 409, description = "`code-locked`: five wrong codes were tried; set the address again", body = Problem),
        (status = 410, description = "`code-expired`: 24 hours passed; set the address again", body = Problem),
        (status = 422, description = "`code-wrong`: the tries left are in `detail`", body = Problem),
        (status = 503, description = "The notify service is not configured or not reachable", body = Problem)),
    security(("bearer" = [])))]
pub async fn confirm_contact(
    State(s): State<AppState>,
    person: Person,
    Body(b): Body<ContactConfirmation>,
) -> Result<axum::Json<ContactConfirmed>, ApiError> {
    let who = Granted::of(person)?;
    let req = npb::ConfirmContactRequest { recipient: who.recipient(), channel: b.channel, code: b.code };
    let answer = s.clients.notify()?.confirm_contact(req).await.reply()?;
    Ok(axum::Json(ContactConfirmed { channel: answer.channel, confirmed: true }))
}

/// `?token=` of the unsubscribe link.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UnsubscribeParams {
    /// The token of the e-mail's `List-Unsubscribe` link (it names the person and the kind,
    /// signed by notify; 401 when the signature does not hold).
    #[param(pattern = r"^[A-Za-z0-9_-]{1,256}\.[0-9a-f]{64}$")]
    pub token: String,
}

impl UnsubscribeParams {
    fn checked(self) -> Result<String, ApiError> {
        if is_unsubscribe_token(&self.token) {
            Ok(self.token)
        } else {
            Err(ApiError::invalid("/token", "must be the token of an unsubscribe link"))
        }
    }
}

/// The form a mail client's one-click unsubscribe POSTs (RFC 8058).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnsubscribeForm {
    /// Always `One-Click`.
    #[serde(rename = "List-Unsubscribe")]
    #[schema(pattern = "^One-Click$")]
    pub list_unsubscribe: String,
}

/// A kind stopped by e-mail.
#[derive(Debug, Serialize, ToSchema)]
pub struct Unsubscribed {
    /// The kind of notice no longer sent by e-mail.
    pub kind: String,
    /// Always true.
    pub unsubscribed: bool,
}

/// Checks the POST's body: nothing, or the form `List-Unsubscribe=One-Click`.
fn one_click(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<(), ApiError> {
    let bytes = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(ErrorCode::TooLarge)
        } else {
            ApiError::malformed("", "the body could not be read")
        }
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
    if !form {
        return Err(ApiError::new(ErrorCode::UnsupportedMediaType)
            .detail("send no body, or application/x-www-form-urlencoded `List-Unsubscribe=One-Click`"));
    }
    let mut seen = false;
    for (name, value) in form_urlencoded::parse(&bytes) {
        if name != "List-Unsubscribe" {
            let pointer = format!("/{}", name.replace('~', "~0").replace('/', "~1"));
            return Err(ApiError::invalid(pointer, "unknown field: the form takes `List-Unsubscribe` alone"));
        }
        if value != "One-Click" || seen {
            return Err(ApiError::invalid("/List-Unsubscribe", "must be `One-Click`, once"));
        }
        seen = true;
    }
    if !seen {
        return Err(ApiError::invalid("/List-Unsubscribe", "must be `One-Click`"));
    }
    Ok(())
}

fn escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

/// What a kind is about, in Danish and English (the kind itself when unknown).
fn about(kind: &str) -> (String, String) {
    match KINDS.iter().find(|(k, ..)| *k == kind) {
        Some((_, da, en)) => ((*da).to_owned(), (*en).to_owned()),
        None => (format!("«{}»", escape(kind)), format!("“{}”", escape(kind))),
    }
}

/// A small page in Danish and English: no script, no outside resources, not framed, not
/// cached, and the token never sent on as a referrer.
fn page(title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"da\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>body{{font-family:system-ui,sans-serif;max-width:36em;margin:3em auto;\
         padding:0 1em;line-height:1.5}}button{{font-size:1.1em;padding:.5em 1.2em}}</style></head>\
         <body>{body}</body></html>\n"
    );
    let mut r = (StatusCode::OK, html).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    r
}

/// Whether the client asked for HTML (a browser submitting the page's form).
fn wants_html(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/html"))
}

/// Stops one kind of notice by e-mail for the person of an e-mail's `List-Unsubscribe`
/// link (RFC 8058 one-click; no sign-in: the signed token is the credential). Takes no
/// body or the form `List-Unsubscribe=One-Click`; answering again changes nothing. A
/// client that accepts `text/html` (the page's button) gets a page instead of JSON.
#[utoipa::path(post, path = "/v1/unsubscribe", tag = "notifications", params(UnsubscribeParams),
    request_body(content = Option<UnsubscribeForm>, content_type = "application/x-www-form-urlencoded",
        description = "`List-Unsubscribe=One-Click` (RFC 8058), or no body"),
    responses((status = 200, description = "Stopped by e-mail (JSON; `text/html` when the client accepts it)",
            content((Unsubscribed = "application/json"), (String = "text/html"))),
        (status = 400, description = "`validation`: `/token` malformed, or a form other than `List-Unsubscribe=One-Click`", body = Problem),
        (status = 401, description = "`unauthenticated`: not a valid unsubscribe link", body = Problem),
        (status = 415, description = "A body that is not `application/x-www-form-urlencoded`", body = Problem),
        (status = 503, description = "The notify service is not configured or not reachable", body = Problem)),
    // No sign-in: the token in the link is the credential.
    security(()))]
pub async fn unsubscribe(
    State(s): State<AppState>,
    headers: HeaderMap,
    Params(p): Params<UnsubscribeParams>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let token = p.checked()?;
    one_click(&headers, body)?;
    let req = npb::UnsubscribeRequest { token, check_only: false };
    let answer = s.clients.notify()?.unsubscribe(req).await.reply()?;
    if wants_html(&headers) {
        let (da, en) = about(&answer.kind);
        let body = format!(
            "<h1>Du er afmeldt</h1><p>Du får ikke længere e-mails om {da}.</p>\
             <p>Du kan ændre det under dine indstillinger for beskeder.</p><hr>\
             <h2 lang=\"en\">You are unsubscribed</h2><p lang=\"en\">You will no longer get e-mails about {en}.</p>\
             <p lang=\"en\">You can change this in your notification settings.</p>"
        );
        return Ok(page("Afmeldt · Unsubscribed", &body));
    }
    Ok(axum::Json(Unsubscribed { kind: answer.kind, unsubscribed: true }).into_response())
}

/// The page an e-mail's unsubscribe link opens (no sign-in): what it stops, in Danish and
/// English, with a button that POSTs `List-Unsubscribe=One-Click` to the same URL.
/// Opening it changes nothing (mail scanners open links).
#[utoipa::path(get, path = "/v1/unsubscribe", tag = "notifications", params(UnsubscribeParams),
    responses((status = 200, description = "A page with the button", content_type = "text/html", body = String),
        (status = 400, description = "`validation`: `/token` malformed", body = Problem),
        (status = 401, description = "`unauthenticated`: not a valid unsubscribe link", body = Problem),
        (status = 503, description = "The notify service is not configured or not reachable", body = Problem)),
    // No sign-in: the token in the link is the credential.
    security(()))]
pub async fn unsubscribe_page(
    State(s): State<AppState>,
    Params(p): Params<UnsubscribeParams>,
) -> Result<Response, ApiError> {
    let token = p.checked()?;
    let req = npb::UnsubscribeRequest { token: token.clone(), check_only: true };
    let answer = s.clients.notify()?.unsubscribe(req).await.reply()?;
    let (da, en) = about(&answer.kind);
    let action = format!("/v1/unsubscribe?token={}", escape(&token));
    let body = format!(
        "<h1>Afmeld e-mails</h1><p>Vil du ikke længere have e-mails om {da}?</p>\
         <h2 lang=\"en\">Unsubscribe from e-mails</h2><p lang=\"en\">Stop e-mails about {en}?</p>\
         <form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
         <button type=\"submit\">Afmeld · Unsubscribe</button></form>\
         <p>Beskederne kommer stadig i din indbakke i Samskab. \
         <span lang=\"en\">The notices still reach your inbox in Samskab.</span></p>"
    );
    Ok(page("Afmeld e-mails · Unsubscribe", &body))
}

/// The routes of preferences, contact details and unsubscribing.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_preferences, set_preferences))
        .routes(routes!(set_contact))
        .routes(routes!(confirm_contact))
        .routes(routes!(unsubscribe_page, unsubscribe))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_times_and_tokens_are_checked_as_their_patterns_say() {
        for ok in ["00:00", "07:30", "19:59", "23:59"] {
            assert!(is_hh_mm(ok), "{ok}");
        }
        for bad in ["24:00", "7:30", "07:60", "0730", "07:3", "aa:bb", "07:30 ", ""] {
            assert!(!is_hh_mm(bad), "{bad}");
        }
        let mac = "0123456789abcdef".repeat(4);
        assert!(is_unsubscribe_token(&format!("cGVyc29u_-x.{mac}")));
        for bad in [format!(".{mac}"), format!("a.{}", mac.to_uppercase()), "a.b".into(), format!("a+b.{mac}")] {
            assert!(!is_unsubscribe_token(&bad), "{bad}");
        }
        assert_eq!(UNSUBSCRIBE_TOKEN, r"^[A-Za-z0-9_-]{1,256}\.[0-9a-f]{64}$");
    }

    #[test]
    fn the_one_click_form_alone_is_taken() {
        let form = |ct: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
            h
        };
        let f = form("application/x-www-form-urlencoded");
        let body = |s: &'static str| Ok(Bytes::from_static(s.as_bytes()));
        assert!(one_click(&HeaderMap::new(), body("")).is_ok());
        assert!(one_click(&f, body("List-Unsubscribe=One-Click")).is_ok());
        let field = |r: Result<(), ApiError>| r.unwrap_err().errors[0].field.clone();
        assert_eq!(field(one_click(&f, body("List-Unsubscribe=Two"))), "/List-Unsubscribe");
        assert_eq!(field(one_click(&f, body("colour=red"))), "/colour");
        assert_eq!(field(one_click(&f, body("&"))), "/List-Unsubscribe");
        let json = one_click(&form("application/json"), body("{}")).unwrap_err();
        assert_eq!(json.code, ErrorCode::UnsupportedMediaType);
    }
}

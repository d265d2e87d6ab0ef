//! Every error the gateway answers is `application/problem+json` (RFC 9457) with the
//! stable `code` of the API contract; `title` and `detail` follow `Accept-Language`
//! (English and Danish). Errors from the services arrive as gRPC statuses and are mapped
//! here once, by their code.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::Invalid;
use serde::Serialize;
use servicekit::{ErrorCode, RemoteError};

/// The languages problems are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    /// English.
    #[default]
    En,
    /// Danish.
    Da,
}

impl Lang {
    /// The first of `en` / `da` the `Accept-Language` header prefers (quality values honoured).
    pub fn from_headers(headers: &HeaderMap) -> Lang {
        let Some(v) = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()) else { return Lang::En };
        let mut best: Option<(f32, Lang)> = None;
        for part in v.split(',') {
            let mut it = part.trim().split(';');
            let tag = it.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = it.find_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.parse::<f32>().ok())).unwrap_or(1.0);
            let lang = if tag == "da" || tag.starts_with("da-") {
                Lang::Da
            } else if tag == "en" || tag.starts_with("en-") || tag == "*" {
                Lang::En
            } else {
                continue;
            };
            if best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, lang));
            }
        }
        best.map_or(Lang::En, |(_, l)| l)
    }
}

/// Title and generic detail of a code, in English and Danish.
fn texts(code: ErrorCode) -> (&'static str, &'static str, &'static str, &'static str) {
    use ErrorCode as C;
    match code {
        C::Malformed => (
            "Malformed request",
            "Forkert udformet forespørgsel",
            "The request could not be read.",
            "Forespørgslen kunne ikke læses.",
        ),
        C::Validation => (
            "Invalid request",
            "Ugyldig forespørgsel",
            "A field of the request is invalid.",
            "Et felt i forespørgslen er ugyldigt.",
        ),
        C::Unauthenticated => (
            "Not authenticated",
            "Ikke logget ind",
            "A valid bearer token is required.",
            "Der kræves et gyldigt adgangstoken.",
        ),
        C::Forbidden => ("Forbidden", "Ikke tilladt", "Your role may not do this.", "Din rolle må ikke gøre dette."),
        C::NotFound => (
            "Not found",
            "Ikke fundet",
            "There is no such object, or you may not see it.",
            "Objektet findes ikke, eller du må ikke se det.",
        ),
        C::Timeout => (
            "Request timeout",
            "Tidsgrænse overskredet",
            "The request took too long.",
            "Forespørgslen tog for lang tid.",
        ),
        C::BikeTaken => (
            "Trishaw taken",
            "Cyklen er optaget",
            "The trishaw is taken in that slot.",
            "Cyklen er optaget i det tidsrum.",
        ),
        C::PilotBusy => (
            "Pilot busy",
            "Piloten er optaget",
            "The pilot rides elsewhere in that slot.",
            "Piloten kører et andet sted i det tidsrum.",
        ),
        C::ResidentBusy => (
            "Resident busy",
            "Beboeren er optaget",
            "A rider is on another ride in that slot.",
            "En passager er på en anden tur i det tidsrum.",
        ),
        C::IllegalTransition => (
            "Illegal transition",
            "Ugyldig statusændring",
            "The object's state does not allow this.",
            "Objektets tilstand tillader ikke dette.",
        ),
        C::IdempotencyInFlight => (
            "Request in progress",
            "Forespørgslen er i gang",
            "A request with this idempotency key is still running.",
            "En forespørgsel med denne nøgle kører stadig.",
        ),
        C::InvitationUsed => (
            "Invitation used",
            "Invitationen er brugt",
            "Someone else has already redeemed this invitation.",
            "En anden har allerede indløst denne invitation.",
        ),
        C::PilotAlreadyLinked => (
            "Pilot already linked",
            "Piloten er allerede tilknyttet",
            "This pilot is already linked to another person.",
            "Denne pilot er allerede tilknyttet en anden person.",
        ),
        C::LastAdmin => (
            "Last administrator",
            "Sidste administrator",
            "The chapter's last administrator cannot be removed.",
            "Afdelingens sidste administrator kan ikke fjernes.",
        ),
        C::NotOnRoster => (
            "Not on the roster",
            "Ikke på holdlisten",
            "An absent rider must be on the ride's roster.",
            "En fraværende passager skal være på turens holdliste.",
        ),
        C::AllRidersAbsent => (
            "Every rider absent",
            "Alle passagerer fraværende",
            "Every rider was absent: mark the ride a no-show by the riders instead.",
            "Alle passagerer var fraværende: markér turen som udeblevet (passagererne) i stedet.",
        ),
        C::OutsideRecordWindow => (
            "Outside the record window",
            "Uden for registreringsvinduet",
            "The ride is older than the chapter lets a pilot record or correct; ask a coordinator.",
            "Turen er ældre end afdelingen lader en pilot registrere eller rette; spørg en koordinator.",
        ),
        C::ConflictsWithRides => (
            "Conflicts with rides",
            "I konflikt med ture",
            "The change would break booked rides (listed in ride_ids); cancel or move them first.",
            "Ændringen ville bryde bookede ture (i ride_ids); aflys eller flyt dem først.",
        ),
        C::SeatFree => (
            "A seat is free",
            "Der er en ledig plads",
            "The ride has a free seat: add the resident to the roster instead of the waitlist.",
            "Turen har en ledig plads: sæt beboeren på holdlisten i stedet for ventelisten.",
        ),
        C::PreconditionRequired => (
            "Precondition required",
            "Forudsætning påkrævet",
            "Send If-Match with the ETag of the version you are changing.",
            "Send If-Match med ETag for den version, du ændrer.",
        ),
        C::CodeWrong => (
            "Wrong code",
            "Forkert kode",
            "The confirmation code is not the one sent.",
            "Bekræftelseskoden er ikke den, der blev sendt.",
        ),
        C::CodeExpired => (
            "Code expired",
            "Koden er udløbet",
            "The confirmation code has expired: set the address again.",
            "Bekræftelseskoden er udløbet: angiv adressen igen.",
        ),
        C::CodeLocked => (
            "Too many wrong codes",
            "For mange forkerte koder",
            "Five wrong codes were tried: set the address again for a new code.",
            "Der er prøvet fem forkerte koder: angiv adressen igen for at få en ny kode.",
        ),
        C::InvitationExpired => (
            "Invitation expired",
            "Invitationen er udløbet",
            "The invitation has expired or was withdrawn.",
            "Invitationen er udløbet eller trukket tilbage.",
        ),
        C::PreconditionFailed => (
            "Precondition failed",
            "Forudsætning ikke opfyldt",
            "The object has changed (If-Match).",
            "Objektet er ændret (If-Match).",
        ),
        C::TooLarge => (
            "Request too large",
            "Forespørgslen er for stor",
            "The body is larger than 1 MiB.",
            "Indholdet er større end 1 MiB.",
        ),
        C::UnsupportedMediaType => (
            "Unsupported media type",
            "Ikke understøttet medietype",
            "Send application/json (a PATCH: application/merge-patch+json).",
            "Send application/json (ved PATCH application/merge-patch+json).",
        ),
        C::OutsideRideHours => (
            "Outside ride hours",
            "Uden for køretider",
            "The slot lies outside the care home's ride hours.",
            "Tidsrummet ligger uden for plejehjemmets køretider.",
        ),
        C::LeadTime => (
            "Too short notice",
            "For kort varsel",
            "Rides must be booked further ahead.",
            "Ture skal bookes længere i forvejen.",
        ),
        C::NotQualified => (
            "Pilot not qualified",
            "Piloten er ikke uddannet",
            "The pilot is not qualified for this trishaw for the whole slot.",
            "Piloten er ikke uddannet til denne cykel i hele tidsrummet.",
        ),
        C::PilotSuspended => (
            "Pilot suspended",
            "Piloten er suspenderet",
            "A suspended pilot may not book.",
            "En suspenderet pilot må ikke booke.",
        ),
        C::BikeOutOfService => (
            "Trishaw out of service",
            "Cyklen er ude af drift",
            "The trishaw is not in service.",
            "Cyklen er ikke i drift.",
        ),
        C::TooManyRiders => (
            "Too many riders",
            "For mange passagerer",
            "The riders do not fit the seats.",
            "Passagererne kan ikke være på sæderne.",
        ),
        C::NoConsent => (
            "No consent",
            "Intet samtykke",
            "A rider has no consent on record.",
            "En passager har intet samtykke registreret.",
        ),
        C::NotResidentHere => (
            "Not a resident here",
            "Ikke beboer her",
            "A rider does not live at this care home.",
            "En passager bor ikke på dette plejehjem.",
        ),
        C::IdempotencyKeyReused => (
            "Idempotency key reused",
            "Nøglen er brugt før",
            "This idempotency key was used with another request.",
            "Denne nøgle er brugt til en anden forespørgsel.",
        ),
        C::LimitReached => (
            "Limit reached",
            "Grænsen er nået",
            "You have as many of these as you may: delete one first.",
            "Du har så mange af disse, som du må: slet en først.",
        ),
        C::RateLimited => (
            "Too many requests",
            "For mange forespørgsler",
            "Slow down and retry after the indicated time.",
            "Sæt farten ned og prøv igen efter den angivne tid.",
        ),
        C::Unavailable => (
            "Service unavailable",
            "Tjenesten er utilgængelig",
            "A backing service is unavailable; retry soon.",
            "En bagvedliggende tjeneste er utilgængelig; prøv igen snart.",
        ),
        C::Internal => {
            ("Internal error", "Intern fejl", "Something went wrong on our side.", "Der gik noget galt hos os.")
        }
    }
}

/// One offending field.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// JSON pointer into the request body (or `/<query parameter>`).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// What a 409 names: the other ride, or the rides a correction would break.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Conflict {
    /// The other ride (`conflict_with`).
    pub with: Option<String>,
    /// The booked rides a correction would break (`ride_ids`).
    pub ride_ids: Vec<String>,
}

/// An error answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The stable code.
    pub code: ErrorCode,
    /// A specific detail in English (used for `en`; Danish uses the code's text).
    pub detail: Option<String>,
    /// Offending fields (400).
    pub errors: Vec<FieldError>,
    /// The other ride of a conflict, or the rides a correction would break (409); boxed,
    /// so an error stays small.
    pub conflict: Option<Box<Conflict>>,
    /// The object's current version (412: sent as `ETag`).
    pub current_version: Option<u64>,
    /// Seconds to wait (429).
    pub retry_after: Option<u64>,
}

/// The body of a problem (for the OpenAPI document).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// `urn:samskab:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short title.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// Explanation.
    pub detail: String,
    /// Stable code.
    pub code: String,
    /// Offending fields.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// The conflicting ride.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflict_with: Option<String>,
    /// The booked rides a correction would break (`conflicts-with-rides`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ride_ids: Vec<String>,
}

impl ApiError {
    /// An error with just a code.
    pub fn new(code: ErrorCode) -> Self {
        ApiError { code, detail: None, errors: Vec::new(), conflict: None, current_version: None, retry_after: None }
    }

    /// With an English detail.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// 404.
    pub fn not_found() -> Self {
        Self::new(ErrorCode::NotFound)
    }

    /// 403.
    pub fn forbidden() -> Self {
        Self::new(ErrorCode::Forbidden)
    }

    /// 401.
    pub fn unauthenticated(why: &str) -> Self {
        Self::new(ErrorCode::Unauthenticated).detail(why)
    }

    /// 400 naming one field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut e = Self::new(ErrorCode::Validation);
        e.errors.push(FieldError { field: field.into(), message: message.into() });
        e
    }

    /// 400 malformed (unreadable body).
    pub fn malformed(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut e = Self::invalid(field, message);
        e.code = ErrorCode::Malformed;
        e
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The problem body in a language.
    pub fn body(&self, lang: Lang) -> Problem {
        let (en_title, da_title, en_detail, da_detail) = texts(self.code);
        let (title, detail) = match lang {
            Lang::En => (en_title, self.detail.clone().unwrap_or_else(|| en_detail.to_owned())),
            Lang::Da => (da_title, da_detail.to_owned()),
        };
        Problem {
            kind: format!("urn:samskab:problem:{}", self.code.as_str()),
            title: title.to_owned(),
            status: self.status().as_u16(),
            detail,
            code: self.code.as_str().to_owned(),
            errors: self.errors.clone(),
            conflict_with: self.conflict.as_ref().and_then(|c| c.with.clone()),
            ride_ids: self.conflict.as_ref().map(|c| c.ride_ids.clone()).unwrap_or_default(),
        }
    }

    /// The response in a language.
    pub fn into_response_in(self, lang: Lang) -> Response {
        let status = self.status();
        let mut resp = (status, axum::Json(self.body(lang))).into_response();
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        h.insert(header::CONTENT_LANGUAGE, HeaderValue::from_static(if lang == Lang::Da { "da" } else { "en" }));
        if let Some(v) = self.current_version
            && let Ok(etag) = HeaderValue::from_str(&format!("\"{v}\""))
        {
            h.insert(header::ETAG, etag);
        }
        if let Some(s) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}

impl IntoResponse for ApiError {
    /// English; the language middleware rewrites problems for `da` callers.
    fn into_response(self) -> Response {
        let mut resp = self.clone().into_response_in(Lang::En);
        resp.extensions_mut().insert(self);
        resp
    }
}

impl From<RemoteError> for ApiError {
    fn from(r: RemoteError) -> Self {
        let mut e = ApiError::new(r.code);
        if r.code == ErrorCode::Internal {
            return e;
        }
        e.detail = Some(r.message);
        e.errors = r.fields.into_iter().map(|Invalid { field, message }| FieldError { field, message }).collect();
        if let Some(with) = r.metadata.get("conflict_with") {
            e.conflict = Some(Box::new(Conflict { with: Some(with.clone()), ride_ids: Vec::new() }));
        }
        e.current_version = r.metadata.get("current_version").and_then(|v| v.parse().ok());
        e
    }
}

impl From<tonic::Status> for ApiError {
    fn from(s: tonic::Status) -> Self {
        // Our services never answer `Unknown` or `Cancelled` themselves (their errors carry
        // explicit codes); tonic reports a call whose connection broke mid-way (a service
        // process killed or restarting) as one of those. That is the service being
        // unavailable: 503, which clients retry with their idempotency keys, not a 500 or
        // a 408.
        if matches!(s.code(), tonic::Code::Unknown | tonic::Code::Cancelled) {
            tracing::warn!(status = ?s.code(), "a service call broke off");
            return ApiError::new(ErrorCode::Unavailable);
        }
        if s.code() == tonic::Code::Internal {
            tracing::error!(status = ?s.code(), "a service failed");
        }
        ApiError::from(RemoteError::from_status(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_danish_by_quality() {
        let h = |v: &'static str| {
            let mut m = HeaderMap::new();
            m.insert(header::ACCEPT_LANGUAGE, HeaderValue::from_static(v));
            Lang::from_headers(&m)
        };
        assert_eq!(h("da"), Lang::Da);
        assert_eq!(h("da-DK,en;q=0.5"), Lang::Da);
        assert_eq!(h("en;q=0.4,da;q=0.9"), Lang::Da);
        assert_eq!(h("fr, en"), Lang::En);
        assert_eq!(Lang::from_headers(&HeaderMap::new()), Lang::En);
    }

    #[test]
    fn problems_carry_type_code_and_fields() {
        let p = ApiError::invalid("/seats", "must be 1 or 2").body(Lang::En);
        assert_eq!(p.kind, "urn:samskab:problem:validation");
        assert_eq!(p.status, 400);
        assert_eq!(p.errors[0].field, "/seats");
        let da = ApiError::new(ErrorCode::BikeTaken).body(Lang::Da);
        assert_eq!(da.title, "Cyklen er optaget");
    }
}

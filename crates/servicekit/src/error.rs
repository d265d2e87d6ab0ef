//! One error-code enum for the whole product, mapped once to gRPC (here) and once to HTTP
//! (in the gateway): services return [`ServiceError`], which becomes a `tonic::Status`
//! carrying the stable code in `ErrorInfo.reason` and the offending fields in `BadRequest`.

use std::collections::HashMap;

use domain::{DomainError, Invalid};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
use uuid::Uuid;

/// The error domain written into `ErrorInfo`.
pub const ERROR_DOMAIN: &str = "samskab";

pub use domain::ErrorCode;

/// The gRPC status code an error code travels with.
pub fn grpc_code(code: ErrorCode) -> Code {
    use ErrorCode as E;
    match code {
        E::Malformed | E::Validation | E::TooLarge | E::UnsupportedMediaType => Code::InvalidArgument,
        E::Unauthenticated => Code::Unauthenticated,
        E::Forbidden => Code::PermissionDenied,
        E::NotFound => Code::NotFound,
        E::Timeout => Code::DeadlineExceeded,
        E::BikeTaken
        | E::PilotBusy
        | E::ResidentBusy
        | E::IllegalTransition
        | E::IdempotencyInFlight
        | E::InvitationUsed
        | E::PilotAlreadyLinked
        | E::LastAdmin
        | E::ConflictsWithRides
        | E::SeatFree
        | E::CodeLocked => Code::Aborted,
        E::InvitationExpired | E::CodeExpired => Code::FailedPrecondition,
        E::PreconditionFailed
        | E::PreconditionRequired
        | E::OutsideRideHours
        | E::LeadTime
        | E::NotQualified
        | E::PilotSuspended
        | E::BikeOutOfService
        | E::TooManyRiders
        | E::NoConsent
        | E::NotResidentHere
        | E::IdempotencyKeyReused
        | E::LimitReached
        | E::NotOnRoster
        | E::AllRidersAbsent
        | E::OutsideRecordWindow
        | E::CodeWrong => Code::FailedPrecondition,
        E::RateLimited => Code::ResourceExhausted,
        E::Unavailable => Code::Unavailable,
        E::Internal => Code::Internal,
    }
}

/// The reason written into `ErrorInfo` (`BIKE_TAKEN`): upper case, as the richer error model asks.
fn reason_of(code: ErrorCode) -> String {
    code.as_str().replace('-', "_").to_uppercase()
}

/// The code behind an `ErrorInfo.reason`.
pub fn code_of_reason(reason: &str) -> Option<ErrorCode> {
    reason.to_lowercase().replace('_', "-").parse().ok()
}

/// What a service answers when it refuses or fails a call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ServiceError {
    /// Fields of the request are invalid.
    #[error("invalid request: {}", .0.iter().map(|i| i.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Invalid>),
    /// The object does not exist (or is not visible).
    #[error("{0} not found")]
    NotFound(String),
    /// The request conflicts with current state.
    #[error("{message}")]
    Conflict {
        /// Which conflict.
        code: ErrorCode,
        /// For a person.
        message: String,
        /// The other ride, where one exists.
        conflict_with: Option<Uuid>,
    },
    /// A business rule refuses the request.
    #[error("{message}")]
    Rule {
        /// Which rule.
        code: ErrorCode,
        /// For a person.
        message: String,
    },
    /// The caller's expected version (If-Match) is not the object's.
    #[error("the object is at version {current_version}")]
    PreconditionFailed {
        /// The object's version now.
        current_version: u64,
    },
    /// A backing store or service is unavailable.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unexpected failure; the detail is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServiceError {
    /// One invalid field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ServiceError::Invalid(vec![Invalid::new(field, message)])
    }

    /// A broken rule.
    pub fn rule(code: ErrorCode, message: impl Into<String>) -> Self {
        ServiceError::Rule { code, message: message.into() }
    }

    /// A conflict, optionally with the other ride.
    pub fn conflict(code: ErrorCode, message: impl Into<String>, conflict_with: Option<Uuid>) -> Self {
        ServiceError::Conflict { code, message: message.into(), conflict_with }
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        match self {
            ServiceError::Invalid(_) => ErrorCode::Validation,
            ServiceError::NotFound(_) => ErrorCode::NotFound,
            ServiceError::Conflict { code, .. } | ServiceError::Rule { code, .. } => *code,
            ServiceError::PreconditionFailed { .. } => ErrorCode::PreconditionFailed,
            ServiceError::Unavailable(_) => ErrorCode::Unavailable,
            ServiceError::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl From<Invalid> for ServiceError {
    fn from(i: Invalid) -> Self {
        ServiceError::Invalid(vec![i])
    }
}

/// A decider's refusal, as the service answers it.
impl From<DomainError> for ServiceError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Invalid(fields) => ServiceError::Invalid(fields),
            DomainError::NotFound(what) => ServiceError::NotFound(what),
            DomainError::Conflict { code, message, conflict_with } => {
                ServiceError::Conflict { code, message, conflict_with }
            }
            DomainError::Rule { code, message } => ServiceError::Rule { code, message },
            DomainError::PreconditionFailed { current_version } => ServiceError::PreconditionFailed { current_version },
        }
    }
}

impl From<eventlog::Error> for ServiceError {
    fn from(e: eventlog::Error) -> Self {
        match e {
            eventlog::Error::IdempotencyClash { .. } => {
                ServiceError::rule(ErrorCode::IdempotencyKeyReused, "this idempotency key was used for another request")
            }
            eventlog::Error::WrongExpectedVersion { actual, .. } => {
                ServiceError::PreconditionFailed { current_version: actual }
            }
            e if e.is_transient() => ServiceError::Unavailable(e.to_string()),
            other => ServiceError::Internal(other.to_string()),
        }
    }
}

/// A key-store failure: the database behind it being unreachable is unavailability (503,
/// retried with the same key), not an internal error.
impl From<keystore::Error> for ServiceError {
    fn from(e: keystore::Error) -> Self {
        match e {
            keystore::Error::Store(e) => e.into(),
            keystore::Error::Database(e) => eventlog::Error::Database(e).into(),
            other => ServiceError::Internal(other.to_string()),
        }
    }
}

impl From<ServiceError> for Status {
    fn from(e: ServiceError) -> Status {
        let code = e.code();
        let mut details = ErrorDetails::new();
        let mut meta: HashMap<String, String> = HashMap::new();
        let message = match &e {
            ServiceError::Invalid(fields) => {
                for f in fields.iter().take(MAX_FIELDS) {
                    details.add_bad_request_violation(bounded(&f.field), bounded(&f.message));
                }
                bounded(&e.to_string())
            }
            ServiceError::Conflict { conflict_with, message, .. } => {
                if let Some(id) = conflict_with {
                    meta.insert("conflict_with".into(), id.to_string());
                }
                message.clone()
            }
            ServiceError::PreconditionFailed { current_version } => {
                meta.insert("current_version".into(), current_version.to_string());
                e.to_string()
            }
            ServiceError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                "internal error".into()
            }
            _ => e.to_string(),
        };
        details.set_error_info(reason_of(code), ERROR_DOMAIN, meta);
        Status::with_error_details(grpc_code(code), bounded(&message), details)
    }
}

/// At most [`MAX_MESSAGE`] characters of `s`. A status travels in HTTP/2 headers, which
/// have a size limit: a message that echoes a huge input value (a 90 KB "clock time")
/// would break the call and turn a refusal into a 500. Percent-encoded, 200 characters
/// stay under a few kilobytes.
fn bounded(s: &str) -> String {
    match s.char_indices().nth(MAX_MESSAGE) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_owned(),
    }
}

/// The longest message (and field) a status carries, in characters.
const MAX_MESSAGE: usize = 200;

/// The most invalid fields a status lists (the first ones found).
const MAX_FIELDS: usize = 20;

/// What a client learns from a status: the code, the fields, the metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteError {
    /// The stable code (derived from the gRPC code when the status carries none).
    pub code: ErrorCode,
    /// The status message.
    pub message: String,
    /// Offending fields (JSON pointers) and messages.
    pub fields: Vec<Invalid>,
    /// `conflict_with`, `current_version`, ...
    pub metadata: HashMap<String, String>,
}

impl RemoteError {
    /// Reads a status returned by a Samskab service (or by tonic itself).
    pub fn from_status(s: &Status) -> RemoteError {
        let details = s.get_error_details();
        let info = details.error_info();
        let code = info.and_then(|i| code_of_reason(&i.reason)).unwrap_or(match s.code() {
            Code::InvalidArgument => ErrorCode::Validation,
            Code::NotFound => ErrorCode::NotFound,
            Code::DeadlineExceeded | Code::Cancelled => ErrorCode::Timeout,
            Code::Unavailable => ErrorCode::Unavailable,
            Code::PermissionDenied => ErrorCode::Forbidden,
            Code::Unauthenticated => ErrorCode::Unauthenticated,
            _ => ErrorCode::Internal,
        });
        let fields = details
            .bad_request()
            .map(|b| b.field_violations.iter().map(|v| Invalid::new(v.field.clone(), v.description.clone())).collect())
            .unwrap_or_default();
        RemoteError {
            code,
            message: s.message().to_owned(),
            fields,
            metadata: info.map(|i| i.metadata.clone()).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_refusals_travel_bounded() {
        let huge = "ø".repeat(50_000);
        let fields: Vec<Invalid> = (0..100)
            .map(|i| Invalid::new(format!("/rows/{i}/closes"), format!("{huge:?} is not a local time")))
            .collect();
        let s: Status = ServiceError::Invalid(fields).into();
        assert!(s.message().chars().count() <= MAX_MESSAGE + 1);
        let r = RemoteError::from_status(&s);
        assert_eq!(r.code, ErrorCode::Validation);
        assert_eq!(r.fields.len(), MAX_FIELDS);
        assert_eq!(r.fields[0].field, "/rows/0/closes");
        assert!(r.fields.iter().all(|f| f.message.chars().count() <= MAX_MESSAGE + 1));
    }

    #[test]
    fn errors_survive_the_trip_through_a_status() {
        let id = Uuid::now_v7();
        let s: Status = ServiceError::conflict(ErrorCode::BikeTaken, "taken", Some(id)).into();
        assert_eq!(s.code(), Code::Aborted);
        let r = RemoteError::from_status(&s);
        assert_eq!(r.code, ErrorCode::BikeTaken);
        assert_eq!(r.metadata["conflict_with"], id.to_string());

        let s: Status = ServiceError::Invalid(vec![Invalid::new("/seats", "must be 1 or 2")]).into();
        let r = RemoteError::from_status(&s);
        assert_eq!(r.code, ErrorCode::Validation);
        assert_eq!(r.fields, vec![Invalid::new("/seats", "must be 1 or 2")]);

        let s: Status = ServiceError::rule(ErrorCode::NotQualified, "no").into();
        assert_eq!(s.code(), Code::FailedPrecondition);
        assert_eq!(RemoteError::from_status(&s).code, ErrorCode::NotQualified);
        assert_eq!(ErrorCode::NotQualified.http_status(), 422);
    }

    #[test]
    fn internal_details_are_not_sent() {
        let s: Status = ServiceError::Internal("password=hunter2 in query".into()).into();
        assert!(!s.message().contains("hunter2"));
    }

    #[test]
    fn reasons_map_back_to_codes() {
        for code in [ErrorCode::IdempotencyKeyReused, ErrorCode::OutsideRideHours, ErrorCode::NotFound] {
            assert_eq!(code_of_reason(&reason_of(code)), Some(code));
        }
    }
}

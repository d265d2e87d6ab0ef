//! The stable error codes of the API contract and the error every decider returns. No
//! transport here: servicekit maps a code to a gRPC status, the gateway to an HTTP status.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use crate::types::Invalid;

macro_rules! codes {
    ($($variant:ident = $text:literal => $http:literal;)+) => {
        /// The stable error codes of the API contract (`api.md`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $(#[doc = $text] $variant),+
        }

        impl ErrorCode {
            /// Every code.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),+];

            /// The code as clients see it (`bike-taken`).
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $text),+ }
            }

            /// The HTTP status it becomes at the gateway.
            pub fn http_status(self) -> u16 {
                match self { $(ErrorCode::$variant => $http),+ }
            }
        }

        impl FromStr for ErrorCode {
            type Err = ();
            fn from_str(s: &str) -> Result<Self, ()> {
                match s { $($text => Ok(ErrorCode::$variant),)+ _ => Err(()) }
            }
        }
    };
}

codes! {
    Malformed = "malformed" => 400;
    Validation = "validation" => 400;
    Unauthenticated = "unauthenticated" => 401;
    Forbidden = "forbidden" => 403;
    NotFound = "not-found" => 404;
    Timeout = "timeout" => 408;
    BikeTaken = "bike-taken" => 409;
    PilotBusy = "pilot-busy" => 409;
    ResidentBusy = "resident-busy" => 409;
    IllegalTransition = "illegal-transition" => 409;
    IdempotencyInFlight = "idempotency-in-flight" => 409;
    InvitationUsed = "invitation-used" => 409;
    PilotAlreadyLinked = "pilot-already-linked" => 409;
    LastAdmin = "last-admin" => 409;
    ConflictsWithRides = "conflicts-with-rides" => 409;
    SeatFree = "seat-free" => 409;
    InvitationExpired = "invitation-expired" => 410;
    PreconditionFailed = "precondition-failed" => 412;
    TooLarge = "too-large" => 413;
    PreconditionRequired = "precondition-required" => 428;
    UnsupportedMediaType = "unsupported-media-type" => 415;
    OutsideRideHours = "outside-ride-hours" => 422;
    LeadTime = "lead-time" => 422;
    NotQualified = "not-qualified" => 422;
    PilotSuspended = "pilot-suspended" => 422;
    BikeOutOfService = "bike-out-of-service" => 422;
    TooManyRiders = "too-many-riders" => 422;
    NoConsent = "no-consent" => 422;
    NotResidentHere = "not-resident-here" => 422;
    IdempotencyKeyReused = "idempotency-key-reused" => 422;
    LimitReached = "limit-reached" => 422;
    NotOnRoster = "not-on-roster" => 422;
    AllRidersAbsent = "all-riders-absent" => 422;
    OutsideRecordWindow = "outside-record-window" => 422;
    CodeWrong = "code-wrong" => 422;
    CodeExpired = "code-expired" => 410;
    CodeLocked = "code-locked" => 409;
    RateLimited = "rate-limited" => 429;
    Unavailable = "unavailable" => 503;
    Internal = "internal" => 500;
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a decider refuses a command: what a person needs to fix the request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DomainError {
    /// Fields of the command are invalid.
    #[error("invalid request: {}", .0.iter().map(|i| i.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Invalid>),
    /// The object does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The command conflicts with current state (another ride, a finished life cycle).
    #[error("{message}")]
    Conflict {
        /// Which conflict.
        code: ErrorCode,
        /// For a person.
        message: String,
        /// The other ride, where one exists.
        conflict_with: Option<Uuid>,
    },
    /// A business rule refuses the command.
    #[error("{message}")]
    Rule {
        /// Which rule.
        code: ErrorCode,
        /// For a person.
        message: String,
    },
    /// The caller expected another version of the object (If-Match).
    #[error("the object is at version {current_version}")]
    PreconditionFailed {
        /// The object's version now.
        current_version: u64,
    },
}

impl DomainError {
    /// One invalid field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        DomainError::Invalid(vec![Invalid::new(field, message)])
    }

    /// A broken rule.
    pub fn rule(code: ErrorCode, message: impl Into<String>) -> Self {
        DomainError::Rule { code, message: message.into() }
    }

    /// A conflict, optionally with the other ride.
    pub fn conflict(code: ErrorCode, message: impl Into<String>, conflict_with: Option<Uuid>) -> Self {
        DomainError::Conflict { code, message: message.into(), conflict_with }
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        match self {
            DomainError::Invalid(_) => ErrorCode::Validation,
            DomainError::NotFound(_) => ErrorCode::NotFound,
            DomainError::Conflict { code, .. } | DomainError::Rule { code, .. } => *code,
            DomainError::PreconditionFailed { .. } => ErrorCode::PreconditionFailed,
        }
    }
}

impl From<Invalid> for DomainError {
    fn from(i: Invalid) -> Self {
        DomainError::Invalid(vec![i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_read_back_from_their_text() {
        for code in ErrorCode::ALL {
            assert_eq!(code.as_str().parse::<ErrorCode>(), Ok(*code));
        }
        assert_eq!(DomainError::rule(ErrorCode::LeadTime, "x").code().http_status(), 422);
        assert_eq!(DomainError::invalid("/a", "b").code(), ErrorCode::Validation);
    }
}

//! Samskab's domain vocabulary, shared by every service: validated value types
//! ([`types`]), local-time rules in a care home's zone ([`localtime`]), and the events each
//! service publishes ([`events`]), which are the services' public contract; the error codes
//! and [`DomainError`] ([`error`]) and what deciders return ([`decision`]).

pub mod access;
pub mod decision;
pub mod error;
pub mod events;
pub mod localtime;
pub mod types;

pub use decision::{Aggregate, Decision};
pub use error::{DomainError, ErrorCode};
pub use events::{BookingEvent, CareHomeEvent, DomainEvent, VolunteerEvent};
pub use types::Invalid;

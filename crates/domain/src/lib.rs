//! Samskab's domain vocabulary, shared by every service: validated value types
//! ([`types`]), local-time rules in a care home's zone ([`localtime`]), and the events each
//! service publishes ([`events`]), which are the services' public contract.

pub mod events;
pub mod localtime;
pub mod types;

pub use events::{BookingEvent, CareHomeEvent, DomainEvent, VolunteerEvent};
pub use types::Invalid;

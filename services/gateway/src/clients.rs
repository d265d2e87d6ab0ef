//! The gateway's view of the services: gRPC clients with a deadline on every call and the
//! caller's trace context, and the command context each command carries (the caller as
//! actor, the idempotency key scoped to caller and route, If-Match).

use std::time::Duration;

use samskab_proto::booking::v1::booking_service_client::BookingServiceClient;
use samskab_proto::carehome::v1::care_home_service_client::CareHomeServiceClient;
use samskab_proto::common::v1 as common;
use samskab_proto::volunteer::v1::volunteer_service_client::VolunteerServiceClient;
use tonic::transport::Channel;

use crate::caller::Caller;

/// The deadline of a call to a service.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Clients of the three services.
#[derive(Clone)]
pub struct Clients {
    /// Booking.
    pub booking: BookingServiceClient<Channel>,
    /// Care homes.
    pub carehome: CareHomeServiceClient<Channel>,
    /// Volunteers.
    pub volunteer: VolunteerServiceClient<Channel>,
    /// The channels, by service name (for health checks).
    pub channels: Vec<(&'static str, Channel)>,
}

/// Where the services are.
#[derive(Debug, Clone)]
pub struct ServiceUrls {
    /// Booking.
    pub booking: String,
    /// Care homes.
    pub carehome: String,
    /// Volunteers.
    pub volunteer: String,
}

impl Clients {
    /// Lazily connected clients (a service that is down answers 503 until it is back).
    pub fn connect(urls: &ServiceUrls) -> Result<Self, tonic::transport::Error> {
        let (b, c, v) = (
            servicekit::client::channel(&urls.booking)?,
            servicekit::client::channel(&urls.carehome)?,
            servicekit::client::channel(&urls.volunteer)?,
        );
        Ok(Clients {
            booking: BookingServiceClient::new(b.clone()),
            carehome: CareHomeServiceClient::new(c.clone()),
            volunteer: VolunteerServiceClient::new(v.clone()),
            channels: vec![("booking", b), ("carehome", c), ("volunteer", v)],
        })
    }
}

/// A request with the deadline and trace context.
pub fn req<T>(message: T) -> tonic::Request<T> {
    servicekit::client::request(message, DEADLINE)
}

/// The context of a command: the caller as actor; the idempotency key scoped to the route
/// (the services scope it to the actor), so that event ids derive from it; If-Match.
pub fn context(
    caller: &Caller,
    route: &str,
    key: Option<&str>,
    if_match: Option<u64>,
) -> Option<common::CommandContext> {
    Some(common::CommandContext {
        idempotency_key: key.map(|k| format!("{route} {k}")).unwrap_or_default(),
        actor: Some(common::Actor { id: caller.sub.clone(), role: caller.role.name().to_owned() }),
        correlation_id: String::new(),
        expected_version: if_match.unwrap_or(0),
    })
}

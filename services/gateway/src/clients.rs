//! The gateway's view of the services, one typed facade: gRPC clients whose every call
//! carries a deadline and the caller's trace context (added by an interceptor, not at each
//! call site), a single mapping of replies (`NotFound` to "absent", every other status to
//! its problem, in `problem.rs`), and the command context each command carries (the
//! caller as actor, the idempotency key scoped to caller and route, If-Match).

use std::time::Duration;

use samskab_proto::booking::v1::booking_service_client::BookingServiceClient;
use samskab_proto::carehome::v1::care_home_service_client::CareHomeServiceClient;
use samskab_proto::common::v1 as common;
use samskab_proto::common::v1::access_client::AccessClient;
use samskab_proto::common::v1::audit_client::AuditClient;
use samskab_proto::notify::v1::notify_service_client::NotifyServiceClient;
use samskab_proto::volunteer::v1::volunteer_service_client::VolunteerServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::caller::Caller;
use crate::problem::ApiError;

/// The deadline of a call to a service.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Adds the deadline and the current span's `traceparent` to every call.
fn outgoing(mut req: Request<()>) -> Result<Request<()>, Status> {
    servicekit::client::stamp(&mut req, DEADLINE);
    Ok(req)
}

/// A channel whose calls go through [`outgoing`].
pub type Svc = InterceptedService<Channel, fn(Request<()>) -> Result<Request<()>, Status>>;

/// Which service owns an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Rides and ride requests.
    Booking,
    /// Chapters, care homes, trishaws, residents.
    CareHome,
    /// Pilots.
    Volunteer,
}

impl Service {
    /// Its name (health, channels).
    pub fn name(self) -> &'static str {
        match self {
            Service::Booking => "booking",
            Service::CareHome => "carehome",
            Service::Volunteer => "volunteer",
        }
    }
}

/// Clients of the three services. Unary calls only: the event feed's long-lived
/// subscriptions (`feed.rs`) use the channels without a deadline.
#[derive(Clone)]
pub struct Clients {
    booking: Channel,
    carehome: Channel,
    volunteer: Channel,
    /// The notify service (none: the inbox answers 503).
    notify: Option<Channel>,
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
    /// Notify (none: the inbox answers 503 `unavailable`).
    pub notify: Option<String>,
}

fn intercepted(c: &Channel) -> Svc {
    InterceptedService::new(c.clone(), outgoing as fn(Request<()>) -> Result<Request<()>, Status>)
}

impl Clients {
    /// Lazily connected clients (a service that is down answers 503 until it is back).
    pub fn connect(urls: &ServiceUrls) -> Result<Self, tonic::transport::Error> {
        let (b, c, v) = (
            servicekit::client::channel(&urls.booking)?,
            servicekit::client::channel(&urls.carehome)?,
            servicekit::client::channel(&urls.volunteer)?,
        );
        let n = urls.notify.as_deref().map(servicekit::client::channel).transpose()?;
        Ok(Clients { notify: n, ..Clients::from_channels(b, c, v) })
    }

    /// The same over mutual TLS when `tls` is configured (each service must present its
    /// component's certificate).
    pub fn connect_with(urls: &ServiceUrls, tls: &servicekit::tls::TlsConfig) -> Result<Self, String> {
        let (b, c, v) = (
            tls.channel(&urls.booking, "booking")?,
            tls.channel(&urls.carehome, "carehome")?,
            tls.channel(&urls.volunteer, "volunteer")?,
        );
        let n = urls.notify.as_deref().map(|u| tls.channel(u, "notify")).transpose()?;
        Ok(Clients { notify: n, ..Clients::from_channels(b, c, v) })
    }

    /// Clients over channels made elsewhere (in-process tests use tonic's in-memory
    /// transport).
    pub fn from_channels(booking: Channel, carehome: Channel, volunteer: Channel) -> Self {
        Clients { booking, carehome, volunteer, notify: None }
    }

    /// The same with the notify service.
    pub fn with_notify(self, notify: Channel) -> Self {
        Clients { notify: Some(notify), ..self }
    }

    /// The notify service's channel, when this gateway has one (its health check in
    /// `/readyz`; notify serves no event feed, so it is not among [`Clients::channels`]).
    pub fn notify_channel(&self) -> Option<Channel> {
        self.notify.clone()
    }

    /// The raw channels by service name (health checks, the event feed's subscriptions).
    pub fn channels(&self) -> [(&'static str, Channel); 3] {
        [Service::Booking, Service::CareHome, Service::Volunteer].map(|s| (s.name(), self.channel(s).clone()))
    }

    /// Booking.
    pub fn booking(&self) -> BookingServiceClient<Svc> {
        BookingServiceClient::new(intercepted(&self.booking))
    }

    /// Care homes.
    pub fn carehome(&self) -> CareHomeServiceClient<Svc> {
        CareHomeServiceClient::new(intercepted(&self.carehome))
    }

    /// Volunteers.
    pub fn volunteer(&self) -> VolunteerServiceClient<Svc> {
        VolunteerServiceClient::new(intercepted(&self.volunteer))
    }

    /// Notify; 503 `unavailable` when this gateway has none.
    pub fn notify(&self) -> Result<NotifyServiceClient<Svc>, ApiError> {
        let channel = self.notify.as_ref().ok_or_else(|| {
            ApiError::new(servicekit::ErrorCode::Unavailable).detail("notifications are not configured here")
        })?;
        Ok(NotifyServiceClient::new(intercepted(channel)))
    }

    fn channel(&self, service: Service) -> &Channel {
        match service {
            Service::Booking => &self.booking,
            Service::CareHome => &self.carehome,
            Service::Volunteer => &self.volunteer,
        }
    }

    /// A service's audit trails.
    pub fn audit(&self, service: Service) -> AuditClient<Svc> {
        AuditClient::new(intercepted(self.channel(service)))
    }

    /// A service's role grants and invitations (volunteer: pilot links).
    pub fn access(&self, service: Service) -> AccessClient<Svc> {
        AccessClient::new(intercepted(self.channel(service)))
    }
}

/// What a reply becomes: the message, or its problem (every status mapped once, in
/// `problem.rs`); [`Found::found`] turns `NotFound` into `None`.
pub trait Found<T> {
    /// The message; `None` when the service does not know the object.
    fn found(self) -> Result<Option<T>, ApiError>;
    /// The message; 404 when the service does not know the object.
    fn or_404(self) -> Result<T, ApiError>;
    /// The message; any status as its problem.
    fn reply(self) -> Result<T, ApiError>;
}

impl<T> Found<T> for Result<Response<T>, Status> {
    fn found(self) -> Result<Option<T>, ApiError> {
        match self {
            Ok(r) => Ok(Some(r.into_inner())),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
            Err(s) => Err(s.into()),
        }
    }

    fn or_404(self) -> Result<T, ApiError> {
        self.found()?.ok_or_else(ApiError::not_found)
    }

    fn reply(self) -> Result<T, ApiError> {
        self.map(Response::into_inner).map_err(ApiError::from)
    }
}

/// The context of a command: the caller as actor; the idempotency key scoped to the route
/// (the services scope it to the actor), so that event ids derive from it; If-Match.
pub fn context(
    caller: &Caller,
    route: &str,
    key: Option<&str>,
    if_match: Option<u64>,
) -> Option<common::CommandContext> {
    actor_context(&caller.sub, caller.role().name(), route, key, if_match)
}

/// The same for an actor that is not a caller with a role (a person redeeming or erasing
/// themselves acts as `person`).
pub fn actor_context(
    actor: &str,
    role: &str,
    route: &str,
    key: Option<&str>,
    if_match: Option<u64>,
) -> Option<common::CommandContext> {
    Some(common::CommandContext {
        idempotency_key: key.map(|k| format!("{route} {k}")).unwrap_or_default(),
        actor: Some(common::Actor { id: actor.to_owned(), role: role.to_owned() }),
        correlation_id: String::new(),
        expected_version: if_match.unwrap_or(0),
    })
}

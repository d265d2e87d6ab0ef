//! Who may call which gRPC method: one table, one row per method of every service in the
//! descriptor set, naming the components that may call it. The gateway calls the
//! commands, queries, audit and access methods; booking and notify read the other
//! services' event feeds, and notify a pilot's record (its e-mail address, at send time);
//! nobody else calls anything. A method not in the table is
//! refused to everyone, and a test walks every method of every descriptor, so a new method
//! without a row fails the tests.
//!
//! Servers enforce it on every call ([`Policy`]) for callers whose identity they know: a
//! part of the all-in-one names itself on its in-process connection
//! ([`crate::inproc::Peer`]); a separate process is the component its client certificate
//! names, verified by the TLS handshake ([`crate::tls`]). Since only the gateway may call
//! a command, the `actor` of a command context comes from the gateway only. A call over
//! plain TCP carries no identity and is not checked (see `docs/security.md`).
//!
//! The health service is outside the table: anyone who reaches the server may ask it
//! (orchestrators' probes carry no identity), and it tells nothing about the data.

use std::task::{Context, Poll};

use futures_util::future::BoxFuture;

pub use crate::tls::COMPONENTS;

const GATEWAY: &[&str] = &["gateway"];
const FEED_READERS: &[&str] = &["gateway", "booking", "notify"];
/// A pilot's record (its e-mail address): the gateway, and notify at send time.
const GATEWAY_AND_NOTIFY: &[&str] = &["gateway", "notify"];

/// The table: method path → the components that may call it.
pub const POLICY: &[(&str, &[&str])] = &[
    ("/samskab.booking.v1.BookingService/BookRide", GATEWAY),
    ("/samskab.booking.v1.BookingService/ConfirmRide", GATEWAY),
    ("/samskab.booking.v1.BookingService/AddRider", GATEWAY),
    ("/samskab.booking.v1.BookingService/RemoveRider", GATEWAY),
    ("/samskab.booking.v1.BookingService/JoinWaitlist", GATEWAY),
    ("/samskab.booking.v1.BookingService/LeaveWaitlist", GATEWAY),
    ("/samskab.booking.v1.BookingService/CheckInRider", GATEWAY),
    ("/samskab.booking.v1.BookingService/RescheduleRide", GATEWAY),
    ("/samskab.booking.v1.BookingService/CancelRide", GATEWAY),
    ("/samskab.booking.v1.BookingService/StartRide", GATEWAY),
    ("/samskab.booking.v1.BookingService/CompleteRide", GATEWAY),
    ("/samskab.booking.v1.BookingService/MarkNoShow", GATEWAY),
    ("/samskab.booking.v1.BookingService/RecordRide", GATEWAY),
    ("/samskab.booking.v1.BookingService/CorrectRide", GATEWAY),
    ("/samskab.booking.v1.BookingService/GetRide", GATEWAY),
    ("/samskab.booking.v1.BookingService/ListRides", GATEWAY),
    ("/samskab.booking.v1.BookingService/GetAvailability", GATEWAY),
    ("/samskab.booking.v1.BookingService/RequestRide", GATEWAY),
    ("/samskab.booking.v1.BookingService/ClaimRideRequest", GATEWAY),
    ("/samskab.booking.v1.BookingService/WithdrawRideRequest", GATEWAY),
    ("/samskab.booking.v1.BookingService/GetRideRequest", GATEWAY),
    ("/samskab.booking.v1.BookingService/ListRideRequests", GATEWAY),
    ("/samskab.booking.v1.BookingService/RideRequestCandidates", GATEWAY),
    ("/samskab.booking.v1.BookingService/CancelDayForWeather", GATEWAY),
    ("/samskab.booking.v1.BookingService/PlanRideSeries", GATEWAY),
    ("/samskab.booking.v1.BookingService/GetRideSeries", GATEWAY),
    ("/samskab.booking.v1.BookingService/ListRideSeries", GATEWAY),
    ("/samskab.booking.v1.BookingService/CancelRideSeries", GATEWAY),
    ("/samskab.booking.v1.BookingService/ExportRides", GATEWAY),
    ("/samskab.booking.v1.BookingService/ForgetPerson", GATEWAY),
    ("/samskab.booking.v1.BookingService/BrokenRides", GATEWAY),
    ("/samskab.booking.v1.BookingService/Stats", GATEWAY),
    ("/samskab.booking.v1.BookingService/Participation", GATEWAY),
    ("/samskab.booking.v1.BookingService/Reach", GATEWAY),
    ("/samskab.booking.v1.BookingService/ChapterReach", GATEWAY),
    ("/samskab.notify.v1.NotifyService/ListNotices", GATEWAY),
    ("/samskab.notify.v1.NotifyService/MarkNoticeRead", GATEWAY),
    ("/samskab.notify.v1.NotifyService/GetPreferences", GATEWAY),
    ("/samskab.notify.v1.NotifyService/SetPreferences", GATEWAY),
    ("/samskab.notify.v1.NotifyService/Unsubscribe", GATEWAY),
    ("/samskab.notify.v1.NotifyService/SetContact", GATEWAY),
    ("/samskab.notify.v1.NotifyService/ConfirmContact", GATEWAY),
    ("/samskab.notify.v1.NotifyService/VapidPublicKey", GATEWAY),
    ("/samskab.notify.v1.NotifyService/AddPushSubscription", GATEWAY),
    ("/samskab.notify.v1.NotifyService/ListPushSubscriptions", GATEWAY),
    ("/samskab.notify.v1.NotifyService/DeletePushSubscription", GATEWAY),
    ("/samskab.notify.v1.NotifyService/SendInvitation", GATEWAY),
    ("/samskab.notify.v1.NotifyService/ExportRecipients", GATEWAY),
    ("/samskab.notify.v1.NotifyService/EraseRecipient", GATEWAY),
    ("/samskab.carehome.v1.CareHomeService/RegisterChapter", GATEWAY),
    ("/samskab.carehome.v1.CareHomeService/ChangeChapterSettings", GATEWAY),
    ("/samskab.carehome.v1.CareHomeService/GetChapter", GATEWAY),
    ("/samskab.carehome.v1.CareHomeService/RegisterCareHome", GATEWAY),
    ("/samskab.carehome.v1.CareHomeService/ChangeRideHours", GATEWAY),
    ("/samskab.carehome.v1.CareHomeService/CloseCareHome", GATEWAY),
    ("/samskab.carehome.v1.CareHomeService/CorrectCareHome", GATEWAY),
    ("/samskab.carehome.v1.CareHomeService/LiftClosure", GATEWAY),
    ("/samskab.carehome.v1.CareHomeService/CorrectBike", GATEWAY),
    ("/samskab.carehome.v1.CareHomeService/MoveBike", GATEWAY),
    ("/samskab.carehome.v1.CareHomeService/CorrectResident", GATEWAY),
    ("/samskab.carehome.v1.CareHomeService/GetCareHome", GATEWAY),
    ("/samskab.carehome.v1.CareHomeService/ListCareHomes", GATEWAY),
    ("/samskab.carehome.v1.CareHomeService/AssignCoordinator", GATEWAY),
    ("/samskab.carehome.v1.CareHomeService/RemoveCoordinator", GATEWAY),
    ("/samskab.carehome.v1.CareHomeService/CommissionBike", GATEWAY),
    ("/samskab.carehome.v1.CareHomeService/ReportBikeIssue", GATEWAY),
    ("/samskab.carehome.v1.CareHomeService/TakeBikeOutOfService", GATEWAY),
    ("/samskab.carehome.v1.CareHomeService/ReturnBikeToService", GATEWAY),
    ("/samskab.carehome.v1.CareHomeService/RetireBike", GATEWAY),
    ("/samskab.carehome.v1.CareHomeService/GetBike", GATEWAY),
    ("/samskab.carehome.v1.CareHomeService/ListBikes", GATEWAY),
    ("/samskab.carehome.v1.CareHomeService/GetMaintenanceLog", GATEWAY),
    ("/samskab.carehome.v1.CareHomeService/GetConsentCensus", GATEWAY),
    ("/samskab.carehome.v1.CareHomeService/AdmitResident", GATEWAY),
    ("/samskab.carehome.v1.CareHomeService/RecordConsent", GATEWAY),
    ("/samskab.carehome.v1.CareHomeService/WithdrawConsent", GATEWAY),
    ("/samskab.carehome.v1.CareHomeService/MoveOutResident", GATEWAY),
    ("/samskab.carehome.v1.CareHomeService/EraseResident", GATEWAY),
    ("/samskab.carehome.v1.CareHomeService/GetResident", GATEWAY),
    ("/samskab.carehome.v1.CareHomeService/GetResidents", GATEWAY),
    ("/samskab.carehome.v1.CareHomeService/ListResidents", GATEWAY),
    ("/samskab.carehome.v1.CareHomeService/ExportResident", GATEWAY),
    ("/samskab.common.v1.EventFeed/Subscribe", FEED_READERS),
    ("/samskab.common.v1.EventFeed/ReadEvents", FEED_READERS),
    ("/samskab.common.v1.EventFeed/Head", FEED_READERS),
    ("/samskab.common.v1.Audit/Trail", GATEWAY),
    ("/samskab.common.v1.Access/IssueInvitation", GATEWAY),
    ("/samskab.common.v1.Access/GetInvitation", GATEWAY),
    ("/samskab.common.v1.Access/RevokeInvitation", GATEWAY),
    ("/samskab.common.v1.Access/Redeem", GATEWAY),
    ("/samskab.common.v1.Access/PersonGrants", GATEWAY),
    ("/samskab.common.v1.Access/RevokeGrant", GATEWAY),
    ("/samskab.common.v1.Access/GetGrant", GATEWAY),
    ("/samskab.common.v1.Access/ListGrants", GATEWAY),
    ("/samskab.common.v1.Access/ListInvitations", GATEWAY),
    ("/samskab.common.v1.Access/IssueApiKey", GATEWAY),
    ("/samskab.common.v1.Access/GetApiKey", GATEWAY),
    ("/samskab.common.v1.Access/ListApiKeys", GATEWAY),
    ("/samskab.common.v1.Access/RevokeApiKey", GATEWAY),
    ("/samskab.common.v1.Access/CheckApiKey", GATEWAY),
    ("/samskab.volunteer.v1.VolunteerService/RegisterPilot", GATEWAY),
    ("/samskab.volunteer.v1.VolunteerService/QualifyPilot", GATEWAY),
    ("/samskab.volunteer.v1.VolunteerService/SuspendPilot", GATEWAY),
    ("/samskab.volunteer.v1.VolunteerService/ReinstatePilot", GATEWAY),
    ("/samskab.volunteer.v1.VolunteerService/RetirePilot", GATEWAY),
    ("/samskab.volunteer.v1.VolunteerService/DeclareAvailability", GATEWAY),
    ("/samskab.volunteer.v1.VolunteerService/CorrectPilot", GATEWAY),
    ("/samskab.volunteer.v1.VolunteerService/ErasePilot", GATEWAY),
    ("/samskab.volunteer.v1.VolunteerService/GetPilot", GATEWAY_AND_NOTIFY),
    ("/samskab.volunteer.v1.VolunteerService/ListPilots", GATEWAY),
    ("/samskab.volunteer.v1.VolunteerService/ExportPilot", GATEWAY),
];

/// Methods anyone may call (no identity needed).
const OPEN: &[&str] = &["/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"];

/// Whether `caller` (a component) may call the method at `path`.
pub fn may_call(caller: &str, path: &str) -> bool {
    OPEN.contains(&path) || POLICY.iter().any(|(p, callers)| *p == path && callers.contains(&caller))
}

/// The component that made a call: named on an in-process connection, or read from the
/// client certificate a TLS handshake verified (`""` for a certificate of no component).
/// `None` over plain TCP: no identity.
pub fn caller_of<B>(req: &http::Request<B>) -> Option<String> {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    if let Some(crate::inproc::Peer(caller)) = req.extensions().get::<crate::inproc::Peer>() {
        return Some(caller.clone());
    }
    let tls = req.extensions().get::<TlsConnectInfo<TcpConnectInfo>>()?;
    let certs = tls.peer_certs();
    let first = certs.as_ref().and_then(|c| c.first().map(|c| c.to_vec())).unwrap_or_default();
    Some(crate::tls::component_of(&first).unwrap_or_default().to_owned())
}

/// Refuses every call whose caller is known and not allowed by [`POLICY`]
/// (`PERMISSION_DENIED`, naming the caller and the method).
#[derive(Clone, Debug)]
pub struct Policy<S> {
    inner: S,
}

impl<S> Policy<S> {
    /// Around `inner`.
    pub fn new(inner: S) -> Self {
        Policy { inner }
    }
}

impl<S, B> tower::Service<http::Request<B>> for Policy<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>> + Send,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if let Some(caller) = caller_of(&req) {
            let path = req.uri().path();
            if !may_call(&caller, path) {
                tracing::warn!(caller = %caller, rpc = %path, "a call the policy does not allow was refused");
                let status = tonic::Status::permission_denied(format!("{caller:?} may not call {path}"));
                return Box::pin(std::future::ready(Ok(status.into_http())));
            }
        }
        Box::pin(self.inner.call(req))
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn every_method_of_every_service_has_a_row() {
        let fds = prost_types::FileDescriptorSet::decode(samskab_proto::FILE_DESCRIPTOR_SET).unwrap();
        let mut methods = Vec::new();
        for file in &fds.file {
            for service in &file.service {
                for m in &service.method {
                    let path = format!("/{}.{}/{}", file.package(), service.name(), m.name());
                    let callers: Vec<&str> = COMPONENTS.iter().copied().filter(|c| may_call(c, &path)).collect();
                    assert!(!callers.is_empty(), "{path} has no row: add it to servicekit::policy::POLICY");
                    methods.push(path);
                }
            }
        }
        assert!(methods.len() > 70, "only {} methods found", methods.len());
        // And no row names a method that does not exist (a rename leaves none behind).
        for (path, _) in POLICY {
            assert!(methods.iter().any(|m| m == path), "{path} is in the table but in no service");
        }
    }

    #[test]
    fn only_the_gateway_calls_commands_and_queries_and_only_components_read_feeds() {
        let fds = prost_types::FileDescriptorSet::decode(samskab_proto::FILE_DESCRIPTOR_SET).unwrap();
        for file in &fds.file {
            for service in &file.service {
                for m in &service.method {
                    let path = format!("/{}.{}/{}", file.package(), service.name(), m.name());
                    for c in COMPONENTS {
                        let feed = service.name() == "EventFeed";
                        let pilot_record = path == "/samskab.volunteer.v1.VolunteerService/GetPilot";
                        let expected = *c == "gateway"
                            || (feed && ["booking", "notify"].contains(c))
                            || (pilot_record && *c == "notify");
                        assert_eq!(may_call(c, &path), expected, "{c} → {path}");
                    }
                    assert!(!may_call("", &path) && !may_call("intruder", &path), "{path}");
                }
            }
        }
        assert!(may_call("", "/grpc.health.v1.Health/Check"));
        assert!(!may_call("gateway", "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"));
        assert!(!may_call("gateway", "/no.Such/Method") && !may_call("gateway", "garbage"));
    }
}

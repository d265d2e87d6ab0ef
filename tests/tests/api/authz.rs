//! The authorisation matrix: every `/v1` route × every kind of caller × an object in the
//! caller's scope and one in a foreign chapter, each cell asserting its exact status,
//! allowed cells included (they must really succeed, on an object made for them).
//!
//! The callers are relative to "our" chapter A: its chapter admin, the coordinator of the
//! object's care home and of another home in A, the pilot concerned (the ride's pilot, or
//! the pilot itself), another pilot of A, A's integrator; and from outside: no token,
//! admin, the network integrator, and the chapter admin, a coordinator and a pilot of
//! another chapter F. The objects are one in A and one in a third chapter G (foreign to
//! every scoped caller); a foreign object must look exactly like an unknown one.
//!
//! The expectation of a cell comes from a row's two caller lists: `allowed` (may do it on
//! an object of A: 2xx) and `readers` (may read that object: 403 when not allowed, 404
//! otherwise). On a foreign object only admin and the network integrator keep their
//! relation; everyone else gets 404. Without a token: 401.
//!
//! Every cell that expects a refusal, and every read, runs first, in one concurrent batch
//! while nothing else writes, and the three event logs' heads must not move. Then every
//! allowed write runs concurrently, each on a fresh object from a small factory. All
//! mismatches are printed as one table before the assertion.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use e2e::{Reply, System};
use gateway::Role;
use reqwest::Method;
use serde_json::{Value, json};
use testkit::oidc::OidcProvider;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use uuid::Uuid;

testkit::both_backends!(setup = e2e::System::start; every_route_of_the_openapi_document_has_a_row, every_cell_of_the_matrix_answers_as_specified);
/// The matrix again with people signed in at an OpenID Provider and API keys as callers.
mod principals {
    use super::every_cell_answers_alike_for_people_and_api_keys;
    testkit::both_backends!(every_cell_answers_alike_for_people_and_api_keys);
}

/// Cells where the gateway is known to answer against `api.md` and the fix is not the
/// test's to make: (method, path template, caller, object). They are still run and
/// printed; the test fails if one of them starts answering as specified (remove it then).
const KNOWN_GAPS: &[(&str, &str, Who, Obj)] = &[];

/// Who calls, relative to chapter A and the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    NoToken,
    Admin,
    /// The chapter admin of A.
    ChapterAdmin,
    /// The chapter admin of another chapter F.
    ForeignChapterAdmin,
    /// The coordinator of the object's care home (in A).
    Coordinator,
    /// The coordinator of another care home in A.
    SiblingCoordinator,
    /// The coordinator of a care home in F.
    ForeignCoordinator,
    /// The pilot concerned: the ride's pilot, the pilot itself (in A).
    Pilot,
    /// Another pilot of A.
    OtherPilot,
    /// A pilot of F.
    ForeignPilot,
    /// A's integrator.
    Integrator,
    /// The network integrator (`Integrator(None)`).
    NetworkIntegrator,
}
use Who::*;

const CALLERS: [Who; 12] = [
    NoToken,
    Admin,
    ChapterAdmin,
    ForeignChapterAdmin,
    Coordinator,
    SiblingCoordinator,
    ForeignCoordinator,
    Pilot,
    OtherPilot,
    ForeignPilot,
    Integrator,
    NetworkIntegrator,
];

/// Everyone whose scope includes chapter A.
const IN_CHAPTER: &[Who] =
    &[Admin, ChapterAdmin, Coordinator, SiblingCoordinator, Pilot, OtherPilot, Integrator, NetworkIntegrator];
/// Everyone with a token.
const ANYONE: &[Who] = &[
    Admin,
    ChapterAdmin,
    ForeignChapterAdmin,
    Coordinator,
    SiblingCoordinator,
    ForeignCoordinator,
    Pilot,
    OtherPilot,
    ForeignPilot,
    Integrator,
    NetworkIntegrator,
];
const ADMINS: &[Who] = &[Admin, ChapterAdmin];
/// Those who run a care home: its coordinator, its chapter's admin, admin.
const RUNS_HOME: &[Who] = &[Admin, ChapterAdmin, Coordinator];
/// A pilot's record: the pilot itself, its chapter's admin, admin.
const PILOT_SELF: &[Who] = &[Admin, ChapterAdmin, Pilot];
/// A ride: its pilot, its care home's coordinator, its chapter's admin, admin.
const RIDE_PEOPLE: &[Who] = &[Admin, ChapterAdmin, Coordinator, Pilot];
/// Booking and reading availability: the home's people and every pilot of the chapter.
const HOME_AND_PILOTS: &[Who] = &[Admin, ChapterAdmin, Coordinator, Pilot, OtherPilot];
const PILOTS: &[Who] = &[Pilot, OtherPilot];
/// A care home's calendar: the home's people and the chapter's integrators (read only).
const HOME_CALENDAR: &[Who] = &[Admin, ChapterAdmin, Coordinator, Integrator, NetworkIntegrator];
/// A pilot's calendar: the pilot itself, its chapter's admin and integrators.
const PILOT_CALENDAR: &[Who] = &[Admin, ChapterAdmin, Pilot, Integrator, NetworkIntegrator];

/// People with a role grant (integrators stand for API keys, which are no person).
const GRANT_HOLDERS: &[Who] = &[
    Admin,
    ChapterAdmin,
    ForeignChapterAdmin,
    Coordinator,
    SiblingCoordinator,
    ForeignCoordinator,
    Pilot,
    OtherPilot,
    ForeignPilot,
];

/// A well-formed unsubscribe token whose signature does not hold.
fn forged_unsubscribe_token() -> String {
    // base64url of "person:forged\nride.reminder".
    format!("cGVyc29uOmZvcmdlZApyaWRlLnJlbWluZGVy.{}", "0".repeat(64))
}

/// The event feed and webhooks: integrators and admin.
const FEED_READERS: &[Who] = &[Admin, Integrator, NetworkIntegrator];

/// Which object a cell is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Obj {
    /// In chapter A (the caller's scope, for scoped callers of A).
    Own,
    /// In chapter G.
    Foreign,
    /// An id nobody knows (compared with `Foreign`).
    Unknown,
}

/// Every route, by what it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ep {
    ChapterCreate,
    ChapterGet,
    ChapterSettings,
    Weather,
    HomeCreate,
    HomeList,
    HomeGet,
    RideHours,
    Closure,
    CoordinatorAssign,
    CoordinatorRemove,
    BikeCreate,
    BikeList,
    BikeGet,
    BikeIssue,
    BikeOut,
    BikeReturn,
    BikeRetire,
    Maintenance,
    ResidentCreate,
    ResidentList,
    ResidentGet,
    ConsentRecord,
    ConsentWithdraw,
    MoveOut,
    ResidentErase,
    ResidentExport,
    PilotCreate,
    PilotList,
    PilotGet,
    Qualify,
    PilotAvailability,
    Suspend,
    Reinstate,
    PilotRetire,
    PilotErase,
    PilotExport,
    HomeAvailability,
    RideBook,
    RideList,
    RideGet,
    RosterAdd,
    RosterRemove,
    WaitlistAdd,
    WaitlistRemove,
    CheckIn,
    Confirm,
    Start,
    NoShow,
    Reschedule,
    Cancel,
    Complete,
    RequestCreate,
    RequestList,
    RequestGet,
    Claim,
    Withdraw,
    Candidates,
    Stats,
    StatsNetwork,
    ReportPilots,
    ReportRiders,
    ReportRoster,
    ReportCensus,
    ReportMaintenance,
    ExportRides,
    ExportPilots,
    ExportResidents,
    Reach,
    ReachChapter,
    Audit,
    HomeCalendar,
    PilotCalendar,
    CalTokenCreate,
    CalTokenList,
    CalTokenGet,
    CalTokenRevoke,
    Events,
    EventStream,
    WebhookCreate,
    WebhookList,
    WebhookGet,
    WebhookDelete,
    WebhookDeliveries,
    Me,
    InvitationCreate,
    InvitationList,
    InvitationGet,
    InvitationRevoke,
    Redeem,
    GrantList,
    GrantRevoke,
    ApiKeyCreate,
    ApiKeyList,
    ApiKeyGet,
    ApiKeyRevoke,
    MeExport,
    MeErase,
    PersonErase,
    Inbox,
    InboxStream,
    NoticeRead,
    PrefsGet,
    PrefsSet,
    ContactSet,
    ContactConfirm,
    Unsubscribe,
    UnsubscribePage,
    VapidKey,
    PushAdd,
    PushList,
    PushDelete,
    HomePatch,
    ClosureLift,
    BikePatch,
    BikeMove,
    ResidentPatch,
    PilotPatch,
    RideRecord,
    RideCorrect,
    SeriesCreate,
    SeriesList,
    SeriesGet,
    SeriesCancel,
}
use Ep::*;

/// One route of the matrix.
struct Row {
    ep: Ep,
    method: &'static str,
    path: &'static str,
    /// The status of an allowed cell.
    ok: u16,
    /// Who may do it on an object of A.
    allowed: &'static [Who],
    /// Who may read that object (a refusal is 403 for them, 404 for the others).
    readers: &'static [Who],
    /// Whether the route is about an object at all (`POST /v1/chapters` is not).
    scoped: bool,
    /// Whether the object lives at the care home that requires confirmation.
    confirm_home: bool,
    /// Whether it needs no sign-in at all (a public key): `ok` without a token too.
    public: bool,
}

const fn row(
    ep: Ep,
    method: &'static str,
    path: &'static str,
    ok: u16,
    allowed: &'static [Who],
    readers: &'static [Who],
) -> Row {
    Row { ep, method, path, ok, allowed, readers, scoped: true, confirm_home: false, public: false }
}

/// The table. Where `api.md` is silent the decision is written at the row.
fn rows() -> Vec<Row> {
    vec![
        // Creating a chapter concerns no existing object: admin only; for everyone else it
        // is a refusal of the role (403), there being nothing to hide.
        Row { scoped: false, ..row(ChapterCreate, "POST", "/v1/chapters", 201, &[Admin], ANYONE) },
        // Chapters, care homes and trishaws are the chapter's shared, non-personal
        // furniture: anyone of the chapter reads them (pilots pick homes and trishaws,
        // coordinators of neighbouring homes see them, integrators see them in the feed).
        row(ChapterGet, "GET", "/v1/chapters/{id}", 200, IN_CHAPTER, IN_CHAPTER),
        row(ChapterSettings, "PUT", "/v1/chapters/{id}/settings", 200, ADMINS, IN_CHAPTER),
        row(Weather, "POST", "/v1/chapters/{id}/weather-cancellations", 200, ADMINS, IN_CHAPTER),
        // The object of a creation is the chapter (or care home, or trishaw) it names.
        row(HomeCreate, "POST", "/v1/carehomes", 201, ADMINS, IN_CHAPTER),
        row(HomeList, "GET", "/v1/carehomes", 200, IN_CHAPTER, IN_CHAPTER),
        row(HomeGet, "GET", "/v1/carehomes/{id}", 200, IN_CHAPTER, IN_CHAPTER),
        row(RideHours, "PUT", "/v1/carehomes/{id}/ride-hours", 200, RUNS_HOME, IN_CHAPTER),
        row(Closure, "POST", "/v1/carehomes/{id}/closures", 200, RUNS_HOME, IN_CHAPTER),
        // Corrections (api.md → *Corrections*): a care home's details are its chapter
        // admin's; lifting a closure is the home's like closing; a trishaw's details are the
        // home's, moving it between homes the chapter admin's; a resident's are those who
        // run the home; a pilot's the pilot's own and its chapter admin's.
        row(HomePatch, "PATCH", "/v1/carehomes/{id}", 200, ADMINS, IN_CHAPTER),
        row(ClosureLift, "DELETE", "/v1/carehomes/{id}/closures/{closure_id}", 200, RUNS_HOME, IN_CHAPTER),
        row(BikePatch, "PATCH", "/v1/bikes/{id}", 200, RUNS_HOME, IN_CHAPTER),
        row(BikeMove, "POST", "/v1/bikes/{id}/move", 200, ADMINS, IN_CHAPTER),
        row(ResidentPatch, "PATCH", "/v1/residents/{id}", 200, RUNS_HOME, RUNS_HOME),
        row(PilotPatch, "PATCH", "/v1/pilots/{id}", 200, PILOT_SELF, PILOT_SELF),
        // Who coordinates a home is the chapter admin's decision, not the coordinator's.
        row(CoordinatorAssign, "POST", "/v1/carehomes/{id}/coordinators", 200, ADMINS, IN_CHAPTER),
        row(CoordinatorRemove, "DELETE", "/v1/carehomes/{id}/coordinators/{user_id}", 200, ADMINS, IN_CHAPTER),
        row(BikeCreate, "POST", "/v1/carehomes/{id}/bikes", 201, RUNS_HOME, IN_CHAPTER),
        row(BikeList, "GET", "/v1/carehomes/{id}/bikes", 200, IN_CHAPTER, IN_CHAPTER),
        row(BikeGet, "GET", "/v1/bikes/{id}", 200, IN_CHAPTER, IN_CHAPTER),
        // Any pilot of the chapter may report an issue (it may ride the trishaw next);
        // a coordinator only at its own home.
        row(
            BikeIssue,
            "POST",
            "/v1/bikes/{id}/issues",
            200,
            &[Admin, ChapterAdmin, Coordinator, Pilot, OtherPilot],
            IN_CHAPTER,
        ),
        row(BikeOut, "POST", "/v1/bikes/{id}/out-of-service", 200, RUNS_HOME, IN_CHAPTER),
        row(BikeReturn, "POST", "/v1/bikes/{id}/return-to-service", 200, RUNS_HOME, IN_CHAPTER),
        row(BikeRetire, "POST", "/v1/bikes/{id}/retire", 200, RUNS_HOME, IN_CHAPTER),
        // The maintenance log is the home's and the chapter admin's (a report), not the
        // integrators' nor the pilots'.
        row(Maintenance, "GET", "/v1/bikes/{id}/maintenance", 200, RUNS_HOME, IN_CHAPTER),
        // Residents: the home's coordinator, the chapter admin, admin. The care home is
        // readable by the chapter, its residents are not (403 on the home's lists, 404 on
        // a resident).
        row(ResidentCreate, "POST", "/v1/carehomes/{id}/residents", 201, RUNS_HOME, IN_CHAPTER),
        row(ResidentList, "GET", "/v1/carehomes/{id}/residents", 200, RUNS_HOME, IN_CHAPTER),
        row(ResidentGet, "GET", "/v1/residents/{id}", 200, RUNS_HOME, RUNS_HOME),
        row(ConsentRecord, "POST", "/v1/residents/{id}/consent", 200, RUNS_HOME, RUNS_HOME),
        row(ConsentWithdraw, "DELETE", "/v1/residents/{id}/consent", 200, RUNS_HOME, RUNS_HOME),
        row(MoveOut, "POST", "/v1/residents/{id}/move-out", 200, RUNS_HOME, RUNS_HOME),
        row(ResidentErase, "POST", "/v1/residents/{id}/erasure", 200, RUNS_HOME, RUNS_HOME),
        row(ResidentExport, "GET", "/v1/residents/{id}/export", 200, RUNS_HOME, RUNS_HOME),
        // Pilots: the pilot itself and its chapter's admin read; only admins manage. The
        // chapter is readable by its people, its pilot list is not (403).
        row(PilotCreate, "POST", "/v1/pilots", 201, ADMINS, IN_CHAPTER),
        row(PilotList, "GET", "/v1/pilots", 200, ADMINS, IN_CHAPTER),
        row(PilotGet, "GET", "/v1/pilots/{id}", 200, PILOT_SELF, PILOT_SELF),
        row(Qualify, "POST", "/v1/pilots/{id}/qualifications", 200, ADMINS, PILOT_SELF),
        row(PilotAvailability, "PUT", "/v1/pilots/{id}/availability", 200, PILOT_SELF, PILOT_SELF),
        row(Suspend, "POST", "/v1/pilots/{id}/suspend", 200, ADMINS, PILOT_SELF),
        row(Reinstate, "POST", "/v1/pilots/{id}/reinstate", 200, ADMINS, PILOT_SELF),
        row(PilotRetire, "POST", "/v1/pilots/{id}/retire", 200, ADMINS, PILOT_SELF),
        row(PilotErase, "POST", "/v1/pilots/{id}/erasure", 200, ADMINS, PILOT_SELF),
        row(PilotExport, "GET", "/v1/pilots/{id}/export", 200, PILOT_SELF, PILOT_SELF),
        // A coordinator sees its own home's availability only; integrators none.
        row(HomeAvailability, "GET", "/v1/carehomes/{id}/availability", 200, HOME_AND_PILOTS, IN_CHAPTER),
        // Booking on a trishaw of A: a pilot for itself (any pilot of the chapter), the
        // trishaw's home's coordinator, admins. The object is the trishaw.
        row(RideBook, "POST", "/v1/rides", 201, HOME_AND_PILOTS, IN_CHAPTER),
        // Recording a ride after the fact is booking's who on the trishaw (a pilot for
        // itself); correcting a completed ride is its people's, like changing it.
        row(RideRecord, "POST", "/v1/ride-records", 201, HOME_AND_PILOTS, IN_CHAPTER),
        row(RideCorrect, "POST", "/v1/rides/{id}/corrections", 200, RIDE_PEOPLE, RIDE_PEOPLE),
        // The ride list filtered by a home of A: each sees its own rides there (a pilot
        // its own); a neighbouring coordinator and integrators may read the home but not
        // its rides (403).
        row(RideList, "GET", "/v1/rides", 200, HOME_AND_PILOTS, IN_CHAPTER),
        row(RideGet, "GET", "/v1/rides/{id}", 200, RIDE_PEOPLE, RIDE_PEOPLE),
        row(RosterAdd, "POST", "/v1/rides/{id}/roster", 200, RIDE_PEOPLE, RIDE_PEOPLE),
        row(RosterRemove, "DELETE", "/v1/rides/{id}/roster/{resident_id}", 200, RIDE_PEOPLE, RIDE_PEOPLE),
        // A full ride's waitlist is the care home's (its coordinator, the chapter's admins);
        // the ride's pilot sees the ride (403).
        row(WaitlistAdd, "POST", "/v1/rides/{id}/waitlist", 200, RUNS_HOME, RIDE_PEOPLE),
        row(WaitlistRemove, "DELETE", "/v1/rides/{id}/waitlist/{resident_id}", 200, RUNS_HOME, RIDE_PEOPLE),
        row(CheckIn, "POST", "/v1/rides/{id}/roster/{resident_id}/check-in", 200, RIDE_PEOPLE, RIDE_PEOPLE),
        // Confirming is the care home's (and admins'); the pilot reads but may not.
        Row { confirm_home: true, ..row(Confirm, "POST", "/v1/rides/{id}/confirm", 200, RUNS_HOME, RIDE_PEOPLE) },
        // Starting and completing are the pilot's (admins may do everything); the home's
        // coordinator reads but may not.
        row(Start, "POST", "/v1/rides/{id}/start", 200, PILOT_SELF, RIDE_PEOPLE),
        row(NoShow, "POST", "/v1/rides/{id}/no-show", 200, RIDE_PEOPLE, RIDE_PEOPLE),
        row(Reschedule, "POST", "/v1/rides/{id}/reschedule", 200, RIDE_PEOPLE, RIDE_PEOPLE),
        row(Cancel, "POST", "/v1/rides/{id}/cancel", 200, RIDE_PEOPLE, RIDE_PEOPLE),
        row(Complete, "POST", "/v1/rides/{id}/complete", 200, PILOT_SELF, RIDE_PEOPLE),
        // Ride series (api.md → *Scheduling*): planned as a ride is booked (a pilot for
        // itself, on a trishaw of A), listed by a home of A as rides are (a pilot its own),
        // read and cancelled by the people of its rides.
        row(SeriesCreate, "POST", "/v1/ride-series", 201, HOME_AND_PILOTS, IN_CHAPTER),
        row(SeriesList, "GET", "/v1/ride-series", 200, HOME_AND_PILOTS, IN_CHAPTER),
        row(SeriesGet, "GET", "/v1/ride-series/{id}", 200, RIDE_PEOPLE, RIDE_PEOPLE),
        row(SeriesCancel, "POST", "/v1/ride-series/{id}/cancel", 200, RIDE_PEOPLE, RIDE_PEOPLE),
        // Ride requests are asked by the home and read by every pilot of the chapter (they
        // are there to be claimed); a neighbouring coordinator neither reads nor lists them.
        row(RequestCreate, "POST", "/v1/ride-requests", 201, RUNS_HOME, IN_CHAPTER),
        row(RequestList, "GET", "/v1/ride-requests", 200, HOME_AND_PILOTS, IN_CHAPTER),
        row(RequestGet, "GET", "/v1/ride-requests/{id}", 200, HOME_AND_PILOTS, HOME_AND_PILOTS),
        // A claim books the ride for the claiming pilot: only a pilot can claim; admins and
        // the home read the request but may not (403).
        row(Claim, "POST", "/v1/ride-requests/{id}/claim", 200, PILOTS, HOME_AND_PILOTS),
        row(Withdraw, "POST", "/v1/ride-requests/{id}/withdraw", 200, RUNS_HOME, HOME_AND_PILOTS),
        // Candidates (api.md → *Scheduling*) are for whoever finds a pilot for the request:
        // the home's coordinator and the chapter's admin; pilots read the request, not who
        // else could ride it (403).
        row(Candidates, "GET", "/v1/ride-requests/{id}/candidates", 200, RUNS_HOME, HOME_AND_PILOTS),
        // Stats of a care home of A: the chapter's admin and integrator, its coordinator,
        // admin and the network integrator; pilots and a neighbouring coordinator read the
        // home but not its stats (403).
        row(
            Stats,
            "GET",
            "/v1/stats",
            200,
            &[Admin, ChapterAdmin, Coordinator, Integrator, NetworkIntegrator],
            IN_CHAPTER,
        ),
        // The network roll-up concerns no object: admin and the network integrator; for
        // everyone else it is a refusal of the role (403).
        Row {
            scoped: false,
            ..row(StatsNetwork, "GET", "/v1/stats/network", 200, &[Admin, NetworkIntegrator], ANYONE)
        },
        // Reports and CSV exports of a chapter carry names: its admin and admin read them;
        // the rest of the chapter (integrators included) read the chapter, not these (403).
        row(ReportPilots, "GET", "/v1/reports/pilot-participation", 200, ADMINS, IN_CHAPTER),
        row(ReportRiders, "GET", "/v1/reports/rider-participation", 200, ADMINS, IN_CHAPTER),
        row(ReportRoster, "GET", "/v1/reports/volunteer-roster", 200, ADMINS, IN_CHAPTER),
        row(ReportCensus, "GET", "/v1/reports/consent-census", 200, ADMINS, IN_CHAPTER),
        row(ReportMaintenance, "GET", "/v1/reports/maintenance", 200, ADMINS, IN_CHAPTER),
        row(ExportRides, "GET", "/v1/exports/rides.csv", 200, ADMINS, IN_CHAPTER),
        row(ExportPilots, "GET", "/v1/exports/pilots.csv", 200, ADMINS, IN_CHAPTER),
        row(ExportResidents, "GET", "/v1/exports/residents.csv", 200, ADMINS, IN_CHAPTER),
        // The reach report of a care home names its residents: those who run the home.
        row(Reach, "GET", "/v1/reach", 200, RUNS_HOME, IN_CHAPTER),
        // Reach across every home of a chapter (figures only): its admin and admin; the rest
        // of the chapter reads the chapter, not this (403). A second row of the same route,
        // told apart by its query.
        row(ReachChapter, "GET", "/v1/reach?chapter_id=", 200, ADMINS, IN_CHAPTER),
        // The audit trail of an object (here a ride) is its chapter admin's and admin's; the
        // ride's people read the ride but not its trail (403).
        row(Audit, "GET", "/v1/audit", 200, ADMINS, RIDE_PEOPLE),
        // Calendars: pilots and neighbouring coordinators read the home but not its calendar
        // (403); a pilot's calendar is read by those who may read the pilot, and integrators.
        row(HomeCalendar, "GET", "/v1/carehomes/{id}/calendar.ics", 200, HOME_CALENDAR, IN_CHAPTER),
        row(PilotCalendar, "GET", "/v1/pilots/{id}/calendar.ics", 200, PILOT_CALENDAR, PILOT_CALENDAR),
        // A calendar token for a home's calendar: whoever may read that calendar makes one.
        row(CalTokenCreate, "POST", "/v1/calendar-tokens", 201, HOME_CALENDAR, IN_CHAPTER),
        // One's own tokens: anyone with a token lists its own (none here: every call has its own sub).
        Row { scoped: false, ..row(CalTokenList, "GET", "/v1/calendar-tokens", 200, ANYONE, ANYONE) },
        // A token (made by another coordinator of the home): its maker and whoever manages
        // the calendar (the home's coordinator, the chapter admin, admin); 404 for the rest.
        row(CalTokenGet, "GET", "/v1/calendar-tokens/{id}", 200, RUNS_HOME, RUNS_HOME),
        row(CalTokenRevoke, "DELETE", "/v1/calendar-tokens/{id}", 204, RUNS_HOME, RUNS_HOME),
        // The event feed and its stream: integrators and admin; everyone else may not (403).
        Row { scoped: false, ..row(Events, "GET", "/v1/events", 200, FEED_READERS, ANYONE) },
        Row { scoped: false, ..row(EventStream, "GET", "/v1/events/stream", 200, FEED_READERS, ANYONE) },
        // Webhooks: integrators and admin make and list them (others 403).
        Row { scoped: false, ..row(WebhookCreate, "POST", "/v1/webhooks", 201, FEED_READERS, ANYONE) },
        Row { scoped: false, ..row(WebhookList, "GET", "/v1/webhooks", 200, FEED_READERS, ANYONE) },
        // A webhook is its integrator's own: the object here was made by another token of
        // A's integrator (every call has its own sub), so only admin reads it; 404 for the rest.
        row(WebhookGet, "GET", "/v1/webhooks/{id}", 200, &[Admin], &[Admin]),
        row(WebhookDelete, "DELETE", "/v1/webhooks/{id}", 204, &[Admin], &[Admin]),
        row(WebhookDeliveries, "GET", "/v1/webhooks/{id}/deliveries", 200, &[Admin], &[Admin]),
        // People and access. Anyone signed in reads who they are and may redeem a code.
        Row { scoped: false, ..row(Me, "GET", "/v1/me", 200, ANYONE, ANYONE) },
        Row { scoped: false, ..row(Redeem, "POST", "/v1/invitations/redeem", 200, ANYONE, ANYONE) },
        // Inviting a pilot: its chapter's admin, admin; the pilot reads its record but may
        // not invite (403). The object is the pilot record.
        row(InvitationCreate, "POST", "/v1/invitations", 201, ADMINS, PILOT_SELF),
        // Lists by a chapter: those who read the chapter are refused (403), others 404.
        row(InvitationList, "GET", "/v1/invitations", 200, ADMINS, IN_CHAPTER),
        row(GrantList, "GET", "/v1/role-grants", 200, ADMINS, IN_CHAPTER),
        row(ApiKeyCreate, "POST", "/v1/api-keys", 201, ADMINS, IN_CHAPTER),
        row(ApiKeyList, "GET", "/v1/api-keys", 200, ADMINS, IN_CHAPTER),
        // An invitation, a grant, a key: read only by those who manage them; to everyone
        // else an unknown id (404).
        row(InvitationGet, "GET", "/v1/invitations/{id}", 200, ADMINS, ADMINS),
        row(InvitationRevoke, "DELETE", "/v1/invitations/{id}", 200, ADMINS, ADMINS),
        row(GrantRevoke, "DELETE", "/v1/role-grants/{id}", 200, ADMINS, ADMINS),
        row(ApiKeyGet, "GET", "/v1/api-keys/{id}", 200, ADMINS, ADMINS),
        row(ApiKeyRevoke, "DELETE", "/v1/api-keys/{id}", 200, ADMINS, ADMINS),
        // Anyone signed in exports and erases themselves.
        Row { scoped: false, ..row(MeExport, "GET", "/v1/me/export", 200, ANYONE, ANYONE) },
        Row { scoped: false, ..row(MeErase, "DELETE", "/v1/me", 200, ANYONE, ANYONE) },
        // A person who coordinates a home of A: erased by A's chapter admin or admin; to
        // everyone else an unknown id.
        row(PersonErase, "POST", "/v1/people/{id}/erasure", 200, ADMINS, ADMINS),
        // Anyone signed in reads their own inbox; a notification is its recipient's alone
        // (here one of the ride's pilot): to everyone else an unknown id.
        Row { scoped: false, ..row(Inbox, "GET", "/v1/me/notifications", 200, ANYONE, ANYONE) },
        Row { scoped: false, ..row(InboxStream, "GET", "/v1/me/notifications/stream", 200, ANYONE, ANYONE) },
        row(NoticeRead, "POST", "/v1/me/notifications/{id}/read", 200, &[Pilot], &[Pilot]),
        // Preferences and contact details are a person's own, for people with a grant
        // (api.md); an integrator (an API key, or a Samskab token's integrator role) is no
        // person: 403.
        Row { scoped: false, ..row(PrefsGet, "GET", "/v1/me/notification-preferences", 200, GRANT_HOLDERS, ANYONE) },
        Row { scoped: false, ..row(PrefsSet, "PUT", "/v1/me/notification-preferences", 200, GRANT_HOLDERS, ANYONE) },
        Row { scoped: false, ..row(ContactSet, "PUT", "/v1/me/contact", 202, GRANT_HOLDERS, ANYONE) },
        // The code is only in the message sent to the new address: an allowed cell
        // reaches notify, which has nothing waiting on SMS for the caller (404; the cells
        // above set e-mail only). notifications.rs confirms codes' refusals.
        Row { scoped: false, ..row(ContactConfirm, "POST", "/v1/me/contact/confirm", 404, GRANT_HOLDERS, ANYONE) },
        // No sign-in: the signed token in an e-mail's link is the credential, whoever
        // calls. A forged one is 401 for everyone (a valid one is only in e-mails;
        // notifications.rs signs one with notify's key).
        Row { scoped: false, ..row(Unsubscribe, "POST", "/v1/unsubscribe", 401, ANYONE, ANYONE) },
        Row { scoped: false, ..row(UnsubscribePage, "GET", "/v1/unsubscribe", 401, ANYONE, ANYONE) },
        // The VAPID key is public: anyone, signed in or not.
        Row { scoped: false, public: true, ..row(VapidKey, "GET", "/v1/push/vapid-public-key", 200, ANYONE, ANYONE) },
        // Push subscriptions are a person's own, for people with a grant, as contact
        // details are. Each allowed cell adds a browser of its own (the test push services
        // are on loopback, allowed in tests); deleting an id that is not the caller's is 404
        // for every allowed cell (notifications.rs deletes a person's own).
        Row { scoped: false, ..row(PushAdd, "POST", "/v1/me/push-subscriptions", 201, GRANT_HOLDERS, ANYONE) },
        Row { scoped: false, ..row(PushList, "GET", "/v1/me/push-subscriptions", 200, GRANT_HOLDERS, ANYONE) },
        Row {
            scoped: false,
            ..row(PushDelete, "DELETE", "/v1/me/push-subscriptions/{id}", 404, GRANT_HOLDERS, ANYONE)
        },
    ]
}

/// The status a cell must answer.
fn expected(row: &Row, who: Who, obj: Obj) -> u16 {
    if who == NoToken {
        return if row.public { row.ok } else { 401 };
    }
    // On a foreign (or unknown) object only the unscoped callers keep their relation.
    let relation = match obj {
        Obj::Own => Some(who),
        Obj::Foreign if matches!(who, Admin | NetworkIntegrator) => Some(who),
        Obj::Foreign | Obj::Unknown => None,
    };
    match relation {
        Some(w) if row.allowed.contains(&w) => row.ok,
        Some(w) if row.readers.contains(&w) => 403,
        _ => 404,
    }
}

/// The objects of one chapter.
#[derive(Debug, Clone)]
struct Ctx {
    chapter: Uuid,
    /// A care home that books without confirmation, and one that requires it.
    home: Uuid,
    chome: Uuid,
    /// Two-seat trishaws at each.
    bike: Uuid,
    cbike: Uuid,
    /// A qualified pilot.
    pilot: Uuid,
    /// Residents at `home` (with consent), and one at `chome`.
    residents: [Uuid; 2],
    cresident: Uuid,
    /// A booked ride of `pilot` at `home` with `residents[0]`.
    ride: Uuid,
    /// A pending ride of `pilot` at `chome`.
    pending: Uuid,
    /// An open ride request at `home`, and where a claim of it starts.
    request: Uuid,
    request_start: String,
    /// The chapter's settings as read (written back unchanged).
    settings: Value,
    /// A user assigned as coordinator of `home` besides the callers.
    coordinator: String,
    /// A calendar token of `home`'s calendar, made by another user coordinating it.
    cal_token: Uuid,
    /// A webhook made by the chapter's integrator.
    webhook: Uuid,
    /// An open pilot invitation for `pilot`, with its code.
    invitation: Uuid,
    code: String,
    /// A coordinator grant at `home`.
    grant: Uuid,
    /// An API key of the chapter.
    api_key: Uuid,
    /// The person holding `grant`.
    person: Uuid,
    /// A closure of `home` (made fresh for a lifting cell).
    closure: Uuid,
    /// Another care home of the chapter, where a trishaw may move (fresh for a move).
    spare_home: Uuid,
    /// A notification of `pilot` (its ride was booked by someone else).
    notice: Uuid,
    /// A ride series of `pilot` on `bike` (one date).
    series: Uuid,
    /// A resident waiting (or to wait) for a seat on `ride`.
    waiting: Uuid,
}

impl Ctx {
    /// A context of ids nobody knows.
    fn ghost() -> Ctx {
        let n = Uuid::now_v7;
        Ctx {
            chapter: n(),
            home: n(),
            chome: n(),
            bike: n(),
            cbike: n(),
            pilot: n(),
            residents: [n(), n()],
            cresident: n(),
            ride: n(),
            pending: n(),
            request: n(),
            request_start: "2027-06-01T08:00:00Z".into(),
            settings: json!({"lead_time_minutes": 60, "default_turnaround_minutes": 15, "reminder_lead_minutes": []}),
            coordinator: "coord-ghost".into(),
            cal_token: n(),
            webhook: n(),
            invitation: n(),
            code: "inv_unknown".into(),
            grant: n(),
            api_key: n(),
            person: n(),
            closure: n(),
            spare_home: n(),
            notice: n(),
            series: n(),
            waiting: n(),
        }
    }
}

/// Everything the matrix runs against.
struct Matrix {
    own: Ctx,
    foreign: Ctx,
    ghost: Ctx,
    /// Another care home in A, another pilot of A.
    sibling: Uuid,
    other_pilot: Uuid,
    /// Chapter F with a care home and a pilot (the foreign callers).
    f_chapter: Uuid,
    f_home: Uuid,
    f_pilot: Uuid,
    counter: AtomicU32,
    /// When the callers are people signed in at an OpenID Provider (with role grants) and
    /// API keys: the provider, and a credential per role.
    people: Option<People>,
}

/// The credentials of the people-and-keys run: one per role (`{role:?}`).
struct People {
    provider: OidcProvider,
    tokens: HashMap<String, String>,
}

impl Matrix {
    /// A number no other cell uses (slots, dates, user ids).
    fn next(&self) -> u32 {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }

    fn ctx(&self, obj: Obj) -> &Ctx {
        match obj {
            Obj::Own => &self.own,
            Obj::Foreign => &self.foreign,
            Obj::Unknown => &self.ghost,
        }
    }

    /// The caller's role (callers are always relative to chapter A).
    fn role(&self, row: &Row, who: Who) -> Option<Role> {
        let o = &self.own;
        let (home, sibling) = if row.confirm_home { (o.chome, o.home) } else { (o.home, self.sibling) };
        Some(match who {
            NoToken => return None,
            Admin => Role::Admin,
            ChapterAdmin => Role::ChapterAdmin(o.chapter),
            ForeignChapterAdmin => Role::ChapterAdmin(self.f_chapter),
            Coordinator => Role::Coordinator(home),
            SiblingCoordinator => Role::Coordinator(sibling),
            ForeignCoordinator => Role::Coordinator(self.f_home),
            Pilot => Role::Pilot(o.pilot),
            OtherPilot => Role::Pilot(self.other_pilot),
            ForeignPilot => Role::Pilot(self.f_pilot),
            Integrator => Role::Integrator(Some(o.chapter)),
            NetworkIntegrator => Role::Integrator(None),
        })
    }
}

/// The n-th ride slot: 30 minutes inside ride hours, spread over days so concurrent
/// bookings rarely share a schedule stream, never overlapping another slot.
fn slot(n: u32) -> DateTime<Utc> {
    let base = Utc.with_ymd_and_hms(2027, 6, 1, 8, 0, 0).unwrap();
    // 400 days (through July 2028, inside the pilots' qualification) × 7 hours.
    assert!(n < 7 * 400, "out of slots");
    base + chrono::Duration::days(i64::from(n % 400)) + chrono::Duration::hours(i64::from(n / 400))
}

/// The n-th minute-long slot in the past, for rides recorded after the fact (within the
/// pilots' record window, never overlapping another).
fn past(n: u32) -> DateTime<Utc> {
    Utc::now() - chrono::Duration::hours(2) - chrono::Duration::minutes(2 * i64::from(n))
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A day no ride is on (for weather days and closures): from 2029 on.
fn free_day(n: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2029, 1, 1).unwrap() + chrono::Duration::days(i64::from(n))
}

fn hours() -> Value {
    let days = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
    days.iter().map(|d| json!({"weekday": d, "opens": "09:00", "closes": "17:00"})).collect()
}

fn consent() -> Value {
    json!({"given_by": "relative", "given_at": "2026-11-01T10:00:00Z", "scope": ["rides", "stories"]})
}

/// The request of a cell on the objects of `c`.
fn request(m: &Matrix, row: &Row, who: Who, c: &Ctx, n: u32) -> (String, Option<Value>) {
    let (h, r0, r1) = (c.home, c.residents[0], c.residents[1]);
    let start = rfc3339(slot(n));
    let empty = Some(json!({}));
    match row.ep {
        ChapterCreate => ("/v1/chapters".into(), Some(json!({"name": "Odense", "timezone": "Europe/Copenhagen"}))),
        ChapterGet => (format!("/v1/chapters/{}", c.chapter), None),
        ChapterSettings => (format!("/v1/chapters/{}/settings", c.chapter), Some(c.settings.clone())),
        Weather => (
            format!("/v1/chapters/{}/weather-cancellations", c.chapter),
            Some(json!({"date": free_day(n).to_string(), "note": "storm"})),
        ),
        HomeCreate => (
            "/v1/carehomes".into(),
            Some(json!({"chapter_id": c.chapter, "name": "Egehuset", "address": "Egevej 2", "ride_hours": hours(),
                "turnaround_minutes": 15, "requires_confirmation": false})),
        ),
        HomeList => (format!("/v1/carehomes?chapter_id={}", c.chapter), None),
        HomeGet => (format!("/v1/carehomes/{h}"), None),
        RideHours => (format!("/v1/carehomes/{h}/ride-hours"), Some(json!({"ride_hours": hours()}))),
        Closure => {
            let day = free_day(2000 + n);
            let to = day + chrono::Duration::days(1);
            (
                format!("/v1/carehomes/{h}/closures"),
                Some(json!({"from": day.to_string(), "to": to.to_string(), "reason": "painting"})),
            )
        }
        CoordinatorAssign => {
            (format!("/v1/carehomes/{h}/coordinators"), Some(json!({"user_id": format!("coord-{n}")})))
        }
        CoordinatorRemove => (format!("/v1/carehomes/{h}/coordinators/{}", c.coordinator), None),
        BikeCreate => (format!("/v1/carehomes/{h}/bikes"), Some(json!({"name": "Spare", "seats": 1}))),
        BikeList => (format!("/v1/carehomes/{h}/bikes"), None),
        BikeGet => (format!("/v1/bikes/{}", c.bike), None),
        BikeIssue => {
            (format!("/v1/bikes/{}/issues", c.bike), Some(json!({"description": "squeaky bell", "grounding": false})))
        }
        BikeOut => (format!("/v1/bikes/{}/out-of-service", c.bike), Some(json!({"reason": "flat tyre"}))),
        BikeReturn => (format!("/v1/bikes/{}/return-to-service", c.bike), Some(json!({"reason": "new tyre"}))),
        BikeRetire => (format!("/v1/bikes/{}/retire", c.bike), Some(json!({"reason": "worn out"}))),
        Maintenance => (format!("/v1/bikes/{}/maintenance", c.bike), None),
        ResidentCreate => (
            format!("/v1/carehomes/{h}/residents"),
            Some(json!({"display_name": "Karen Blixen", "consent": consent()})),
        ),
        ResidentList => (format!("/v1/carehomes/{h}/residents"), None),
        ResidentGet => (format!("/v1/residents/{r0}"), None),
        ConsentRecord => (format!("/v1/residents/{r0}/consent"), Some(consent())),
        ConsentWithdraw => (format!("/v1/residents/{r0}/consent"), None),
        MoveOut => (format!("/v1/residents/{r0}/move-out"), empty),
        ResidentErase => (format!("/v1/residents/{r0}/erasure"), empty),
        ResidentExport => (format!("/v1/residents/{r0}/export"), None),
        PilotCreate => ("/v1/pilots".into(), Some(json!({"chapter_id": c.chapter, "display_name": "Ny pilot"}))),
        PilotList => (format!("/v1/pilots?chapter_id={}", c.chapter), None),
        PilotGet => (format!("/v1/pilots/{}", c.pilot), None),
        Qualify => (
            format!("/v1/pilots/{}/qualifications", c.pilot),
            Some(json!({"qualified_on": "2026-01-01", "valid_until": "2028-12-31"})),
        ),
        PilotAvailability => {
            (format!("/v1/pilots/{}/availability", c.pilot), Some(json!({"weekly": [], "carehome_ids": []})))
        }
        Suspend => (format!("/v1/pilots/{}/suspend", c.pilot), empty),
        Reinstate => (format!("/v1/pilots/{}/reinstate", c.pilot), empty),
        PilotRetire => (format!("/v1/pilots/{}/retire", c.pilot), empty),
        PilotErase => (format!("/v1/pilots/{}/erasure", c.pilot), empty),
        PilotExport => (format!("/v1/pilots/{}/export", c.pilot), None),
        HomeAvailability => (
            format!(
                "/v1/carehomes/{h}/availability?from=2027-06-01T00:00:00Z&to=2027-06-02T00:00:00Z&duration_minutes=30"
            ),
            None,
        ),
        RideBook => {
            // A pilot books for itself; everyone else for the object's pilot.
            let pilot = match who {
                Pilot => m.own.pilot,
                OtherPilot => m.other_pilot,
                ForeignPilot => m.f_pilot,
                _ => c.pilot,
            };
            (
                "/v1/rides".into(),
                Some(
                    json!({"bike_id": c.bike, "pilot_id": pilot, "start": start, "duration_minutes": 30, "resident_ids": []}),
                ),
            )
        }
        RideRecord => {
            let pilot = match who {
                Pilot => m.own.pilot,
                OtherPilot => m.other_pilot,
                ForeignPilot => m.f_pilot,
                _ => c.pilot,
            };
            let from = past(n);
            (
                "/v1/ride-records".into(),
                Some(json!({"bike_id": c.bike, "pilot_id": pilot, "started_at": rfc3339(from),
                    "ended_at": rfc3339(from + chrono::Duration::minutes(1)), "distance_km": 1.5, "resident_ids": []})),
            )
        }
        RideCorrect => (format!("/v1/rides/{}/corrections", c.ride), Some(json!({"distance_km": 3.5}))),
        SeriesCreate => {
            let pilot = match who {
                Pilot => m.own.pilot,
                OtherPilot => m.other_pilot,
                ForeignPilot => m.f_pilot,
                _ => c.pilot,
            };
            ("/v1/ride-series".into(), Some(series_body(c.bike, pilot, slot(n))))
        }
        SeriesList => (format!("/v1/ride-series?carehome_id={h}"), None),
        SeriesGet => (format!("/v1/ride-series/{}", c.series), None),
        SeriesCancel => (format!("/v1/ride-series/{}/cancel", c.series), Some(json!({"reason": "rider"}))),
        RideList => (format!("/v1/rides?carehome_id={h}"), None),
        RideGet => (format!("/v1/rides/{}", c.ride), None),
        RosterAdd => (format!("/v1/rides/{}/roster", c.ride), Some(json!({"resident_id": r1}))),
        RosterRemove => (format!("/v1/rides/{}/roster/{r0}", c.ride), None),
        WaitlistAdd => (format!("/v1/rides/{}/waitlist", c.ride), Some(json!({"resident_id": c.waiting}))),
        WaitlistRemove => (format!("/v1/rides/{}/waitlist/{}", c.ride, c.waiting), None),
        CheckIn => (format!("/v1/rides/{}/roster/{r0}/check-in", c.ride), empty),
        Confirm => (format!("/v1/rides/{}/confirm", c.pending), empty),
        Start => (format!("/v1/rides/{}/start", c.ride), empty),
        NoShow => (format!("/v1/rides/{}/no-show", c.ride), empty),
        Reschedule => {
            (format!("/v1/rides/{}/reschedule", c.ride), Some(json!({"start": start, "duration_minutes": 30})))
        }
        Cancel => (format!("/v1/rides/{}/cancel", c.ride), Some(json!({"reason": "rider"}))),
        Complete => (
            format!("/v1/rides/{}/complete", c.ride),
            Some(json!({"ended_at": rfc3339(slot(n) + chrono::Duration::minutes(30)), "distance_km": 4.5})),
        ),
        RequestCreate => {
            let end = rfc3339(slot(n) + chrono::Duration::minutes(60));
            (
                "/v1/ride-requests".into(),
                Some(
                    json!({"carehome_id": h, "resident_ids": [r0], "window": {"from": start, "to": end}, "duration_minutes": 30}),
                ),
            )
        }
        RequestList => (format!("/v1/ride-requests?carehome_id={h}"), None),
        RequestGet => (format!("/v1/ride-requests/{}", c.request), None),
        Claim => (
            format!("/v1/ride-requests/{}/claim", c.request),
            Some(json!({"bike_id": c.bike, "start": c.request_start})),
        ),
        Withdraw => (format!("/v1/ride-requests/{}/withdraw", c.request), empty),
        Candidates => (format!("/v1/ride-requests/{}/candidates", c.request), None),
        Stats => (format!("/v1/stats?carehome_id={h}"), None),
        StatsNetwork => ("/v1/stats/network".into(), None),
        ReportPilots => (format!("/v1/reports/pilot-participation?chapter_id={}", c.chapter), None),
        ReportRiders => (format!("/v1/reports/rider-participation?chapter_id={}", c.chapter), None),
        ReportRoster => (format!("/v1/reports/volunteer-roster?chapter_id={}", c.chapter), None),
        ReportCensus => (format!("/v1/reports/consent-census?chapter_id={}", c.chapter), None),
        ReportMaintenance => (format!("/v1/reports/maintenance?chapter_id={}", c.chapter), None),
        ExportRides => (format!("/v1/exports/rides.csv?chapter_id={}", c.chapter), None),
        ExportPilots => (format!("/v1/exports/pilots.csv?chapter_id={}", c.chapter), None),
        ExportResidents => (format!("/v1/exports/residents.csv?chapter_id={}", c.chapter), None),
        Reach => (format!("/v1/reach?carehome_id={h}"), None),
        ReachChapter => (format!("/v1/reach?chapter_id={}", c.chapter), None),
        Audit => (format!("/v1/audit?object_type=ride&object_id={}", c.ride), None),
        HomeCalendar => (format!("/v1/carehomes/{h}/calendar.ics"), None),
        PilotCalendar => (format!("/v1/pilots/{}/calendar.ics", c.pilot), None),
        CalTokenCreate => ("/v1/calendar-tokens".into(), Some(json!({"carehome_id": h}))),
        CalTokenList => ("/v1/calendar-tokens".into(), None),
        CalTokenGet | CalTokenRevoke => (format!("/v1/calendar-tokens/{}", c.cal_token), None),
        HomePatch => (format!("/v1/carehomes/{h}"), Some(json!({"name": format!("Lindehuset {n}")}))),
        ClosureLift => (format!("/v1/carehomes/{h}/closures/{}", c.closure), None),
        BikePatch => (format!("/v1/bikes/{}", c.bike), Some(json!({"name": format!("Karen {n}")}))),
        BikeMove => (format!("/v1/bikes/{}/move", c.bike), Some(json!({"carehome_id": c.spare_home}))),
        ResidentPatch => (format!("/v1/residents/{r0}"), Some(json!({"notes": format!("likes the sea {n}")}))),
        PilotPatch => (format!("/v1/pilots/{}", c.pilot), Some(json!({"phone": format!("+45 70 {n:02}")}))),
        Events => ("/v1/events?limit=5".into(), None),
        // The stream closes itself after a second, so that the cell gets its whole answer.
        EventStream => ("/v1/events/stream?max_seconds=1".into(), None),
        WebhookCreate => {
            ("/v1/webhooks".into(), Some(json!({"url": "http://203.0.113.10/hook", "event_types": ["RideCancelled"]})))
        }
        WebhookList => ("/v1/webhooks".into(), None),
        WebhookGet | WebhookDelete => (format!("/v1/webhooks/{}", c.webhook), None),
        WebhookDeliveries => (format!("/v1/webhooks/{}/deliveries", c.webhook), None),
        Me => ("/v1/me".into(), None),
        Redeem => ("/v1/invitations/redeem".into(), Some(json!({"code": c.code}))),
        InvitationCreate => ("/v1/invitations".into(), Some(json!({"role": "pilot", "pilot_id": c.pilot}))),
        InvitationList => (format!("/v1/invitations?chapter_id={}", c.chapter), None),
        InvitationGet | InvitationRevoke => (format!("/v1/invitations/{}", c.invitation), None),
        GrantList => (format!("/v1/role-grants?chapter_id={}", c.chapter), None),
        GrantRevoke => (format!("/v1/role-grants/{}", c.grant), None),
        ApiKeyCreate => ("/v1/api-keys".into(), Some(json!({"name": "municipality", "chapter_id": c.chapter}))),
        ApiKeyList => (format!("/v1/api-keys?chapter_id={}", c.chapter), None),
        ApiKeyGet | ApiKeyRevoke => (format!("/v1/api-keys/{}", c.api_key), None),
        MeExport => ("/v1/me/export".into(), None),
        MeErase => ("/v1/me".into(), None),
        PersonErase => (format!("/v1/people/{}/erasure", c.person), Some(json!({}))),
        Inbox => ("/v1/me/notifications".into(), None),
        // The stream closes itself after a second, so that the cell gets its whole answer.
        InboxStream => ("/v1/me/notifications/stream?max_seconds=1".into(), None),
        NoticeRead => (format!("/v1/me/notifications/{}/read", c.notice), None),
        PrefsGet => ("/v1/me/notification-preferences".into(), None),
        PrefsSet => (
            "/v1/me/notification-preferences".into(),
            Some(json!({"language": "da", "channels": {"ride.reminder": ["email", "sms"]}})),
        ),
        ContactSet => ("/v1/me/contact".into(), Some(json!({"email": format!("matrix-{n}@example.org")}))),
        ContactConfirm => ("/v1/me/contact/confirm".into(), Some(json!({"channel": "sms", "code": "123456"}))),
        Unsubscribe | UnsubscribePage => (format!("/v1/unsubscribe?token={}", forged_unsubscribe_token()), None),
        VapidKey => ("/v1/push/vapid-public-key".into(), None),
        PushAdd => (
            "/v1/me/push-subscriptions".into(),
            Some(json!({"endpoint": format!("http://127.0.0.1:9/push/matrix-{n}"),
                "keys": {"p256dh": testkit::push::UA_PUBLIC, "auth": testkit::push::AUTH}})),
        ),
        PushList => ("/v1/me/push-subscriptions".into(), None),
        PushDelete => (format!("/v1/me/push-subscriptions/{}", Uuid::now_v7()), None),
    }
}

/// Polls a creation until the services have heard of what it names (a refusal writes
/// nothing, so retrying is safe); panics on anything but the lag's 404/422.
async fn created(s: &System, path: &str, token: &str, body: Value) -> Reply {
    testkit::eventually(&format!("setup: POST {path} to succeed"), testkit::DEFAULT_TIMEOUT, || async {
        let r = s.post(path, token, body.clone()).await;
        if r.status.as_u16() == 201 {
            return Ok(r);
        }
        assert!(matches!(r.status.as_u16(), 404 | 422), "setup: POST {path} answered {}: {}", r.status, r.body);
        Err(format!("{} {}", r.status, r.body))
    })
    .await
}

fn uuid_of(r: &Reply, field: &str) -> Uuid {
    r.str(field).parse().unwrap_or_else(|_| panic!("no {field} in {}", r.body))
}

async fn carehome(s: &System, chapter: Uuid, requires_confirmation: bool) -> Uuid {
    let body = json!({"chapter_id": chapter, "name": "Lindehuset", "address": "Lindevej 1", "ride_hours": hours(),
        "turnaround_minutes": 15, "requires_confirmation": requires_confirmation,
        // The matrix's pilots seat residents; riders.rs covers a home that chooses them.
        "pilots_choose_riders": true});
    uuid_of(&s.post("/v1/carehomes", &s.admin(), body).await.expect(201), "carehome_id")
}

/// Books a ride as admin (waiting for booking to know its parts).
async fn book(s: &System, m: &Matrix, bike: Uuid, pilot: Uuid, residents: &[Uuid]) -> Reply {
    book_as(s, m, &s.admin(), bike, pilot, residents).await
}

/// Books a ride as the pilot itself: at a home that requires confirmation it is pending.
async fn book_pending(s: &System, m: &Matrix, bike: Uuid, pilot: Uuid, residents: &[Uuid]) -> Reply {
    let r = book_as(s, m, &s.token(Role::Pilot(pilot)), bike, pilot, residents).await;
    assert_eq!(r.str("status"), "pending_confirmation");
    r
}

async fn book_as(s: &System, m: &Matrix, token: &str, bike: Uuid, pilot: Uuid, residents: &[Uuid]) -> Reply {
    let body = json!({"bike_id": bike, "pilot_id": pilot, "start": rfc3339(slot(m.next())), "duration_minutes": 30,
        "resident_ids": residents});
    created(s, "/v1/rides", token, body).await
}

/// A series of one date at `start` (its weekday in the chapter's zone, Copenhagen: every
/// slot is in daytime, on the same date there as in UTC).
fn series_body(bike: Uuid, pilot: Uuid, start: DateTime<Utc>) -> Value {
    use chrono::Datelike;
    let days = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
    let weekday = days[start.weekday().num_days_from_monday() as usize];
    json!({"bike_id": bike, "pilot_id": pilot, "start": rfc3339(start), "duration_minutes": 30, "resident_ids": [],
        "recurrence": {"weekdays": [weekday], "count": 1}})
}

/// A ride series of the context's pilot on its trishaw, planned by admin.
async fn series(s: &System, m: &Matrix, c: &Ctx) -> Uuid {
    let r = created(s, "/v1/ride-series", &s.admin(), series_body(c.bike, c.pilot, slot(m.next()))).await;
    uuid_of(&r, "ride_series_id")
}

/// An open ride request at the context's home, and where a claim of it starts.
async fn ride_request(s: &System, m: &Matrix, c: &Ctx) -> (Uuid, String) {
    let start = slot(m.next());
    let body = json!({"carehome_id": c.home, "resident_ids": [c.residents[0]],
        "window": {"from": rfc3339(start), "to": rfc3339(start + chrono::Duration::minutes(60))}, "duration_minutes": 30});
    let r = created(s, "/v1/ride-requests", &s.admin(), body).await;
    (uuid_of(&r, "ride_request_id"), rfc3339(start))
}

/// A chapter with its objects, everything known to booking.
async fn context(s: &System, m: &Matrix) -> Ctx {
    let chapter = s.chapter().await;
    let (home, chome) = (carehome(s, chapter, false).await, carehome(s, chapter, true).await);
    let (bike, cbike) = (s.bike(chapter, home, 2).await, s.bike(chapter, chome, 2).await);
    let pilot = s.pilot(chapter).await;
    let residents = [s.resident(home).await, s.resident(home).await];
    let cresident = s.resident(chome).await;
    let ride = uuid_of(&book(s, m, bike, pilot, &[residents[0]]).await, "ride_id");
    // The second resident rides once too, so booking surely knows them.
    book(s, m, bike, pilot, &[residents[1]]).await;
    // A resident to wait for full rides (riding once, so booking knows them too).
    let waiting = s.resident(home).await;
    book(s, m, bike, pilot, &[waiting]).await;
    let p = book_pending(s, m, cbike, pilot, &[cresident]).await;
    let settings = s.get(&format!("/v1/chapters/{chapter}"), &s.admin()).await.expect(200).body["settings"].clone();
    let mut c = Ctx {
        chapter,
        home,
        chome,
        bike,
        cbike,
        pilot,
        residents,
        cresident,
        ride,
        pending: uuid_of(&p, "ride_id"),
        request: Uuid::nil(),
        request_start: String::new(),
        settings,
        coordinator: String::new(),
        cal_token: Uuid::nil(),
        webhook: Uuid::nil(),
        invitation: Uuid::nil(),
        code: String::new(),
        grant: Uuid::nil(),
        api_key: Uuid::nil(),
        person: Uuid::nil(),
        closure: Uuid::nil(),
        spare_home: home,
        notice: Uuid::nil(),
        series: Uuid::nil(),
        waiting,
    };
    (c.request, c.request_start) = ride_request(s, m, &c).await;
    c.coordinator = coordinator(s, m, &c).await;
    c.cal_token = calendar_token(s, &c).await;
    c.webhook = webhook(s, &c).await;
    (c.invitation, c.code) = invitation(s, &c).await;
    (c.grant, c.person) = grant(s, m, &c).await;
    c.api_key = api_key(s, &c).await;
    c.notice = notice(s, &c).await;
    c.series = series(s, m, &c).await;
    c
}

/// A notification of the context's pilot (notify decides it a moment after the booking).
async fn notice(s: &System, c: &Ctx) -> Uuid {
    let token = s.token(Role::Pilot(c.pilot));
    testkit::eventually("setup: the pilot is notified", testkit::DEFAULT_TIMEOUT, || async {
        let r = s.get("/v1/me/notifications", &token).await.expect(200);
        let items = r.body["items"].as_array().cloned().unwrap_or_default();
        items.first().and_then(|n| n["notification_id"].as_str()?.parse().ok()).ok_or_else(|| "not yet".to_owned())
    })
    .await
}

/// An open pilot invitation for the context's pilot: its id and code.
async fn invitation(s: &System, c: &Ctx) -> (Uuid, String) {
    let r = s.post("/v1/invitations", &s.admin(), json!({"role": "pilot", "pilot_id": c.pilot})).await.expect(201);
    (uuid_of(&r, "invitation_id"), r.str("code"))
}

/// A coordinator grant at the context's home, to a person made up for it: the grant and
/// the person.
async fn grant(s: &System, m: &Matrix, c: &Ctx) -> (Uuid, Uuid) {
    let person = Uuid::now_v7();
    let _ = m.next();
    let path = format!("/v1/carehomes/{}/coordinators", c.home);
    s.post(&path, &s.admin(), json!({"user_id": person.to_string()})).await.expect(200);
    let list = format!("/v1/role-grants?chapter_id={}", c.chapter);
    testkit::eventually("setup: the grant is listed", testkit::DEFAULT_TIMEOUT, || async {
        let r = s.get(&list, &s.admin()).await.expect(200);
        let items = r.body["items"].as_array().cloned().unwrap_or_default();
        items
            .iter()
            .find(|g| g["person_id"] == person.to_string())
            .and_then(|g| g["role_grant_id"].as_str()?.parse().ok())
            .map(|g| (g, person))
            .ok_or_else(|| "not yet".to_owned())
    })
    .await
}

/// An API key of the context's chapter.
async fn api_key(s: &System, c: &Ctx) -> Uuid {
    let r = s.post("/v1/api-keys", &s.admin(), json!({"name": "reports", "chapter_id": c.chapter})).await;
    uuid_of(&r.expect(201), "api_key_id")
}

/// A webhook made by the context's chapter integrator (to a host that never resolves).
async fn webhook(s: &System, c: &Ctx) -> Uuid {
    let body = json!({"url": "http://203.0.113.10/hook", "event_types": ["RideBooked"]});
    let r = s.post("/v1/webhooks", &s.token(Role::Integrator(Some(c.chapter))), body).await;
    uuid_of(&r.expect(201), "webhook_id")
}

/// A calendar token of the context's home, made by a coordinator of it.
async fn calendar_token(s: &System, c: &Ctx) -> Uuid {
    let r = s.post("/v1/calendar-tokens", &s.token(Role::Coordinator(c.home)), json!({"carehome_id": c.home})).await;
    uuid_of(&r.expect(201), "calendar_token_id")
}

/// Assigns one more coordinator to the context's home.
async fn coordinator(s: &System, m: &Matrix, c: &Ctx) -> String {
    let user = format!("coord-{}", m.next());
    s.post(&format!("/v1/carehomes/{}/coordinators", c.home), &s.admin(), json!({"user_id": user})).await.expect(200);
    user
}

/// A fresh object for an allowed write (the shared ones must survive for everyone else).
async fn fresh(s: &System, m: &Matrix, row: &Row, c: &Ctx) -> Ctx {
    let mut c = c.clone();
    let admin = s.admin();
    match row.ep {
        BikeOut | BikeRetire => c.bike = s.bike(c.chapter, c.home, 1).await,
        BikeReturn => {
            c.bike = s.bike(c.chapter, c.home, 1).await;
            s.post(&format!("/v1/bikes/{}/out-of-service", c.bike), &admin, json!({"reason": "brakes"}))
                .await
                .expect(200);
        }
        ConsentRecord | ConsentWithdraw | MoveOut | ResidentErase => c.residents[0] = s.resident(c.home).await,
        Suspend | PilotRetire | PilotErase => c.pilot = s.pilot(c.chapter).await,
        Reinstate => {
            c.pilot = s.pilot(c.chapter).await;
            s.post(&format!("/v1/pilots/{}/suspend", c.pilot), &admin, json!({})).await.expect(200);
        }
        SeriesCancel => c.series = series(s, m, &c).await,
        RosterAdd | CheckIn | Start | NoShow | Reschedule | Cancel => {
            c.ride = uuid_of(&book(s, m, c.bike, c.pilot, &[c.residents[0]]).await, "ride_id");
        }
        RosterRemove => c.ride = uuid_of(&book(s, m, c.bike, c.pilot, &c.residents).await, "ride_id"),
        // A full ride (both seats taken) for the context's waiting resident.
        WaitlistAdd | WaitlistRemove => {
            c.ride = uuid_of(&book(s, m, c.bike, c.pilot, &c.residents).await, "ride_id");
            if row.ep == WaitlistRemove {
                let body = json!({"resident_id": c.waiting});
                s.post(&format!("/v1/rides/{}/waitlist", c.ride), &admin, body).await.expect(200);
            }
        }
        Complete => {
            c.ride = uuid_of(&book(s, m, c.bike, c.pilot, &[c.residents[0]]).await, "ride_id");
            s.post(&format!("/v1/rides/{}/start", c.ride), &admin, json!({})).await.expect(200);
        }
        Confirm => {
            let p = book_pending(s, m, c.cbike, c.pilot, &[c.cresident]).await;
            c.pending = uuid_of(&p, "ride_id");
        }
        Claim | Withdraw => (c.request, c.request_start) = ride_request(s, m, &c).await,
        CoordinatorRemove => c.coordinator = coordinator(s, m, &c).await,
        CalTokenRevoke => c.cal_token = calendar_token(s, &c).await,
        WebhookDelete => c.webhook = webhook(s, &c).await,
        InvitationCreate => c.pilot = s.pilot(c.chapter).await,
        InvitationRevoke => (c.invitation, c.code) = invitation(s, &c).await,
        Redeem => {
            c.pilot = s.pilot(c.chapter).await;
            (c.invitation, c.code) = invitation(s, &c).await;
        }
        GrantRevoke | PersonErase => (c.grant, c.person) = grant(s, m, &c).await,
        ApiKeyRevoke => c.api_key = api_key(s, &c).await,
        RideCorrect => {
            let from = past(m.next());
            let body = json!({"bike_id": c.bike, "pilot_id": c.pilot, "started_at": rfc3339(from),
                "ended_at": rfc3339(from + chrono::Duration::minutes(1)), "distance_km": 1.5, "resident_ids": []});
            c.ride = uuid_of(&created(s, "/v1/ride-records", &admin, body).await, "ride_id");
        }
        ClosureLift => {
            let day = free_day(3000 + m.next());
            let to = day + chrono::Duration::days(1);
            let closure = json!({"from": day.to_string(), "to": to.to_string(), "reason": "painting"});
            let r = s.post(&format!("/v1/carehomes/{}/closures", c.home), &admin, closure).await.expect(200);
            let closures = r.body["closures"].as_array().cloned().unwrap_or_default();
            let mine = closures.iter().find(|x| x["from"] == day.to_string()).expect("the new closure");
            c.closure = mine["closure_id"].as_str().and_then(|id| id.parse().ok()).expect("a closure id");
        }
        // A trishaw without rides moves to a second home of its chapter.
        BikeMove => {
            c.bike = s.bike(c.chapter, c.home, 1).await;
            c.spare_home = s.carehome(c.chapter).await;
        }
        _ => {}
    }
    c
}

/// What a cell answered.
struct Outcome {
    cell: String,
    expected: u16,
    got: u16,
    detail: String,
    known_gap: bool,
}

fn problem_code(status: u16) -> Option<&'static str> {
    match status {
        401 => Some("unauthenticated"),
        403 => Some("forbidden"),
        404 => Some("not-found"),
        _ => None,
    }
}

async fn call(s: &System, m: &Matrix, row: &Row, who: Who, c: &Ctx, n: u32) -> Reply {
    let (path, body) = request(m, row, who, c, n);
    let token = match (&m.people, m.role(row, who)) {
        (_, None) => None,
        (None, Some(role)) => Some(s.token(role)),
        // A person of their own for what concerns the caller alone (erasing themselves
        // would take the role from every other cell).
        // The inbox too: an API key is no person (403; `notifications.rs`), and a
        // notification is only ever its recipient's, so anyone but its pilot is a person who
        // does not have it (404).
        (Some(p), Some(_))
            if matches!(row.ep, Me | MeExport | MeErase | Redeem | Inbox | InboxStream)
                || (row.ep == NoticeRead && who != Pilot) =>
        {
            Some(p.provider.sign_in(&format!("someone-{n}")).await.access_token)
        }
        (Some(p), Some(role)) => Some(p.tokens[&format!("{role:?}")].clone()),
    };
    let method = Method::from_bytes(row.method.as_bytes()).expect("method");
    if method == Method::PATCH
        && let Some(t) = token.as_deref()
    {
        // A correction is a merge patch with If-Match (`*`: whatever the version).
        let body = body.unwrap_or_default().to_string();
        return s.send_raw(method, &path, t, "application/merge-patch+json", body, &[("if-match", "*")]).await;
    }
    s.call(method, &path, token.as_deref(), body).await
}

/// Runs one cell (on a fresh object when it is an allowed write), and for an object
/// answered with 404 also the same request on an unknown id, which must answer the same.
async fn cell(s: &System, m: &Matrix, row: &Row, who: Who, obj: Obj) -> Vec<Outcome> {
    let exp = expected(row, who, obj);
    let allowed_write = exp == row.ok && row.method != "GET";
    let c = if allowed_write { fresh(s, m, row, m.ctx(obj)).await } else { m.ctx(obj).clone() };
    let n = m.next();
    let r = call(s, m, row, who, &c, n).await;
    let name = format!("{:<6} {:<46} {:<20} {:<8}", row.method, row.path, format!("{who:?}"), format!("{obj:?}"));
    let known_gap =
        KNOWN_GAPS.iter().any(|(me, p, w, o)| *me == row.method && *p == row.path && *w == who && *o == obj);
    let got = r.status.as_u16();
    let mut out = Vec::new();
    let code_ok = problem_code(exp).is_none_or(|code| r.code() == code);
    if got != exp || !code_ok || known_gap {
        let detail = format!("{}", r.body).chars().take(160).collect();
        out.push(Outcome { cell: name.clone(), expected: exp, got, detail, known_gap });
    }
    if exp == 404 && row.scoped {
        let u = call(s, m, row, who, m.ctx(Obj::Unknown), n).await;
        if u.status != r.status || u.body != r.body {
            out.push(Outcome {
                cell: format!("{:<6} {:<46} {:<20} Unknown≠{obj:?}", row.method, row.path, format!("{who:?}")),
                expected: got,
                got: u.status.as_u16(),
                detail: format!("{obj:?} {} / unknown {}", r.body, u.body).chars().take(300).collect(),
                known_gap: false,
            });
        }
    }
    out
}

/// Runs cells concurrently (a few at a time).
async fn run(s: &Arc<System>, m: &Arc<Matrix>, cells: Vec<(usize, Who, Obj)>) -> Vec<Outcome> {
    let limit = Arc::new(Semaphore::new(12));
    let mut set = JoinSet::new();
    for (i, who, obj) in cells {
        let (s, m, limit) = (s.clone(), m.clone(), limit.clone());
        set.spawn(async move {
            let _permit = limit.acquire().await.expect("semaphore");
            let rows = rows();
            cell(&s, &m, &rows[i], who, obj).await
        });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        out.extend(r.expect("a cell ran to its end"));
    }
    out
}

async fn every_cell_of_the_matrix_answers_as_specified(s: System) {
    let s = Arc::new(s);
    let m = Arc::new(matrix(&s).await);
    check(&s, &m).await;
}

/// The same matrix with the callers as real principals: people signed in at a real OpenID
/// Provider who hold one role grant each (redeemed invitations; the admin bootstrapped by
/// `samskab invite`), and API keys for the integrators.
async fn every_cell_answers_alike_for_people_and_api_keys(db: testkit::TestDb) {
    let provider = OidcProvider::start().await;
    let issuer = provider.issuer.clone();
    let s = System::start_with(db, move |c| {
        c.http.oidc.issuers = format!("{issuer}|samskab-api");
        c.http.local_tokens = Some("on".into());
    })
    .await;
    let s = Arc::new(s);
    let mut m = matrix(&s).await;
    let roles = [
        Role::Admin,
        Role::ChapterAdmin(m.own.chapter),
        Role::ChapterAdmin(m.f_chapter),
        Role::Coordinator(m.own.home),
        Role::Coordinator(m.own.chome),
        Role::Coordinator(m.sibling),
        Role::Coordinator(m.f_home),
        Role::Pilot(m.own.pilot),
        Role::Pilot(m.other_pilot),
        Role::Pilot(m.f_pilot),
        Role::Integrator(Some(m.own.chapter)),
        Role::Integrator(None),
    ];
    let admin = s.admin();
    let mut tokens = HashMap::new();
    for (i, role) in roles.into_iter().enumerate() {
        let body = match role {
            Role::Admin => None,
            Role::ChapterAdmin(c) => Some(json!({"role": "chapter_admin", "chapter_id": c})),
            Role::Coordinator(h) => Some(json!({"role": "coordinator", "carehome_id": h})),
            Role::Pilot(p) => Some(json!({"role": "pilot", "pilot_id": p})),
            Role::Integrator(scope) => {
                let body = match scope {
                    Some(c) => json!({"name": "matrix", "chapter_id": c}),
                    None => json!({"name": "matrix", "network": true}),
                };
                let key = s.post("/v1/api-keys", &admin, body).await.expect(201).str("key");
                tokens.insert(format!("{role:?}"), key);
                continue;
            }
        };
        let code = match body {
            Some(b) => s.post("/v1/invitations", &admin, b).await.expect(201).str("code"),
            None => {
                let args = samskab::ops::InviteArgs { role: "admin".into(), expires_in_hours: 1 };
                samskab::ops::invite(&s.config, &args).await.expect("invite")
            }
        };
        let token = provider.sign_in(&format!("matrix-{i}")).await.access_token;
        s.post("/v1/invitations/redeem", &token, json!({"code": code})).await.expect(200);
        tokens.insert(format!("{role:?}"), token);
    }
    m.people = Some(People { provider, tokens });
    check(&s, &Arc::new(m)).await;
}

/// The objects the matrix runs against: chapters A (ours), G (foreign) and F (the foreign
/// callers').
async fn matrix(s: &System) -> Matrix {
    let mut m = Matrix {
        own: Ctx::ghost(),
        foreign: Ctx::ghost(),
        ghost: Ctx::ghost(),
        sibling: Uuid::nil(),
        other_pilot: Uuid::nil(),
        f_chapter: Uuid::nil(),
        f_home: Uuid::nil(),
        f_pilot: Uuid::nil(),
        counter: AtomicU32::new(0),
        people: None,
    };
    m.own = context(s, &m).await;
    m.foreign = context(s, &m).await;
    m.sibling = carehome(s, m.own.chapter, false).await;
    m.other_pilot = s.pilot(m.own.chapter).await;
    // Booking must know the other pilot too (it books and claims in allowed cells).
    book(s, &m, m.own.bike, m.other_pilot, &[]).await;
    m.f_chapter = s.chapter().await;
    m.f_home = carehome(s, m.f_chapter, false).await;
    m.f_pilot = s.pilot(m.f_chapter).await;
    m
}

async fn check(s: &Arc<System>, m: &Arc<Matrix>) {
    let (s, m) = (s.clone(), m.clone());
    let rows = rows();
    for r in &rows {
        assert!(r.allowed.iter().all(|w| r.readers.contains(w)), "{}: who may act may read", r.path);
    }
    let (mut refusals, mut writes) = (Vec::new(), Vec::new());
    for (i, r) in rows.iter().enumerate() {
        let objs: &[Obj] = if r.scoped { &[Obj::Own, Obj::Foreign] } else { &[Obj::Own] };
        for &who in &CALLERS {
            for &obj in objs {
                if r.method != "GET" && expected(r, who, obj) == r.ok {
                    writes.push((i, who, obj));
                } else {
                    refusals.push((i, who, obj));
                }
            }
        }
    }
    println!("{} cells refused or read, {} allowed writes", refusals.len(), writes.len());

    // Refusals and reads first, while nothing else writes: they must write nothing.
    let before = s.quiet().await;
    let mut outcomes = run(&s, &m, refusals).await;
    let after = s.heads().await;
    if before != after {
        outcomes.push(Outcome {
            cell: "refused cells and reads wrote to an event log".into(),
            expected: 0,
            got: 0,
            detail: format!("{before:?} → {after:?}"),
            known_gap: false,
        });
    }
    outcomes.extend(run(&s, &m, writes).await);

    let (gaps, mut mismatches): (Vec<_>, Vec<_>) = outcomes.into_iter().partition(|o| o.known_gap);
    for g in &gaps {
        if g.got == g.expected {
            mismatches.push(Outcome {
                cell: format!("{} (in KNOWN_GAPS but now right: remove it)", g.cell),
                expected: g.expected,
                got: g.got,
                detail: g.detail.clone(),
                known_gap: false,
            });
        }
    }
    if !gaps.is_empty() {
        println!("KNOWN GAPS ({}):", gaps.len());
        for g in &gaps {
            println!("  {}  expected {} got {}  {}", g.cell, g.expected, g.got, g.detail);
        }
    }
    mismatches.sort_by(|a, b| a.cell.cmp(&b.cell));
    if !mismatches.is_empty() {
        println!("MISMATCHES ({}): method, route, caller, object, expected, got, body", mismatches.len());
        for o in &mismatches {
            println!("  {}  expected {} got {}  {}", o.cell, o.expected, o.got, o.detail);
        }
    }
    assert!(mismatches.is_empty(), "{} cells of the authorisation matrix differ (table above)", mismatches.len());
}

async fn every_route_of_the_openapi_document_has_a_row(s: System) {
    let doc = s.call(Method::GET, "/openapi.json", None, None).await.expect(200);
    let mut served = BTreeSet::new();
    for (path, item) in doc.body["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "delete", "patch"] {
            if path.starts_with("/v1/") && item.get(method).is_some() {
                served.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    // A route may have more than one row, told apart by a query (`/v1/reach?chapter_id=`):
    // each row once, and the route without its query must be served.
    let rows_once: BTreeSet<(&str, &str)> = rows().iter().map(|r| (r.method, r.path)).collect();
    assert_eq!(rows_once.len(), rows().len(), "a row appears twice in the table");
    let table: BTreeSet<(String, String)> =
        rows().iter().map(|r| (r.method.to_owned(), r.path.split('?').next().unwrap_or(r.path).to_owned())).collect();
    let missing: Vec<_> = served.difference(&table).collect();
    let stale: Vec<_> = table.difference(&served).collect();
    assert!(missing.is_empty(), "routes without a row in the authorisation matrix: {missing:?}");
    assert!(stale.is_empty(), "rows for routes the gateway does not serve: {stale:?}");
}

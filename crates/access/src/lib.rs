//! Who may read what, who sees residents' and pilots' personal data, and who may do what:
//! plain functions over plain facts, in one place, used by every handler of the gateway
//! (and by notifications later). No I/O: the caller's facts ([`Caller`]: role, chapter,
//! suspension, resolved from the records by the gateway) and the object's facts
//! ([`Object`]: the ids that place it in a chapter, a care home, a pilot's hands) are all a
//! rule needs.
//!
//! Three questions:
//! - [`may_read`]: may the caller know the object exists? (No: the API answers 404, so an
//!   object outside a caller's reach looks exactly like an unknown one.)
//! - [`sees_personal`]: may the caller see its personal fields (names, addresses, notes,
//!   stories)? Callers who may read but not this see ids only.
//! - [`may`]: may the caller do `action` to it? (No, while it may read: 403.)

#![deny(missing_docs)]

use uuid::Uuid;

/// A caller's role and scope, as its token states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything.
    Admin,
    /// Everything inside one chapter.
    ChapterAdmin(Uuid),
    /// One care home.
    Coordinator(Uuid),
    /// One pilot.
    Pilot(Uuid),
    /// Read-only: one chapter, or the whole network.
    Integrator(Option<Uuid>),
}

impl Role {
    /// The role's name in tokens.
    pub fn name(&self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::ChapterAdmin(_) => "chapter_admin",
            Role::Coordinator(_) => "coordinator",
            Role::Pilot(_) => "pilot",
            Role::Integrator(_) => "integrator",
        }
    }
}

/// The facts about a caller the rules need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// Role and scope.
    pub role: Role,
    /// The chapter the caller belongs to, from the records (none: admin, network integrator).
    pub chapter: Option<Uuid>,
    /// For pilots: suspended (may read, may not book).
    pub suspended: bool,
}

impl Caller {
    /// Admin, or the chapter admin of `chapter`.
    pub fn admin_of(&self, chapter: Uuid) -> bool {
        matches!(self.role, Role::Admin) || matches!(self.role, Role::ChapterAdmin(c) if c == chapter)
    }

    /// Belongs to `chapter` (admin and network integrators: every chapter).
    pub fn in_chapter(&self, chapter: Uuid) -> bool {
        match self.role {
            Role::Admin | Role::Integrator(None) => true,
            _ => self.chapter == Some(chapter),
        }
    }

    /// Coordinates `carehome`.
    pub fn coordinates(&self, carehome: Uuid) -> bool {
        matches!(self.role, Role::Coordinator(h) if h == carehome)
    }

    /// Is `pilot`.
    pub fn is_pilot(&self, pilot: Uuid) -> bool {
        matches!(self.role, Role::Pilot(p) if p == pilot)
    }

    /// The pilot, for a pilot.
    pub fn pilot(&self) -> Option<Uuid> {
        match self.role {
            Role::Pilot(p) => Some(p),
            _ => None,
        }
    }
}

/// An object a rule is asked about, with the ids that place it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    /// The whole network (network stats, chapter registration).
    Network,
    /// A chapter.
    Chapter(Uuid),
    /// A care home of a chapter.
    CareHome {
        /// The care home.
        id: Uuid,
        /// Its chapter.
        chapter: Uuid,
    },
    /// A trishaw at a care home.
    Bike {
        /// Its care home.
        carehome: Uuid,
        /// Its chapter.
        chapter: Uuid,
    },
    /// A resident of a care home.
    Resident {
        /// Their care home.
        carehome: Uuid,
        /// Its chapter.
        chapter: Uuid,
    },
    /// A pilot of a chapter.
    Pilot {
        /// The pilot.
        id: Uuid,
        /// Their chapter.
        chapter: Uuid,
    },
    /// A ride (or one being booked).
    Ride {
        /// Its chapter.
        chapter: Uuid,
        /// Its care home.
        carehome: Uuid,
        /// Its pilot.
        pilot: Uuid,
    },
    /// A care home's request for a ride.
    RideRequest {
        /// Its chapter.
        chapter: Uuid,
        /// The requesting care home.
        carehome: Uuid,
    },
}

/// Something a caller does to an object (reads are [`may_read`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Book a ride ([`Object::Ride`] as booked): a pilot for itself, the care home's
    /// coordinator, the chapter's admins; never a suspended pilot.
    Book,
    /// Change a ride's roster, reschedule, cancel or mark a no-show: its pilot, its care
    /// home's coordinator, its chapter's admins.
    ChangeRide,
    /// Confirm a ride for the care home: its coordinator, the chapter's admins.
    ConfirmRide,
    /// Start or complete a ride (log what happened): its pilot, the chapter's admins.
    RunRide,
    /// Request a ride for a care home, or withdraw the request: its coordinator, the
    /// chapter's admins.
    RequestRide,
    /// Claim a care home's request: a pilot of the chapter who is not suspended.
    ClaimRequest,
    /// Change a care home, its trishaws or residents (hours, closures, issues, consent):
    /// its coordinator, the chapter's admins.
    Manage,
    /// Administer a chapter (settings, care homes, pilots, coordinators, weather days):
    /// its admins.
    Administer,
    /// Read a chapter's reports and CSV exports (they carry names): its admins.
    ReadReports,
    /// Read an object's audit trail ([`Object::Chapter`] of the object): its admins.
    ReadAudit,
    /// Read a care home's reach report: its coordinator, the chapter's admins; of every
    /// home of a chapter ([`Object::Chapter`]): its admins.
    ReadReach,
    /// Read stats (no personal data): admins, integrators and coordinators of the scope.
    ReadStats,
    /// Read a care home's free slots: the chapter's pilots, its coordinator, the admins.
    ReadAvailability,
    /// Report an issue with a trishaw: the chapter's pilots, its coordinator, the admins.
    ReportIssue,
    /// Read a care home's or a pilot's calendar feed: its coordinator or the pilot itself,
    /// the chapter's admins, the chapter's integrators.
    ReadCalendar,
    /// Issue and revoke calendar tokens of a care home or pilot: its coordinator or the
    /// pilot itself, the chapter's admins.
    ManageCalendar,
}

/// Whether the caller may know the object exists (else the API answers 404).
pub fn may_read(c: &Caller, o: &Object) -> bool {
    match *o {
        Object::Network => matches!(c.role, Role::Admin | Role::Integrator(None)),
        Object::Chapter(chapter) | Object::CareHome { chapter, .. } | Object::Bike { chapter, .. } => {
            c.in_chapter(chapter)
        }
        Object::Resident { carehome, chapter } => c.coordinates(carehome) || c.admin_of(chapter),
        Object::Pilot { id, chapter } => c.is_pilot(id) || c.admin_of(chapter),
        Object::Ride { .. } => sees_personal(c, o),
        Object::RideRequest { chapter, .. } => sees_personal(c, o) || (c.pilot().is_some() && c.in_chapter(chapter)),
    }
}

/// Whether the caller may see the object's personal fields: riders' names, addresses,
/// notes and stories of a ride (its pilot, its care home's coordinator, its chapter's
/// admins); a request's note (the coordinator, the admins); everything it may read of a
/// resident or pilot. Chapters, care homes and trishaws hold no personal data.
pub fn sees_personal(c: &Caller, o: &Object) -> bool {
    match *o {
        Object::Ride { chapter, carehome, pilot } => {
            c.admin_of(chapter) || c.coordinates(carehome) || c.is_pilot(pilot)
        }
        Object::RideRequest { chapter, carehome } => c.coordinates(carehome) || c.admin_of(chapter),
        Object::Resident { .. } | Object::Pilot { .. } => may_read(c, o),
        Object::Network | Object::Chapter(_) | Object::CareHome { .. } | Object::Bike { .. } => may_read(c, o),
    }
}

/// The care home and chapter an object belongs to, if any.
fn place(o: &Object) -> (Option<Uuid>, Option<Uuid>) {
    match *o {
        Object::Network => (None, None),
        Object::Chapter(chapter) => (None, Some(chapter)),
        Object::CareHome { id, chapter } => (Some(id), Some(chapter)),
        Object::Bike { carehome, chapter }
        | Object::Resident { carehome, chapter }
        | Object::Ride { carehome, chapter, .. }
        | Object::RideRequest { carehome, chapter } => (Some(carehome), Some(chapter)),
        Object::Pilot { chapter, .. } => (None, Some(chapter)),
    }
}

/// Whether the caller may do `action` to the object.
pub fn may(c: &Caller, action: Action, o: &Object) -> bool {
    let (home, chapter) = place(o);
    // Admins of the object's chapter; of the network (no chapter), admin alone.
    let admins = chapter.map_or(matches!(c.role, Role::Admin), |ch| c.admin_of(ch));
    let chapter_pilot = c.pilot().is_some() && chapter.is_some_and(|ch| c.in_chapter(ch));
    let chapter_integrator = matches!(c.role, Role::Integrator(_)) && chapter.is_some_and(|ch| c.in_chapter(ch));
    let coordinator = home.is_some_and(|h| c.coordinates(h));
    // The pilot the object is about: a ride's pilot, or the pilot record itself.
    let own_pilot = matches!(*o, Object::Ride { pilot, .. } | Object::Pilot { id: pilot, .. } if c.is_pilot(pilot));
    match action {
        Action::Book => matches!(o, Object::Ride { .. }) && !c.suspended && (own_pilot || coordinator || admins),
        Action::ChangeRide => matches!(o, Object::Ride { .. }) && (own_pilot || coordinator || admins),
        Action::ConfirmRide => matches!(o, Object::Ride { .. }) && (coordinator || admins),
        Action::RunRide => matches!(o, Object::Ride { .. }) && (own_pilot || admins),
        Action::RequestRide => matches!(o, Object::RideRequest { .. }) && (coordinator || admins),
        Action::ClaimRequest => matches!(o, Object::RideRequest { .. }) && !c.suspended && chapter_pilot,
        Action::Manage => coordinator || admins,
        Action::Administer | Action::ReadReports | Action::ReadAudit => admins,
        Action::ReadReach => match o {
            Object::CareHome { .. } => coordinator || admins,
            // Every home of a chapter at once: its admins.
            Object::Chapter(_) => admins,
            _ => false,
        },
        Action::ReadAvailability => matches!(o, Object::CareHome { .. }) && (chapter_pilot || coordinator || admins),
        Action::ReportIssue => matches!(o, Object::Bike { .. }) && (chapter_pilot || coordinator || admins),
        Action::ReadCalendar => match o {
            Object::CareHome { .. } => coordinator || admins || chapter_integrator,
            Object::Pilot { .. } => own_pilot || admins || chapter_integrator,
            _ => false,
        },
        Action::ManageCalendar => match o {
            Object::CareHome { .. } => coordinator || admins,
            Object::Pilot { .. } => own_pilot || admins,
            _ => false,
        },
        Action::ReadStats => match *o {
            Object::Network => matches!(c.role, Role::Admin | Role::Integrator(None)),
            _ => match c.role {
                Role::Admin | Role::Integrator(None) => true,
                Role::ChapterAdmin(ch) | Role::Integrator(Some(ch)) => chapter == Some(ch),
                Role::Coordinator(h) => home == Some(h),
                Role::Pilot(_) => false,
            },
        },
    }
}

/// Why a list is refused: the caller may not know an object it filtered by (404), or may
/// not list there (403).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// As if the object did not exist.
    NotFound,
    /// Known, but not for this caller to list; with a reason to tell it, if any.
    Forbidden(Option<&'static str>),
}

/// The filters a caller gave a list, with the facts that place them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// `?chapter_id=`.
    pub chapter: Option<Uuid>,
    /// `?carehome_id=` and the care home's chapter.
    pub carehome: Option<(Uuid, Uuid)>,
    /// `?pilot_id=`.
    pub pilot: Option<Uuid>,
}

/// What the service is asked to list: the caller's filters narrowed to its scope.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListScope {
    /// Only this chapter.
    pub chapter: Option<Uuid>,
    /// Only this care home.
    pub carehome: Option<Uuid>,
    /// Only this pilot.
    pub pilot: Option<Uuid>,
}

/// Checks the filters every list shares: a chapter or care home the caller may not read
/// is 404; `lists(chapter)` says who else may list there (403 for the rest).
fn filtered(c: &Caller, f: &ListFilter, lists: impl Fn(Uuid) -> bool) -> Result<ListScope, Refusal> {
    let mut scope = ListScope { pilot: f.pilot, ..ListScope::default() };
    if let Some((home, chapter)) = f.carehome {
        if !may_read(c, &Object::CareHome { id: home, chapter }) {
            return Err(Refusal::NotFound);
        }
        if !(c.coordinates(home) || lists(chapter)) {
            return Err(Refusal::Forbidden(None));
        }
        scope.carehome = Some(home);
    }
    if let Some(chapter) = f.chapter {
        if !may_read(c, &Object::Chapter(chapter)) {
            return Err(Refusal::NotFound);
        }
        if !(lists(chapter) || matches!(c.role, Role::Coordinator(_))) {
            return Err(Refusal::Forbidden(None));
        }
        scope.chapter = Some(chapter);
    }
    Ok(scope)
}

/// The rides a caller may list with these filters: a pilot its own (another pilot's id is
/// 404), a coordinator its home's (another home is 403), a chapter admin its chapter's,
/// admin any; integrators none (403).
pub fn ride_list(c: &Caller, f: &ListFilter) -> Result<ListScope, Refusal> {
    let mut scope = filtered(c, f, |chapter| c.admin_of(chapter) || c.pilot().is_some())?;
    match c.role {
        Role::Pilot(me) => {
            if f.pilot.is_some_and(|p| p != me) {
                return Err(Refusal::NotFound);
            }
            scope.pilot = Some(me);
        }
        Role::Coordinator(home) => {
            if f.carehome.is_some_and(|(h, _)| h != home) {
                return Err(Refusal::Forbidden(None));
            }
            scope.carehome = Some(home);
        }
        Role::ChapterAdmin(chapter) => scope.chapter = Some(chapter),
        Role::Admin => {}
        Role::Integrator(_) => return Err(Refusal::Forbidden(None)),
    }
    Ok(scope)
}

/// The ride requests a caller may list: a coordinator its home's, a chapter's pilots and
/// admin the chapter's, admin any; integrators none (403). Pilots are not filtered by pilot.
pub fn request_list(c: &Caller, f: &ListFilter) -> Result<ListScope, Refusal> {
    let mut scope = filtered(c, f, |chapter| c.admin_of(chapter) || c.pilot().is_some())?;
    scope.pilot = None;
    match c.role {
        Role::Coordinator(home) => scope.carehome = Some(home),
        Role::Pilot(_) | Role::ChapterAdmin(_) => scope.chapter = c.chapter,
        Role::Admin => {}
        Role::Integrator(_) => return Err(Refusal::Forbidden(None)),
    }
    Ok(scope)
}

/// The objects a stats query names, each with the ids that place it (the caller must be
/// able to read each one's chapter).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsFilter {
    /// `?chapter_id=`.
    pub chapter: Option<Uuid>,
    /// `?carehome_id=` and its chapter.
    pub carehome: Option<(Uuid, Uuid)>,
    /// `?bike_id=`, its care home and chapter.
    pub bike: Option<(Uuid, Uuid, Uuid)>,
    /// `?pilot_id=` and the pilot's chapter.
    pub pilot: Option<(Uuid, Uuid)>,
}

/// The figures a caller may read with these filters (stats carry no personal data): admin
/// and the network integrator anything; a chapter's admin and integrator their chapter's
/// (the default scope); a coordinator its own care home's (another home of the chapter is
/// 403); pilots none. An object in a chapter the caller may not read is 404.
pub fn stats_scope(c: &Caller, f: &StatsFilter) -> Result<ListScope, Refusal> {
    let chapters = [f.chapter, f.carehome.map(|h| h.1), f.bike.map(|b| b.2), f.pilot.map(|p| p.1)];
    if chapters.into_iter().flatten().any(|ch| !may_read(c, &Object::Chapter(ch))) {
        return Err(Refusal::NotFound);
    }
    let mut scope = ListScope { chapter: f.chapter, carehome: f.carehome.map(|h| h.0), pilot: f.pilot.map(|p| p.0) };
    match c.role {
        Role::Admin | Role::Integrator(None) => {}
        Role::ChapterAdmin(ch) | Role::Integrator(Some(ch)) => scope.chapter = Some(ch),
        Role::Coordinator(home) => {
            if f.carehome.is_some_and(|h| h.0 != home) || f.bike.is_some_and(|b| b.1 != home) {
                return Err(Refusal::Forbidden(Some("a coordinator reads the stats of its own care home only")));
            }
            scope.carehome = Some(home);
        }
        Role::Pilot(_) => return Err(Refusal::Forbidden(Some("pilots do not read stats"))),
    }
    Ok(scope)
}

#[cfg(test)]
mod tests;

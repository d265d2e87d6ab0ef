//! A whole Samskab back end for booking tests: the care-home, volunteer and booking
//! services each on its own database (SQLite files or PostgreSQL schemas) and its own
//! loopback port, talking real gRPC, with helpers that create the world a booking needs.
#![allow(dead_code)]

use std::time::Duration;

use booking::{BookingServer, Peers};
use chrono::{DateTime, Utc};
use eventlog::EventStore;
use keystore::{KeyStore, MasterKey};
use samskab_proto::booking::v1::{self as bpb, booking_service_client::BookingServiceClient};
use samskab_proto::carehome::v1::{self as cpb, care_home_service_client::CareHomeServiceClient};
use samskab_proto::common::v1 as common;
use samskab_proto::volunteer::v1::{self as vpb, volunteer_service_client::VolunteerServiceClient};
use servicekit::server::Spawned;
use testkit::TestDb;
use tonic::transport::Channel;
use uuid::Uuid;

pub struct World {
    pub booking: BookingServiceClient<Channel>,
    pub carehome: CareHomeServiceClient<Channel>,
    pub volunteer: VolunteerServiceClient<Channel>,
    pub booking_store: EventStore,
    pub carehome_store: EventStore,
    pub volunteer_store: EventStore,
    pub server: BookingServer,
    pub carehome_server: Option<Spawned>,
    pub carehome_addr: std::net::SocketAddr,
    pub carehome_service: carehome::CareHomeServer,
    pub booking_server: Spawned,
    pub master: MasterKey,
    pub db: TestDb,
    pub url_options: String,
    _volunteer_server: Spawned,
}

impl World {
    /// The volunteer service's URL.
    pub fn volunteer_url(&self) -> String {
        self._volunteer_server.url()
    }
}

pub fn ctx_as(role: &str) -> Option<common::CommandContext> {
    Some(common::CommandContext {
        idempotency_key: Uuid::new_v4().to_string(),
        actor: Some(common::Actor { id: format!("u-{role}"), role: role.into() }),
        correlation_id: String::new(),
        expected_version: 0,
    })
}

pub fn ctx() -> Option<common::CommandContext> {
    ctx_as("chapter_admin")
}

pub fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

pub fn ts(s: &str) -> Option<prost_types::Timestamp> {
    Some(samskab_proto::time::to_proto(t(s)))
}

impl World {
    pub async fn new(db: TestDb) -> World {
        Self::start(db, MasterKey::generate(), "").await
    }

    /// Stops every service and starts them again on the same databases (read models
    /// resume from their checkpoints, or rebuild if those were removed).
    pub async fn reopen(self) -> World {
        let World { db, master, carehome_server, booking_server, _volunteer_server, url_options, .. } = self;
        if let Some(s) = carehome_server {
            s.stop().await;
        }
        booking_server.stop().await;
        _volunteer_server.stop().await;
        Self::start(db, master, &url_options).await
    }

    /// Starts the three services on `db`'s databases; `url_options` is appended to each
    /// database URL (e.g. `&options=...` for PostgreSQL session settings).
    pub async fn start(db: TestDb, master: MasterKey, url_options: &str) -> World {
        if std::env::var("TEST_LOG").is_ok() {
            std::mem::forget(telemetry::init("booking-test"));
        }
        let url_options = url_options.to_owned();
        let open = |url: String| {
            let url = format!("{url}{url_options}");
            let master = master.clone();
            async move {
                let store = EventStore::connect(&url).await.unwrap();
                let keys = KeyStore::connect(&store, master).await.unwrap();
                (store, keys)
            }
        };
        let (carehome_store, ck) = open(db.sibling("carehome")).await;
        let (volunteer_store, vk) = open(db.sibling("volunteer")).await;
        let (booking_store, bk) = open(db.sibling("booking")).await;
        let ch = carehome::CareHomeServer::start(carehome_store.clone(), ck).await.unwrap();
        let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
        let carehome_server = servicekit::server::spawn(any, ch.routes(), carehome::SERVICE_NAMES).await.unwrap();
        let vol = volunteer::VolunteerServer::start(volunteer_store.clone(), vk).await.unwrap();
        let volunteer_server = servicekit::server::spawn(any, vol.routes(), volunteer::SERVICE_NAMES).await.unwrap();
        let peers = Peers {
            carehome_url: carehome_server.url(),
            volunteer_url: volunteer_server.url(),
            tls: servicekit::tls::TlsConfig::plaintext(),
        };
        let server = BookingServer::start(booking_store.clone(), bk, peers).await.unwrap();
        let booking_server = servicekit::server::spawn(any, server.routes(), booking::SERVICE_NAMES).await.unwrap();
        let chan = |url: String| servicekit::client::channel(&url).unwrap();
        World {
            booking: BookingServiceClient::new(chan(booking_server.url())),
            carehome: CareHomeServiceClient::new(chan(carehome_server.url())),
            volunteer: VolunteerServiceClient::new(chan(volunteer_server.url())),
            carehome_addr: carehome_server.addr,
            carehome_server: Some(carehome_server),
            carehome_service: ch,
            booking_store,
            carehome_store,
            volunteer_store,
            server,
            booking_server,
            master,
            db,
            url_options,
            _volunteer_server: volunteer_server,
        }
    }

    /// Waits until booking has applied every event of both peers' logs (its followers'
    /// cursors reached the peers' last committed events) and worked the cascades they started (no
    /// first-pass row left in its outbox).
    pub async fn settle(&self) {
        testkit::eventually(
            "booking to catch up with its peers and work their cascades",
            Duration::from_secs(20),
            || async {
                // The last committed events, not the heads: on PostgreSQL a head lags while
                // a transaction of another test is open anywhere in the cluster.
                let c = self.carehome_store.last_committed().await.unwrap();
                let v = self.volunteer_store.last_committed().await.unwrap();
                let ok = |s: &booking_feed::Status, head: eventlog::Cursor| {
                    head == eventlog::Cursor::START
                        || s.borrow()
                            .cursor
                            .as_deref()
                            .and_then(|x| x.parse::<eventlog::Cursor>().ok())
                            .is_some_and(|x| x >= head)
                };
                if !(ok(&self.server.carehome_feed, c) && ok(&self.server.volunteer_feed, v)) {
                    return Err(format!(
                        "carehome at {c}, its follower {:?}; volunteer at {v}, its follower {:?}",
                        *self.server.carehome_feed.borrow(),
                        *self.server.volunteer_feed.borrow()
                    ));
                }
                let due = self.booking_store.fetch_i64("SELECT COUNT(*) FROM booking_outbox WHERE pass = 0", &[]).await;
                match due.unwrap().unwrap_or(0) {
                    0 => Ok(()),
                    n => Err(format!("{n} cascades not yet worked")),
                }
            },
        )
        .await;
    }

    pub async fn chapter(&mut self) -> Uuid {
        let c = self
            .carehome
            .register_chapter(cpb::RegisterChapterRequest {
                context: ctx_as("admin"),
                name: "Aarhus".into(),
                timezone: "Europe/Copenhagen".into(),
                settings: Some(cpb::ChapterSettings {
                    lead_time_minutes: 60,
                    default_turnaround_minutes: 15,
                    reminder_lead_minutes: vec![60],
                    ..Default::default()
                }),
            })
            .await
            .unwrap()
            .into_inner();
        c.chapter_id.parse().unwrap()
    }

    pub async fn home(&mut self, chapter: Uuid, requires_confirmation: bool) -> Uuid {
        let days = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
        let h = self
            .carehome
            .register_care_home(cpb::RegisterCareHomeRequest {
                context: ctx(),
                chapter_id: chapter.to_string(),
                name: "Lindehuset".into(),
                address: "Lindevej 1, Aarhus".into(),
                timezone: String::new(),
                ride_hours: days
                    .iter()
                    .map(|d| cpb::RideHours { weekday: (*d).into(), opens: "09:00".into(), closes: "17:00".into() })
                    .collect(),
                turnaround_minutes: 15,
                requires_confirmation,
                // These suites test the booking rules with pilots as actors.
                pilots_choose_riders: true,
            })
            .await
            .unwrap()
            .into_inner();
        h.carehome_id.parse().unwrap()
    }

    pub async fn bike(&mut self, home: Uuid, seats: u32) -> Uuid {
        let b = self
            .carehome
            .commission_bike(cpb::CommissionBikeRequest {
                context: ctx(),
                carehome_id: home.to_string(),
                name: "Trishaw".into(),
                bike_type: String::new(),
                seats,
            })
            .await
            .unwrap()
            .into_inner();
        b.bike_id.parse().unwrap()
    }

    pub async fn resident(&mut self, home: Uuid, scope: &[&str]) -> Uuid {
        let r = self
            .carehome
            .admit_resident(cpb::AdmitResidentRequest {
                context: ctx_as("coordinator"),
                carehome_id: home.to_string(),
                display_name: "Ærø Østergård".into(),
                notes: "loves the harbour".into(),
                consent: Some(cpb::Consent {
                    given_by: "relative".into(),
                    given_at: "2026-11-01T10:00:00Z".into(),
                    scope: scope.iter().map(|s| (*s).into()).collect(),
                }),
            })
            .await
            .unwrap()
            .into_inner();
        r.resident_id.parse().unwrap()
    }

    pub async fn pilot_until(&mut self, chapter: Uuid, valid_until: &str) -> Uuid {
        self.pilot_with(chapter, valid_until, "Pilot", "").await
    }

    /// A pilot with a name and an e-mail address on the record, qualified until `valid_until`.
    pub async fn pilot_with(&mut self, chapter: Uuid, valid_until: &str, name: &str, email: &str) -> Uuid {
        let p = self
            .volunteer
            .register_pilot(vpb::RegisterPilotRequest {
                context: ctx(),
                chapter_id: chapter.to_string(),
                display_name: name.into(),
                email: email.into(),
                phone: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        self.volunteer
            .qualify_pilot(vpb::QualifyPilotRequest {
                context: ctx(),
                pilot_id: p.pilot_id.clone(),
                qualification: Some(vpb::Qualification {
                    bike_type: "trishaw".into(),
                    qualified_on: "2026-01-01".into(),
                    valid_until: valid_until.into(),
                    ..Default::default()
                }),
            })
            .await
            .unwrap();
        p.pilot_id.parse().unwrap()
    }

    pub async fn pilot(&mut self, chapter: Uuid) -> Uuid {
        self.pilot_until(chapter, "2028-12-31").await
    }

    /// A chapter with one care home, one two-seat trishaw and one pilot, all known to booking.
    pub async fn basic(&mut self) -> Basic {
        let chapter = self.chapter().await;
        let home = self.home(chapter, false).await;
        let bike = self.bike(home, 2).await;
        let pilot = self.pilot(chapter).await;
        Basic { chapter, home, bike, pilot }
    }

    pub fn book_req(
        &self,
        bike: Uuid,
        pilot: Uuid,
        start: &str,
        minutes: u32,
        riders: &[Uuid],
    ) -> bpb::BookRideRequest {
        bpb::BookRideRequest {
            context: ctx(),
            bike_id: bike.to_string(),
            pilot_id: pilot.to_string(),
            start: ts(start),
            duration_minutes: minutes,
            resident_ids: riders.iter().map(Uuid::to_string).collect(),
            ..Default::default()
        }
    }

    pub async fn book(
        &mut self,
        bike: Uuid,
        pilot: Uuid,
        start: &str,
        minutes: u32,
        riders: &[Uuid],
    ) -> Result<bpb::Ride, tonic::Status> {
        let req = self.book_req(bike, pilot, start, minutes, riders);
        self.booking.book_ride(req).await.map(|r| r.into_inner().ride.unwrap())
    }

    /// A coordinator's request for `residents` in the window [from, to).
    pub async fn request_ride(
        &mut self,
        home: Uuid,
        residents: &[Uuid],
        (from, to): (&str, &str),
        minutes: u32,
        note: &str,
    ) -> bpb::RideRequest {
        self.booking
            .request_ride(bpb::RequestRideRequest {
                context: ctx_as("coordinator"),
                carehome_id: home.to_string(),
                resident_ids: residents.iter().map(Uuid::to_string).collect(),
                window: Some(bpb::TimeWindow { from: ts(from), to: ts(to) }),
                duration_minutes: minutes,
                kind: String::new(),
                note: note.into(),
            })
            .await
            .unwrap()
            .into_inner()
    }

    pub async fn ride(&mut self, ride_id: &str) -> bpb::Ride {
        self.booking
            .get_ride(bpb::GetRideRequest { ride_id: ride_id.into(), include_personal: true })
            .await
            .unwrap()
            .into_inner()
    }

    /// Stops the care-home server (its database stays).
    pub async fn stop_carehome(&mut self) {
        if let Some(s) = self.carehome_server.take() {
            s.stop().await;
        }
    }

    /// Starts the care-home server again on the same port.
    pub async fn restart_carehome(&mut self) {
        let s = servicekit::server::spawn(self.carehome_addr, self.carehome_service.routes(), carehome::SERVICE_NAMES)
            .await
            .unwrap();
        self.carehome_server = Some(s);
    }
}

pub struct Basic {
    pub chapter: Uuid,
    pub home: Uuid,
    pub bike: Uuid,
    pub pilot: Uuid,
}

pub mod booking_feed {
    pub type Status = tokio::sync::watch::Receiver<servicekit::remote::FollowStatus>;
}

pub fn code(s: &tonic::Status) -> servicekit::ErrorCode {
    servicekit::RemoteError::from_status(s).code
}

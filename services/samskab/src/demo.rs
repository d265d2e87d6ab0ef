//! `samskab serve --demo`: seeds a realistic demo chapter (Aarhus: care homes, trishaws,
//! pilots, residents with consent, a week of rides in several states) once per data
//! directory, and prints ready-made tokens and example `curl` commands.

use std::time::Duration;

use chrono::{Datelike, Duration as Days, NaiveTime, TimeZone, Utc};
use gateway::{Claims, Keys, Role};
use samskab_proto::booking::v1 as bpb;
use samskab_proto::carehome::v1 as cpb;
use samskab_proto::common::v1 as common;
use samskab_proto::volunteer::v1 as vpb;
use uuid::Uuid;

use crate::{Error, Running, ServeConfig};

const MARKER: &str = "demo-seeded";

fn ctx(key: &str, role: &str) -> Option<common::CommandContext> {
    Some(common::CommandContext {
        idempotency_key: format!("demo {key}"),
        actor: Some(common::Actor { id: "demo-seeder".into(), role: role.into() }),
        correlation_id: String::new(),
        expected_version: 0,
    })
}

fn fail(e: tonic::Status) -> Error {
    Error::Start(format!("seeding the demo failed: {}", e.message()))
}

/// Seeds the demo unless this data directory already has it; prints tokens either way.
pub async fn seed_once(cfg: &ServeConfig, running: &Running) -> Result<(), Error> {
    let marker = cfg.data_dir().join(MARKER);
    let ids = match std::fs::read_to_string(&marker) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| Error::Start(e.to_string()))?,
        Err(_) => {
            let ids = seed(running).await?;
            std::fs::write(&marker, serde_json::to_string_pretty(&ids).unwrap_or_default())?;
            ids
        }
    };
    print_welcome(cfg, running, &ids)?;
    Ok(())
}

async fn seed(running: &Running) -> Result<serde_json::Value, Error> {
    let c = &running.gateway.clients;
    let (mut homes_c, mut vol, mut book) = (c.carehome(), c.volunteer(), c.booking());
    let chapter = homes_c
        .register_chapter(cpb::RegisterChapterRequest {
            context: ctx("chapter", "admin"),
            name: "Cykling uden alder Aarhus".into(),
            timezone: "Europe/Copenhagen".into(),
            settings: Some(cpb::ChapterSettings {
                lead_time_minutes: 60,
                default_turnaround_minutes: 15,
                reminder_lead_minutes: vec![1440, 60],
                ..Default::default()
            }),
        })
        .await
        .map_err(fail)?
        .into_inner()
        .chapter_id;
    let days = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
    let mut homes = Vec::new();
    for (i, (name, address, confirm)) in [
        ("Lindehuset", "Lindevej 12, 8000 Aarhus C", false),
        ("Kastaniegården", "Kastanievej 3, 8210 Aarhus V", false),
        ("Solbakken", "Solbakken 40, 8270 Højbjerg", true),
    ]
    .into_iter()
    .enumerate()
    {
        let home = homes_c
            .register_care_home(cpb::RegisterCareHomeRequest {
                context: ctx(&format!("home {i}"), "chapter_admin"),
                chapter_id: chapter.clone(),
                name: name.into(),
                address: address.into(),
                timezone: String::new(),
                ride_hours: days
                    .iter()
                    .map(|d| cpb::RideHours { weekday: (*d).into(), opens: "09:00".into(), closes: "17:00".into() })
                    .collect(),
                turnaround_minutes: 15,
                requires_confirmation: confirm,
                // The home where pilots book (and the coordinator confirms) lets them
                // choose their riders; at the others the home chooses.
                pilots_choose_riders: confirm,
            })
            .await
            .map_err(fail)?
            .into_inner()
            .carehome_id;
        let mut bikes = Vec::new();
        for (j, (bname, btype, seats)) in
            [("Rickshaw 1", "trishaw", 2), ("Kørestolscykel", "wheelchair", 1)].into_iter().enumerate()
        {
            if j == 1 && i != 0 {
                continue;
            }
            let bike = homes_c
                .commission_bike(cpb::CommissionBikeRequest {
                    context: ctx(&format!("bike {i} {j}"), "coordinator"),
                    carehome_id: home.clone(),
                    name: bname.into(),
                    bike_type: btype.into(),
                    seats,
                })
                .await
                .map_err(fail)?
                .into_inner()
                .bike_id;
            bikes.push(bike);
        }
        let mut residents = Vec::new();
        for (k, rname) in ["Inger Madsen", "Poul Kristensen", "Ærø Østergård", "Grethe Nielsen"].iter().enumerate()
        {
            let scope = if k != 3 { vec!["rides".into(), "stories".into()] } else { vec!["rides".into()] };
            let r = homes_c
                .admit_resident(cpb::AdmitResidentRequest {
                    context: ctx(&format!("resident {i} {k}"), "coordinator"),
                    carehome_id: home.clone(),
                    display_name: (*rname).into(),
                    notes: "Elsker havnen og en varm kop kaffe bagefter.".into(),
                    consent: Some(cpb::Consent {
                        given_by: "relative".into(),
                        given_at: servicekit::clock::now().to_rfc3339(),
                        scope,
                    }),
                })
                .await
                .map_err(fail)?
                .into_inner()
                .resident_id;
            residents.push(r);
        }
        homes.push(
            serde_json::json!({ "carehome_id": home, "name": name, "bike_ids": bikes, "resident_ids": residents }),
        );
    }
    let mut pilots = Vec::new();
    for (i, pname) in
        ["Mette Jensen", "Lars Pedersen", "Sofie Andersen", "Jens Hansen", "Anne Larsen"].iter().enumerate()
    {
        let p = vol
            .register_pilot(vpb::RegisterPilotRequest {
                context: ctx(&format!("pilot {i}"), "chapter_admin"),
                chapter_id: chapter.clone(),
                display_name: (*pname).into(),
                email: format!("pilot{i}@example.org"),
                phone: format!("+45 20 30 40 {:02}", i),
            })
            .await
            .map_err(fail)?
            .into_inner()
            .pilot_id;
        for t in if i < 2 { vec!["trishaw", "wheelchair"] } else { vec!["trishaw"] } {
            vol.qualify_pilot(vpb::QualifyPilotRequest {
                context: ctx(&format!("qualify {i} {t}"), "chapter_admin"),
                pilot_id: p.clone(),
                qualification: Some(vpb::Qualification {
                    bike_type: t.into(),
                    qualified_on: servicekit::clock::now().date_naive().to_string(),
                    valid_until: (servicekit::clock::now().date_naive() + Days::days(730)).to_string(),
                    ..Default::default()
                }),
            })
            .await
            .map_err(fail)?;
        }
        // Free every day 08:00-17:00 at any care home (the homes ride every day):
        // candidates for the care homes' requests, and offered them.
        let weekly = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
            .iter()
            .map(|d| vpb::WeeklyWindow { weekday: (*d).into(), from: "08:00".into(), to: "17:00".into() })
            .collect();
        vol.declare_availability(vpb::DeclareAvailabilityRequest {
            context: ctx(&format!("availability {i}"), "pilot"),
            pilot_id: p.clone(),
            availability: Some(vpb::Availability { weekly, carehome_ids: vec![] }),
        })
        .await
        .map_err(fail)?;
        pilots.push(p);
    }
    // A week of rides, from tomorrow: 10:00 and 13:30 local time at each care home.
    let tz = chrono_tz_copenhagen();
    let first = servicekit::clock::now().with_timezone(&tz).date_naive() + Days::days(1);
    let mut rides = Vec::new();
    let mut waitlisted = None;
    for d in 0..7 {
        let date = first + Days::days(d);
        for (h, home) in homes.iter().enumerate() {
            for (slot, time) in [(0, (10, 0)), (1, (13, 30))] {
                let local = date.and_time(NaiveTime::from_hms_opt(time.0, time.1, 0).expect("time"));
                let start = tz.from_local_datetime(&local).earliest().expect("local time exists").with_timezone(&Utc);
                let pilot = &pilots[(d as usize + h + slot) % pilots.len()];
                let bike = home["bike_ids"][0].as_str().unwrap_or_default().to_owned();
                let residents: Vec<String> = home["resident_ids"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .skip(slot * 2)
                    .take(2)
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect();
                let role = if h == 2 && slot == 1 { "pilot" } else { "coordinator" };
                let req = bpb::BookRideRequest {
                    context: ctx(&format!("ride {d} {h} {slot}"), role),
                    bike_id: bike,
                    pilot_id: pilot.clone(),
                    start: Some(samskab_proto::time::to_proto(start)),
                    duration_minutes: 60,
                    resident_ids: residents,
                    ..Default::default()
                };
                let ride = book_when_known(&mut book, req).await?;
                let id = ride.ride_id.clone();
                // A few rides further along their life cycle.
                match (d, h, slot) {
                    (0, 0, 0) | (1, 1, 0) => {
                        book.start_ride(bpb::RideCommandRequest {
                            context: ctx(&format!("start {id}"), "pilot"),
                            ride_id: id.clone(),
                            ..Default::default()
                        })
                        .await
                        .map_err(fail)?;
                        book.complete_ride(bpb::CompleteRideRequest {
                            context: ctx(&format!("complete {id}"), "pilot"),
                            ride_id: id.clone(),
                            ended_at: Some(samskab_proto::time::to_proto(servicekit::clock::now() + Days::minutes(55))),
                            distance_km: 6.5,
                            bike_condition: "ok".into(),
                            story: if slot == 0 {
                                "Vi kørte langs havnen og så skibene.".into()
                            } else {
                                String::new()
                            },
                            ..Default::default()
                        })
                        .await
                        .map_err(fail)?;
                    }
                    (2, 0, 1) => {
                        book.cancel_ride(bpb::CancelRideRequest {
                            context: ctx(&format!("cancel {id}"), "coordinator"),
                            ride_id: id.clone(),
                            reason: "rider".into(),
                            note: String::new(),
                        })
                        .await
                        .map_err(fail)?;
                    }
                    (3, 1, 1) => {
                        book.mark_no_show(bpb::RideCommandRequest {
                            context: ctx(&format!("noshow {id}"), "coordinator"),
                            ride_id: id.clone(),
                            ..Default::default()
                        })
                        .await
                        .map_err(fail)?;
                    }
                    // Full (both seats): the home's first resident waits for a seat.
                    (0, 0, 1) => waitlisted = Some(id.clone()),
                    _ => {}
                }
                rides.push(id);
            }
        }
    }
    // The weekly routine booked once: every Tuesday at 11:30 at the first care home, twelve
    // times, the first pilot with the home's first resident.
    let mut tuesday = first;
    while tuesday.weekday() != chrono::Weekday::Tue {
        tuesday += Days::days(1);
    }
    let local = tuesday.and_time(NaiveTime::from_hms_opt(11, 30, 0).expect("time"));
    let start = tz.from_local_datetime(&local).earliest().expect("local time exists").with_timezone(&Utc);
    let home = &homes[0];
    let series = book
        .plan_ride_series(bpb::PlanRideSeriesRequest {
            context: ctx("series tuesdays", "coordinator"),
            bike_id: home["bike_ids"][0].as_str().unwrap_or_default().to_owned(),
            pilot_id: pilots[0].clone(),
            start: Some(samskab_proto::time::to_proto(start)),
            duration_minutes: 60,
            resident_ids: home["resident_ids"]
                .as_array()
                .into_iter()
                .flatten()
                .take(1)
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            kind: String::new(),
            trip_minutes: 0,
            recurrence: Some(bpb::Recurrence {
                weekdays: vec!["tuesday".into()],
                interval_weeks: None,
                until: String::new(),
                count: Some(12),
            }),
        })
        .await
        .map_err(fail)?
        .into_inner();
    let first_resident = |h: &serde_json::Value| h["resident_ids"][0].as_str().unwrap_or_default().to_owned();
    if let Some(ride_id) = &waitlisted {
        book.join_waitlist(bpb::RosterRequest {
            context: ctx("waitlist", "coordinator"),
            ride_id: ride_id.clone(),
            resident_id: first_resident(&homes[0]),
        })
        .await
        .map_err(fail)?;
    }
    // An open request at the first care home, the day after tomorrow 09:00-12:00: offered
    // to the best placed pilots at once (`GET /v1/ride-requests/{id}/candidates`).
    let day = first + Days::days(1);
    let at = |h: u32| {
        let local = day.and_time(NaiveTime::from_hms_opt(h, 0, 0).expect("time"));
        samskab_proto::time::to_proto(
            tz.from_local_datetime(&local).earliest().expect("local time exists").with_timezone(&Utc),
        )
    };
    let request = book
        .request_ride(bpb::RequestRideRequest {
            context: ctx("request", "coordinator"),
            carehome_id: homes[0]["carehome_id"].as_str().unwrap_or_default().to_owned(),
            resident_ids: vec![first_resident(&homes[0])],
            window: Some(bpb::TimeWindow { from: Some(at(9)), to: Some(at(12)) }),
            duration_minutes: 60,
            kind: String::new(),
            note: "Vil gerne se hestene på marken.".into(),
        })
        .await
        .map_err(fail)?
        .into_inner();
    Ok(serde_json::json!({ "chapter_id": chapter, "carehomes": homes, "pilot_ids": pilots, "ride_ids": rides,
        "ride_series_ids": [series.ride_series_id], "ride_request_ids": [request.ride_request_id],
        "waitlisted_ride_ids": waitlisted.into_iter().collect::<Vec<_>>() }))
}

fn chrono_tz_copenhagen() -> chrono_tz::Tz {
    chrono_tz::Europe::Copenhagen
}

/// Books, waiting for booking to hear of the facts just created (its feeds lag a moment).
async fn book_when_known(
    book: &mut samskab_proto::booking::v1::booking_service_client::BookingServiceClient<gateway::clients::Svc>,
    req: bpb::BookRideRequest,
) -> Result<bpb::Ride, Error> {
    for _ in 0..200 {
        match book.book_ride(req.clone()).await {
            Ok(r) => return r.into_inner().ride.ok_or_else(|| Error::Start("no ride".into())),
            Err(s)
                if s.code() == tonic::Code::NotFound
                    || s.code() == tonic::Code::FailedPrecondition && s.message().contains("qualified") =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(s) => return Err(fail(s)),
        }
    }
    Err(Error::Start("booking did not learn of the demo's trishaws in time".into()))
}

fn print_welcome(cfg: &ServeConfig, running: &Running, ids: &serde_json::Value) -> Result<(), Error> {
    let keys = Keys::from_env_or_data_dir(cfg.data_dir()).map_err(Error::Start)?;
    let uuid = |v: &serde_json::Value| v.as_str().and_then(|s| s.parse::<Uuid>().ok());
    let chapter = uuid(&ids["chapter_id"]).ok_or_else(|| Error::Start("demo ids unreadable".into()))?;
    let home = uuid(&ids["carehomes"][0]["carehome_id"]).unwrap_or_default();
    let bike = ids["carehomes"][0]["bike_ids"][0].as_str().unwrap_or_default().to_owned();
    let pilot = uuid(&ids["pilot_ids"][0]).unwrap_or_default();
    let ttl = chrono::Duration::days(30);
    let token = |sub: &str, role| keys.sign(&Claims::new(sub, role, ttl));
    let base = format!("http://{}", running.addr);
    // A slot that is free tomorrow whatever day the demo was seeded: the seeded rides are
    // at 10:00 and 13:30 local time, so 15:00 local (Copenhagen) is clear, and tomorrow is
    // past the chapter's lead time.
    let tz = chrono_tz_copenhagen();
    let day = servicekit::clock::now().with_timezone(&tz).date_naive() + Days::days(1);
    let local = day.and_time(NaiveTime::from_hms_opt(15, 0, 0).expect("time"));
    let start = tz.from_local_datetime(&local).earliest().expect("local time exists").with_timezone(&Utc);
    let env = [
        ("SAMSKAB", base.clone()),
        ("CHAPTER_ID", chapter.to_string()),
        ("CAREHOME_ID", home.to_string()),
        ("BIKE_ID", bike),
        ("PILOT_ID", pilot.to_string()),
        ("DAY", day.to_string()),
        ("REQUEST_ID", ids["ride_request_ids"][0].as_str().unwrap_or_default().to_owned()),
        ("START", start.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        ("ADMIN", token("demo-admin", Role::Admin)),
        ("CHAPTER_ADMIN", token("demo-chapter-admin", Role::ChapterAdmin(chapter))),
        ("COORDINATOR", token("demo-coordinator", Role::Coordinator(home))),
        ("PILOT", token("demo-pilot", Role::Pilot(pilot))),
        ("INTEGRATOR", token("demo-integrator", Role::Integrator(Some(chapter)))),
    ];
    let exports: String = env.iter().map(|(k, v)| format!("export {k}={v}\n")).collect();
    // The same lines in a file, for `source <data-dir>/demo.env` (tokens are secrets: 0600).
    let path = cfg.data_dir().join("demo.env");
    write_private(&path, &exports)?;
    println!("\nSamskab demo: chapter Aarhus is ready at {base}\n");
    // Tokens are shown on a terminal only: a redirected stdout ends up in log collectors
    // and CI logs, where bearer tokens must not be.
    use std::io::IsTerminal;
    if std::io::stdout().is_terminal() {
        println!("Ids and tokens (valid 30 days), also in {}:\n", path.display());
        print!("{exports}");
    } else {
        println!("Ids and tokens (valid 30 days) are in {} (not printed: stdout is not a terminal).", path.display());
    }
    println!("\nTry (after `source {}`):", path.display());
    println!(
        "  curl -s -H \"Authorization: Bearer $PILOT\" \"$SAMSKAB/v1/carehomes/$CAREHOME_ID/availability?from=${{DAY}}T00:00:00Z&to=${{DAY}}T23:59:59Z&duration_minutes=60\""
    );
    println!(
        "  curl -s -H \"Authorization: Bearer $PILOT\" -H 'Content-Type: application/json' -H 'Idempotency-Key: tour-1' \\\n    -d \"{{\\\"bike_id\\\":\\\"$BIKE_ID\\\",\\\"pilot_id\\\":\\\"$PILOT_ID\\\",\\\"start\\\":\\\"$START\\\",\\\"duration_minutes\\\":60,\\\"resident_ids\\\":[]}}\" \"$SAMSKAB/v1/rides\""
    );
    println!("  curl -s -H \"Authorization: Bearer $COORDINATOR\" \"$SAMSKAB/v1/rides?carehome_id=$CAREHOME_ID\"");
    println!(
        "  curl -s -H \"Authorization: Bearer $COORDINATOR\" \"$SAMSKAB/v1/ride-requests/$REQUEST_ID/candidates\"   # who is offered it"
    );
    println!("  curl -s -H \"Authorization: Bearer $PILOT\" \"$SAMSKAB/v1/me/notifications\"   # the pilot's inbox\n");
    println!("API documentation: {base}/docs\n");
    Ok(())
}

fn write_private(path: &std::path::Path, text: &str) -> Result<(), Error> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

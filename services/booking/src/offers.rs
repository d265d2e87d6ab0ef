//! Candidates and offers of ride requests as I/O around their pure parts
//! ([`crate::candidates`], [`crate::commands::requests::offer`]): the loader of a request's
//! candidates, and the offer sweep on the one clock.
//!
//! Each offer round is its own command keyed by (request, round): its event's id derives
//! from that key, and it writes the request's stream at the version it read, so the round
//! at posting, the sweep, a retry and a second booking process offer a round once, and a
//! claim or withdrawal and an offer never cross (the loser decides again, on the closed
//! request: nothing).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::types::RideStatus;
use eventlog::{Actor, Arg};
use servicekit::executor::{self, Loader};
use servicekit::{CommandCtx, ServiceError, ServiceResult};
use uuid::Uuid;

use crate::Booking;
use crate::candidates::{self, Candidate, CandidateInput, RECENT_DAYS};
use crate::commands::requests::{self as request_cmd, OfferInput, due_round};
use crate::facts::{self, BikeFact, CareHomeFact, ChapterFact, PilotFact, kind};
use crate::readmodel::{self, RideQuery};
use crate::requests::{RideRequest, request_stream};

/// How often the sweep looks for offer rounds due (every second in a `test-clock` build,
/// so that a test that moves the clock sees the next round at once).
pub const SWEEP: Duration =
    if servicekit::clock::is_test_clock() { Duration::from_secs(1) } else { Duration::from_secs(60) };

/// The context of one offer round: keyed by (request, round), the same in every process.
fn round_ctx(request: Uuid, round: u32) -> CommandCtx {
    CommandCtx {
        idempotency_key: format!("request-offer:{request}:{round}"),
        actor: Actor { id: "system".into(), role: "system".into() },
        correlation_id: request,
        expected_version: None,
    }
}

/// Loads what a request's candidates are computed from (`None`: its home or chapter is
/// not known to booking).
pub async fn candidate_input(
    store: &eventlog::EventStore,
    request: &RideRequest,
    now: DateTime<Utc>,
) -> ServiceResult<Option<CandidateInput>> {
    let Some(home) = facts::get::<CareHomeFact>(store, kind::CAREHOME, request.carehome_id).await? else {
        return Ok(None);
    };
    let Some(chapter) = facts::get::<ChapterFact>(store, kind::CHAPTER, home.chapter_id).await? else {
        return Ok(None);
    };
    let bikes = facts::children::<BikeFact>(store, kind::BIKE, home.carehome_id).await?;
    let pilots = facts::children::<PilotFact>(store, kind::PILOT, home.chapter_id).await?;
    let (mut rides, mut completed) = (HashMap::new(), HashMap::new());
    let since = now - chrono::Duration::days(RECENT_DAYS);
    // Only pilots who could be candidates at all need their rides read.
    for p in pilots.iter().filter(|p| p.status == domain::types::PilotStatus::Active && !p.weekly.is_empty()) {
        let mut busy = Vec::new();
        let mut q = RideQuery {
            pilot_id: Some(p.pilot_id),
            from: Some((request.window_from - chrono::Duration::days(1)).timestamp_micros()),
            to: Some(request.window_to.timestamp_micros()),
            statuses: vec![RideStatus::PendingConfirmation, RideStatus::Booked, RideStatus::Started],
            limit: 500,
            ..RideQuery::default()
        };
        loop {
            let page = readmodel::list(store, &q).await?;
            busy.extend(page.iter().map(|d| (d.ride.start, d.ride.end())));
            if page.len() < q.limit {
                break;
            }
            q.after = page.last().map(|d| (d.ride.start.timestamp_micros(), d.ride.ride_id));
        }
        rides.insert(p.pilot_id, busy);
        let n = store
            .fetch_i64(
                "SELECT COUNT(*) FROM booking_rides WHERE pilot_id = $1 AND status = 'completed' \
                 AND start_at >= $2 AND start_at < $3",
                &[p.pilot_id.into(), Arg::Int(since.timestamp_micros()), Arg::Int(now.timestamp_micros())],
            )
            .await?
            .unwrap_or(0);
        completed.insert(p.pilot_id, u32::try_from(n).unwrap_or(u32::MAX));
    }
    Ok(Some(CandidateInput { request: request.clone(), home, chapter, bikes, pilots, rides, completed, now }))
}

impl Booking {
    /// The candidates of a request, best placed first.
    pub async fn candidates(&self, id: Uuid) -> ServiceResult<Vec<Candidate>> {
        let (request, _) = self.load_request(id).await?;
        let input = candidate_input(&self.store, &request, servicekit::clock::now())
            .await?
            .ok_or_else(|| ServiceError::NotFound("care home".into()))?;
        Ok(candidates::candidates(&input))
    }

    /// Offers round `round` of a request if it is the one due; whether it offered anyone.
    pub async fn offer_round(&self, id: Uuid, round: u32) -> ServiceResult<bool> {
        let stream = request_stream(id);
        let load = |mut l: Loader| {
            let stream = stream.clone();
            async move {
                let now = l.now();
                let posted_at = l.read(&stream).await?.first().map_or(now, |e| e.occurred_at);
                let request = l.fold::<RideRequest>(&stream).await?;
                let mut input = OfferInput { posted_at, now, ..OfferInput::default() };
                if let Some(r) = &request
                    && due_round(r, posted_at, now).is_some_and(|(k, _)| k == round)
                    && let Some(c) = candidate_input(l.store(), r, now).await?
                {
                    input.fanout = c.chapter.settings.offer_fanout;
                    input.candidates = candidates::candidates(&c).into_iter().map(|c| c.pilot_id).collect();
                }
                input.request = request;
                Ok((l, input))
            }
        };
        let done =
            executor::run(&self.store, &round_ctx(id, round), &stream, load, |i| request_cmd::offer(i, round)).await?;
        Ok(!done.replayed && !done.decision.is_empty())
    }

    /// Offers every open request the round due now; returns how many rounds it offered.
    pub async fn sweep_offers(&self) -> ServiceResult<usize> {
        let mut offered = 0;
        let mut after = None;
        loop {
            let page = readmodel::list_requests(&self.store, None, None, &["open".to_owned()], after, 500).await?;
            for d in &page {
                let id = d.request.ride_request_id;
                match self.offer_round(id, d.request.offer_rounds).await {
                    Ok(true) => offered += 1,
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(request = %id, error = %e, "offering a ride request failed; retried next sweep")
                    }
                }
            }
            if page.len() < 500 {
                break;
            }
            after = page.last().map(|d| d.request.ride_request_id);
        }
        Ok(offered)
    }
}

/// Runs the offer sweep: at start, then every [`SWEEP`].
pub async fn run_sweep(b: Booking) -> Result<(), String> {
    loop {
        b.sweep_offers().await.map_err(|e| e.to_string())?;
        tokio::time::sleep(SWEEP).await;
    }
}

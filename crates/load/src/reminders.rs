//! How late reminders reach a pilot's inbox under the mix: a chapter of its own (reminders
//! one minute ahead, no booking lead time), one care home open all day, and `n` pilots each
//! with a ride whose reminder falls due during the mix, one a second. While the mix runs,
//! each pilot's inbox is read from just before its reminder's due time until the reminder
//! is there; lateness is when it was first seen minus when it fell due (what a pilot's app
//! sees: deciding, the inbox's projection and the REST hop together).

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::json;

use crate::system::System;
use crate::world::{call, create};

/// The probe's rides.
pub struct Probe {
    rides: Vec<(String, DateTime<Utc>)>,
}

/// Lateness of each reminder (ms; `None`: not seen within 30 s).
pub type Lateness = Vec<Option<f64>>;

/// A fixed-offset zone in which it is around noon at `now`: the probe's rides start within
/// minutes, and must not cross its care home's closing time at midnight (they did, in UTC,
/// from 23:44 on).
fn midday_zone(now: DateTime<Utc>) -> String {
    use chrono::Timelike;
    // Local = UTC + k hours; the `Etc/GMT` zones name the offset with the opposite sign.
    let k = 12 - i64::from(now.hour());
    match k {
        0 => "UTC".to_owned(),
        k if k > 0 => format!("Etc/GMT-{k}"),
        k => format!("Etc/GMT+{}", -k),
    }
}

/// Builds the probe and books its rides so that their reminders fall due `after` from now,
/// one a second.
pub async fn prepare(sys: &System, http: &reqwest::Client, n: usize, after: Duration) -> Result<Probe, String> {
    let base = sys.base.as_str();
    let admin = sys.token("admin", None).await?;
    let settings = json!({"lead_time_minutes": 0, "default_turnaround_minutes": 15, "reminder_lead_minutes": [1]});
    let chapter = create(
        http,
        base,
        "/v1/chapters",
        &admin,
        json!({"name": "Reminder probe", "timezone": midday_zone(Utc::now()), "settings": settings}),
        "chapter_id",
    )
    .await?;
    let ca = sys.token("chapter_admin", Some(("chapter", chapter))).await?;
    let days = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
    let hours: Vec<_> = days.iter().map(|d| json!({"weekday": d, "opens": "00:00", "closes": "23:59"})).collect();
    let home = create(
        http,
        base,
        "/v1/carehomes",
        &ca,
        json!({"chapter_id": chapter, "name": "Probe home", "address": "Probevej 1", "ride_hours": hours,
            "turnaround_minutes": 0, "requires_confirmation": false, "pilots_choose_riders": true}),
        "carehome_id",
    )
    .await?;
    let coordinator = sys.token("coordinator", Some(("carehome", home))).await?;
    let today = Utc::now().date_naive();
    let mut crews = Vec::new();
    for i in 0..n {
        let bike = create(
            http,
            base,
            &format!("/v1/carehomes/{home}/bikes"),
            &ca,
            json!({"name": format!("Probe {i}"), "seats": 2}),
            "bike_id",
        )
        .await?;
        let body = json!({"chapter_id": chapter, "display_name": format!("Probe pilot {i}")});
        let pilot = create(http, base, "/v1/pilots", &ca, body, "pilot_id").await?;
        let q = json!({"qualified_on": (today - chrono::Duration::days(30)).to_string(),
            "valid_until": (today + chrono::Duration::days(30)).to_string()});
        let (st, v) =
            call(http, Method::POST, &format!("{base}/v1/pilots/{pilot}/qualifications"), &ca, Some(&q), None).await;
        if st != 200 {
            return Err(format!("qualifying a probe pilot: {st} {v}"));
        }
        crews.push((bike, pilot, sys.token("pilot", Some(("pilot", pilot))).await?));
    }
    // Whole seconds: the first reminder `after` from now, then one a second.
    let first =
        Utc::now() + chrono::Duration::from_std(after).map_err(|e| e.to_string())? + chrono::Duration::seconds(1);
    let first = DateTime::from_timestamp(first.timestamp(), 0).ok_or("time")?;
    let mut rides = Vec::new();
    for (i, (bike, pilot, token)) in crews.into_iter().enumerate() {
        let due = first + chrono::Duration::seconds(i as i64);
        let start = due + chrono::Duration::minutes(1);
        let body = json!({"bike_id": bike, "pilot_id": pilot, "start": start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "duration_minutes": 15, "resident_ids": []});
        let until = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            // Booking learns the new trishaws and pilots from the feeds: retried until it has.
            let (st, v) = call(http, Method::POST, &format!("{base}/v1/rides"), &coordinator, Some(&body), None).await;
            if st == 201 {
                break;
            }
            if std::time::Instant::now() > until {
                return Err(format!("booking a probe ride: {st} {v}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        rides.push((token, due));
    }
    if Utc::now() > first {
        return Err("preparing the reminder probe took longer than its lead; use a longer --baseline-secs".into());
    }
    Ok(Probe { rides })
}

impl Probe {
    /// Reads each pilot's inbox from just before its reminder's due time until it is there.
    pub async fn watch(self, http: reqwest::Client, base: String) -> Lateness {
        let mut out = Vec::new();
        for (token, due) in self.rides {
            let wait = (due - Utc::now() - chrono::Duration::milliseconds(20)).to_std().unwrap_or_default();
            tokio::time::sleep(wait).await;
            let give_up = due + chrono::Duration::seconds(30);
            let mut seen = None;
            while Utc::now() < give_up {
                let url = format!("{base}/v1/me/notifications?limit=20");
                let (st, v) = call(&http, Method::GET, &url, &token, None, None).await;
                let now = Utc::now();
                if st == 200
                    && v["items"].as_array().is_some_and(|items| items.iter().any(|n| n["kind"] == "ride.reminder"))
                {
                    seen = Some((now - due).num_microseconds().unwrap_or(0) as f64 / 1000.0);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            out.push(seen);
        }
        out
    }
}

/// `p50 … ms, max … ms (k of n seen)`.
pub fn summary(late: &Lateness) -> String {
    let mut seen: Vec<f64> = late.iter().flatten().copied().collect();
    seen.sort_by(|a, b| a.total_cmp(b));
    if seen.is_empty() {
        return format!("none of {} reminders seen within 30 s", late.len());
    }
    let p50 = seen[(seen.len() - 1) / 2];
    format!(
        "p50 {p50:.0} ms, max {:.0} ms ({} of {} reminders seen; inbox read every 25 ms from its due time)",
        seen[seen.len() - 1],
        seen.len(),
        late.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_zone_puts_now_at_noon() {
        for hour in 0..24 {
            let now = DateTime::parse_from_rfc3339(&format!("2026-12-07T{hour:02}:45:00Z")).unwrap().to_utc();
            let zone: chrono_tz::Tz = midday_zone(now).parse().unwrap();
            use chrono::Timelike;
            assert_eq!(now.with_timezone(&zone).hour(), 12, "{} at {hour}:45 UTC", midday_zone(now));
        }
    }
}

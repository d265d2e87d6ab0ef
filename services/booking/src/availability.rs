//! Free slots per trishaw of a care home: the maximal intervals in which a ride of the
//! asked length fits, inside ride hours (local time), outside closures, after the lead
//! time, and clear of other rides with the turnaround kept on both sides.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use domain::localtime;
use domain::types::BikeStatus;
use servicekit::{ServiceError, ServiceResult};
use uuid::Uuid;

use crate::facts::{self, BikeFact, kind};
use crate::readmodel;
use crate::rules;
use crate::service::Booking;

/// A stretch of time, [start, end).
type Interval = (DateTime<Utc>, DateTime<Utc>);

/// Free intervals of one trishaw.
#[derive(Debug, Clone, PartialEq)]
pub struct BikeAvailability {
    /// The trishaw.
    pub bike: BikeFact,
    /// Free intervals.
    pub free: Vec<(DateTime<Utc>, DateTime<Utc>)>,
}

/// `windows` minus `busy`, clipped to start at `not_before`, keeping intervals at least
/// `min_len` long. Both inputs in any order; the result is sorted and maximal.
pub fn free_intervals(
    windows: &[(DateTime<Utc>, DateTime<Utc>)],
    busy: &[(DateTime<Utc>, DateTime<Utc>)],
    not_before: DateTime<Utc>,
    min_len: Duration,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut busy = busy.to_vec();
    busy.sort();
    let mut out = Vec::new();
    let mut windows = windows.to_vec();
    windows.sort();
    for (ws, we) in windows {
        let mut cur = ws.max(not_before);
        for (bs, be) in &busy {
            if *be <= cur || *bs >= we {
                continue;
            }
            if *bs > cur {
                out.push((cur, *bs));
            }
            cur = cur.max(*be);
        }
        if cur < we {
            out.push((cur, we));
        }
    }
    // Adjacent windows (ride hours split by a closed gap of zero length) merge.
    let mut merged: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    for (s, e) in out {
        match merged.last_mut() {
            Some(last) if last.1 >= s => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    merged.retain(|(s, e)| *e - *s >= min_len);
    merged
}

impl Booking {
    /// The free intervals of each trishaw of a care home in [from, to).
    pub async fn availability(
        &self,
        carehome_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        duration_minutes: u32,
    ) -> ServiceResult<Vec<BikeAvailability>> {
        let (home, chapter) = facts::home_facts(&self.store, carehome_id).await?;
        let home = home.ok_or_else(|| ServiceError::NotFound("care home".into()))?;
        let chapter = chapter.ok_or_else(|| ServiceError::NotFound("chapter".into()))?;
        let tz = rules::zone(&home, &chapter);
        let mut windows = Vec::new();
        let mut day = localtime::local_date(tz, from);
        let last = localtime::local_date(tz, to);
        while day <= last {
            if !home.closures.iter().any(|c| c.contains(day))
                && chapter.settings.ride_season.as_ref().is_none_or(|s| s.contains(day))
            {
                for (s, e) in localtime::windows_on(tz, day, &home.ride_hours) {
                    let (s, e) = (s.max(from), e.min(to));
                    if s < e {
                        windows.push((s, e));
                    }
                }
            }
            day = day.succ_opt().ok_or_else(|| ServiceError::invalid("/to", "out of range"))?;
        }
        let not_before = servicekit::clock::now() + Duration::minutes(i64::from(chapter.settings.lead_time_minutes));
        let turnaround = Duration::minutes(i64::from(home.turnaround_minutes));
        let bikes: Vec<BikeFact> = facts::children::<BikeFact>(&self.store, kind::BIKE, carehome_id)
            .await?
            .into_iter()
            .filter(|b| b.status != BikeStatus::Retired)
            .collect();
        // Every trishaw's rides at once (a trishaw may have moved here from another home:
        // its rides there still hold it, so they are asked by trishaw, not by home).
        let ids: Vec<Uuid> = bikes.iter().map(|b| b.bike_id).collect();
        let window = ((from - Duration::days(1)).timestamp_micros(), to.timestamp_micros());
        let mut busy: HashMap<Uuid, Vec<Interval>> = HashMap::new();
        for d in readmodel::active_of_bikes(&self.store, &ids, window.0, window.1).await? {
            let r = &d.ride;
            let end = r.end() + Duration::minutes(i64::from(r.turnaround_minutes));
            busy.entry(r.bike_id).or_default().push((r.start - turnaround, end));
        }
        let mut out = Vec::new();
        for bike in bikes {
            let free = if bike.status == BikeStatus::InService {
                let busy = busy.get(&bike.bike_id).map_or(&[][..], Vec::as_slice);
                free_intervals(&windows, busy, not_before, Duration::minutes(i64::from(duration_minutes)))
            } else {
                Vec::new()
            };
            out.push(BikeAvailability { bike, free });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(&format!("2027-05-03T{s}:00Z")).unwrap().to_utc()
    }

    #[test]
    fn busy_time_splits_windows_and_short_gaps_disappear() {
        let windows = [(t("07:00"), t("15:00"))];
        // A ride 09:00-10:00 with 15 min turnaround after it, and 15 min kept before it for a new ride's turnaround.
        let busy = [(t("08:45"), t("10:15"))];
        let free = free_intervals(&windows, &busy, t("00:00"), Duration::minutes(60));
        assert_eq!(free, vec![(t("07:00"), t("08:45")), (t("10:15"), t("15:00"))]);
        let free = free_intervals(&windows, &busy, t("00:00"), Duration::minutes(120));
        assert_eq!(free, vec![(t("10:15"), t("15:00"))], "a 2 h ride does not fit before 08:45");
    }

    #[test]
    fn the_lead_time_cuts_the_start() {
        let free = free_intervals(&[(t("07:00"), t("15:00"))], &[], t("12:30"), Duration::minutes(60));
        assert_eq!(free, vec![(t("12:30"), t("15:00"))]);
        assert!(free_intervals(&[(t("07:00"), t("15:00"))], &[], t("14:30"), Duration::minutes(60)).is_empty());
    }

    #[test]
    fn overlapping_busy_intervals_and_several_windows() {
        let windows = [(t("13:00"), t("15:00")), (t("07:00"), t("11:00"))];
        let busy = [(t("08:00"), t("09:00")), (t("08:30"), t("09:30")), (t("14:00"), t("16:00"))];
        let free = free_intervals(&windows, &busy, t("00:00"), Duration::minutes(30));
        assert_eq!(free, vec![(t("07:00"), t("08:00")), (t("09:30"), t("11:00")), (t("13:00"), t("14:00"))]);
    }
}

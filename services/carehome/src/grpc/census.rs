//! The consent census of a chapter for its ride season (domain.md, *Reports*): per care
//! home, the residents living there by the consent on record, how many gave it during the
//! season, and those who moved out or were erased. The care-home service owns residents
//! and their consent, so it counts; the gateway renders.

use chrono::{DateTime, Utc};
use domain::types::{ConsentScope, ResidentStatus};
use samskab_proto::carehome::v1 as pb;
use servicekit::ServiceResult;
use uuid::Uuid;

use super::{Handlers, id, load_existing};
use crate::carehomes::CareHome;
use crate::chapters::{self as chaps, Chapter};
use crate::readmodel::{self, Doc, Listed, MAX_LIMIT, PageRequest};
use crate::residents::Resident;

/// Every object of a kind under `parent`, page by page.
async fn all<T: Listed>(h: &Handlers, parent: Uuid) -> ServiceResult<Vec<Doc<T>>> {
    let mut out = Vec::new();
    let mut after = String::new();
    loop {
        let page = readmodel::page::<T>(&h.store, parent, &PageRequest { after, limit: MAX_LIMIT }).await?;
        out.extend(page.items);
        if page.next_cursor.is_empty() {
            return Ok(out);
        }
        after = page.next_cursor;
    }
}

/// Counts one care home's residents; `season` is the season's [start, end) in UTC.
pub fn count(
    home: &CareHome,
    residents: &[Resident],
    season: Option<(DateTime<Utc>, DateTime<Utc>)>,
) -> pb::CensusHome {
    let mut c = pb::CensusHome {
        carehome_id: home.carehome_id.to_string(),
        name: home.name.clone(),
        given_in_season: season.map(|_| 0),
        ..pb::CensusHome::default()
    };
    for r in residents {
        match r.status {
            ResidentStatus::MovedOut => c.moved_out += 1,
            ResidentStatus::Erased => c.erased += 1,
            ResidentStatus::LivingHere => {
                c.residents += 1;
                match &r.consent {
                    None => {
                        c.withdrawn += 1;
                        c.none += 1;
                    }
                    Some(k) => {
                        let rides = k.scope.contains(&ConsentScope::Rides);
                        c.consent_rides += u32::from(rides);
                        c.none += u32::from(!rides);
                        c.consent_stories += u32::from(k.scope.contains(&ConsentScope::Stories));
                        if let (Some((from, to)), Some(n)) = (season, c.given_in_season.as_mut()) {
                            *n += u32::from(from <= k.given_at && k.given_at < to);
                        }
                    }
                }
            }
        }
    }
    c
}

/// Answers `GetConsentCensus`.
pub async fn census(h: &Handlers, req: pb::IdRequest) -> ServiceResult<pb::ConsentCensus> {
    let chapter_id = id("/id", &req.id)?;
    let (chapter, _) = load_existing::<Chapter>(&h.store, &chaps::stream(chapter_id), "chapter").await?;
    let tz: chrono_tz::Tz = chapter.timezone.parse().unwrap_or(chrono_tz::UTC);
    let season = chapter.settings.ride_season;
    let bounds = season.map(|s| (domain::localtime::local_day(tz, s.from).0, domain::localtime::local_day(tz, s.to).0));
    let mut homes = Vec::new();
    for home in all::<CareHome>(h, chapter_id).await? {
        let residents: Vec<Resident> =
            all::<Resident>(h, home.state.carehome_id).await?.into_iter().map(|d| d.state).collect();
        homes.push(count(&home.state, &residents, bounds));
    }
    Ok(pb::ConsentCensus {
        season_starts: season.map(|s| s.from.to_string()).unwrap_or_default(),
        season_ends: season.map(|s| s.to.to_string()).unwrap_or_default(),
        homes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::residents::Consent;
    use domain::types::GivenBy;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn resident(status: ResidentStatus, consent: Option<(&[ConsentScope], &str)>) -> Resident {
        Resident {
            resident_id: Uuid::now_v7(),
            carehome_id: Uuid::nil(),
            personal: None,
            consent: consent.map(|(scope, at)| Consent {
                given_by: GivenBy::Resident,
                given_at: t(at),
                scope: scope.to_vec(),
            }),
            status,
        }
    }

    #[test]
    fn residents_are_counted_by_the_consent_on_record() {
        let home: CareHome = serde_json::from_value(serde_json::json!({
            "carehome_id": Uuid::nil(), "chapter_id": Uuid::nil(), "name": "Solgården", "address": "",
            "ride_hours": [], "turnaround_minutes": 15, "requires_confirmation": false, "closures": []
        }))
        .unwrap();
        let both = [ConsentScope::Rides, ConsentScope::Stories];
        let residents = [
            resident(ResidentStatus::LivingHere, Some((&both, "2027-04-10T10:00:00Z"))),
            resident(ResidentStatus::LivingHere, Some((&[ConsentScope::Rides], "2027-01-10T10:00:00Z"))),
            resident(ResidentStatus::LivingHere, Some((&[ConsentScope::Stories], "2027-05-10T10:00:00Z"))),
            resident(ResidentStatus::LivingHere, None),
            resident(ResidentStatus::MovedOut, Some((&both, "2027-04-10T10:00:00Z"))),
            resident(ResidentStatus::Erased, None),
        ];
        let season = Some((t("2027-04-01T00:00:00Z"), t("2027-10-01T00:00:00Z")));
        let c = count(&home, &residents, season);
        assert_eq!((c.residents, c.consent_rides, c.consent_stories), (4, 2, 2));
        assert_eq!((c.withdrawn, c.none, c.moved_out, c.erased), (1, 2, 1, 1));
        assert_eq!(c.given_in_season, Some(2), "April and May, not January");
        assert_eq!(count(&home, &residents, None).given_in_season, None, "no season, no figure");
    }
}

//! CSV exports of a chapter's rides, pilots and residents between two dates, streamed:
//! the response starts with the header row and each page of rides, pilots or residents
//! is written as it arrives from the service, so nothing is loaded whole into memory
//! (the pilot and resident exports first walk the rides page by page, keeping only
//! counters per person). Two dialects: RFC 4180 (`,`, `.` decimals, CRLF, no BOM) and
//! `excel-da` (`;`, decimal comma, CRLF, a UTF-8 BOM) that Danish spreadsheets open
//! directly. A text cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return is
//! prefixed with an apostrophe so that a spreadsheet never runs it as a formula.
//! Read by the chapter's admin and admin only (the exports carry names).

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use samskab_proto::booking::v1 as bpb;
use samskab_proto::carehome::v1 as cpb;
use samskab_proto::volunteer::v1 as vpb;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::caller::Caller;
use crate::clients::Found;
use crate::extract::Params;
use crate::problem::{ApiError, Problem};
use crate::routes::reports::{self, PAGE, Period};
use crate::views::time;

/// How a CSV file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialect {
    /// Field separator.
    pub sep: char,
    /// Decimal comma instead of point.
    pub decimal_comma: bool,
    /// A UTF-8 byte order mark first.
    pub bom: bool,
}

impl Dialect {
    /// RFC 4180.
    pub const RFC4180: Dialect = Dialect { sep: ',', decimal_comma: false, bom: false };
    /// What Danish spreadsheet programs open directly.
    pub const EXCEL_DA: Dialect = Dialect { sep: ';', decimal_comma: true, bom: true };

    /// A text cell: neutralised when it looks like a formula, quoted when it holds the
    /// separator, a quote or a line break.
    pub fn text(&self, v: &str) -> String {
        let guarded;
        let v = if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            guarded = format!("'{v}");
            guarded.as_str()
        } else {
            v
        };
        if v.contains([self.sep, '"', '\n', '\r']) { format!("\"{}\"", v.replace('"', "\"\"")) } else { v.to_owned() }
    }

    /// A decimal number (up to three decimals, no grouping).
    pub fn number(&self, v: f64) -> String {
        let s = format!("{}", (v * 1000.0).round() / 1000.0);
        if self.decimal_comma { s.replace('.', ",") } else { s }
    }

    /// One line of already written cells, CRLF-terminated.
    pub fn line(&self, cells: &[String]) -> String {
        let mut out = cells.join(&self.sep.to_string());
        out.push_str("\r\n");
        out
    }

    /// A header line.
    fn header(&self, names: &[&str]) -> String {
        self.line(&names.iter().map(|n| self.text(n)).collect::<Vec<_>>())
    }
}

/// `?chapter_id=&from=&to=&dialect=` of every export.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportFilter {
    /// The chapter.
    pub chapter_id: Uuid,
    /// Rides starting at or after: a date (local midnight in the chapter's zone) or an RFC 3339 time.
    #[param(schema_with = crate::views::date_or_time)]
    pub from: Option<String>,
    /// Rides starting before: a date or an RFC 3339 time.
    #[param(schema_with = crate::views::date_or_time)]
    pub to: Option<String>,
    /// `rfc4180` (default: `,`, `.` decimals, no BOM) or `excel-da` (`;`, decimal comma, BOM).
    #[param(pattern = "^(rfc4180|excel-da)$")]
    pub dialect: Option<String>,
}

/// Checks the caller and the query; the dialect and period.
async fn prepare(s: &AppState, caller: &Caller, f: &ExportFilter) -> Result<(Dialect, Period), ApiError> {
    let dialect = match f.dialect.as_deref() {
        None | Some("rfc4180") => Dialect::RFC4180,
        Some("excel-da") => Dialect::EXCEL_DA,
        Some(_) => return Err(ApiError::invalid("/dialect", "must be rfc4180 or excel-da")),
    };
    let chapter = reports::chapter_reports(s, caller, f.chapter_id).await?;
    let tz = reports::zone(&chapter);
    let period = Period::parse(f.from.as_deref(), f.to.as_deref(), tz)?;
    Ok((dialect, period))
}

type Chunk = Result<Bytes, std::io::Error>;

/// Where rows go: a bounded channel to the response body (a slow client slows the export).
struct Sink(tokio::sync::mpsc::Sender<Chunk>);

impl Sink {
    /// Sends a chunk; false when the client has gone.
    async fn send(&self, text: String) -> bool {
        self.0.send(Ok(Bytes::from(text))).await.is_ok()
    }

    /// Ends the body with an error: the client sees a truncated transfer, never a short file
    /// that looks whole.
    async fn fail(&self, e: ApiError) {
        tracing::warn!(code = e.code.as_str(), "an export failed midway");
        let _ = self.0.send(Err(std::io::Error::other("the export failed"))).await;
    }
}

/// The streamed response; `produce` writes the rows.
fn stream<F, Fut>(kind: &str, f: &ExportFilter, produce: F) -> Response
where
    F: FnOnce(Sink) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<Chunk>(4);
    tokio::spawn(produce(Sink(tx)));
    let body = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    let mut resp = Body::from_stream(body).into_response();
    let clean = |v: &Option<String>| {
        v.as_deref().map(|v| v.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect::<String>())
    };
    let mut filename = format!("{kind}-{}", f.chapter_id);
    for part in [clean(&f.from), clean(&f.to)].into_iter().flatten() {
        filename.push('-');
        filename.push_str(&part);
    }
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8; header=present"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}.csv\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn bom(d: Dialect) -> String {
    if d.bom { "\u{feff}".to_owned() } else { String::new() }
}

/// Names looked up once per export.
#[derive(Default)]
struct Names {
    pilots: HashMap<String, String>,
    residents: HashMap<String, String>,
    homes: HashMap<String, String>,
}

impl Names {
    async fn pilot(&mut self, s: &AppState, id: &str) -> Result<String, ApiError> {
        if let Some(n) = self.pilots.get(id) {
            return Ok(n.clone());
        }
        let pilot = s.clients.volunteer().get_pilot(vpb::GetPilotRequest { pilot_id: id.to_owned() }).await.found()?;
        let n = pilot.and_then(|p| reports::name(p.erased, &p.display_name)).unwrap_or_default();
        self.pilots.insert(id.to_owned(), n.clone());
        Ok(n)
    }

    async fn resident(&mut self, s: &AppState, id: &str) -> Result<String, ApiError> {
        if let Some(n) = self.residents.get(id) {
            return Ok(n.clone());
        }
        let resident = s.clients.carehome().get_resident(cpb::IdRequest { id: id.to_owned() }).await.found()?;
        let n = resident.and_then(|r| reports::name(r.erased, &r.display_name)).unwrap_or_default();
        self.residents.insert(id.to_owned(), n.clone());
        Ok(n)
    }

    async fn home(&mut self, s: &AppState, id: &str) -> Result<String, ApiError> {
        if let Some(n) = self.homes.get(id) {
            return Ok(n.clone());
        }
        let home = s.clients.carehome().get_care_home(cpb::IdRequest { id: id.to_owned() }).await.found()?;
        let n = home.map(|h| h.name).unwrap_or_default();
        self.homes.insert(id.to_owned(), n.clone());
        Ok(n)
    }
}

const RIDE_COLUMNS: &[&str] = &[
    "ride_id",
    "status",
    "kind",
    "start",
    "duration_minutes",
    "carehome_id",
    "carehome_name",
    "bike_id",
    "pilot_id",
    "pilot_name",
    "resident_ids",
    "rider_names",
    "riders",
    "rides",
    "ended_at",
    "ride_minutes",
    "distance_km",
    "cancel_reason",
    "cancel_note",
];

async fn ride_row(s: &AppState, d: Dialect, names: &mut Names, r: &bpb::Ride) -> Result<String, ApiError> {
    let mut riders = Vec::with_capacity(r.riders.len());
    for x in &r.riders {
        riders.push(names.resident(s, &x.resident_id).await?);
    }
    let ids: Vec<&str> = r.riders.iter().map(|x| x.resident_id.as_str()).collect();
    // Completed rides have ended; booking counted their riders and minutes.
    let completed = r.ended_at.is_some();
    // Lists carry no personal fields: a cancellation's note is read with the ride.
    let note = if r.cancel_reason.is_empty() {
        String::new()
    } else {
        let g = bpb::GetRideRequest { ride_id: r.ride_id.clone(), include_personal: true };
        s.clients.booking().get_ride(g).await.reply()?.cancel_note
    };
    let cells = vec![
        d.text(&r.ride_id),
        d.text(&r.status),
        d.text(&r.kind),
        d.text(&reports::start_of(r)),
        r.duration_minutes.to_string(),
        d.text(&r.carehome_id),
        d.text(&names.home(s, &r.carehome_id).await?),
        d.text(&r.bike_id),
        d.text(&r.pilot_id),
        d.text(&names.pilot(s, &r.pilot_id).await?),
        d.text(&ids.join(" ")),
        d.text(&riders.join(" | ")),
        r.riders.len().to_string(),
        r.riders_carried.to_string(),
        d.text(&time(&r.ended_at).unwrap_or_default()),
        if completed { r.ride_minutes.to_string() } else { String::new() },
        if completed { d.number(r.distance_km) } else { String::new() },
        d.text(&r.cancel_reason),
        d.text(&note),
    ];
    Ok(d.line(&cells))
}

/// Every ride of the chapter starting in the period, one row each, streamed as the pages
/// arrive (the chapter's admin, admin).
#[utoipa::path(get, path = "/v1/exports/rides.csv", tag = "exports", params(ExportFilter),
    responses((status = 200, content_type = "text/csv", body = String,
            description = "Columns: ride_id, status, kind, start, duration_minutes, carehome_id, carehome_name, bike_id, pilot_id, pilot_name, resident_ids, rider_names, riders, rides, ended_at, ride_minutes, distance_km, cancel_reason, cancel_note"),
        (status = 400, description = "Malformed (`malformed`, `validation`), or `to` before `from` (`validation` on `/to`: a rule between two fields, which the schema cannot state)", body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn rides(
    State(s): State<AppState>,
    caller: Caller,
    Params(f): Params<ExportFilter>,
) -> Result<Response, ApiError> {
    let (d, period) = prepare(&s, &caller, &f).await?;
    let q = reports::ride_query(f.chapter_id, period);
    Ok(stream("rides", &f, move |out| async move {
        if !out.send(bom(d) + &d.header(RIDE_COLUMNS)).await {
            return;
        }
        let mut names = Names::default();
        let mut cursor = String::new();
        loop {
            let page = match reports::rides_page(&s, &q, cursor).await {
                Ok(p) => p,
                Err(e) => return out.fail(e).await,
            };
            let mut chunk = String::new();
            for r in &page.rides {
                match ride_row(&s, d, &mut names, r).await {
                    Ok(line) => chunk.push_str(&line),
                    Err(e) => return out.fail(e).await,
                }
            }
            if !out.send(chunk).await || page.next_cursor.is_empty() {
                return;
            }
            cursor = page.next_cursor;
        }
    }))
}

const PILOT_COLUMNS: &[&str] = &[
    "pilot_id",
    "display_name",
    "email",
    "phone",
    "status",
    "qualifications",
    "signed_up",
    "completed",
    "no_show",
    "cancelled",
    "ride_minutes",
    "distance_km",
];

/// Every pilot of the chapter with its rides in the period: signed up, completed, no-show,
/// cancelled, minutes and kilometres (the chapter's admin, admin).
#[utoipa::path(get, path = "/v1/exports/pilots.csv", tag = "exports", params(ExportFilter),
    responses((status = 200, content_type = "text/csv", body = String,
            description = "Columns: pilot_id, display_name, email, phone, status, qualifications, signed_up, completed, no_show, cancelled, ride_minutes, distance_km"),
        (status = 400, description = "Malformed (`malformed`, `validation`), or `to` before `from` (`validation` on `/to`: a rule between two fields, which the schema cannot state)", body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn pilots(
    State(s): State<AppState>,
    caller: Caller,
    Params(f): Params<ExportFilter>,
) -> Result<Response, ApiError> {
    let (d, period) = prepare(&s, &caller, &f).await?;
    let (chapter_id, chapter) = (f.chapter_id, f.chapter_id.to_string());
    Ok(stream("pilots", &f, move |out| async move {
        if !out.send(bom(d) + &d.header(PILOT_COLUMNS)).await {
            return;
        }
        let mut by = match reports::participation(&s, chapter_id, period, "pilots").await {
            Ok(b) => b,
            Err(e) => return out.fail(e).await,
        };
        let mut cursor = String::new();
        loop {
            let page = s
                .clients
                .volunteer()
                .list_pilots(vpb::ListPilotsRequest {
                    chapter_id: chapter.clone(),
                    limit: PAGE,
                    cursor,
                    on: String::new(),
                })
                .await;
            let page = match page {
                Ok(p) => p.into_inner(),
                Err(st) => return out.fail(st.into()).await,
            };
            let mut chunk = String::new();
            for p in page.pilots {
                let t = by.remove(&p.pilot_id).unwrap_or_default();
                let (c, minutes, km) =
                    (reports::Participation::from(t.total), t.ride_minutes, reports::km(t.distance_m));
                let personal = |v: &str| if p.erased { String::new() } else { v.to_owned() };
                let quals: Vec<String> =
                    p.qualifications.iter().map(|q| format!("{} until {}", q.bike_type, q.valid_until)).collect();
                chunk.push_str(&d.line(&[
                    d.text(&p.pilot_id),
                    d.text(&personal(&p.display_name)),
                    d.text(&personal(&p.email)),
                    d.text(&personal(&p.phone)),
                    d.text(&p.status),
                    d.text(&quals.join(" | ")),
                    c.signed_up.to_string(),
                    c.completed.to_string(),
                    c.no_show.to_string(),
                    c.cancelled.to_string(),
                    minutes.to_string(),
                    d.number(km),
                ]));
            }
            if !out.send(chunk).await || page.next_cursor.is_empty() {
                return;
            }
            cursor = page.next_cursor;
        }
    }))
}

const RESIDENT_COLUMNS: &[&str] = &[
    "resident_id",
    "carehome_id",
    "carehome_name",
    "display_name",
    "status",
    "consent_scope",
    "consent_given_by",
    "consent_given_at",
    "signed_up",
    "completed",
    "no_show",
    "cancelled",
];

/// Every resident of the chapter's care homes with their rides in the period: signed up,
/// carried (the counting rule), no-show, cancelled. Care notes are never exported (the
/// chapter's admin, admin).
#[utoipa::path(get, path = "/v1/exports/residents.csv", tag = "exports", params(ExportFilter),
    responses((status = 200, content_type = "text/csv", body = String,
            description = "Columns: resident_id, carehome_id, carehome_name, display_name, status, consent_scope, consent_given_by, consent_given_at, signed_up, completed, no_show, cancelled"),
        (status = 400, description = "Malformed (`malformed`, `validation`), or `to` before `from` (`validation` on `/to`: a rule between two fields, which the schema cannot state)", body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn residents(
    State(s): State<AppState>,
    caller: Caller,
    Params(f): Params<ExportFilter>,
) -> Result<Response, ApiError> {
    let (d, period) = prepare(&s, &caller, &f).await?;
    let chapter = f.chapter_id;
    Ok(stream("residents", &f, move |out| async move {
        if !out.send(bom(d) + &d.header(RESIDENT_COLUMNS)).await {
            return;
        }
        let mut by = match reports::participation(&s, chapter, period, "residents").await {
            Ok(b) => b,
            Err(e) => return out.fail(e).await,
        };
        let homes = match reports::carehomes(&s, chapter).await {
            Ok(h) => h,
            Err(e) => return out.fail(e).await,
        };
        for home in homes {
            let mut cursor = String::new();
            loop {
                let page = s
                    .clients
                    .carehome()
                    .list_residents(cpb::ListRequest { parent_id: home.carehome_id.clone(), limit: PAGE, cursor })
                    .await;
                let page = match page {
                    Ok(p) => p.into_inner(),
                    Err(st) => return out.fail(st.into()).await,
                };
                let mut chunk = String::new();
                for r in page.residents {
                    let c = reports::Participation::from(by.remove(&r.resident_id).unwrap_or_default().total);
                    let k = r.consent.clone().unwrap_or_default();
                    chunk.push_str(&d.line(&[
                        d.text(&r.resident_id),
                        d.text(&r.carehome_id),
                        d.text(&home.name),
                        d.text(&reports::name(r.erased, &r.display_name).unwrap_or_default()),
                        d.text(&r.status),
                        d.text(&k.scope.join(" ")),
                        d.text(&k.given_by),
                        d.text(&k.given_at),
                        c.signed_up.to_string(),
                        c.completed.to_string(),
                        c.no_show.to_string(),
                        c.cancelled.to_string(),
                    ]));
                }
                if !out.send(chunk).await {
                    return;
                }
                if page.next_cursor.is_empty() {
                    break;
                }
                cursor = page.next_cursor;
            }
        }
    }))
}

/// The export routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(rides)).routes(routes!(pilots)).routes(routes!(residents))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_quoted_and_guarded() {
        let d = Dialect::EXCEL_DA;
        assert_eq!(d.text("plain"), "plain");
        assert_eq!(d.text("a;b"), "\"a;b\"");
        assert_eq!(d.text("a,b"), "a,b");
        assert_eq!(d.text("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(d.text("two\nlines"), "\"two\nlines\"");
        assert_eq!(d.text("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(d.text("-1+1"), "'-1+1");
        assert_eq!(d.number(7.5), "7,5");
        assert_eq!(Dialect::RFC4180.number(7.5), "7.5");
        assert_eq!(Dialect::RFC4180.text("a,b"), "\"a,b\"");
    }
}

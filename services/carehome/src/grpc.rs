//! The gRPC face of the service (`samskab.carehome.v1.CareHomeService`): each call is
//! validated into domain values, run through the command loop, and the resulting state
//! mapped back to proto. One submodule per aggregate; this file wires them to the trait.

mod bikes;
mod carehomes;
mod census;
mod chapters;
mod residents;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use domain::types::parse_id;
use eventlog::EventStore;
use keystore::KeyStore;
use samskab_proto::carehome::v1::{self as pb, care_home_service_server::CareHomeService};
use servicekit::aggregate::load_existing;
use servicekit::{ErrorCode, ServiceError, ServiceResult};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::carehomes::{self as homes, CareHome};
use crate::chapters::{self as chaps, Chapter};

/// The handlers of the care-home service.
#[derive(Clone)]
pub struct Handlers {
    store: EventStore,
    keys: KeyStore,
    /// Each care home's chapter, once read: set at registration and never changed (no
    /// event moves a care home, none removes one), so the trishaw and resident reads on
    /// every booking's path need not fold the care home's stream again for it.
    chapters: Arc<RwLock<HashMap<Uuid, Uuid>>>,
}

/// Free text about a trishaw or a care home (issue descriptions, reasons, repair notes,
/// closure reasons) is sealed under the object's key (`subject`), so it is not in clear in
/// the log and the feed leaves it out of the public payload (sealed values are removed).
/// Empty text stays empty.
pub(crate) async fn seal_text(h: &Handlers, subject: &str, text: &str) -> ServiceResult<String> {
    if text.is_empty() {
        return Ok(String::new());
    }
    Ok(h.keys.seal(subject, "text", text).await.map_err(|e| ServiceError::Internal(e.to_string()))?.0)
}

/// Opens free text sealed by [`seal_text`]; text written before the sealing, in clear, is
/// read as it is.
pub(crate) async fn open_text(h: &Handlers, subject: &str, text: &str) -> ServiceResult<String> {
    if !text.starts_with(domain::types::Sealed::PREFIX) {
        return Ok(text.to_owned());
    }
    let sealed = domain::types::Sealed(text.to_owned());
    Ok(h.keys
        .unseal(subject, "text", &sealed)
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))?
        .unwrap_or_default())
}

/// The key subject of a trishaw's free text.
pub(crate) fn bike_subject(bike: Uuid) -> String {
    format!("bike:{bike}")
}

/// The key subject of a care home's free text.
pub(crate) fn carehome_subject(home: Uuid) -> String {
    format!("carehome:{home}")
}

impl Handlers {
    /// Handlers over a store and its key store.
    pub fn new(store: EventStore, keys: KeyStore) -> Self {
        Handlers { store, keys, chapters: Arc::default() }
    }
}

/// Parses an id field.
fn id(field: &str, value: &str) -> ServiceResult<Uuid> {
    Ok(parse_id(field, value.trim())?)
}

async fn chapter(store: &EventStore, chapter_id: Uuid) -> ServiceResult<Chapter> {
    Ok(load_existing::<Chapter>(store, &chaps::stream(chapter_id), "chapter").await?.0)
}

/// The chapter of an existing care home (not found: `NotFound`).
async fn chapter_of(h: &Handlers, carehome_id: Uuid) -> ServiceResult<Uuid> {
    if let Some(chapter) = h.chapters.read().unwrap_or_else(|e| e.into_inner()).get(&carehome_id) {
        return Ok(*chapter);
    }
    let home = load_existing::<CareHome>(&h.store, &homes::stream(carehome_id), "care home").await?.0;
    h.chapters.write().unwrap_or_else(|e| e.into_inner()).insert(carehome_id, home.chapter_id);
    Ok(home.chapter_id)
}

/// A key-store failure as the service reports it.
fn key_error(e: keystore::Error) -> ServiceError {
    match e {
        keystore::Error::Erased(_) => {
            ServiceError::conflict(ErrorCode::IllegalTransition, "the resident's personal data has been erased", None)
        }
        keystore::Error::Store(e) => e.into(),
        keystore::Error::Database(e) => ServiceError::Unavailable(format!("key store: {e}")),
        other => ServiceError::Internal(format!("key store: {other}")),
    }
}

/// A UTC time as RFC 3339 with `Z`.
fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

fn answer<T>(r: ServiceResult<T>) -> Result<Response<T>, Status> {
    r.map(Response::new).map_err(Status::from)
}

#[tonic::async_trait]
impl CareHomeService for Handlers {
    async fn register_chapter(&self, r: Request<pb::RegisterChapterRequest>) -> Result<Response<pb::Chapter>, Status> {
        answer(chapters::register(self, r.into_inner()).await)
    }

    async fn change_chapter_settings(
        &self,
        r: Request<pb::ChangeChapterSettingsRequest>,
    ) -> Result<Response<pb::Chapter>, Status> {
        answer(chapters::change_settings(self, r.into_inner()).await)
    }

    async fn get_chapter(&self, r: Request<pb::IdRequest>) -> Result<Response<pb::Chapter>, Status> {
        answer(chapters::get(self, r.into_inner()).await)
    }

    async fn register_care_home(
        &self,
        r: Request<pb::RegisterCareHomeRequest>,
    ) -> Result<Response<pb::CareHome>, Status> {
        answer(carehomes::register(self, r.into_inner()).await)
    }

    async fn change_ride_hours(
        &self,
        r: Request<pb::ChangeRideHoursRequest>,
    ) -> Result<Response<pb::CareHome>, Status> {
        answer(carehomes::change_ride_hours(self, r.into_inner()).await)
    }

    async fn close_care_home(&self, r: Request<pb::CloseCareHomeRequest>) -> Result<Response<pb::CareHome>, Status> {
        answer(carehomes::close(self, r.into_inner()).await)
    }

    async fn assign_coordinator(&self, r: Request<pb::CoordinatorRequest>) -> Result<Response<pb::CareHome>, Status> {
        answer(carehomes::assign_coordinator(self, r.into_inner()).await)
    }

    async fn remove_coordinator(&self, r: Request<pb::CoordinatorRequest>) -> Result<Response<pb::CareHome>, Status> {
        answer(carehomes::remove_coordinator(self, r.into_inner()).await)
    }

    async fn get_care_home(&self, r: Request<pb::IdRequest>) -> Result<Response<pb::CareHome>, Status> {
        answer(carehomes::get(self, r.into_inner()).await)
    }

    async fn list_care_homes(
        &self,
        r: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListCareHomesResponse>, Status> {
        answer(carehomes::list(self, r.into_inner()).await)
    }

    async fn commission_bike(&self, r: Request<pb::CommissionBikeRequest>) -> Result<Response<pb::Bike>, Status> {
        answer(bikes::commission(self, r.into_inner()).await)
    }

    async fn report_bike_issue(&self, r: Request<pb::ReportBikeIssueRequest>) -> Result<Response<pb::Bike>, Status> {
        answer(bikes::report_issue(self, r.into_inner()).await)
    }

    async fn take_bike_out_of_service(&self, r: Request<pb::BikeServiceRequest>) -> Result<Response<pb::Bike>, Status> {
        answer(bikes::take_out_of_service(self, r.into_inner()).await)
    }

    async fn return_bike_to_service(&self, r: Request<pb::BikeServiceRequest>) -> Result<Response<pb::Bike>, Status> {
        answer(bikes::return_to_service(self, r.into_inner()).await)
    }

    async fn retire_bike(&self, r: Request<pb::BikeServiceRequest>) -> Result<Response<pb::Bike>, Status> {
        answer(bikes::retire(self, r.into_inner()).await)
    }

    async fn get_bike(&self, r: Request<pb::IdRequest>) -> Result<Response<pb::Bike>, Status> {
        answer(bikes::get(self, r.into_inner()).await)
    }

    async fn list_bikes(&self, r: Request<pb::ListRequest>) -> Result<Response<pb::ListBikesResponse>, Status> {
        answer(bikes::list(self, r.into_inner()).await)
    }

    async fn get_maintenance_log(&self, r: Request<pb::IdRequest>) -> Result<Response<pb::MaintenanceLog>, Status> {
        answer(bikes::maintenance_log(self, r.into_inner()).await)
    }

    async fn get_consent_census(&self, r: Request<pb::IdRequest>) -> Result<Response<pb::ConsentCensus>, Status> {
        answer(census::census(self, r.into_inner()).await)
    }

    async fn admit_resident(&self, r: Request<pb::AdmitResidentRequest>) -> Result<Response<pb::Resident>, Status> {
        answer(residents::admit(self, r.into_inner()).await)
    }

    async fn record_consent(&self, r: Request<pb::RecordConsentRequest>) -> Result<Response<pb::Resident>, Status> {
        answer(residents::record_consent(self, r.into_inner()).await)
    }

    async fn withdraw_consent(&self, r: Request<pb::ResidentCommandRequest>) -> Result<Response<pb::Resident>, Status> {
        answer(residents::withdraw_consent(self, r.into_inner()).await)
    }

    async fn move_out_resident(
        &self,
        r: Request<pb::ResidentCommandRequest>,
    ) -> Result<Response<pb::Resident>, Status> {
        answer(residents::move_out(self, r.into_inner()).await)
    }

    async fn correct_resident(&self, r: Request<pb::CorrectResidentRequest>) -> Result<Response<pb::Resident>, Status> {
        answer(residents::correct(self, r.into_inner()).await)
    }

    async fn correct_care_home(
        &self,
        r: Request<pb::CorrectCareHomeRequest>,
    ) -> Result<Response<pb::CareHome>, Status> {
        answer(carehomes::correct(self, r.into_inner()).await)
    }

    async fn lift_closure(&self, r: Request<pb::LiftClosureRequest>) -> Result<Response<pb::CareHome>, Status> {
        answer(carehomes::lift_closure(self, r.into_inner()).await)
    }

    async fn correct_bike(&self, r: Request<pb::CorrectBikeRequest>) -> Result<Response<pb::Bike>, Status> {
        answer(bikes::correct(self, r.into_inner()).await)
    }

    async fn move_bike(&self, r: Request<pb::MoveBikeRequest>) -> Result<Response<pb::Bike>, Status> {
        answer(bikes::move_to(self, r.into_inner()).await)
    }

    async fn erase_resident(&self, r: Request<pb::ResidentCommandRequest>) -> Result<Response<pb::Resident>, Status> {
        answer(residents::erase(self, r.into_inner()).await)
    }

    async fn get_resident(&self, r: Request<pb::IdRequest>) -> Result<Response<pb::Resident>, Status> {
        answer(residents::get(self, r.into_inner()).await)
    }

    async fn get_residents(&self, r: Request<pb::IdsRequest>) -> Result<Response<pb::ListResidentsResponse>, Status> {
        answer(residents::get_many(self, r.into_inner()).await)
    }

    async fn list_residents(&self, r: Request<pb::ListRequest>) -> Result<Response<pb::ListResidentsResponse>, Status> {
        answer(residents::list(self, r.into_inner()).await)
    }

    async fn export_resident(&self, r: Request<pb::IdRequest>) -> Result<Response<pb::PersonalExport>, Status> {
        answer(residents::export(self, r.into_inner()).await)
    }
}

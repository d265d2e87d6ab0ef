//! The care-home service end to end: a real server on a loopback socket, a real gRPC
//! client, a real SQLite file and a real PostgreSQL schema. Every test runs once per
//! backend (`sqlite::...`, `postgres::...`; PostgreSQL skips outside CI without a server).

#[path = "carehome/harness.rs"]
mod harness;

#[path = "carehome/bikes.rs"]
mod bikes;
#[path = "carehome/boundary.rs"]
mod boundary;
#[path = "carehome/carehomes.rs"]
mod carehomes;
#[path = "carehome/chapters.rs"]
mod chapters;
#[path = "carehome/coordinators.rs"]
mod coordinators;
#[path = "carehome/feed.rs"]
mod feed;
#[path = "carehome/residents.rs"]
mod residents;
#[path = "carehome/validation_props.rs"]
mod validation_props;

testkit::both_backends!(
    chapters::a_chapter_is_registered_read_back_and_counts_its_care_homes_and_trishaws,
    chapters::chapter_settings_change_and_bad_settings_name_their_fields,
    chapters::unknown_and_malformed_ids_are_refused,
    chapters::the_server_reports_itself_healthy,
    carehomes::a_care_home_is_registered_with_ride_hours_and_closures,
    carehomes::care_home_fields_are_validated_and_a_missing_chapter_is_not_found,
    carehomes::lists_page_by_cursor_and_refuse_oversized_pages,
    carehomes::the_read_model_rebuilds_from_the_log_to_the_same_lists,
    coordinators::coordinators_are_assigned_in_order_and_removed,
    coordinators::coordinator_events_reach_the_feed_in_the_chapter,
    coordinators::coordinator_requests_are_validated_and_a_missing_care_home_is_not_found,
    coordinators::if_match_and_retries_apply_to_coordinator_commands,
    bikes::a_trishaw_goes_through_its_life_cycle_and_keeps_a_maintenance_log,
    bikes::free_text_about_trishaws_and_closures_is_sealed,
    bikes::clear_free_text_of_an_older_release_is_resealed_in_place,
    bikes::illegal_trishaw_transitions_are_aborted,
    bikes::a_retried_command_finds_its_original_outcome,
    bikes::if_match_refuses_a_stale_version,
    bikes::concurrent_status_changes_on_one_trishaw_stay_consistent,
    residents::a_resident_is_admitted_with_consent_and_can_move_out,
    residents::resident_fields_are_validated,
    residents::erasure_deletes_the_key_and_is_harmless_twice,
    residents::several_residents_are_read_at_once_as_each_alone,
    residents::an_export_holds_everything_about_the_resident,
    feed::the_feed_carries_every_event_without_personal_data,
);

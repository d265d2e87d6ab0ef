//! One conformance suite for the event log, instantiated once per backend by `conformance!`.
//! Every property the log promises is proven here against real SQLite and real PostgreSQL.

mod suite;

macro_rules! conformance {
    ($backend:ident, $open:expr, [$($test:ident),* $(,)?]) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let open: fn() -> Option<testkit::TestDb> = $open;
                    let Some(db) = open() else { return };
                    crate::suite::$test(db).await;
                }
            )*
        }
    };
}

macro_rules! for_each_backend {
    ([$($test:ident),* $(,)?]) => {
        conformance!(sqlite, || Some(testkit::TestDb::sqlite()), [$($test),*]);
        conformance!(postgres, testkit::TestDb::postgres, [$($test),*]);
    };
}

for_each_backend!([
    stored_events_keep_every_field,
    versions_are_contiguous_from_one,
    no_stream_expectation_refuses_an_existing_stream,
    exact_expectation_names_stream_expected_and_actual,
    any_expectation_appends_to_whatever_is_there,
    multi_stream_append_writes_nothing_when_one_expectation_fails,
    multi_stream_append_is_atomic_and_ordered,
    replaying_the_same_ids_returns_the_original_positions,
    same_id_with_other_content_is_a_clash_and_writes_nothing,
    partly_stored_ids_are_a_clash,
    malformed_appends_are_refused,
    thirty_two_writers_race_for_each_version_and_one_wins,
    concurrent_identical_appends_store_once,
    concurrent_multi_stream_appends_do_not_deadlock,
    read_stream_pages_from_a_version,
    read_all_pages_by_cursor_category_and_tenant,
    subscription_catches_up_then_goes_live,
    subscriber_sees_every_event_of_slow_concurrent_writers_exactly_once,
    subscription_wakes_across_store_instances,
    consumer_killed_midway_resumes_without_applying_twice,
    consumer_refuses_a_batch_when_its_checkpoint_moved,
    data_survives_reopening_the_store,
    one_runner_leads_a_projection_and_a_standby_takes_over,
    processes_opening_a_new_log_at_once_migrate_it_once,
    typed_rows_decode_the_same_on_both_backends,
]);

//! One conformance suite for the event log, instantiated once per backend by `testkit::both_backends!`.
//! Every property the log promises is proven here against real SQLite and real PostgreSQL.

mod suite;

testkit::both_backends!(
    suite::stored_events_keep_every_field,
    suite::versions_are_contiguous_from_one,
    suite::no_stream_expectation_refuses_an_existing_stream,
    suite::exact_expectation_names_stream_expected_and_actual,
    suite::any_expectation_appends_to_whatever_is_there,
    suite::multi_stream_append_writes_nothing_when_one_expectation_fails,
    suite::multi_stream_append_is_atomic_and_ordered,
    suite::replaying_the_same_ids_returns_the_original_positions,
    suite::same_id_with_other_content_is_a_clash_and_writes_nothing,
    suite::partly_stored_ids_are_a_clash,
    suite::malformed_appends_are_refused,
    suite::thirty_two_writers_race_for_each_version_and_one_wins,
    suite::concurrent_identical_appends_store_once,
    suite::concurrent_multi_stream_appends_do_not_deadlock,
    suite::read_stream_pages_from_a_version,
    suite::read_streams_reads_several_whole_streams_at_once,
    suite::read_all_pages_by_cursor_category_and_tenant,
    suite::subscription_catches_up_then_goes_live,
    suite::followers_woken_together_each_get_every_event_at_once,
    suite::subscriber_sees_every_event_of_slow_concurrent_writers_exactly_once,
    suite::subscription_wakes_across_store_instances,
    suite::consumer_killed_midway_resumes_without_applying_twice,
    suite::consumer_refuses_a_batch_when_its_checkpoint_moved,
    suite::data_survives_reopening_the_store,
    suite::one_runner_leads_a_projection_and_a_standby_takes_over,
    suite::processes_opening_a_new_log_at_once_migrate_it_once,
    suite::typed_rows_decode_the_same_on_both_backends,
    suite::rewriting_payloads_recomputes_hashes_and_records_one_entry,
    suite::relaxed_transactions_skip_the_sync_and_leave_every_other_commit_durable,
);

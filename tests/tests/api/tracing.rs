//! One trace per request, end to end: the system exports over OTLP to a receiver inside
//! this test; a ride booked over REST yields one trace holding the gateway's span, the
//! booking service's RPC, the volunteer service's RPC (the gateway resolves the pilot) and
//! the event log append, and the appended event carries that trace in its metadata. Spans
//! never carry personal data, API keys or invitation codes. Metrics are pushed to the same
//! receiver.
//!
//! One test per binary: telemetry is installed once per process, configured by the
//! standard `OTEL_*` variables set before the system starts.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use e2e::System;
use gateway::Role;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::json;

/// Every span received, flattened, and the names of the metrics received.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<Span>>>, Arc<Mutex<Vec<String>>>);

#[tonic::async_trait]
impl MetricsService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let mut names = self.1.lock().unwrap();
        for rm in request.into_inner().resource_metrics {
            for sm in rm.scope_metrics {
                names.extend(sm.metrics.into_iter().map(|m| m.name));
            }
        }
        Ok(tonic::Response::new(ExportMetricsServiceResponse { partial_success: None }))
    }
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            for ss in rs.scope_spans {
                spans.extend(ss.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

fn attr(span: &Span, key: &str) -> Option<String> {
    span.attributes.iter().find(|kv| kv.key == key).and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
        AnyValue::StringValue(s) => Some(s.clone()),
        AnyValue::IntValue(i) => Some(i.to_string()),
        AnyValue::BoolValue(b) => Some(b.to_string()),
        other => Some(format!("{other:?}")),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_booking_is_one_trace_from_the_gateway_to_the_event_log() {
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let server = receiver.clone();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(server.clone()))
            .add_service(MetricsServiceServer::new(server))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
    });
    // SAFETY: set before anything in this process reads the environment concurrently (the
    // system, and with it telemetry, starts below).
    unsafe {
        std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}"));
        std::env::set_var("OTEL_BSP_SCHEDULE_DELAY", "100");
        std::env::set_var("OTEL_METRIC_EXPORT_INTERVAL", "200");
    }
    let s = System::start(testkit::TestDb::sqlite()).await;
    let w = s.world().await;
    // Secrets pass through first: an API key issued and used, an invitation code issued.
    let key =
        s.post("/v1/api-keys", &s.admin(), json!({"name": "portal", "network": true})).await.expect(201).str("key");
    s.get(&format!("/v1/chapters/{}", w.chapter), &key).await.expect(200);
    let code = s.post("/v1/invitations", &s.admin(), json!({"role": "pilot", "pilot_id": w.pilot})).await.expect(201);
    let code = code.str("code");
    let pilot = s.token(Role::Pilot(w.pilot));
    let body = json!({"bike_id": w.bike, "pilot_id": w.pilot, "start": "2027-05-03T08:00:00Z",
                      "duration_minutes": 60, "resident_ids": [w.residents[0]]});
    let r = s.post("/v1/rides", &pilot, body).await.expect(201);
    let trace_id = r.header("x-trace-id").expect("x-trace-id");
    assert_eq!(trace_id.len(), 32);

    // Wait until the trace's spans from every hop have arrived.
    let wanted = |spans: &[Span]| {
        let mine: Vec<&Span> = spans.iter().filter(|s| hex(&s.trace_id) == trace_id).collect();
        let has = |f: &dyn Fn(&Span) -> bool| mine.iter().any(|s| f(s));
        let gateway = has(&|s| s.name == "POST /v1/rides" && attr(s, "route").as_deref() == Some("/v1/rides"));
        let booking = has(&|s| s.name == "/samskab.booking.v1.BookingService/BookRide");
        let peer =
            has(&|s| s.name.starts_with("/samskab.volunteer.v1.") || s.name.starts_with("/samskab.carehome.v1."));
        let append = has(&|s| s.name == "eventlog.append" && attr(s, "db.system").as_deref() == Some("sqlite"));
        (gateway, booking, peer, append)
    };
    testkit::eventually(&format!("the spans of trace {trace_id}"), Duration::from_secs(30), || async {
        let got = wanted(&receiver.0.lock().unwrap());
        if got == (true, true, true, true) { Ok(()) } else { Err(format!("(gateway, booking, peer, append): {got:?}")) }
    })
    .await;

    let spans = receiver.0.lock().unwrap().clone();
    let mine: Vec<&Span> = spans.iter().filter(|s| hex(&s.trace_id) == trace_id).collect();
    // One tree: every span but the root has its parent in the trace.
    let ids: Vec<String> = mine.iter().map(|s| hex(&s.span_id)).collect();
    for span in &mine {
        if span.name != "POST /v1/rides" {
            assert!(ids.contains(&hex(&span.parent_span_id)), "span {} hangs off the request's tree", span.name);
        }
    }
    // The append is a descendant of the booking RPC, whose span carries its status.
    let booking = mine.iter().find(|s| s.name == "/samskab.booking.v1.BookingService/BookRide").unwrap();
    assert_eq!(attr(booking, "rpc.grpc.status_code").as_deref(), Some("Ok"), "{:?}", booking.attributes);
    let gateway = mine.iter().find(|s| s.name == "POST /v1/rides").unwrap();
    assert_eq!(attr(gateway, "status").as_deref(), Some("201"), "{:?}", gateway.attributes);
    let append = mine.iter().find(|s| s.name == "eventlog.append").unwrap();
    let mut parent = hex(&append.parent_span_id);
    let mut found = false;
    for _ in 0..10 {
        if parent == hex(&booking.span_id) {
            found = true;
            break;
        }
        match mine.iter().find(|s| hex(&s.span_id) == parent) {
            Some(p) => parent = hex(&p.parent_span_id),
            None => break,
        }
    }
    assert!(found, "the append happens inside the booking RPC");

    // No personal data in any span: names, notes and e-mails of the world never appear;
    // nor do API keys or invitation codes (the spans of those requests are among them).
    assert!(spans.iter().any(|s| s.name == "POST /v1/api-keys"), "the key's request was traced");
    assert!(spans.iter().any(|s| s.name == "POST /v1/invitations"), "the invitation's request was traced");
    for span in &spans {
        let text = format!("{} {:?} {:?}", span.name, span.attributes, span.events);
        for personal in ["Ærø", "Østergård", "loves the harbour", "@example.org"] {
            assert!(!text.contains(personal), "span {} carries personal data: {text}", span.name);
        }
        for (what, secret) in [("an API key", &key[3..]), ("an invitation code", &code[4..])] {
            assert!(!text.contains(secret), "span {} carries {what}: {text}", span.name);
        }
    }

    // Metrics go the same way: the request counter and the append latency arrive over OTLP.
    testkit::eventually("the metrics over OTLP", Duration::from_secs(30), || async {
        let names = receiver.1.lock().unwrap().clone();
        let all = ["http.server.requests", "eventlog.append.duration", "rpc.server.calls"]
            .iter()
            .all(|n| names.iter().any(|m| m == n));
        if all { Ok(()) } else { Err(format!("{names:?}")) }
    })
    .await;

    // The appended event keeps the trace in its metadata.
    let store = eventlog::EventStore::connect(&s.config.url("booking")).await.unwrap();
    let page = store.read_all(eventlog::Cursor::START, &eventlog::Filter::all(), 1000).await.unwrap();
    let booked = page
        .events
        .iter()
        .find(|e| e.event_type == "RideBooked" && e.stream_id.contains(&r.str("ride_id")))
        .expect("the RideBooked event");
    let tp = booked.metadata.traceparent.clone().unwrap_or_default();
    assert!(tp.contains(&trace_id), "event metadata carries the trace: {tp}");
}

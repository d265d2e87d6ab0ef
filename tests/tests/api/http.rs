//! HTTP hygiene on the real system: operations endpoints, metrics per route, trace ids,
//! tokens, Danish problems, rate limits, CORS and request timeouts.

use std::time::Duration;

use e2e::System;
use gateway::{Claims, Keys, Role};
use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

testkit::both_backends!(
    operations_endpoints_answer_without_a_token,
    metrics_count_requests_per_route_template,
    tokens_are_checked_and_problems_speak_danish,
    a_token_over_its_rate_limit_gets_429_with_retry_after,
    cors_answers_configured_origins_only,
    a_request_that_does_not_arrive_in_time_gets_408,
    local_tokens_switched_off_are_refused_and_write_nothing,
    a_client_that_trickles_its_headers_is_cut_off,
    connections_beyond_the_limit_wait_for_one_to_close,
    expensive_reads_have_a_lower_limit_of_their_own,
    anonymous_callers_are_limited_by_the_address_a_trusted_proxy_forwarded,
    the_operations_endpoints_can_move_to_a_listener_of_their_own,
);

/// Reads until the peer closes the connection (`None`) or `limit` passes (`Some(bytes)`).
async fn read_until_closed(conn: &mut tokio::net::TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let closed = tokio::time::timeout(limit, async {
        let mut buf = [0u8; 4096];
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    if closed.is_ok() { None } else { Some(got) }
}

async fn a_client_that_trickles_its_headers_is_cut_off(db: testkit::TestDb) {
    let s = System::start_with(db, |c| c.http.header_read_timeout_secs = 1).await;
    let mut conn = tokio::net::TcpStream::connect(s.base.trim_start_matches("http://")).await.unwrap();
    // Headers that never end: the connection is closed, not held open.
    conn.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: ").await.unwrap();
    assert_eq!(read_until_closed(&mut conn, Duration::from_secs(30)).await, None, "the gateway closed it");
    // A client that sends its headers in time is answered as always.
    s.call(Method::GET, "/healthz", None, None).await.expect(200);
}

async fn connections_beyond_the_limit_wait_for_one_to_close(db: testkit::TestDb) {
    let s = System::start_with(db, |c| c.http.max_connections = 1).await;
    let addr = s.base.trim_start_matches("http://").to_owned();
    let ask = b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n";
    // The one place: a connection that was answered and stays open (keep-alive). The test
    // client keeps no idle connection, so once the first answer comes, this one holds it.
    let mut first = tokio::net::TcpStream::connect(&addr).await.unwrap();
    first.write_all(ask).await.unwrap();
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(30), first.read(&mut buf)).await.unwrap().unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
    // A second client's request is not answered while it is open...
    let mut second = tokio::net::TcpStream::connect(&addr).await.unwrap();
    second.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.unwrap();
    let early = tokio::time::timeout(Duration::from_secs(2), second.read(&mut buf)).await;
    assert!(early.is_err(), "answered beyond the limit: {early:?}");
    // ...and is, once it closes.
    drop(first);
    let n = tokio::time::timeout(Duration::from_secs(30), second.read(&mut buf)).await.unwrap().unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
}

async fn expensive_reads_have_a_lower_limit_of_their_own(db: testkit::TestDb) {
    let s = System::start_with(db, |c| c.http.expensive_rate_limit_per_minute = 2).await;
    let admin = s.admin();
    let network = "/v1/stats/network?from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z";
    s.get(network, &admin).await.expect(200);
    s.get(network, &admin).await.expect(200);
    let limited = s.get(network, &admin).await.expect(429);
    assert_eq!(limited.code(), "rate-limited");
    assert!(limited.header("retry-after").is_some());
    // The same caller's ordinary reads go on; another caller has its own budget.
    s.get("/v1/rides?limit=1", &admin).await.expect(200);
    s.get(network, &s.admin()).await.expect(200);
}

async fn anonymous_callers_are_limited_by_the_address_a_trusted_proxy_forwarded(db: testkit::TestDb) {
    let forwarded = |ip: &'static str| [("x-forwarded-for", ip)];
    // Not a trusted proxy: what a client writes in X-Forwarded-For changes nothing.
    let s = System::start_with(db, |c| c.http.rate_limit_per_minute = 2).await;
    for ip in ["203.0.113.1", "203.0.113.2"] {
        s.call_with(Method::GET, "/v1/rides?limit=1", None, None, &forwarded(ip)).await.expect(401);
    }
    let r = s.call_with(Method::GET, "/v1/rides?limit=1", None, None, &forwarded("203.0.113.3")).await.expect(429);
    assert_eq!(r.code(), "rate-limited");
    // The loopback peer as a trusted proxy: each forwarded client has its own budget.
    let mut s = s;
    s.config.http.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
    let s = s.restart().await;
    for ip in ["203.0.113.1", "203.0.113.1", "203.0.113.2", "203.0.113.2"] {
        s.call_with(Method::GET, "/v1/rides?limit=1", None, None, &forwarded(ip)).await.expect(401);
    }
    let r = s.call_with(Method::GET, "/v1/rides?limit=1", None, None, &forwarded("203.0.113.1")).await.expect(429);
    assert_eq!(r.code(), "rate-limited");
}

async fn the_operations_endpoints_can_move_to_a_listener_of_their_own(db: testkit::TestDb) {
    let port = testkit::free_port();
    let s = System::start_with(db, |c| c.http.ops_listen = Some(format!("127.0.0.1:{port}").parse().unwrap())).await;
    let ops = format!("http://127.0.0.1:{port}");
    let health = s.http.get(format!("{ops}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let metrics = s.http.get(format!("{ops}/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    // Not on the REST listener any more; the API and its documents are.
    s.call(Method::GET, "/healthz", None, None).await.expect(404);
    s.call(Method::GET, "/metrics", None, None).await.expect(404);
    s.call(Method::GET, "/openapi.json", None, None).await.expect(200);
    s.get("/v1/rides?limit=1", &s.admin()).await.expect(200);
}

async fn operations_endpoints_answer_without_a_token(db: testkit::TestDb) {
    let s = System::start(db).await;
    let h = s.call(Method::GET, "/healthz", None, None).await.expect(200);
    assert_eq!(h.body["status"], "ok");
    // Ready once every service answers and booking's feeds are connected (a moment after start).
    s.eventually("readiness", || async { s.call(Method::GET, "/readyz", None, None).await.status == 200 }).await;
    let r = s.call(Method::GET, "/readyz", None, None).await.expect(200);
    assert_eq!(r.body["services"], json!({"booking": true, "carehome": true, "volunteer": true, "notify": true}));
    let doc = s.call(Method::GET, "/openapi.json", None, None).await.expect(200);
    assert!(doc.body["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")));
    let docs = s.http.get(format!("{}/docs/", s.base)).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await.unwrap().contains("swagger"), "the docs page is served from the binary");
    // A trace id on every answer, and an incoming traceparent is continued.
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let t = s.call_with(Method::GET, "/healthz", None, None, &[("traceparent", parent)]).await.expect(200);
    assert_eq!(t.header("x-trace-id").as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
    let unknown = s.call(Method::GET, "/nowhere", None, None).await.expect(404);
    assert_eq!(unknown.code(), "not-found");
    assert!(unknown.header("x-trace-id").is_some_and(|t| t.len() == 32 && t != "0".repeat(32)));
}

async fn metrics_count_requests_per_route_template(db: testkit::TestDb) {
    let s = System::start(db).await;
    let admin = s.admin();
    let chapter = s.chapter().await;
    s.get(&format!("/v1/chapters/{chapter}"), &admin).await.expect(200);
    s.get(&format!("/v1/chapters/{}", uuid::Uuid::now_v7()), &admin).await.expect(404);
    // A projection's lag is measured once it has applied a batch: wait for the first.
    testkit::eventually("a projection's lag in /metrics", testkit::DEFAULT_TIMEOUT, || async {
        let text = s.http.get(format!("{}/metrics", s.base)).send().await.unwrap().text().await.unwrap();
        text.lines().any(|l| l.starts_with("eventlog_projection_lag{projection="))
    })
    .await;
    let resp = s.http.get(format!("{}/metrics", s.base)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = resp.text().await.unwrap();
    assert!(text.contains("# TYPE http_server_requests_total counter"), "{text}");
    assert!(text.contains("# TYPE http_server_request_duration_seconds histogram"), "{text}");
    // Labelled by the route template, never by a concrete id (the metrics are process-wide,
    // and other tests in this binary run too, so only presence is asserted).
    let line = |status: u16| {
        text.lines()
            .find(|l| {
                l.starts_with("http_server_requests_total{")
                    && l.contains("route=\"/v1/chapters/{id}\"")
                    && l.contains(&format!("status=\"{status}\""))
            })
            .map(str::to_owned)
    };
    for status in [200, 404] {
        let l = line(status).unwrap_or_else(|| panic!("no counter for GET /v1/chapters/{{id}} {status}:\n{text}"));
        let n: u64 = l.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(n >= 1, "{l}");
    }
    assert!(!text.contains(&chapter.to_string()), "no ids in metric labels");
    // Per RPC, the event log's appends, and each projection's lag.
    assert!(
        text.lines().any(|l| l.starts_with("rpc_server_calls_total{")
            && l.contains("rpc=\"/samskab.carehome.v1.CareHomeService/RegisterChapter\"")
            && l.contains("status=\"Ok\"")),
        "{text}"
    );
    assert!(text.contains("# TYPE rpc_server_duration_seconds histogram"), "{text}");
    assert!(text.contains("# TYPE eventlog_append_duration_seconds histogram"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("eventlog_appends_total{") && l.contains("outcome=\"ok\"")), "{text}");
    assert!(text.lines().any(|l| l.starts_with("eventlog_projection_lag{projection=")), "{text}");
}

async fn tokens_are_checked_and_problems_speak_danish(db: testkit::TestDb) {
    let s = System::start(db).await;
    let path = "/v1/rides?limit=1";
    let none = s.call(Method::GET, path, None, None).await.expect(401);
    assert_eq!(none.code(), "unauthenticated");
    assert_eq!(none.header("content-type").as_deref(), Some("application/problem+json"));
    assert_eq!(none.body["type"], "urn:samskab:problem:unauthenticated");
    s.get(path, "not.a.jwt").await.expect(401);
    // Signed with another key.
    let foreign = Keys::parse("k1=ffffffffffffffffffffffffffffffff").unwrap();
    s.get(path, &foreign.sign(&Claims::new("u-1", Role::Admin, chrono::Duration::hours(1)))).await.expect(401);
    // Expired (beyond any leeway).
    let keys = Keys::from_env_or_data_dir(s.config.data_dir()).unwrap();
    s.get(path, &keys.sign(&Claims::new("u-1", Role::Admin, chrono::Duration::hours(-2)))).await.expect(401);
    // The same problem in Danish.
    let en = s.call(Method::GET, path, None, None).await;
    let da = s.call_with(Method::GET, path, None, None, &[("accept-language", "da-DK, en;q=0.5")]).await.expect(401);
    assert_eq!(da.code(), "unauthenticated", "the code is stable across languages");
    assert_ne!(da.body["title"], en.body["title"], "the title is translated: {}", da.body);
    assert_eq!(da.header("content-language").as_deref(), Some("da"));
    // A wrong method is a problem too.
    let m = s.call(Method::PATCH, "/v1/rides", Some(&s.admin()), None).await.expect(405);
    assert_eq!(m.header("content-type").as_deref(), Some("application/problem+json"));
}

async fn a_token_over_its_rate_limit_gets_429_with_retry_after(db: testkit::TestDb) {
    let s = System::start_with(db, |c| c.http.rate_limit_per_minute = 5).await;
    let a = s.admin();
    let b = s.admin();
    let mut last = None;
    for i in 0..5 {
        let r = s.get("/v1/rides?limit=1", &a).await.expect(200);
        assert_eq!(r.header("ratelimit-limit").as_deref(), Some("5"));
        assert_eq!(r.header("ratelimit-remaining"), Some((4 - i).to_string()));
        assert!(r.header("ratelimit-reset").is_some());
        last = Some(r);
    }
    drop(last);
    let limited = s.get("/v1/rides?limit=1", &a).await.expect(429);
    assert_eq!(limited.code(), "rate-limited");
    let retry: u64 = limited.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(limited.header("ratelimit-remaining").as_deref(), Some("0"));
    // Another token has its own budget; operations endpoints are not limited.
    s.get("/v1/rides?limit=1", &b).await.expect(200);
    for _ in 0..8 {
        s.call(Method::GET, "/healthz", None, None).await.expect(200);
    }
}

async fn cors_answers_configured_origins_only(db: testkit::TestDb) {
    let s = System::start(db).await;
    let preflight = |origin: &'static str| {
        let s = &s;
        async move {
            s.http
                .request(Method::OPTIONS, format!("{}/v1/rides", s.base))
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "authorization,content-type,idempotency-key")
                .send()
                .await
                .unwrap()
        }
    };
    let ok = preflight("https://app.example.org").await;
    assert_eq!(ok.headers().get("access-control-allow-origin").unwrap(), "https://app.example.org");
    let methods = ok.headers().get("access-control-allow-methods").unwrap().to_str().unwrap().to_owned();
    assert!(methods.contains("POST"), "{methods}");
    let evil = preflight("https://evil.example.com").await;
    assert!(evil.headers().get("access-control-allow-origin").is_none());
    let r =
        s.call_with(Method::GET, "/healthz", None, None, &[("origin", "https://app.example.org")]).await.expect(200);
    assert_eq!(r.header("access-control-allow-origin").as_deref(), Some("https://app.example.org"));
    let exposed = r.header("access-control-expose-headers").unwrap_or_default();
    assert!(exposed.contains("x-trace-id") && exposed.contains("etag"), "{exposed}");
}

async fn a_request_that_does_not_arrive_in_time_gets_408(db: testkit::TestDb) {
    let s = System::start_with(db, |c| c.http.request_timeout_secs = 1).await;
    let admin = s.admin();
    let heads = s.heads().await;
    let mut conn = tokio::net::TcpStream::connect(s.base.trim_start_matches("http://")).await.unwrap();
    let head = format!(
        "POST /v1/chapters HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {admin}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"name\":"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        let mut buf = [0u8; 4096];
        loop {
            let n = conn.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the gateway answers a stalled request instead of waiting for ever");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"code\":\"timeout\""), "{text}");
    assert_eq!(heads, s.heads().await, "nothing written");
}

async fn local_tokens_switched_off_are_refused_and_write_nothing(db: testkit::TestDb) {
    let s = System::start_with(db, |c| c.http.local_tokens = Some("off".into())).await;
    let before = s.heads().await;
    let body = serde_json::json!({"name": "Odense", "timezone": "Europe/Copenhagen"});
    let r = s.post("/v1/rides?limit=1", &s.admin(), body).await.expect(401);
    assert_eq!(r.code(), "unauthenticated");
    assert_eq!(r.header("content-type").as_deref(), Some("application/problem+json"));
    s.get("/v1/rides?limit=1", &s.admin()).await.expect(401);
    assert_eq!(s.heads().await, before, "a refused token writes nothing");
    // Operations endpoints need no token.
    s.call(Method::GET, "/healthz", None, None).await.expect(200);
}

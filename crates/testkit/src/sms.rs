//! An SMS provider stand-in for tests: a real HTTP server on loopback speaking Samskab's
//! documented request shape (docs/notifications.md) that records every request. The first
//! `fail_first` requests are answered 503 (retried by the sender); a number starting with
//! `+4599` is refused with 400, as a provider refuses an invalid number; anything else is
//! accepted with 202.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

/// One request the provider received.
#[derive(Debug, Clone)]
pub struct SmsRequest {
    /// The `Authorization` header.
    pub authorization: String,
    /// The `Idempotency-Key` header.
    pub idempotency_key: String,
    /// The JSON body.
    pub body: serde_json::Value,
    /// The status it was answered with.
    pub status: u16,
}

#[derive(Clone, Default)]
struct Shared {
    requests: Arc<Mutex<Vec<SmsRequest>>>,
    fail_first: Arc<AtomicU32>,
}

/// A running stand-in; stopped when dropped.
pub struct SmsProvider {
    /// Where to send (`http://127.0.0.1:<port>/send`).
    pub url: String,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SmsProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn send(State(s): State<Shared>, headers: HeaderMap, body: String) -> StatusCode {
    let body: serde_json::Value = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let failing = s.fail_first.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
    let status = if failing {
        StatusCode::SERVICE_UNAVAILABLE
    } else if body["to"].as_str().is_some_and(|t| t.starts_with("+4599")) {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::ACCEPTED
    };
    let request = SmsRequest {
        authorization: header("authorization"),
        idempotency_key: header("idempotency-key"),
        body,
        status: status.as_u16(),
    };
    s.requests.lock().expect("requests").push(request);
    status
}

impl SmsProvider {
    /// Starts one on a free loopback port.
    pub async fn start(fail_first: u32) -> SmsProvider {
        let shared = Shared { fail_first: Arc::new(AtomicU32::new(fail_first)), ..Default::default() };
        let app = axum::Router::new().route("/send", axum::routing::post(send)).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/send", listener.local_addr().expect("address"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        SmsProvider { url, shared, task }
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<SmsRequest> {
        self.shared.requests.lock().expect("requests").clone()
    }

    /// The accepted ones.
    pub fn accepted(&self) -> Vec<SmsRequest> {
        self.requests().into_iter().filter(|r| r.status == 202).collect()
    }
}

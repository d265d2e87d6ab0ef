//! The all-in-one's own transport: its parts call each other over in-memory pipes, so no
//! other process on the machine can reach them (no TCP port, no socket file to connect
//! to). Every connection carries the name of the component that opened it, which the
//! server reads as the caller ([`Peer`] in the request's extensions), as it reads a
//! component's certificate between separate processes.
//!
//! A server registers under a name unique in the process (`inproc://carehome-<uuid>`); a
//! client's channel to it names itself (`?from=booking`) and connects on first use, so
//! channels can be made before their server starts, as over TCP.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{LazyLock, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::sync::mpsc;
use tonic::transport::server::Connected;

/// The URL scheme of in-process servers.
pub const SCHEME: &str = "inproc://";

/// Bytes a pipe buffers in each direction.
const PIPE_BYTES: usize = 1 << 20;

type Listeners = HashMap<String, mpsc::UnboundedSender<Conn>>;
static LISTENERS: LazyLock<Mutex<Listeners>> = LazyLock::new(Mutex::default);

/// The component that opened an in-process connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer(pub String);

/// One in-process connection, server side.
#[derive(Debug)]
pub struct Conn {
    io: DuplexStream,
    peer: Peer,
}

impl Connected for Conn {
    type ConnectInfo = Peer;

    fn connect_info(&self) -> Peer {
        self.peer.clone()
    }
}

impl AsyncRead for Conn {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The connections made to a server registered under a fresh name for `component`: its
/// URL and the stream of its incoming connections (unregistered when dropped).
pub fn listen(component: &str) -> (String, Incoming) {
    let name = format!("{component}-{}", uuid::Uuid::new_v4().simple());
    let (tx, rx) = mpsc::unbounded_channel();
    LISTENERS.lock().expect("listeners").insert(name.clone(), tx);
    (format!("{SCHEME}{name}"), Incoming { rx, name })
}

/// Incoming in-process connections of one server.
pub struct Incoming {
    rx: mpsc::UnboundedReceiver<Conn>,
    name: String,
}

impl futures_util::Stream for Incoming {
    type Item = std::io::Result<Conn>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|c| c.map(Ok))
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        LISTENERS.lock().expect("listeners").remove(&self.name);
    }
}

/// The URL `caller` uses to call the in-process server at `url`.
pub fn url_for(url: &str, caller: &str) -> String {
    match url.strip_prefix(SCHEME) {
        Some(name) => format!("{SCHEME}{}?from={caller}", name.split('?').next().unwrap_or_default()),
        None => url.to_owned(),
    }
}

/// Opens a connection to the in-process server `url` names, as the component it names.
fn connect(url: &str) -> std::io::Result<DuplexStream> {
    let rest = url.strip_prefix(SCHEME).unwrap_or(url);
    let (name, caller) = match rest.split_once("?from=") {
        Some((name, caller)) => (name, caller),
        None => (rest, ""),
    };
    let listener = LISTENERS.lock().expect("listeners").get(name).cloned();
    let refused =
        || std::io::Error::new(std::io::ErrorKind::ConnectionRefused, format!("nothing serves {SCHEME}{name}"));
    let listener = listener.ok_or_else(refused)?;
    let (ours, theirs) = tokio::io::duplex(PIPE_BYTES);
    listener.send(Conn { io: theirs, peer: Peer(caller.to_owned()) }).map_err(|_| refused())?;
    Ok(ours)
}

/// A lazily connected channel to the in-process server `url` names.
pub(crate) fn channel(url: &str, endpoint: tonic::transport::Endpoint) -> tonic::transport::Channel {
    let url = url.to_owned();
    endpoint.connect_with_connector_lazy(tower::service_fn(move |_: http::Uri| {
        let url = url.clone();
        async move { connect(&url).map(hyper_util::rt::TokioIo::new) }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_the_server_and_the_caller() {
        let (url, incoming) = listen("carehome");
        assert!(url.starts_with("inproc://carehome-"), "{url}");
        let from = url_for(&url, "booking");
        assert_eq!(from, format!("{url}?from=booking"));
        assert_eq!(url_for(&from, "gateway"), format!("{url}?from=gateway"), "the caller is replaced, not added");
        assert_eq!(url_for("http://127.0.0.1:1", "gateway"), "http://127.0.0.1:1");
        drop(incoming);
        assert_eq!(connect(&from).unwrap_err().kind(), std::io::ErrorKind::ConnectionRefused, "unregistered on drop");
    }
}

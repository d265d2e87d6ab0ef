//! Samskab's event log: an append-only store over SQLite (embedded) and PostgreSQL
//! (production) behind one API.
//!
//! - [`EventStore::append`] writes to one or several streams atomically, each with an
//!   [`ExpectedVersion`]; event ids make appends idempotent.
//! - [`EventStore::read_stream`], [`EventStore::read_all`] and [`EventStore::subscribe`]
//!   read; the global order is followed with an opaque [`Cursor`] that never skips an event
//!   committed by a concurrent writer.
//! - [`run_projection`] runs a read model whose writes and checkpoint commit together.

mod append;
mod consumer;
mod error;
mod metrics;
mod model;
pub mod plans;
mod postgres;
mod rewrite;
mod sqlite;
mod store;
mod subscription;

pub use consumer::{Arg, Projection, REBUILD_PAGE, Tx, rebuild_projection, rebuild_projection_paged, run_projection};
pub use error::Error;
pub use model::{
    Actor, AppendResult, Appended, Cursor, ExpectedVersion, Filter, Metadata, NewEvent, Page, RecordedEvent,
    StreamAppend,
};
pub use rewrite::{PayloadRewrite, RewriteEntry};
pub use store::{Backend, EventStore, Leadership, PortableRow, StoreOptions, backend_of};
pub use subscription::Subscription;

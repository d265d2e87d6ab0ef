//! What every Samskab gRPC service shares: the error codes and their mapping to gRPC
//! ([`error`]), the command context ([`context`]), the one command executor ([`executor`])
//! and clock ([`clock`]), the event feed ([`feed`]), serving
//! ([`server`]), calling ([`client`]) and following another service's feed ([`remote`]).

pub mod access;
pub mod aggregate;
pub mod audit;
pub mod bootstrap;
pub mod client;
pub mod clock;
pub mod context;
pub mod error;
pub mod executor;
pub mod feed;
pub mod inproc;
pub mod policy;
pub mod remote;
pub mod rpc_metrics;
pub mod server;
pub mod ssrf;
pub mod tls;

pub use aggregate::{Aggregate, Loaded};
pub use context::CommandCtx;
pub use domain::{Decision, DomainError};
pub use error::{ErrorCode, RemoteError, ServiceError};

/// The result of a service handler.
pub type ServiceResult<T> = Result<T, ServiceError>;

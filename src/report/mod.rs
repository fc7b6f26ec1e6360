//! Reporting: the [`Store`] of latest results, its OpenMetrics rendering ([`metrics`]) and the
//! status JSON ([`status`]) shared by `GET /status` and `check --output json`.
//!
//! Nothing here ever sees a credential: reports are built from [`crate::probe::ProbeResult`]s
//! only, whose fields hold no secret by construction.

pub mod advice;
pub mod check;
pub mod diagnosis;
pub mod exposition;
pub mod metrics;
pub mod progress;
pub mod status;
pub mod store;
pub mod text;
pub mod width;

pub use metrics::{encode, encode_served, StoreCollector, CONTENT_TYPE};
pub use status::status_json;
pub use store::{ProbeKey, Snapshot, Store, NO_SECRET};

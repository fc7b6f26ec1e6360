//! Probing registries: transport, challenge parsing, token fetch, the credential handshake and
//! classification.
//!
//! * [`transport`]: resolve → connect → TLS → HTTP/1.1, each timed, each with a typed error;
//! * [`challenge`]: `WWW-Authenticate` parsing with containerd's rules;
//! * [`token`]: the bearer token request (POST, then GET on containerd's fallback statuses);
//!   [`tokenjson`]: its answer decoded with Go `encoding/json` rules;
//! * [`credential`]: the `/v2/` handshake of one credential against one registry;
//! * [`exchange`]: steps both handshakes share (host TLS, timed requests, HTTP fallback);
//! * [`pull`]: the manifest `HEAD` of an image probe, with containerd's retries and mirrors;
//! * [`classify`]: the one place where a failure becomes a [`Reason`];
//! * [`vocab`]: phases, reasons, classes; [`failure`]: what went wrong and where, as types;
//!   [`outcome`]: the result every prober returns; [`evidence`]: what is kept of each exchange.
//!
//! Nothing here words advice: `report::advice` does, from these types.

pub mod challenge;
pub mod classify;
pub mod credential;
pub mod evidence;
pub mod exchange;
pub mod failure;
pub mod outcome;
pub mod pull;
pub mod redact;
pub mod tls;
pub mod token;
pub mod tokenjson;
pub mod transport;
pub mod vocab;

pub use outcome::{
    AuthMode, Class, Exchange, HostVerdict, KeyRef, NetworkStep, Note, Phase, ProbeResult,
    RateLimit, Reason, TlsInfo,
};

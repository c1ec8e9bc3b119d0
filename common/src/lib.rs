//! Types shared by the command center (CC), the workservers (WS) and the CLI.
//!
//! Layout:
//! - [`ids`]: parsed identifiers (`CertId`, `JobId`, `LeaseId`, `CourseId`, ...).
//! - [`request`]: an LMS certificate request, parsed and validated.
//! - [`state`]: the certificate state machine (`CertState`, `Action`) — the only
//!   place where legal transitions are written down.
//! - [`wire`]: JSON bodies of the HTTPS API (`../shared/API.md`), kept apart from
//!   the domain types so the contract is visible in one file.
//! - [`catalog`]: the templates a workserver renders and the characters each can
//!   draw; the CC checks submissions against it, both resolve templates with it.
//! - [`config`]: `cc.conf` / `ws.conf` parsing with errors that name file and key.
//! - [`secret`]: secrets that never print and compare in constant time.
//! - [`tls`]: loading PEM files into rustls server and client configs.
//!
//! Architecture invariant: this crate knows nothing about axum, Redis or PDFs.

pub mod catalog;
pub mod config;
pub mod ids;
pub mod request;
pub mod secret;
pub mod state;
pub mod time_fmt;
pub mod tls;
pub mod wire;

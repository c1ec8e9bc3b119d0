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
//! - [`catalogs`]: the live workservers' catalogues together, and which template
//!   version a submission is pinned to (rolling template updates).
//! - [`columns`]: how wide text counts against a template's length limits.
//! - [`failure`]: why a job failed: the stable `error_code`s and what an LMS is
//!   told for each (operators get the full detail).
//! - [`config`]: `cc.conf` / `ws.conf` parsing with errors that name file and key.
//! - [`secret`]: secrets that never print and compare in constant time.
//! - [`tls`]: loading PEM files into rustls server and client configs.
//! - [`status_list`]: Bitstring Status List entries and publications on the wire.
//! - [`html`]: escaping for the HTML pages (verification page, dashboard).
//! - [`error_chain`]: an error and its causes on one line.
//!
//! Architecture invariant: this crate knows nothing about axum, Redis or PDFs.

pub mod catalog;
pub mod catalogs;
pub mod cidr;
pub mod columns;
pub mod config;
pub mod failure;
pub mod html;
pub mod ids;
pub mod json_int;
pub mod layout;
pub mod request;
pub mod scripts;
pub mod secret;
pub mod state;
pub mod status_list;
pub mod time_fmt;
pub mod tls;
pub mod wire;

/// An error with its causes on one line ("error sending request: ...: connection
/// refused"): reqwest's own message leaves out why. A cause whose text is already
/// in the line is not repeated.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = c.source();
    }
    s
}

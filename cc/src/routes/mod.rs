//! HTTP handlers, one module per resource of API.md.

pub mod callbacks;
pub mod certificates;
pub mod leases;
pub mod status;
pub mod verify;
pub mod workservers;

//! The BigPanda boundary: webhook bodies in (lenient parsing into lifecycle snapshots) and the
//! REST API out (key validation, incident resolve).

pub mod client;
pub mod webhook;

//! pandabridge: BigPanda incidents in, alerts out, with two-way resolution.
//!
//! Data flows one way: `http` → `engine` → `lifecycle` (pure) → `store`, and `engine` →
//! `bigpanda` for outbound calls. See `docs/ARCHITECTURE.md`.
#![forbid(unsafe_code)]

pub mod bigpanda;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod engine;
#[cfg(feature = "fault-injection")]
pub mod faults;
mod flock;
pub mod http;
pub mod integration;
pub mod lifecycle;
pub mod metrics;
pub mod sources;
pub mod store;

//! Shared helpers for the black-box tests in `tests/`. Each test binary uses a different
//! subset, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod daemon;
pub mod fake_bigpanda;
pub mod model;

//! Helpers shared by the integration tests. Each test binary compiles this module on its own and
//! uses only part of it, hence the allowance.
#![allow(dead_code)]

pub mod model;

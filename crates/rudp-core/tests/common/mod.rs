//! Helpers shared by rudp-core's integration tests.
#![allow(dead_code)] // Each test file uses its own subset.

mod forge;
pub use forge::*;

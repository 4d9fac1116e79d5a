//! Helpers shared by rudp-core's integration tests.
// Each test file uses its own subset.
#![allow(dead_code, unused_imports)]

mod first_stream;
mod forge;
pub use first_stream::FirstStream;
pub use forge::*;

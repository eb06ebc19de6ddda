//! regcompat harness: drives real registry clients against the fake registry.

pub mod provision;
pub mod scenario;
pub mod process;
pub mod sandbox;

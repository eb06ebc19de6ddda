//! regcompat harness: drives real registry clients against the fake registry.

pub mod provision;

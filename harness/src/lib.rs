//! regcompat harness: drives real registry clients against the fake registry.

pub mod provision;
pub mod scenario;
pub mod process;
pub mod sandbox;
pub mod credhelper;
pub mod image_source;
pub mod daemon;
pub mod clients;
pub mod verdict;
pub mod client_config;
pub mod runner;

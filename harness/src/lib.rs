//! regcompat harness: drives real registry clients against the fake registry.

pub mod provision;
pub mod process;
pub mod sandbox;
pub mod scenario;
pub mod verdict;
pub mod credhelper;
pub mod clients;
pub mod daemon;
pub mod runner;
pub mod interim_fleet;

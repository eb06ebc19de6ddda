//! regcompat harness: drives real registry clients against the fake registry.

pub mod clients;
pub mod credhelper;
pub mod daemon;
pub mod interim_fleet;
pub mod process;
pub mod provision;
pub mod runner;
pub mod sandbox;
pub mod scenario;
pub mod verdict;

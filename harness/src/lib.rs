//! regcompat harness: drives real registry clients against the fake registry.
//!
//! scenario file ([`scenario`]) → sandbox ([`sandbox`]) → client process ([`process`],
//! [`clients`]) → fake registry → journal → verdict and cell ([`runner`]; the
//! `fault-tolerance` checks in [`fault_checks`]).

pub mod clients;
pub mod credhelper;
pub mod fault_checks;
pub mod known;
pub mod network;
pub mod process;
pub mod provision;
pub mod runner;
pub mod sandbox;
pub mod scenario;

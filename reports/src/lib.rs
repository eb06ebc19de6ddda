//! regcompat reports: the result model of a matrix run and the writers that render it
//! (JSON with a versioned schema, JUnit XML, Markdown, a static HTML page).

pub mod junit;
pub mod markdown;
pub mod model;

pub use model::{
    Cell, CheckRecord, ClientInfo, RunReport, SCHEMA_VERSION, ScenarioInfo, StepRecord, Verdict,
};

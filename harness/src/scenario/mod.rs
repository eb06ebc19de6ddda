//! Scenario files (`scenarios/*.toml`): data, not code.
//!
//! A scenario names the fleet to start (inline `[[host]]` tables in the fake-registry
//! fleet format, or `fleet = "path"`), the client-side configuration to write, the
//! abstract steps to run and what is expected of them and of the registry's journal.
//! Parsing errors name `file:line:col`, the field and a hint; unknown keys are rejected
//! with the list of valid keys (serde `deny_unknown_fields`).

mod model;
pub(crate) mod parse;

pub use model::{
    Action, AuthEntry, ClientConfig, Count, Expect, JournalExpect, Outcome, RequestMatch, Scenario,
    Step,
};
pub use parse::{ScenarioError, load, load_dir, parse};

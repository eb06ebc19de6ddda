//! A scriptable, spec-complete OCI Distribution registry for client-compatibility tests.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use fake_registry::{FakeRegistry, fixtures};
//! let image = fixtures::generate(&fixtures::ImageSpec::single(fixtures::Format::Oci, &[1024]))?;
//! let registry = FakeRegistry::builder().seed("library/hello", "latest", image).start().await?;
//! println!("pull from {}/library/hello:latest", registry.host());
//! registry.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Layout: [`api`] (the HTTP API, one module per endpoint family) over [`storage`] (one
//! trait, memory and disk backends); [`digest`], [`names`] and [`media`] hold the spec's
//! grammars; [`fixtures`] generates images; [`server`] starts it all.

pub mod addresses;
pub mod admin;
pub mod api;
pub mod auth;
pub mod config;
#[cfg(feature = "testcontainers")]
pub mod container;
pub mod digest;
pub mod drain;
pub mod error;
pub mod fault;
pub mod fixtures;
pub mod fleet;
#[doc(hidden)]
pub mod fuzzing;
pub mod image;
pub mod journal;
pub mod leak;
pub mod listener;
pub mod media;
pub mod names;
pub mod profile;
pub mod redirect;
pub mod server;
pub mod storage;
pub mod tls;
pub mod vhost;

pub use api::{Registry, RegistryOptions};
pub use server::{FakeRegistry, FakeRegistryBuilder, RunningRegistry, StartError};

//! # herald-gateway: JSON events over HTTP to named Kafka instances
//!
//! Work in progress (issue 14). What exists: the configuration
//! ([`config`]): TOML, every error naming the key and its line, checked by
//! `herald gateway check --config FILE`; tokens made by `herald gateway
//! token`. The HTTP server comes next. See DESIGN.md, "The gateway".

pub mod config;
pub mod token;

pub use config::{ConfigError, Fallback, GatewayConfig, Instance, TokenRule, TopicRule};

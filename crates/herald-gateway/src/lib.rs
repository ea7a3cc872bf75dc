//! # herald-gateway: JSON events over HTTP to named Kafka instances
//!
//! Work in progress (issue 14). What exists: the configuration
//! ([`config`]): TOML, every error naming the key and its line, checked by
//! `herald gateway check --config FILE`; tokens made by `herald gateway
//! token`; and [`serve`]: `POST /v1/instances/{instance}/topics/{topic}/events`
//! (one event or a batch, 202 once durable in the instance's spool) with
//! bearer tokens and problem+json errors, `wait=true`, `Idempotency-Key`,
//! `GET /v1/instances`, `/healthz`, `/readyz` and `/metrics`. Not yet: rate
//! limits, `fallback = "none"`, `/openapi.json`. See DESIGN.md, "The
//! gateway".

pub mod config;
pub mod metrics;
pub mod replay;
pub mod request;
mod server;
pub mod token;

pub use server::serve;

pub use config::{ConfigError, Fallback, GatewayConfig, Instance, TokenRule, TopicRule};

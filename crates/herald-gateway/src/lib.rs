//! # herald-gateway: JSON events over HTTP to named Kafka instances
//!
//! The configuration ([`config`]): TOML, every error naming the key and
//! its line, checked by `herald gateway check --config FILE`; tokens made
//! by `herald gateway token`; and [`serve`]: `POST
//! /v1/instances/{instance}/topics/{topic}/events` (one event or a batch,
//! 202 once durable in the instance's spool, or `wait=true` for Kafka's
//! offsets) with bearer tokens, per-token rate limits, `Idempotency-Key`,
//! `fallback = "none"` and problem+json errors; `GET /v1/instances`,
//! `/healthz`, `/readyz`, `/metrics`, `/openapi.json`, and the operator's
//! status page at `/`. See DESIGN.md,
//! "The gateway".

mod codec;
pub mod config;
mod listener;
pub mod metrics;
pub mod openapi;
pub mod probe;
pub mod problem;
mod publish;
pub mod ratelimit;
pub mod replay;
pub mod request;
mod server;
mod status;
pub mod token;

pub use listener::bind;
pub use server::serve;

pub use config::{ConfigError, Fallback, GatewayConfig, Instance, TokenRule, TopicRule};

//! `herald`: produce records, inspect metadata, administer topics, look
//! into spools, check gateway configurations and use a schema registry from
//! the command line, in the spirit of kcat. Argument parsing only; the work
//! is in `commands`, `topic`, `spool`, `gateway` and `schema`.

mod catalog;
mod commands;
mod doctor;
mod gateway;
mod progress;
mod schema;
mod spool;
mod topic;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Produce records to Apache Kafka with herald's pure-Rust producer.
#[derive(Parser, Debug)]
#[command(name = "herald", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Send each VALUE (or each line of standard input) as a record and
    /// print `TOPIC[PARTITION]@OFFSET` for each delivered one, in send order.
    Produce(Box<commands::ProduceArgs>),
    /// List brokers, topics, partitions and their leaders.
    Metadata(commands::MetadataArgs),
    /// Create, list, describe or delete topics.
    #[command(subcommand)]
    Topic(topic::TopicCommand),
    /// Look into a spool directory, or repair a damaged one (herald-spool).
    #[command(subcommand)]
    Spool(spool::SpoolCommand),
    /// The event gateway: run it (--config FILE), check a configuration,
    /// make a token.
    Gateway(gateway::GatewayArgs),
    /// A Confluent-compatible schema registry: get a schema, list versions,
    /// check a local schema's compatibility, register.
    #[command(subcommand)]
    Schema(schema::SchemaCommand),
    /// The Backstage catalog-info.yaml Event entity: validate files, or
    /// write a starting one for a topic.
    #[command(subcommand)]
    Catalog(catalog::CatalogCommand),
    /// Check each onboarding step with the settings a producer will use:
    /// brokers resolve and connect, TLS, SASL, the topic, writing, the
    /// schema, the catalog entity. One line per step; exit 0 only if all
    /// pass.
    Doctor(Box<doctor::DoctorArgs>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The gateway logs one line per failed request (at info for a client's
    // error, warn for its own); the other commands only warnings.
    let default_filter = match cli.command {
        Command::Gateway(_) => "warn,herald_gateway=info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HERALD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        // Colours only for a person: a log file or journal gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("herald: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async {
        match cli.command {
            Command::Produce(args) => commands::produce(*args).await,
            Command::Metadata(args) => commands::metadata(args).await,
            Command::Topic(cmd) => topic::run(cmd).await,
            Command::Spool(cmd) => spool::run(cmd),
            Command::Gateway(args) => gateway::run(args).await,
            Command::Schema(cmd) => schema::run(cmd).await,
            Command::Catalog(cmd) => catalog::run(cmd).await,
            Command::Doctor(args) => doctor::run(*args).await,
        }
    })
}

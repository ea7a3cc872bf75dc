//! `herald topic create|list|describe|delete`: topic administration
//! (seed 004: create the topic with partitions and retention).

use std::future::Future;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use herald::admin::{Admin, NewTopic};

use crate::commands::{config, fail, split_pair, USAGE};

#[derive(Args, Debug)]
pub(crate) struct Connect {
    /// Bootstrap brokers, HOST:PORT[,HOST:PORT…] (`bootstrap.servers`).
    #[arg(short = 'b', long = "brokers")]
    brokers: String,
    /// Client property PROPERTY=VALUE with Kafka's names, repeatable
    /// (for example -X request.timeout.ms=5000).
    #[arg(short = 'X', value_name = "PROPERTY=VALUE")]
    properties: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub(crate) enum TopicCommand {
    /// Create a topic with partitions, replicas and configs.
    Create {
        #[command(flatten)]
        connect: Connect,
        /// The topic's name.
        name: String,
        /// Partitions (default: the broker's num.partitions).
        #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
        partitions: i32,
        /// Replicas per partition (default: the broker's
        /// default.replication.factor).
        #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
        replication_factor: i16,
        /// Topic config NAME=VALUE, repeatable (for example
        /// --config retention.ms=604800000).
        #[arg(long = "config", value_name = "NAME=VALUE")]
        configs: Vec<String>,
    },
    /// List the cluster's topics, one per line.
    List {
        #[command(flatten)]
        connect: Connect,
    },
    /// Show a topic's partitions (leader, replicas, in-sync replicas) and
    /// its configs as the broker reports them ("(default)" where the broker
    /// says the value is its default).
    Describe {
        #[command(flatten)]
        connect: Connect,
        /// The topic's name.
        name: String,
    },
    /// Delete a topic.
    Delete {
        #[command(flatten)]
        connect: Connect,
        /// The topic's name.
        name: String,
    },
}

/// Run `op` with an admin client, bounded by the connection and request
/// timeouts, so a cluster that does not answer is a clear error.
async fn with_admin<T, F, Fut>(connect: &Connect, op: F) -> Result<T, ExitCode>
where
    F: FnOnce(Admin) -> Fut,
    Fut: Future<Output = Result<T, herald::Error>>,
{
    let cfg = config(&connect.brokers, &connect.properties).map_err(|e| fail(e, USAGE))?;
    let bound = 2 * (cfg.request_timeout + cfg.connection_setup_timeout);
    let admin = Admin::new(&cfg).map_err(|e| fail(e, USAGE))?;
    match tokio::time::timeout(bound, op(admin)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(fail(e, 1)),
        Err(_) => Err(fail(
            format!(
                "no answer from {} within {} ms",
                connect.brokers,
                bound.as_millis()
            ),
            1,
        )),
    }
}

pub(crate) async fn run(cmd: TopicCommand) -> ExitCode {
    let result = match cmd {
        TopicCommand::Create {
            connect,
            name,
            partitions,
            replication_factor,
            configs,
        } => {
            let mut topic = NewTopic::new(&name, partitions, replication_factor);
            for c in &configs {
                match split_pair(c, "--config") {
                    Ok((k, v)) => topic = topic.config(k, v),
                    Err(e) => return fail(e, USAGE),
                }
            }
            with_admin(&connect, |a| async move { a.create_topic(&topic).await })
                .await
                .map(|()| println!("created topic \"{name}\""))
        }
        TopicCommand::List { connect } => {
            with_admin(&connect, |a| async move { a.list_topics().await })
                .await
                .map(|names| names.iter().for_each(|n| println!("{n}")))
        }
        TopicCommand::Describe { connect, name } => {
            with_admin(&connect, |a| async move { a.describe_topic(&name).await })
                .await
                .map(|d| {
                    println!(
                        "topic \"{}\" with {} partitions:",
                        d.name,
                        d.partitions.len()
                    );
                    for p in &d.partitions {
                        let leader = p.leader.map_or("none".to_string(), |l| l.to_string());
                        println!(
                            "  partition {}, leader {leader}, replicas {:?}, in sync {:?}",
                            p.partition, p.replicas, p.in_sync
                        );
                    }
                    println!(" configs:");
                    for c in &d.configs {
                        let value = match (&c.value, c.sensitive) {
                            (_, true) => "(sensitive)".to_string(),
                            (Some(v), false) => v.clone(),
                            (None, false) => "(none)".to_string(),
                        };
                        let default = if c.is_default { " (default)" } else { "" };
                        println!("  {}={value}{default}", c.name);
                    }
                })
        }
        TopicCommand::Delete { connect, name } => {
            with_admin(&connect, |a| async move { a.delete_topic(&name).await })
                .await
                .map(|()| println!("deleted topic"))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}

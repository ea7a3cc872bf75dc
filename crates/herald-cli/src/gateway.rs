//! `herald gateway check --config FILE`: read and check a gateway
//! configuration without starting anything; `herald gateway token --name
//! NAME`: a new random token and the configuration lines that allow it
//! (which hold only its SHA-256); `herald gateway --config FILE`: run it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

/// `herald gateway --config FILE` runs it; the subcommands check a file or
/// make a token.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct GatewayArgs {
    #[command(subcommand)]
    command: Option<GatewayCommand>,
    /// Run the gateway with this TOML configuration (until SIGTERM/SIGINT).
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub(crate) enum GatewayCommand {
    /// Check a configuration file: every error names the line and the key;
    /// exits 1 on the first one, 0 with a summary when it is sound.
    Check {
        /// The gateway's TOML configuration.
        #[arg(long)]
        config: PathBuf,
    },
    /// Print a new random bearer token and the [[tokens]] lines to paste
    /// into the configuration (they hold its SHA-256, never the token).
    Token {
        /// The token's name (shown in logs and errors).
        #[arg(long)]
        name: String,
    },
}

pub(crate) async fn run(args: GatewayArgs) -> ExitCode {
    match (args.command, args.config) {
        (Some(cmd), _) => command(cmd),
        (None, Some(config)) => serve(config).await,
        (None, None) => {
            eprintln!(
                "herald: give --config FILE to run the gateway, or `herald gateway check|token`"
            );
            ExitCode::from(2)
        }
    }
}

/// Run until SIGTERM or SIGINT; then stop accepting, finish what is in
/// progress and close the spools (what Kafka has not acknowledged stays on
/// disk for the next start).
async fn serve(config: PathBuf) -> ExitCode {
    let mut cfg = match herald_gateway::GatewayConfig::load(&config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("herald: {e}");
            return ExitCode::from(1);
        }
    };
    // Each connection is a file descriptor: raise the soft limit to the
    // hard one, and keep max_connections under it with room for the
    // spools' files and the connections to Kafka (else accept would fail
    // with EMFILE, unseen by clients, and so would a spool's next segment).
    const RESERVE: u64 = 512;
    let fds = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024);
    let room = fds.saturating_sub(RESERVE).max(1) as usize;
    if cfg.max_connections > room {
        eprintln!(
            "herald gateway: limits.max_connections {} lowered to {room}: this process may open \
             {fds} files (ulimit -n) and keeps {RESERVE} for spools and Kafka",
            cfg.max_connections
        );
        cfg.max_connections = room;
    }
    let listener = match herald_gateway::bind(cfg.listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "herald: cannot listen on {} (listen in {}): {e}",
                cfg.listen,
                config.display()
            );
            return ExitCode::from(1);
        }
    };
    eprintln!("herald gateway: listening on {}", cfg.listen);
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        eprintln!("herald gateway: stopping");
    };
    match herald_gateway::serve(cfg, listener, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("herald: {e}");
            ExitCode::from(1)
        }
    }
}

fn command(cmd: GatewayCommand) -> ExitCode {
    match cmd {
        GatewayCommand::Check { config } => match herald_gateway::GatewayConfig::load(&config) {
            Ok(c) => {
                println!("{}: OK", config.display());
                println!(
                    "  listen {}{}",
                    c.listen,
                    if c.auth_none { " (auth = none)" } else { "" }
                );
                println!(
                    "  spool {} (max.bytes {} per instance)",
                    c.spool_dir.display(),
                    c.spool_max_bytes
                );
                for (name, i) in &c.instances {
                    let topics: Vec<&str> = i.topics.keys().map(String::as_str).collect();
                    println!(
                        "  instance {name}: {} topic(s) [{}], send_timeout_ms {}, fallback {}",
                        topics.len(),
                        topics.join(", "),
                        i.send_timeout.as_millis(),
                        match i.fallback {
                            herald_gateway::Fallback::Spool => "spool",
                            herald_gateway::Fallback::None => "none",
                        }
                    );
                }
                println!("  {} token(s)", c.tokens.len());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("herald: {e}");
                ExitCode::from(1)
            }
        },
        GatewayCommand::Token { name } => {
            let token = herald_gateway::token::new_token();
            println!("token (give it to the client; it is not stored anywhere): {token}");
            println!();
            print!("{}", herald_gateway::token::config_lines(&name, &token));
            ExitCode::SUCCESS
        }
    }
}

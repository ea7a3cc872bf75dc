//! `herald gateway check --config FILE`: read and check a gateway
//! configuration without starting anything; `herald gateway token --name
//! NAME`: a new random token and the configuration lines that allow it
//! (which hold only its SHA-256). The HTTP server itself is issue 14's next
//! step.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

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

pub(crate) fn run(cmd: GatewayCommand) -> ExitCode {
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

//! `herald spool inspect DIR`: what a spool directory holds (segments,
//! cursor, backlog, dead letters, damage), read without opening it;
//! `herald spool repair DIR`: set the damage aside so it opens again.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub(crate) enum SpoolCommand {
    /// Show a spool's segments, cursor, backlog and dead letters, and where
    /// it is damaged; exits 1 if it is (it would not open).
    Inspect {
        /// The spool directory.
        dir: PathBuf,
    },
    /// Set a damaged spool's damage aside so it opens again: the damaged
    /// bytes are copied to DIR/damaged/, each record lost is replaced at its
    /// sequence by a hole that forwarding turns into a dead letter, and every
    /// good record is kept. Run it with the spool closed.
    Repair {
        /// The spool directory.
        dir: PathBuf,
    },
}

pub(crate) fn run(cmd: SpoolCommand) -> ExitCode {
    match cmd {
        SpoolCommand::Inspect { dir } => match herald_spool::inspect(&dir) {
            Ok(report) => {
                print!("{report}");
                if report.damaged() {
                    ExitCode::from(1)
                } else {
                    ExitCode::SUCCESS
                }
            }
            Err(e) => {
                eprintln!("herald: {e}");
                ExitCode::from(1)
            }
        },
        SpoolCommand::Repair { dir } => match herald_spool::repair(&dir) {
            Ok(report) => {
                print!("{report}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("herald: {e}");
                ExitCode::from(1)
            }
        },
    }
}

//! `tether-bench`: Tether's benchmarks (issue 7).
//!
//! `tether-bench faults` runs the correctness benchmark: publishers and
//! subscribers on the Rust client and on the official npm `socket.io-client`
//! exchange messages through `tether serve`'s chat contract while the server
//! is killed with `kill -9` and restarted, connections are cut and stalled
//! and a consumer is slow; it reports what was sent, acknowledged, stored and
//! delivered, and exits non-zero when an acknowledged message was lost,
//! duplicated or delivered out of order.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod faults;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "tether-bench", version, about = "Tether's benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Delivery under faults: kill -9 of the server, cut and stalled
    /// connections, a slow consumer. Exit code 0: nothing lost, duplicated or
    /// reordered and the run completed; 1: a guarantee was broken; 2: the run
    /// did not complete in time; 3: the benchmark could not run.
    Faults(faults::FaultsArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tether-bench: cannot start the runtime: {e}");
            return ExitCode::from(3);
        }
    };
    match cli.command {
        Command::Faults(args) => {
            let json = args.json;
            match runtime.block_on(faults::run(args)) {
                Ok(outcome) => {
                    if json {
                        match serde_json::to_string_pretty(&outcome.report) {
                            Ok(text) => println!("{text}"),
                            Err(e) => {
                                eprintln!("tether-bench: cannot encode the report: {e}");
                                return ExitCode::from(3);
                            }
                        }
                    } else {
                        print!("{}", outcome.report.table());
                    }
                    ExitCode::from(outcome.code)
                }
                Err(e) => {
                    eprintln!("tether-bench faults: {e:#}");
                    ExitCode::from(3)
                }
            }
        }
    }
}

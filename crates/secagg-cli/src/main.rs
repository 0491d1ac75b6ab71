//! `secagg`: simulate and benchmark secure-aggregation rounds.

mod bench;
mod simulate_cmd;

use clap::{Parser, Subcommand};

/// Secure aggregation for federated learning: the server learns only the sum.
#[derive(Parser)]
#[command(name = "secagg", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one round with in-process clients, the real state machines and real crypto.
    Simulate(simulate_cmd::SimulateArgs),
    /// Run the benchmark table (SecAgg+ k = 20 neighbours / t = 11, as Flower's 21 shares).
    Bench(bench::BenchArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Simulate(a) => simulate_cmd::run(a),
        Command::Bench(a) => bench::run(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

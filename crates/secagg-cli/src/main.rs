//! `secagg`: simulate and benchmark secure-aggregation rounds.

mod bench;
mod dp_args;
mod dp_cmd;
mod gateway_cmd;
mod service_cmd;
mod simulate_cmd;

use clap::{Parser, Subcommand};
use secagg_cli::{combine_cmd, logging};

/// Secure aggregation for federated learning: the server learns only the sum.
#[derive(Parser)]
#[command(name = "secagg", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines on stderr as text or as JSON objects, one per line.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: logging::LogFormat,
    /// Which log lines: a level (error, warn, info, debug, trace, off) or target=level
    /// directives, e.g. warn,secagg_service=debug.
    #[arg(long, global = true, default_value = "info", value_parser = logging::parse_filter)]
    log_level: tracing_subscriber::filter::Targets,
}

#[derive(Subcommand)]
enum Command {
    /// Run one round with in-process clients, the real state machines and real crypto.
    Simulate(simulate_cmd::SimulateCmd),
    /// Run the benchmark table (SecAgg+ k = 20 neighbours / t = 11, as Flower's 21 shares).
    Bench(bench::BenchArgs),
    /// Run the aggregation server (gRPC), rounds one after another.
    Server(service_cmd::ServerArgs),
    /// Take part in rounds of a server with one input vector.
    Client(service_cmd::ClientArgs),
    /// Create a client identity key (and add it to a roster) for --threat malicious.
    Keygen(service_cmd::KeygenArgs),
    /// Differential privacy: the (ε, δ) of a schedule of rounds, or the noise for a budget.
    Dp(dp_cmd::DpArgs),
    /// Combine cohort results of `secagg server` into one global aggregate.
    Combine(combine_cmd::CombineArgs),
    /// Relay one device on a serial line to a server, as that device's client.
    Gateway(gateway_cmd::GatewayArgs),
}

fn main() {
    let cli = Cli::parse();
    logging::init(cli.log_format, cli.log_level.clone());
    let cli_format = cli.log_format;
    let result = match cli.command {
        Command::Simulate(a) => simulate_cmd::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Server(a) => service_cmd::server(a),
        Command::Client(a) => service_cmd::client(a),
        Command::Keygen(a) => service_cmd::keygen(a),
        Command::Dp(a) => dp_cmd::run(a),
        Command::Combine(a) => combine_cmd::run(a),
        Command::Gateway(a) => gateway_cmd::run(a),
    };
    if let Err(e) = result {
        match cli_format {
            logging::LogFormat::Text => eprintln!("error: {e}"),
            logging::LogFormat::Json => tracing::error!("{e}"),
        }
        std::process::exit(2);
    }
}

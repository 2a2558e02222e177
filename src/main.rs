//! The `portico` command line: `gateway` runs the data plane, `validate` checks a
//! config document. Errors end here as a message and a non-zero exit.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use portico::runtime::{self, ConfigSource, GatewayOptions};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "portico",
    version,
    about = "Portico, a self-hosted API gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (data plane).
    Gateway {
        /// Config document (YAML or JSON); reloaded on SIGHUP and when it changes.
        /// Without it, the embedded default config (a mocked API) is served.
        #[arg(long, short = 'c', env = "PORTICO_CONFIG")]
        config: Option<PathBuf>,
        /// Address every core listens on (SO_REUSEPORT).
        #[arg(long, default_value = "0.0.0.0:8080", env = "PORTICO_LISTEN")]
        listen: SocketAddr,
        /// Number of cores to run on (default: every CPU the process may use).
        #[arg(long, env = "PORTICO_CORES")]
        cores: Option<usize>,
        #[command(flatten)]
        log: LogArgs,
    },
    /// Compile a config document and print every error; exits non-zero if it has any.
    Validate { file: PathBuf },
}

#[derive(clap::Args)]
struct LogArgs {
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Log level or filter (RUST_LOG syntax); RUST_LOG wins when set.
    #[arg(long, default_value = "info")]
    log_level: String,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Gateway {
            config,
            listen,
            cores,
            log,
        } => {
            init_logging(&log);
            let source = match config {
                Some(path) => ConfigSource::File(path),
                None => ConfigSource::Embedded,
            };
            let opts = GatewayOptions {
                listen,
                cores,
                source,
            };
            match runtime::run(opts).context("gateway") {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("portico: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Validate { file } => match portico::config::load_file(&file, 0) {
            Ok(compiled) => {
                println!(
                    "{}: ok ({} APIs, {} operations)",
                    file.display(),
                    compiled.apis.len(),
                    compiled
                        .apis
                        .iter()
                        .map(|a| a.operations.len())
                        .sum::<usize>()
                );
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{}: {} error(s)", file.display(), errors.0.len());
                eprintln!("{errors}");
                ExitCode::FAILURE
            }
        },
    }
}

fn init_logging(args: &LogArgs) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&args.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match args.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

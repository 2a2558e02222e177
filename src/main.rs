//! The `portico` command line: `gateway` runs the data plane, `validate` checks a
//! config document. Errors end here as a message and a non-zero exit.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use portico::io::uring::Flavor;
use portico::runtime::{self, ConfigSource, GatewayOptions, IoChoice, IoEngine};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc instead of glibc malloc: a request allocates and frees dozens of small
/// objects and spawns a task, and glibc spent 15% of a policy request's CPU in malloc,
/// free and fastbin consolidation (see docs/io-engine.md, "Allocator"). Built without
/// transparent huge pages (`no_thp` in Cargo.toml): with them, 10,000 idle
/// connections cost 41 MiB instead of 26 MiB.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        /// How sockets are driven: `uring` (the io_uring engine; fails if the kernel
        /// or container refuses it), `glommio` (glommio's sockets), or `auto` (the
        /// engine where it starts, glommio's sockets elsewhere; logged at start).
        #[arg(long, value_enum, default_value_t = IoEngineArg::Auto, env = "PORTICO_IO_ENGINE")]
        io_engine: IoEngineArg,
        /// Ring flags to try first: `defer` (SINGLE_ISSUER + DEFER_TASKRUN), `coop`
        /// (COOP_TASKRUN) or `plain`; weaker ones are tried when the kernel refuses.
        #[arg(long, value_enum, default_value_t = RingFlagsArg::Defer, env = "PORTICO_RING_FLAGS")]
        ring_flags: RingFlagsArg,
        /// Whether a core that goes idle right after being busy first waits for up to
        /// 10 ms in its own ring, instead of going through glommio's sleep at once
        /// (docs/io-engine.md, "Waiting in the ring"). On by default.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set, env = "PORTICO_RING_WAIT")]
        ring_wait: bool,
        /// Whether sockets are also installed in each ring's table of registered
        /// descriptors, which spares the kernel a descriptor lookup per operation
        /// (docs/io-engine.md, "Registered descriptors"). On by default.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set, env = "PORTICO_FIXED_FILES")]
        fixed_files: bool,
        /// Microseconds a core that has gone idle keeps asking its ring for completions
        /// before it waits there (with `--ring-wait`). 0, the default, waits at once.
        /// On virtual machines, where waking a halted CPU is slow, a few tens of µs take
        /// that wake-up off most requests at moderate load, for CPU spent on every idle
        /// gap (docs/io-engine.md, "Polling before the wait"). An idle core still sleeps.
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=10_000), env = "PORTICO_RING_POLL_US")]
        ring_poll_us: u64,
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
enum IoEngineArg {
    Auto,
    Uring,
    Glommio,
}

#[derive(Clone, Copy, ValueEnum)]
enum RingFlagsArg {
    Defer,
    Coop,
    Plain,
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
            io_engine,
            ring_flags,
            ring_wait,
            fixed_files,
            ring_poll_us,
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
                io: IoChoice {
                    engine: match io_engine {
                        IoEngineArg::Auto => IoEngine::Auto,
                        IoEngineArg::Uring => IoEngine::Uring,
                        IoEngineArg::Glommio => IoEngine::Glommio,
                    },
                    flavor: match ring_flags {
                        RingFlagsArg::Defer => Flavor::Defer,
                        RingFlagsArg::Coop => Flavor::Coop,
                        RingFlagsArg::Plain => Flavor::Plain,
                    },
                    ring_wait,
                    fixed_files,
                    ring_poll: std::time::Duration::from_micros(ring_poll_us),
                },
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

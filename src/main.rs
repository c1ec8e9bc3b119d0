//! `testamur`: run a command center or workserver, talk to a cluster, make keys
//! and certificates, or run the local demo. Argument parsing and dispatch only.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use testamur::cmd;

#[derive(Parser)]
#[command(
    name = "testamur",
    version,
    about = "Distributed certificate generation: command center, workservers and tools"
)]
struct Cli {
    /// Log JSON lines instead of human-readable text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process; the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run a command center (HTTPS API in front of Redis).
    Cc {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Only check the configuration (and the TLS files it names), then exit.
        #[arg(long)]
        check: bool,
    },
    /// Run a workserver (renders, signs and publishes certificates).
    Ws {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Only check the configuration (and the key, font and storage it names), then exit.
        #[arg(long)]
        check: bool,
    },
    /// Development TLS material.
    Certs {
        #[command(subcommand)]
        action: cmd::certs::CertsCmd,
    },
    /// Make an OpenPGP signing key (Ed25519, v4) for workservers.
    Keygen(cmd::keygen::KeygenArgs),
    /// Submit one certificate request to a CC.
    Submit(cmd::submit::SubmitArgs),
    /// Show a cluster's status.
    Status(cmd::target::TargetArgs),
    /// Ask a workserver to finish its jobs, take no more and leave.
    Drain(cmd::drain::DrainArgs),
    /// Move certificates stored by releases before compact records into records
    /// (CCs also do it on first touch); resumable, safe while CCs run.
    Migrate(cmd::migrate::MigrateArgs),
    /// Check a certificate's detached signature offline.
    Verify(cmd::verify::VerifyArgs),
    /// Run a local cluster and generate sample certificates.
    Demo(cmd::demo::DemoArgs),
    /// Render one certificate to a PDF file from a templates folder (no cluster).
    Preview(cmd::preview::PreviewArgs),
    /// Measure render+sign speed or end-to-end throughput.
    Bench(cmd::bench::BenchArgs),
    /// Serve an Open edX xqueue: take certificate submissions, submit them to a CC and
    /// post each result back (drop-in for the old certificate agent).
    XqueueBridge(cmd::xqueue::XqueueArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Commands that print for a shell (`submit ... | head`) end quietly when the
    // reader goes away, as other Unix tools do, instead of panicking on the
    // broken pipe. Not for the long-running cc, ws and demo.
    #[cfg(unix)]
    if !matches!(
        cli.command,
        Command::Cc { .. } | Command::Ws { .. } | Command::Demo(_) | Command::XqueueBridge(_)
    ) {
        // SAFETY: restoring the default disposition of SIGPIPE at start-up,
        // before any other thread exists.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    // glibc's malloc serves large blocks with mmap below a threshold that it
    // raises as such blocks are freed, so it depends on what start-up happened to
    // free: with the font directories' cheap scan it stayed low, and the buffers
    // of every CJK subset (hundreds of KB) were mapped and faulted in anew per
    // certificate (classic CJK 25 % slower). Fixed thresholds keep them in the
    // heap. SAFETY: mallopt at start-up, before any other thread exists.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 16 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Cc { config, check } => cmd::serve::cc(&config, check, cli.log_json).await,
            Command::Ws { config, check } => cmd::serve::ws(&config, check, cli.log_json).await,
            Command::Certs { action } => cmd::certs::run(action),
            Command::Keygen(a) => cmd::keygen::run(a),
            Command::Submit(a) => cmd::submit::run(a).await,
            Command::Status(a) => cmd::status::run(a).await,
            Command::Drain(a) => cmd::drain::run(a).await,
            Command::Migrate(a) => cmd::migrate::run(a).await,
            Command::Verify(a) => cmd::verify::run(a),
            Command::Demo(a) => cmd::demo::run(a, cli.log_json).await,
            Command::Bench(a) => cmd::bench::run(a).await,
            Command::Preview(a) => cmd::preview::run(a),
            Command::XqueueBridge(a) => cmd::xqueue::run(a, cli.log_json).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

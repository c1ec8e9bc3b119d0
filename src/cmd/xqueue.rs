//! `testamur xqueue-bridge --config xqueue.conf [--check]`: take certificate
//! submissions from an Open edX xqueue, have a CC carry them out, post the
//! results back (docs/XQUEUE.md). Runs until SIGTERM/SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use testamur_common::config::LogFormat;

use crate::xqueue::config::XqueueConfig;

#[derive(Args)]
pub struct XqueueArgs {
    /// The bridge's configuration (see xqueue.conf in the repository).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Check the configuration, log in to xqueue and reach the CC, then exit.
    #[arg(long)]
    pub check: bool,
}

pub async fn run(a: XqueueArgs, log_json: bool) -> anyhow::Result<ExitCode> {
    let config = XqueueConfig::load(&a.config)?;
    if a.check {
        let summary = crate::xqueue::bridge::check(&config).await?;
        println!("{}: ok ({summary})", a.config.display());
        return Ok(ExitCode::SUCCESS);
    }
    crate::logging::init(log_json || config.log_format == LogFormat::Json);
    crate::xqueue::bridge::run(config, super::serve::shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

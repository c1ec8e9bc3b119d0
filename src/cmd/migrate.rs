//! `testamur migrate --config cc.conf`: move every certificate still stored in the
//! earlier Redis format (before compact records, issue 15) into records. CCs
//! migrate each certificate on first touch anyway; this moves the rest so that
//! memory drops at once. Resumable (run it again after an interruption) and safe
//! while CCs serve: each certificate moves in one atomic script call.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use testamur_common::config::CcConfig;

#[derive(Args)]
pub struct MigrateArgs {
    /// The CC's configuration (its Redis settings: redis_url or [redis_sentinel], redis_password).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Certificates per script call (each call blocks Redis for its duration).
    #[arg(long, default_value_t = 100)]
    chunk: usize,
}

pub async fn run(a: MigrateArgs) -> anyhow::Result<ExitCode> {
    let config = CcConfig::load(&a.config)?;
    let store = testamur_cc::startup::open_store(&config).await?;
    let started = Instant::now();
    let mut last = Instant::now();
    let moved = store
        .migrate_all(a.chunk.clamp(1, 1000), |n| {
            if last.elapsed().as_secs() >= 2 {
                eprintln!("migrate: {n} certificates moved so far");
                last = Instant::now();
            }
        })
        .await
        .context("migrating certificate records (run `testamur migrate` again to resume)")?;
    let left = store.unmigrated().await.context("checking what is left")?;
    println!(
        "migrate: {moved} certificates moved to compact records in {:.1} s{}",
        started.elapsed().as_secs_f64(),
        if left {
            "; some arrived in the earlier format meanwhile (an older CC still running?): run again"
        } else {
            "; none left in the earlier format"
        }
    );
    Ok(if left {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

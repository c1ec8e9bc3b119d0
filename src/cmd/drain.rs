//! `testamur drain NAME`: ask a workserver to finish its leases, take no more
//! jobs and leave; with `--wait`, until it has deregistered.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use testamur_common::wire::DrainResponse;

use super::target::{TargetArgs, Want};

#[derive(Args)]
pub struct DrainArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// The workserver's name (as in `testamur status`) or its id.
    workserver: String,
    /// Wait until the workserver has finished and deregistered.
    #[arg(long)]
    wait: bool,
    /// With --wait: give up after this many seconds.
    #[arg(long, default_value_t = 300)]
    wait_timeout_s: u64,
}

pub async fn run(a: DrainArgs) -> anyhow::Result<ExitCode> {
    let client = a.target.client(Want::Operator)?;
    let status = match client.status().await? {
        Ok(s) => s,
        Err(f) => bail!("the CC refused: {}", f.message),
    };
    let Some(ws) = status
        .workservers
        .iter()
        .find(|w| w.name == a.workserver || w.id.as_str() == a.workserver)
    else {
        let names: Vec<&str> = status.workservers.iter().map(|w| w.name.as_str()).collect();
        bail!(
            "no registered workserver is called {}; registered: {}",
            a.workserver,
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        );
    };
    let resp = client
        .http()
        .post(client.url(&format!("/v1/workservers/{}/drain", ws.id)))
        .bearer_auth(client.key())
        .send()
        .await
        .context("cannot reach the CC")?;
    if !resp.status().is_success() {
        bail!(
            "the CC refused to drain {} (HTTP {}): {}",
            ws.name,
            resp.status().as_u16(),
            resp.text().await.unwrap_or_default()
        );
    }
    let d: DrainResponse = resp.json().await.context("unreadable answer")?;
    println!(
        "{} ({}) is draining: it takes no more jobs, finishes its {} in flight and leaves",
        d.name, d.ws_id, ws.in_flight
    );
    if !a.wait {
        return Ok(ExitCode::SUCCESS);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(a.wait_timeout_s);
    loop {
        let s = client.status().await??;
        match s.workservers.iter().find(|w| w.id == d.ws_id) {
            None => {
                println!("{} has finished and deregistered", d.name);
                return Ok(ExitCode::SUCCESS);
            }
            Some(w) if tokio::time::Instant::now() > deadline => {
                eprintln!(
                    "{} still registered after {}s ({} in flight)",
                    w.name, a.wait_timeout_s, w.in_flight
                );
                return Ok(ExitCode::from(2));
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

//! `testamur submit`: send one certificate request and optionally wait for it.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use testamur_common::wire::SubmitRequest;

use super::target::{TargetArgs, Want};

#[derive(Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// add, regen or delete
    #[arg(long, default_value = "add")]
    action: String,
    #[arg(long)]
    course_id: String,
    #[arg(long)]
    username: String,
    /// The learner's name as printed (required for add and regen).
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    course_name: Option<String>,
    #[arg(long)]
    org: Option<String>,
    #[arg(long)]
    grade: Option<String>,
    #[arg(long)]
    designation: Option<String>,
    /// YYYY-MM-DD (default: today)
    #[arg(long)]
    issued_date: Option<String>,
    #[arg(long)]
    template: Option<String>,
    /// Follow the certificate until it is downloadable, deleted or error.
    #[arg(long)]
    wait: bool,
}

pub async fn run(a: SubmitArgs) -> anyhow::Result<ExitCode> {
    let client = a.target.client(Want::Lms)?;
    let req = SubmitRequest {
        action: Some(a.action),
        username: Some(a.username),
        course_id: Some(a.course_id),
        name: a.name,
        course_name: a.course_name,
        org: a.org,
        grade: a.grade,
        designation: a.designation,
        issued_date: a.issued_date,
        template: a.template,
        callback_url: None,
    };
    match client.submit(&req).await? {
        Ok(r) => {
            println!(
                "accepted: cert_id {} job_id {} state {}",
                r.cert_id, r.job_id, r.state
            );
            if a.wait {
                let c = client
                    .wait_final(r.cert_id.as_str(), Duration::from_secs(300))
                    .await?;
                println!("{}", serde_json::to_string_pretty(&c)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(f) => {
            eprintln!(
                "rejected ({}): {}{}",
                f.status,
                f.message,
                f.field.map(|x| format!(" [field {x}]")).unwrap_or_default()
            );
            Ok(ExitCode::from(2))
        }
    }
}

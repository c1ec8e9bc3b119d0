//! `testamur submit`: send one certificate request, or a CSV file of them
//! (`--csv`, see [`super::submit_csv`]), and optionally follow them to their
//! final state.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use testamur_common::wire::SubmitRequest;

use super::target::{TargetArgs, Want};

#[derive(Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// add, regen or delete (for --csv: the default when the file has no action column)
    #[arg(long, default_value = "add")]
    action: String,
    #[arg(long, required_unless_present = "csv")]
    course_id: Option<String>,
    #[arg(long, required_unless_present = "csv")]
    username: Option<String>,
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
    /// The learner's language (BCP 47: ja, ko, zh-Hans, zh-Hant): picks the CJK face
    /// of a name in Han characters only.
    #[arg(long)]
    lang: Option<String>,
    /// https URL the CC POSTs the outcome to (signed; see docs/API.md).
    #[arg(long)]
    callback_url: Option<String>,
    /// Makes a retried submission safe: the same key and request within 24 h
    /// answers the first answer and queues nothing new.
    #[arg(long)]
    idempotency_key: Option<String>,
    /// Submit every row of a CSV file (header row with column names; see docs/CSV.md).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["course_id", "username", "name"])]
    csv: Option<PathBuf>,
    /// Where --csv writes the rows the CC refused, with the reasons (default: FILE.rejects.csv).
    #[arg(long, value_name = "FILE", requires = "csv")]
    rejects: Option<PathBuf>,
    /// Requests per batch call with --csv (at most 10000).
    #[arg(long, default_value_t = 1000, requires = "csv", value_parser = clap::value_parser!(u16).range(1..=10000))]
    batch_size: u16,
    /// Follow the certificates until each is downloadable, deleted or error.
    #[arg(long)]
    wait: bool,
    /// With --wait: give up after this many seconds.
    #[arg(long, default_value_t = 900)]
    wait_timeout_s: u64,
}

pub async fn run(a: SubmitArgs) -> anyhow::Result<ExitCode> {
    let client = a.target.client(Want::Lms)?;
    let timeout = Duration::from_secs(a.wait_timeout_s);
    if let Some(csv) = &a.csv {
        return super::submit_csv::run(
            &client,
            &super::submit_csv::CsvOptions {
                file: csv.clone(),
                rejects: a.rejects.clone(),
                default_action: a.action.clone(),
                batch_size: a.batch_size as usize,
                wait: a.wait.then_some(timeout),
            },
        )
        .await;
    }
    let req = SubmitRequest {
        action: Some(a.action),
        username: a.username,
        course_id: a.course_id,
        name: a.name,
        course_name: a.course_name,
        org: a.org,
        grade: a.grade,
        designation: a.designation,
        issued_date: a.issued_date,
        template: a.template,
        lang: a.lang,
        callback_url: a.callback_url,
    };
    let answer = match &a.idempotency_key {
        Some(k) => client.submit_idempotent(&req, k).await?,
        None => client.submit(&req).await?,
    };
    match answer {
        Ok(r) => {
            println!(
                "accepted: cert_id {} job_id {} state {}",
                r.cert_id, r.job_id, r.state
            );
            if a.wait {
                let c = client.wait_final(r.cert_id.as_str(), timeout).await?;
                println!("{}", serde_json::to_string_pretty(&c)?);
                if c.state == testamur_common::state::CertState::Error {
                    return Ok(ExitCode::from(2));
                }
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

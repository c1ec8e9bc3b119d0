//! `testamur submit --csv FILE`: every row of a CSV file becomes a request, sent in
//! batches (`POST /v1/certificates/batch`) with a progress bar; the rows the CC
//! refuses go to a rejects file with the reasons. With `--wait`, the accepted
//! certificates are followed to their final state.
//!
//! The file has a header row naming its columns: `username` and `course_id` are
//! required; `action`, `name`, `course_name`, `org`, `grade`, `designation`,
//! `issued_date`, `template` and `callback_url` are optional (docs/CSV.md).
//!
//! Rows are reported by the line of the file they start on (as an editor numbers
//! them: the header is line 1; `\n`, `\r\n` and a lone `\r` end a line; a quoted
//! cell may span several). The rejects file is meant to be opened in a
//! spreadsheet, so a cell that would run as a formula there is written inert.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use testamur_common::wire::{BatchResult, SubmitRequest};
use tokio::sync::Semaphore;

use crate::api::ApiClient;

/// The columns a CSV file may have.
pub const COLUMNS: [&str; 12] = [
    "action",
    "username",
    "course_id",
    "name",
    "course_name",
    "org",
    "grade",
    "designation",
    "issued_date",
    "template",
    "lang",
    "callback_url",
];

pub struct CsvOptions {
    pub file: PathBuf,
    pub rejects: Option<PathBuf>,
    pub default_action: String,
    pub batch_size: usize,
    /// Follow the accepted certificates for at most this long.
    pub wait: Option<Duration>,
}

/// One data row: its line in the file, its cells, and the request made of it
/// (or why none could be made).
struct Row {
    line: u64,
    cells: Vec<String>,
    request: Result<SubmitRequest, String>,
}

/// A refused row and why.
struct Reject {
    line: u64,
    cells: Vec<String>,
    status: String,
    code: String,
    field: String,
    message: String,
}

pub async fn run(client: &ApiClient, o: &CsvOptions) -> anyhow::Result<ExitCode> {
    let (headers, rows) = read(&o.file, &o.default_action)?;
    let total = rows.len() as u64;
    eprintln!("{}: {total} rows", o.file.display());
    let bar = progress(total, "submitting");
    let mut accepted: Vec<String> = Vec::new();
    let mut rejects: Vec<Reject> = Vec::new();
    let mut pending: Vec<&Row> = Vec::new();
    for row in &rows {
        match &row.request {
            Ok(_) => pending.push(row),
            Err(m) => {
                rejects.push(Reject {
                    line: row.line,
                    cells: row.cells.clone(),
                    status: String::new(),
                    code: "unreadable_row".into(),
                    field: String::new(),
                    message: m.clone(),
                });
                bar.inc(1);
            }
        }
    }
    // Each batch of this run has its own Idempotency-Key, so a retry after a lost
    // answer gets that answer instead of queueing the batch again; running the
    // file again later is a new submission.
    let run = uuid::Uuid::new_v4().simple().to_string();
    for (n, chunk) in pending.chunks(o.batch_size).enumerate() {
        let requests: Vec<SubmitRequest> = chunk
            .iter()
            .filter_map(|r| r.request.as_ref().ok().cloned())
            .collect();
        let key = format!("csv-{run}-{n}");
        let answer = with_retries(|| client.submit_batch_with_key(&requests, Some(&key))).await?;
        let resp = match answer {
            Ok(r) => r,
            Err(f) => bail!(
                "the CC refused the batch (HTTP {}: {}); nothing after line {} was sent",
                f.status,
                f.message,
                chunk.first().map(|r| r.line).unwrap_or(0)
            ),
        };
        if resp.results.len() != chunk.len() {
            bail!(
                "the CC answered {} results for {} requests",
                resp.results.len(),
                chunk.len()
            );
        }
        for (row, result) in chunk.iter().zip(resp.results) {
            match result {
                BatchResult::Accepted(r) => accepted.push(r.cert_id.to_string()),
                BatchResult::Rejected { error, status } => rejects.push(Reject {
                    line: row.line,
                    cells: row.cells.clone(),
                    status: status.to_string(),
                    code: error.code,
                    field: error.field.unwrap_or_default(),
                    message: error.message,
                }),
            }
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    rejects.sort_by_key(|r| r.line);
    println!(
        "accepted {} of {total} rows, rejected {}",
        accepted.len(),
        rejects.len()
    );
    if !rejects.is_empty() {
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        for r in &rejects {
            let key = if r.field.is_empty() {
                r.code.clone()
            } else {
                format!("{} ({})", r.code, r.field)
            };
            *reasons.entry(key).or_default() += 1;
        }
        for (reason, n) in &reasons {
            println!("  {n:>6} {reason}");
        }
        for r in rejects.iter().take(5) {
            println!("  line {}: {}", r.line, r.message);
        }
        let path = o.rejects.clone().unwrap_or_else(|| {
            let mut p = o.file.clone().into_os_string();
            p.push(".rejects.csv");
            PathBuf::from(p)
        });
        write_rejects(&path, &headers, &rejects)?;
        println!("rejected rows with reasons: {}", path.display());
    }
    let mut ok = rejects.is_empty();
    if let Some(timeout) = o.wait {
        let outcome = follow(client, &accepted, timeout).await?;
        let counts: Vec<String> = outcome
            .states
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect();
        println!(
            "final states: {}",
            if counts.is_empty() {
                "none (nothing was accepted)".to_owned()
            } else {
                counts.join(", ")
            }
        );
        for (id, reason) in outcome.errors.iter().take(10) {
            println!("  error {id}: {reason}");
        }
        if !outcome.errors.is_empty() || outcome.unfinished > 0 {
            ok = false;
        }
        if outcome.unfinished > 0 {
            println!(
                "{} certificates not final after {}s",
                outcome.unfinished,
                timeout.as_secs()
            );
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Some(style) = progress_style() {
        bar.set_style(style);
    }
    bar.set_message(what.to_owned());
    bar
}

/// `submitting [=====>    ] 1200/5000 (252/s, 15s left)`.
fn progress_style() -> Option<ProgressStyle> {
    let style =
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({rate}, {eta} left)").ok()?;
    Some(style.progress_chars("=> ").with_key(
        "rate",
        |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = w.write_str(&rate(s.per_sec()));
        },
    ))
}

/// Rows (or certificates) per second, rounded as a person would say it:
/// `252/s`, `3.5/s` (indicatif's own `{per_sec}` prints `252.2993/s`).
fn rate(per_sec: f64) -> String {
    if !per_sec.is_finite() || per_sec <= 0.0 {
        "0/s".to_owned()
    } else if per_sec < 9.95 {
        format!("{per_sec:.1}/s")
    } else {
        format!("{per_sec:.0}/s")
    }
}

/// Line numbers of byte offsets in a file, counted as an editor counts them.
struct Lines<'a> {
    bytes: &'a [u8],
    /// Offsets at which lines 2, 3, ... start.
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        let starts = bytes
            .iter()
            .enumerate()
            .filter(|&(i, &b)| b == b'\n' || (b == b'\r' && bytes.get(i + 1) != Some(&b'\n')))
            .map(|(i, _)| i + 1)
            .collect();
        Self { bytes, starts }
    }

    /// The line of the record csv starts reading at `offset`: csv positions a
    /// record before the line break that ended the one before (the `\n` of a
    /// `\r\n`) and skips blank lines, so the record begins at the first byte
    /// from there on that is not a line break.
    fn of_record(&self, offset: u64) -> u64 {
        let mut o = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.bytes.len());
        while o < self.bytes.len() && matches!(self.bytes[o], b'\r' | b'\n') {
            o += 1;
        }
        1 + self.starts.partition_point(|&s| s <= o) as u64
    }
}

/// Read the file: its header and one [`Row`] per record.
fn read(file: &std::path::Path, default_action: &str) -> anyhow::Result<(Vec<String>, Vec<Row>)> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let lines = Lines::new(&bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(&bytes[..]);
    let headers: Vec<String> = reader
        .headers()
        .with_context(|| format!("{}: cannot read the header row", file.display()))?
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    for h in &headers {
        if !COLUMNS.contains(&h.as_str()) {
            bail!(
                "{}: unknown column `{h}`; the columns are {} (docs/CSV.md)",
                file.display(),
                COLUMNS.join(", ")
            );
        }
    }
    for required in ["username", "course_id"] {
        if !headers.iter().any(|h| h == required) {
            bail!(
                "{}: the header row has no `{required}` column",
                file.display()
            );
        }
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        match record {
            Ok(rec) => {
                let line = rec
                    .position()
                    .map(|p| lines.of_record(p.byte()))
                    .unwrap_or(0);
                let cells: Vec<String> = rec.iter().map(str::to_owned).collect();
                let request = if cells.len() != headers.len() {
                    Err(format!(
                        "the row has {} cells, the header {}",
                        cells.len(),
                        headers.len()
                    ))
                } else {
                    Ok(request(&headers, &cells, default_action))
                };
                rows.push(Row {
                    line,
                    cells,
                    request,
                });
            }
            Err(e) => {
                let line = e.position().map(|p| lines.of_record(p.byte())).unwrap_or(0);
                rows.push(Row {
                    line,
                    cells: Vec::new(),
                    request: Err(format!("unreadable row: {e}")),
                });
            }
        }
    }
    Ok((headers, rows))
}

fn request(headers: &[String], cells: &[String], default_action: &str) -> SubmitRequest {
    let mut r = SubmitRequest {
        action: Some(default_action.to_owned()),
        ..Default::default()
    };
    for (h, v) in headers.iter().zip(cells) {
        if v.is_empty() {
            continue;
        }
        let v = Some(v.clone());
        match h.as_str() {
            "action" => r.action = v,
            "username" => r.username = v,
            "course_id" => r.course_id = v,
            "name" => r.name = v,
            "course_name" => r.course_name = v,
            "org" => r.org = v,
            "grade" => r.grade = v,
            "designation" => r.designation = v,
            "issued_date" => r.issued_date = v,
            "template" => r.template = v,
            "lang" => r.lang = v,
            "callback_url" => r.callback_url = v,
            _ => {}
        }
    }
    r
}

fn write_rejects(
    path: &std::path::Path,
    headers: &[String],
    rejects: &[Reject],
) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_path(path)
        .with_context(|| format!("cannot write the rejects file {}", path.display()))?;
    let mut head: Vec<&str> = vec![
        "line",
        "status",
        "error_code",
        "error_field",
        "error_message",
    ];
    head.extend(headers.iter().map(String::as_str));
    w.write_record(&head)?;
    for r in rejects {
        let mut rec = vec![
            r.line.to_string(),
            r.status.clone(),
            r.code.clone(),
            r.field.clone(),
            r.message.clone(),
        ];
        rec.extend(r.cells.iter().cloned());
        // Rows of the wrong length are padded or cut to the header's columns.
        rec.resize(5 + headers.len(), String::new());
        w.write_record(rec.iter().map(|c| inert(c).into_owned()))?;
    }
    w.flush()?;
    Ok(())
}

/// A cell as it goes into the rejects file: one a spreadsheet would take for a
/// formula (it starts with `=`, `+`, `-`, `@`, a tab or a carriage return) gets
/// a leading `'`, so opening the file shows the text and runs nothing (OWASP,
/// "CSV injection"). The error messages echo cells too, so they go through this.
fn inert(cell: &str) -> Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// Retry a call that could not reach the CC (or met a 503) a few times.
async fn with_retries<T, F, Fut>(mut f: F) -> anyhow::Result<Result<T, crate::api::ApiFailure>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Result<T, crate::api::ApiFailure>>>,
{
    let mut delay = Duration::from_millis(500);
    let mut attempt = 1;
    loop {
        let r = f().await;
        let transient = matches!(&r, Ok(Err(fail)) if fail.status == 503) || r.is_err();
        if !transient || attempt >= 5 {
            return r;
        }
        eprintln!("the CC is not answering; retrying in {delay:?}");
        tokio::time::sleep(delay).await;
        delay *= 2;
        attempt += 1;
    }
}

pub struct Followed {
    pub states: BTreeMap<String, usize>,
    pub errors: Vec<(String, String)>,
    pub unfinished: usize,
}

/// Poll the certificates until each is final (or `timeout`), 32 at a time, with
/// a progress bar.
pub async fn follow(
    client: &ApiClient,
    ids: &[String],
    timeout: Duration,
) -> anyhow::Result<Followed> {
    let deadline = tokio::time::Instant::now() + timeout;
    let bar = progress(ids.len() as u64, "waiting");
    let mut pending: Vec<String> = ids.to_vec();
    let mut out = Followed {
        states: BTreeMap::new(),
        errors: Vec::new(),
        unfinished: 0,
    };
    let slots = Arc::new(Semaphore::new(32));
    while !pending.is_empty() {
        let mut set = tokio::task::JoinSet::new();
        for id in pending.drain(..) {
            let (client, slots) = (client.clone(), slots.clone());
            set.spawn(async move {
                let _permit = slots.acquire_owned().await;
                let r = client.certificate(&id).await;
                (id, r)
            });
        }
        while let Some(done) = set.join_next().await {
            let (id, r) = done.context("a status poll panicked")?;
            match r {
                Ok(Ok(c)) if !c.state.is_pending() => {
                    *out.states.entry(c.state.to_string()).or_default() += 1;
                    if c.state == testamur_common::state::CertState::Error {
                        out.errors.push((id, c.error_reason.unwrap_or_default()));
                    }
                    bar.inc(1);
                }
                // Still pending, or the CC was briefly unreachable: ask again.
                _ => pending.push(id),
            }
        }
        if pending.is_empty() {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            out.unfinished = pending.len();
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    bar.finish_and_clear();
    Ok(out)
}

#[cfg(test)]
#[path = "submit_csv_tests.rs"]
mod tests;

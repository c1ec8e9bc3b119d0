//! `testamur reconcile --config cc.conf --ws-config ws.conf [--apply]`: compare
//! what storage holds with what Redis says is published, after a Redis restore
//! from an older backup or files lost behind testamur's back. Reports every
//! difference; with `--apply` repairs what it can: a version whose verify index
//! (`v:{uuid}`) is gone gets it back, and a downloadable certificate whose files
//! are missing is republished under its own uuids (its URLs stay valid).
//! A dry run (the default) changes nothing. docs/OPERATIONS.md says when to run it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use testamur_cc::store::{Published, SubmitOutcome};
use testamur_common::config::{CcConfig, WsConfig};
use testamur_common::layout;
use testamur_common::state::CertState;
use testamur_ws::storage::Storage;

#[derive(Args)]
pub struct ReconcileArgs {
    /// The CC's configuration (its Redis).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// A workserver's configuration (its [storage] section: where files are published).
    #[arg(long, value_name = "FILE")]
    ws_config: PathBuf,
    /// Repair what can be repaired (default: only report).
    #[arg(long)]
    apply: bool,
}

/// The files a published version must have.
fn expected_files(p: &Published) -> Vec<String> {
    let mut files = vec![layout::pdf_path(&p.download_uuid)];
    if p.verification_page {
        files.push(layout::sig_path(&p.verify_uuid));
        files.push(layout::verify_page_path(&p.verify_uuid));
    } else {
        files.push(layout::pdf_sig_path(&p.download_uuid));
    }
    files
}

pub async fn run(a: ReconcileArgs) -> anyhow::Result<ExitCode> {
    let cc = CcConfig::load(&a.config)?;
    let ws = WsConfig::load(&a.ws_config)?;
    let store = testamur_cc::startup::open_store(&cc).await?;
    let storage: Arc<dyn Storage> = Arc::from(
        testamur_ws::storage::open(&ws.storage)
            .await
            .with_context(|| format!("the [storage] section of {}", a.ws_config.display()))?,
    );
    // Every record in the current format first, so that the scan sees them all.
    let moved = store
        .migrate_all(100, |_| {})
        .await
        .context("moving records of an older release first")?;
    if moved > 0 {
        println!("reconcile: {moved} certificates moved to compact records first");
    }
    let (mut certs, mut index_missing, mut files_missing, mut repaired, mut skipped) =
        (0, 0, 0, 0, 0);
    let mut cursor = 0u64;
    loop {
        let (next, items) = store.scan_records(cursor, 200).await?;
        for item in items {
            certs += 1;
            for v in &item.missing_index {
                index_missing += 1;
                println!(
                    "verification index missing: certificate {} version {v}",
                    item.cert_id
                );
                if a.apply {
                    store.restore_verify_index(v, &item.cert_id).await?;
                    println!(
                        "  repaired: /verify/{v} names certificate {} again",
                        item.cert_id
                    );
                    repaired += 1;
                }
            }
            let Some(p) = item.published else { continue };
            let files = expected_files(&p);
            let s = storage.clone();
            let gone: Vec<String> = tokio::task::spawn_blocking(move || {
                files
                    .into_iter()
                    .filter_map(|f| match s.exists(&f) {
                        Ok(true) => None,
                        Ok(false) => Some(Ok(f)),
                        Err(e) => Some(Err(e)),
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?
            .context("looking files up in storage")?;
            if gone.is_empty() {
                continue;
            }
            files_missing += 1;
            println!(
                "files missing: certificate {} ({}): {}",
                item.cert_id,
                item.state,
                gone.join(", ")
            );
            if !a.apply {
                continue;
            }
            if item.state != CertState::Downloadable {
                // A job is on its way (it writes the files) or the certificate is
                // in error (a regen from the LMS publishes it again).
                println!("  not republished: the certificate is {}", item.state);
                skipped += 1;
                continue;
            }
            match store.republish(&item.cert_id, &p).await? {
                SubmitOutcome::Queued { job_id, .. } => {
                    println!("  repaired: republish queued (job {job_id}), same uuids and URLs");
                    repaired += 1;
                }
                other => {
                    println!("  not republished: {other:?}");
                    skipped += 1;
                }
            }
        }
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    let differences = index_missing + files_missing;
    println!(
        "reconcile: {certs} certificates checked; {index_missing} verification indexes missing, \
         {files_missing} certificates with files missing{}",
        if a.apply {
            format!("; {repaired} repaired, {skipped} left (see above)")
        } else if differences > 0 {
            "; run again with --apply to repair".to_owned()
        } else {
            String::new()
        }
    );
    Ok(if differences > 0 && !a.apply {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

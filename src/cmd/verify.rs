//! `testamur verify CERT.pdf CERT.pdf.sig [--key KEY]`: offline signature check.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

#[derive(Args)]
pub struct VerifyArgs {
    pdf: PathBuf,
    signature: PathBuf,
    /// The signer's public key (default: signing-key.asc found in ./keys or next to the files).
    #[arg(long)]
    key: Option<PathBuf>,
}

pub fn run(a: VerifyArgs) -> anyhow::Result<ExitCode> {
    let key = match a.key {
        Some(k) => k,
        None => ["keys/signing-key.asc", "signing-key.asc"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .context("no public key given; pass --key signing-key.asc")?,
    };
    let cert = testamur_ws::sign::load_cert(&key)?;
    let pdf = std::fs::read(&a.pdf).with_context(|| format!("reading {}", a.pdf.display()))?;
    let sig = std::fs::read(&a.signature)
        .with_context(|| format!("reading {}", a.signature.display()))?;
    match testamur_ws::sign::verify_detached(&cert, &pdf, &sig) {
        Ok(()) => {
            println!(
                "VALID: {} is signed by {} (key {})",
                a.pdf.display(),
                testamur_ws::sign::signer_name(&cert),
                cert.fingerprint()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("INVALID: {} — {e}", a.pdf.display());
            Ok(ExitCode::from(1))
        }
    }
}

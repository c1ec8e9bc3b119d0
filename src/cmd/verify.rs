//! `testamur verify [CERT.pdf CERT.pdf.sig] [--key KEY] [--credential credential.json
//! [--did-document did.json] [--status-list status.json]]`: offline checks of what a
//! workserver published: the PDF's own signature (PAdES, when it has one), the
//! detached OpenPGP signature of the PDF, the Open Badges credential's proof and,
//! given its status list, whether it was revoked.
//! Prints one VALID, INVALID or REVOKED line per check; exits 1 if any check fails
//! or the credential is revoked.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

#[derive(Args)]
pub struct VerifyArgs {
    /// The certificate (PDF); with its detached signature (`.pdf.sig`).
    pdf: Option<PathBuf>,
    signature: Option<PathBuf>,
    /// The signer's public key (default: signing-key.asc found in ./keys or next to the files).
    #[arg(long)]
    key: Option<PathBuf>,
    /// An Open Badges credential (`cert/{uuid}/credential.json`) to check.
    #[arg(long)]
    credential: Option<PathBuf>,
    /// The did:web issuer's DID document (the file its did:web URL serves,
    /// e.g. `.well-known/did.json` in storage); not needed for did:key.
    #[arg(long)]
    did_document: Option<PathBuf>,
    /// The credential's status list (the file its `statusListCredential` names,
    /// `status/{n}.json` in storage): says whether it was revoked, as of that file.
    #[arg(long, requires = "credential")]
    status_list: Option<PathBuf>,
}

fn read(p: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(p).with_context(|| format!("reading {}", p.display()))
}

pub fn run(a: VerifyArgs) -> anyhow::Result<ExitCode> {
    let mut ok = true;
    match (&a.pdf, &a.signature) {
        (Some(pdf), Some(sig)) => ok &= signature(pdf, sig, a.key.as_deref())?,
        (Some(_), None) => {
            anyhow::bail!("give the PDF and its signature: testamur verify CERT.pdf CERT.pdf.sig")
        }
        (None, _) if a.credential.is_none() => anyhow::bail!(
            "nothing to check: give CERT.pdf CERT.pdf.sig, --credential credential.json, or both"
        ),
        (None, _) => {}
    }
    if let Some(c) = &a.credential {
        let doc = a.did_document.as_deref().map(read).transpose()?;
        match testamur_ws::credential::check::check(&read(c)?, doc.as_deref()) {
            Ok(v) => {
                println!(
                    "VALID: {} is a credential issued by {} to {:?} for {:?} (valid from {}, {})",
                    c.display(),
                    v.issuer,
                    v.learner,
                    v.course,
                    v.valid_from,
                    v.id
                );
                if let Some(l) = &a.status_list {
                    ok &= status(l, &v, doc.as_deref())?;
                }
            }
            Err(e) => {
                println!("INVALID: {} — {e}", c.display());
                ok = false;
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The credential's bit in its status list; false when revoked or unchecked.
fn status(
    list: &Path,
    checked: &testamur_ws::credential::check::Checked,
    did_document: Option<&[u8]>,
) -> anyhow::Result<bool> {
    use testamur_ws::credential::check::check_status;
    Ok(match check_status(&read(list)?, checked, did_document) {
        Ok(s) if s.revoked => {
            println!(
                "REVOKED: {} is revoked by its issuer (status list {} of {})",
                checked.id,
                list.display(),
                s.as_of
            );
            false
        }
        Ok(s) => {
            println!(
                "VALID: {} is not revoked (status list {} of {})",
                checked.id,
                list.display(),
                s.as_of
            );
            true
        }
        Err(e) => {
            println!("INVALID: {} — {e}", list.display());
            false
        }
    })
}

fn signature(pdf_path: &Path, sig_path: &Path, key: Option<&Path>) -> anyhow::Result<bool> {
    let key = match key {
        Some(k) => k.to_owned(),
        None => ["keys/signing-key.asc", "signing-key.asc"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .context("no public key given; pass --key signing-key.asc")?,
    };
    let cert = testamur_ws::sign::load_cert(&key)?;
    let pdf = read(pdf_path)?;
    let sig = read(sig_path)?;
    let mut ok = true;
    // The PDF's own signature, when it has one: integrity and signer (whether
    // its certificate is to be trusted is the reader's call: its CA).
    match testamur_ws::pdf_sign::check::check(&pdf) {
        Ok(c) => println!(
            "VALID: {} carries its own PAdES signature over the whole file (certificate \
             sha256 {}, signed {})",
            pdf_path.display(),
            c.cert_sha256,
            c.signed_at.as_deref().unwrap_or("at an unstated time")
        ),
        Err(testamur_ws::pdf_sign::check::CheckError::Unsigned) => {}
        Err(e) => {
            println!("INVALID: {} — its PDF signature: {e}", pdf_path.display());
            ok = false;
        }
    }
    match testamur_ws::sign::verify_detached(&cert, &pdf, &sig) {
        Ok(()) => {
            println!(
                "VALID: {} is signed by {} (key {})",
                pdf_path.display(),
                testamur_ws::sign::signer_name(&cert),
                cert.fingerprint()
            );
            Ok(ok)
        }
        Err(e) => {
            println!("INVALID: {} — {e}", pdf_path.display());
            Ok(false)
        }
    }
}

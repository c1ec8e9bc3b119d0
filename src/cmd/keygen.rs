//! `testamur keygen --out DIR`: the workservers' keys: an OpenPGP signing key for
//! the detached signatures and an Ed25519 key for the Open Badges credentials.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

#[derive(Args)]
pub struct KeygenArgs {
    /// Directory for signing.key (secret, 0600), signing-key.asc (public) and
    /// credential.key (secret, 0600; made only when it is not there yet).
    #[arg(long)]
    out: PathBuf,
    /// The key's user id, e.g. "Example University certificates <certs@example.edu>".
    #[arg(long, default_value = "testamur certificate signing key")]
    userid: String,
}

pub fn run(a: KeygenArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&a.out)?;
    let (secret, public, fp) = testamur_ws::sign::generate_key(&a.userid)?;
    let sk = a.out.join("signing.key");
    let pk = a.out.join("signing-key.asc");
    crate::fsutil::write_private(&sk, secret.as_bytes())?;
    crate::fsutil::write_public(&pk, public.as_bytes())?;
    println!(
        "secret key: {}  (ws.conf signing_key; mode 0600)",
        sk.display()
    );
    println!(
        "public key: {}  (publish it; verifiers import it)",
        pk.display()
    );
    println!("fingerprint: {fp}");
    // A credential key is an issuer's identity (its did:key, or the key of its
    // did:web document): never replaced by running keygen again.
    let ck = a.out.join("credential.key");
    if ck.exists() {
        println!("credential key: {} (kept: it already exists)", ck.display());
    } else {
        let pem = testamur_ws::credential::key::generate_pem().map_err(anyhow::Error::msg)?;
        crate::fsutil::write_private(&ck, pem.as_bytes())?;
        println!(
            "credential key: {}  (ws.conf [credentials] key; mode 0600)",
            ck.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

//! `testamur keygen --out DIR`: an OpenPGP signing key for workservers.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

#[derive(Args)]
pub struct KeygenArgs {
    /// Directory for signing.key (secret, 0600) and signing-key.asc (public).
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
    Ok(ExitCode::SUCCESS)
}

//! `testamur certs init`: a development CA and server certificate.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum CertsCmd {
    /// Write ca.pem, ca.key, server.pem, server.key, pdf-signing.pem, pdf-signing.key (keys 0600).
    Init {
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        /// Host names or IP addresses the server certificate is valid for.
        #[arg(long = "host", default_values_t = ["localhost".to_string(), "127.0.0.1".to_string()])]
        hosts: Vec<String>,
    },
}

pub fn run(cmd: CertsCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        CertsCmd::Init { dir, hosts } => {
            let files = crate::tlsgen::generate(&dir, &hosts)?;
            println!(
                "CA certificate:     {}  (give this to workservers and clients: ssl_ca_certs)",
                files.ca_cert.display()
            );
            println!(
                "CA key:             {}  (keep offline; signs new server certificates)",
                files.ca_key.display()
            );
            println!(
                "server certificate: {}  (cc.conf ssl_certfile)",
                files.server_cert.display()
            );
            println!(
                "server key:         {}  (cc.conf ssl_key)",
                files.server_key.display()
            );
            println!(
                "PDF signing:        {} and {}  (ws.conf [pdf_signature] cert, key)",
                files.pdf_cert.display(),
                files.pdf_key.display()
            );
            println!("valid for: {}", hosts.join(", "));
            Ok(ExitCode::SUCCESS)
        }
    }
}

//! Which CC to talk to and with which key: `--cluster cluster.json` (written by
//! `testamur demo --serve`) or `--cc-url`, `--ca`, `--api-key`. The key goes only
//! to an `https://` URL unless `--allow-insecure-http` says otherwise.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;

use crate::api::ApiClient;
use crate::devcluster::ClusterInfo;

#[derive(Args, Clone)]
pub struct TargetArgs {
    /// cluster.json of a local cluster (`testamur demo --serve --dir DIR`).
    #[arg(long, value_name = "FILE")]
    pub cluster: Option<PathBuf>,
    /// The CC's base URL, e.g. https://cc.example.org:8443
    #[arg(long)]
    pub cc_url: Option<String>,
    /// CA certificate to trust (for a private CA).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// API key (lms for submit, operator for status). Prefer the TESTAMUR_API_KEY variable.
    #[arg(long)]
    pub api_key: Option<String>,
    /// Accept an http:// --cc-url, sending the API key unencrypted (only for a
    /// TLS-terminating proxy on this host; the CC itself speaks HTTPS only).
    #[arg(long)]
    pub allow_insecure_http: bool,
}

#[derive(Clone, Copy)]
pub enum Want {
    Lms,
    Operator,
}

impl TargetArgs {
    pub fn client(&self, want: Want) -> anyhow::Result<ApiClient> {
        let env_key = std::env::var("TESTAMUR_API_KEY").ok();
        if let Some(path) = &self.cluster {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let info: ClusterInfo = serde_json::from_str(&text)
                .with_context(|| format!("parsing {}", path.display()))?;
            let key = self.api_key.clone().or(env_key).unwrap_or(match want {
                Want::Lms => info.lms_api_key.clone(),
                Want::Operator => info.operator_api_key.clone(),
            });
            return ApiClient::with_http_allowed(
                &info.cc_url,
                Some(&info.ca_cert),
                &key,
                self.allow_insecure_http,
            );
        }
        let Some(url) = &self.cc_url else {
            bail!("say which CC: --cluster cluster.json, or --cc-url URL with --ca FILE and an API key");
        };
        let Some(key) = self.api_key.clone().or(env_key) else {
            bail!("no API key: set TESTAMUR_API_KEY or pass --api-key");
        };
        ApiClient::with_http_allowed(url, self.ca.as_deref(), &key, self.allow_insecure_http)
    }
}

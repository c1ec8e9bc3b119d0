//! `testamur demo`: a local cluster (own redis-server, dev TLS, signing key, one CC,
//! two workservers) turning sample requests into signed PDFs. `--serve` keeps it
//! running for integration work until Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use testamur_common::state::CertState;
use testamur_common::wire::SubmitRequest;

use crate::devcluster::{Cluster, ClusterSpec};

#[derive(Args)]
pub struct DemoArgs {
    /// Where the cluster keeps everything (certificates end up in DIR/public). An
    /// earlier demo's directory is replaced; any other non-empty directory is refused.
    #[arg(long, default_value = "demo-out")]
    dir: PathBuf,
    /// Keep the cluster running until Ctrl-C (writes DIR/cluster.json).
    #[arg(long)]
    serve: bool,
    /// Number of workservers.
    #[arg(long, default_value_t = 2)]
    workservers: usize,
}

/// Sample learners, to show the breadth: accented Latin, Cyrillic, Greek, long
/// names, and scripts that no template lists but the installed fonts cover
/// (Telugu, Tamil, Gurmukhi, Myanmar, Tibetan, Mongolian, Cherokee, Sinhala ...).
pub const SAMPLE_NAMES: &[&str] = &[
    "Zoë Ångström",
    "José María Muñoz",
    "François Lefèvre",
    "శ్రీనివాస రావు",
    "Łukasz Żółkiewski",
    "முத்துலட்சுமி ரெட்டி",
    "Александр Пушкин",
    "ਗੁਰਪ੍ਰੀਤ ਸਿੰਘ",
    "Μαρία Παπαδοπούλου",
    "အောင်ဆန်းစုကြည်",
    "Grace Brewster Murray Hopper",
    "བསྟན་འཛིན་རྒྱ་མཚོ",
    "Nguyễn Thị Minh Khai",
    "ᠲᠡᠮᠦᠵᠢᠨ",
    "Björk Guðmundsdóttir",
    "ᏍᏏᏉᏯ ᎬᏂᎨᏒ",
    "Ana Ștefănescu",
    "කුමාර සංගක්කාර",
    "Mary O'Neil-Smith",
    "ಅನಿಲ್ ಕುಮಾರ್",
    "Søren Kierkegård",
    "Анна Ахматова",
    "Γιώργος Σεφέρης",
    "Dvořák Antonín",
    "Ada Lovelace",
    "Çağla Öztürk",
    "Émilie du Châtelet",
    "Фёдор Достоевский",
    "Νίκος Καζαντζάκης",
];

pub fn sample_request(i: usize) -> SubmitRequest {
    SubmitRequest {
        action: Some("add".into()),
        username: Some(format!("learner{i:03}")),
        course_id: Some("course-v1:DemoX+CERT101+2026".into()),
        name: Some(SAMPLE_NAMES[i % SAMPLE_NAMES.len()].into()),
        course_name: Some("Introduction to Verifiable Credentials".into()),
        org: Some("DemoX University".into()),
        grade: Some("Pass".into()),
        ..Default::default()
    }
}

pub async fn run(a: DemoArgs, log_json: bool) -> anyhow::Result<ExitCode> {
    crate::logging::init(log_json);
    let exe = std::env::current_exe().context("locating the testamur binary")?;
    let bin = exe.clone();
    crate::devcluster::clear_dir(&a.dir)?;
    let mut spec = ClusterSpec::new(&a.dir, bin);
    spec.workservers = a.workservers.max(1);
    println!(
        "starting a local cluster in {} (redis-server, CC, {} workservers)...",
        a.dir.display(),
        spec.workservers
    );
    let mut cluster = Cluster::start(spec).await?;
    let lms = cluster.lms()?;

    let started = Instant::now();
    let mut ids = Vec::new();
    for i in 0..SAMPLE_NAMES.len() {
        match lms.submit(&sample_request(i)).await? {
            Ok(r) => ids.push((i, r.cert_id)),
            Err(f) => anyhow::bail!("the CC rejected a sample request: {f}"),
        }
    }
    let mut done = Vec::new();
    for (i, id) in &ids {
        let c = lms
            .wait_final(id.as_str(), Duration::from_secs(120))
            .await?;
        done.push((*i, c));
    }
    let elapsed = started.elapsed();
    let ok = done
        .iter()
        .filter(|(_, c)| c.state == CertState::Downloadable)
        .count();
    println!(
        "\n{ok} of {} certificates downloadable in {:.2}s\n",
        done.len(),
        elapsed.as_secs_f64()
    );
    let public = cluster.info.storage_dir.clone();
    for (i, c) in &done {
        let pdf = c
            .download_uuid
            .as_ref()
            .map(|u| public.join(format!("downloads/{u}/Certificate.pdf")));
        println!(
            "  {:<30} {:<13} {}",
            SAMPLE_NAMES[*i % SAMPLE_NAMES.len()],
            c.state.as_str(),
            pdf.map(|p| p.display().to_string())
                .or(c.error_reason.clone())
                .unwrap_or_default()
        );
    }
    if let Some((_, c)) = done
        .iter()
        .find(|(_, c)| c.state == CertState::Downloadable)
    {
        let (du, vu) = (
            c.download_uuid.as_ref().unwrap(),
            c.verify_uuid.as_ref().unwrap(),
        );
        let pdf = public.join(format!("downloads/{du}/Certificate.pdf"));
        let sig = public.join(format!("cert/{vu}/Certificate.pdf.sig"));
        let key = public.join("keys/signing-key.asc");
        println!(
            "\nPDFs:        {}/downloads/<download_uuid>/Certificate.pdf",
            public.display()
        );
        println!(
            "signatures:  {}/cert/<verify_uuid>/Certificate.pdf.sig",
            public.display()
        );
        println!("public key:  {}", key.display());
        let credential = public.join(format!("cert/{vu}/credential.json"));
        if credential.is_file() {
            println!(
                "credentials: {}/cert/<verify_uuid>/credential.json (Open Badges 3.0, did:key)",
                public.display()
            );
        }
        println!("\ncheck one with gpg, in a throwaway keyring (gpg warns that the key is not");
        println!("certified: expected for a key you have only just imported):");
        println!(
            "  d=$(mktemp -d); gpg --homedir \"$d\" --import {} && gpg --homedir \"$d\" --verify {} {}; gpgconf --homedir \"$d\" --kill gpg-agent",
            key.display(),
            sig.display(),
            pdf.display()
        );
        let status_list = public.join("status/0.json");
        println!(
            "or offline with testamur (the PDF's own signature, the detached one, the credential's proof and its revocation status):\n  {} verify {} {} --key {}{}",
            exe.display(),
            pdf.display(),
            sig.display(),
            key.display(),
            match (credential.is_file(), status_list.is_file()) {
                (true, true) => format!(
                    " --credential {} --status-list {}",
                    credential.display(),
                    status_list.display()
                ),
                (true, false) => format!(" --credential {}", credential.display()),
                _ => String::new(),
            }
        );
        let ca = cluster.dir().join("tls/ca.pem");
        println!(
            "the PDF's own signature (PAdES) with poppler, trusting the demo's CA (certutil is in Debian's libnss3-tools):\n  n=$(mktemp -d); certutil -N -d sql:\"$n\" --empty-password && certutil -A -d sql:\"$n\" -n demo-ca -t CT,C,C -i {} && pdfsig -nssdir sql:\"$n\" {}",
            ca.display(),
            pdf.display()
        );
    }
    if a.serve {
        let json = cluster.dir().join("cluster.json");
        println!(
            "\ncluster running; connection details in {}",
            json.display()
        );
        println!(
            "  cc_url   {}\n  ca_cert  {}",
            cluster.info.cc_url,
            cluster.info.ca_cert.display()
        );
        println!(
            "  try: {} status --cluster {}",
            exe.display(),
            json.display()
        );
        println!("press Ctrl-C to stop");
        crate::cmd::serve::shutdown_signal().await;
    }
    println!("\nstopping the cluster...");
    cluster.stop();
    Ok(if ok == done.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

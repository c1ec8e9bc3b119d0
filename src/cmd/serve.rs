//! `testamur cc` and `testamur ws`: load the config, log, run until SIGTERM/SIGINT
//! (or with `--check`, validate the configuration, reach what it points to (the
//! CC: Redis with its password; a workserver: storage and the CC) and exit).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use testamur_common::config::{CcConfig, LogFormat, WsConfig};

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => tracing::info!("SIGTERM received; shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt received; shutting down"),
    }
}

pub async fn cc(path: &Path, check: bool, log_json: bool) -> anyhow::Result<ExitCode> {
    let config = CcConfig::load(path)?;
    if check {
        testamur_common::tls::server_config(
            &config.ssl_certfile,
            &config.ssl_key,
            config.ssl_ca_certs.as_deref(),
        )
        .with_context(|| format!("{}: TLS files", path.display()))?;
        // The password and the URL are only right if Redis says so.
        testamur_cc::startup::open_store(&config).await?;
        println!(
            "{}: ok (Redis answers at {})",
            path.display(),
            config.redis.describe()
        );
        return Ok(ExitCode::SUCCESS);
    }
    crate::logging::init(log_json || config.log_format == LogFormat::Json);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {} (key `listen`)", config.listen))?;
    testamur_cc::run(config, listener, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn ws(path: &Path, check: bool, log_json: bool) -> anyhow::Result<ExitCode> {
    let config = WsConfig::load(path)?;
    if check {
        let pipeline = testamur_ws::worker::pipeline(&config)
            .await
            .with_context(|| path.display().to_string())?;
        for w in pipeline.renderer.warnings() {
            println!("{}: warning: {w}", config.templates.display());
        }
        for (name, t) in &pipeline.renderer.catalog().templates {
            println!(
                "{}: template `{name}`, version {}",
                config.templates.display(),
                t.version
            );
        }
        for (t, limits) in pipeline.renderer.limits() {
            let l: Vec<String> = limits.iter().map(|(f, w)| format!("{f} {w}")).collect();
            println!(
                "{}: template `{t}` has room at its smallest sizes for (characters, CJK count \
                 2; the CC refuses longer values): {}",
                config.templates.display(),
                l.join(", ")
            );
        }
        testamur_ws::worker::check_cc(&config)
            .await
            .with_context(|| path.display().to_string())?;
        println!("{}: ok (a CC answers at cc_url)", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    crate::logging::init(log_json || config.log_format == LogFormat::Json);
    testamur_ws::run(config, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

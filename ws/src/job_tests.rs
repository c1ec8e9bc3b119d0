//! Tests of the job pipeline (`job.rs`): what it asks of storage, in what order,
//! and what a failure leaves behind.

use super::*;
use std::sync::{Arc, Mutex};
use testamur_common::wire::PublishedVersion;

/// Records what the pipeline asks of storage, in order.
#[derive(Default)]
struct Recording {
    events: Mutex<Vec<String>>,
    /// Whether `commit` fails.
    commit_fails: bool,
}

impl Recording {
    fn log(&self, e: String) {
        self.events.lock().unwrap().push(e);
    }
    fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }
}

struct RecordingBatch<'a>(&'a Recording);

impl Batch for RecordingBatch<'_> {
    fn put(&mut self, rel: &str, _: &[u8], _: &str) -> Result<(), storage::StorageError> {
        self.0.log(format!("write {rel}"));
        Ok(())
    }
    fn commit(self: Box<Self>) -> Result<(), storage::StorageError> {
        self.0.log("commit".into());
        match self.0.commit_fails {
            false => Ok(()),
            true => Err(storage::StorageError {
                op: "sync",
                target: "public".into(),
                detail: "fsync: Input/output error".into(),
                retryable: true,
            }),
        }
    }
}

impl Storage for Recording {
    fn exists(&self, _: &str) -> Result<bool, storage::StorageError> {
        Ok(false)
    }
    fn put(&self, rel: &str, _: &[u8], _: &str) -> Result<(), storage::StorageError> {
        self.log(format!("put {rel}"));
        Ok(())
    }
    fn remove(&self, rel: &str) -> Result<(), storage::StorageError> {
        self.log(format!("remove {rel}"));
        Ok(())
    }
    fn url(&self, rel: &str) -> String {
        format!("https://certs.example.org/{rel}")
    }
    fn keeps_old_versions(&self) -> bool {
        false
    }
    fn batch(&self) -> Box<dyn Batch + '_> {
        Box::new(RecordingBatch(self))
    }
}

fn pipeline(storage: Arc<Recording>) -> Pipeline {
    let templates = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../templates"));
    let (secret, _, _) = crate::sign::generate_key("test <t@example.org>").unwrap();
    let key = SigningKey::from_cert(crate::sign::parse_cert(secret.as_bytes()).unwrap()).unwrap();
    Pipeline {
        renderer: Renderer::load(templates).unwrap(),
        key,
        storage,
        workserver: "ws-1".into(),
        verify_page_url: None,
        credentials: Some(crate::credential::Issuer::from_seed(
            &[9; 32],
            testamur_common::config::IssuerDid::Key,
        )),
        pdf_signer: None,
    }
}

/// A job returns (and so is reported) only after its files' commit, and a
/// regen removes the version it replaces only after that commit: the group
/// commit never lets a job report files that are not durable yet.
#[test]
fn a_job_returns_only_after_its_files_are_committed() {
    let storage = Arc::new(Recording::default());
    let p = pipeline(storage.clone());
    let cert = crate::sample::job(crate::sample::Script::Latin, 1, None);
    let (du, vu) = (
        cert.download_uuid.clone().unwrap(),
        cert.verify_uuid.clone().unwrap(),
    );
    p.run(Action::Add, &cert).unwrap();
    let events = storage.events();
    assert_eq!(
        events,
        [
            format!("write {}", storage::pdf_path(&du)),
            format!("write {}", storage::sig_path(&vu)),
            format!("write {}", storage::credential_path(&vu)),
            format!("write {}", storage::verify_page_path(&vu)),
            "commit".into(),
        ],
        "every file written, then one commit, and nothing after it"
    );

    storage.events.lock().unwrap().clear();
    let mut regen = crate::sample::job(crate::sample::Script::Latin, 2, None);
    regen.previous = Some(PublishedVersion {
        download_uuid: du.clone(),
        verify_uuid: vu.clone(),
    });
    p.run(Action::Regen, &regen).unwrap();
    let events = storage.events();
    let commit = events.iter().position(|e| e == "commit").expect("a commit");
    assert_eq!(commit, 4, "{events:?}");
    assert!(
        events[commit + 1..]
            .iter()
            .all(|e| e.starts_with("remove ")),
        "the old version goes only once the new one is durable: {events:?}"
    );
    assert_eq!(events.len(), commit + 1 + 5, "{events:?}");
}

/// A commit that fails fails the job as retryable (its next attempt writes
/// the files again) and takes back nothing: the paths are the next attempt's.
#[test]
fn a_failed_commit_fails_the_job_for_another_attempt() {
    let storage = Arc::new(Recording {
        commit_fails: true,
        ..Default::default()
    });
    let p = pipeline(storage.clone());
    let cert = crate::sample::job(crate::sample::Script::Latin, 3, None);
    let e = p.run(Action::Add, &cert).unwrap_err();
    assert_eq!(
        (e.code, e.retryable),
        (FailCode::Storage, true),
        "{}",
        e.reason
    );
    assert!(e.reason.contains("Input/output error"), "{}", e.reason);
    let events = storage.events();
    assert_eq!(
        events.last().map(String::as_str),
        Some("commit"),
        "{events:?}"
    );
    assert!(
        !events.iter().any(|e| e.starts_with("remove ")),
        "{events:?}"
    );
}

/// Text that does not fit its box at the smallest size ends the job as
/// unprintable, at once (another attempt draws the same), and the LMS is told
/// which field and template.
#[test]
fn text_that_does_not_fit_fails_the_job_for_good_as_unprintable() {
    let e = render_failed(
        "ws-1",
        crate::render::RenderError::DoesNotFit {
            template: "classic".into(),
            block: "text[3]".into(),
            field: "name".into(),
            lines: 2,
            min_size: 16.0,
            room: String::new(),
        },
    );
    assert_eq!((e.code, e.retryable), (FailCode::Unprintable, false));
    let public = e.public.unwrap();
    assert!(
        public.starts_with("the name does not fit template `classic`"),
        "{public}"
    );
    assert!(e.reason.starts_with("render on ws-1: "), "{}", e.reason);
}

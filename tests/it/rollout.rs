//! A rolling template update: workservers updated one by one to new templates
//! while submissions keep coming. No certificate is drawn with a template (or a
//! template version) other than the one it was accepted for; what only the old
//! workservers can draw is accepted while one of them lives and refused after;
//! jobs of a version whose last workserver died are drawn by the current version.

use std::path::Path;
use std::time::Duration;

use testamur::api::ApiClient;
use testamur_common::ids::CertId;
use testamur_common::state::CertState;
use testamur_common::wire::{CertificateView, SubmitRequest};

use crate::helpers::{cluster, dump_logs, pdftotext, public_file, signal, TestCluster};

/// Printed by the new (v2) templates only.
const MARK: &str = "Rollout2";
const ROLL: &str = "course-v1:Roll+1+2026";

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} lacks {from:?}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

/// v1: the shipped templates plus `old`; v2: classic and letter print MARK,
/// `old` is gone, and ROLL's courses map to `letter` instead of the default.
fn template_sets(root: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let shipped = testamur::devcluster::default_templates();
    let (v1, v2) = (root.join("v1"), root.join("v2"));
    copy_dir(&shipped, &v1);
    std::fs::copy(v1.join("letter.toml"), v1.join("old.toml")).unwrap();
    copy_dir(&shipped, &v2);
    edit(
        &v2.join("classic.toml"),
        "text = \"has successfully completed\"",
        &format!("text = \"has successfully completed {MARK}\""),
    );
    edit(
        &v2.join("letter.toml"),
        "text = \"for successfully completing\"",
        &format!("text = \"for successfully completing {MARK}\""),
    );
    edit(
        &v2.join("index.toml"),
        "[courses]\n",
        "[courses]\n\"course-v1:Roll+*\" = \"letter\"\n",
    );
    (v1, v2)
}

fn request(user: &str, template: Option<&str>) -> SubmitRequest {
    let mut r = testamur::cmd::demo::sample_request(0);
    r.username = Some(user.into());
    r.course_id = Some(ROLL.into());
    r.name = Some(format!("Ada {user}"));
    r.template = template.map(str::to_owned);
    r
}

async fn submit(lms: &ApiClient, reqs: &[SubmitRequest]) -> Vec<CertId> {
    let mut ids = Vec::new();
    for r in reqs {
        ids.push(lms.submit(r).await.unwrap().unwrap().cert_id);
    }
    ids
}

/// Waits for each certificate to be downloadable; (view, whether its PDF shows MARK).
async fn drawn(c: &TestCluster, ids: &[CertId]) -> Vec<(CertificateView, bool)> {
    let lms = c.lms().unwrap();
    let mut out = Vec::new();
    for id in ids {
        let v = match lms.wait_final(id.as_str(), Duration::from_secs(90)).await {
            Ok(v) => v,
            Err(e) => panic!("{e:#}\n{}", dump_logs(&c.dir().join("logs"))),
        };
        assert_eq!(
            v.state,
            CertState::Downloadable,
            "{id}: {:?}",
            v.error_reason
        );
        let du = v.download_uuid.as_ref().unwrap();
        let text = pdftotext(&public_file(c, &format!("downloads/{du}/Certificate.pdf")));
        out.push((v, text.contains(MARK)));
    }
    out
}

/// The one (template, version) all of `certs` were drawn with, and whether MARK
/// was on every one of them (panics when they differ).
fn one_kind(certs: &[(CertificateView, bool)]) -> (String, String, bool) {
    let kinds: std::collections::BTreeSet<(String, String, bool)> = certs
        .iter()
        .map(|(v, mark)| {
            (
                v.template.clone().unwrap_or_default(),
                v.template_version.clone().unwrap_or_default(),
                *mark,
            )
        })
        .collect();
    assert_eq!(kinds.len(), 1, "drawn with several templates: {kinds:?}");
    kinds.into_iter().next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_template_update_never_draws_a_certificate_with_the_wrong_template() {
    let root = tempfile::tempdir().unwrap();
    let (v1, v2) = template_sets(root.path());
    let mut c = cluster(|s| {
        s.workservers = 2;
        s.heartbeat_interval_s = 1;
        s.max_attempts = 5;
        s.templates = v1.clone();
    })
    .await;
    c.wait_workservers(2, Duration::from_secs(30))
        .await
        .unwrap();
    let lms = c.lms().unwrap();

    // Before: everything is v1.
    let ids = submit(&lms, &[request("base-1", None), request("base-2", None)]).await;
    let (t, classic_v1, mark) = one_kind(&drawn(&c, &ids).await);
    assert_eq!((t.as_str(), mark), ("classic", false));
    assert!(!classic_v1.is_empty(), "no template version recorded");

    // Workserver 1 is updated; workserver 2 still runs v1.
    c.terminate_ws(1);
    c.set_ws_templates(1, &v2).unwrap();
    c.start_ws(1).unwrap();
    c.wait_workservers(2, Duration::from_secs(30))
        .await
        .unwrap();
    // The newest catalogue maps the course: letter, in v2, drawn only by ws-1.
    let reqs: Vec<SubmitRequest> = (0..12)
        .map(|i| request(&format!("new-{i}"), None))
        .collect();
    let ids = submit(&lms, &reqs).await;
    let (t, letter_v2, mark) = one_kind(&drawn(&c, &ids).await);
    assert_eq!(
        (t.as_str(), mark),
        ("letter", true),
        "a v1 workserver drew a v2 job"
    );
    // A template only v1 has is accepted while a v1 workserver lives, and drawn by it.
    let ids = submit(
        &lms,
        &[request("old-1", Some("old")), request("old-2", Some("old"))],
    )
    .await;
    let (t, old_v1, mark) = one_kind(&drawn(&c, &ids).await);
    assert_eq!((t.as_str(), mark), ("old", false));

    // Workserver 2 leaves: its catalogue no longer counts.
    c.terminate_ws(2);
    let refused = lms
        .submit(&request("old-3", Some("old")))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(
        (refused.status, refused.field.as_deref()),
        (422, Some("template")),
        "{refused:?}"
    );
    assert!(refused.message.contains("`old`"), "{}", refused.message);

    // It comes back with v1 (a half-done rollout, or a rollback) and is the newest
    // registration, so its mapping applies: classic v1. It hangs before drawing.
    c.start_ws(2).unwrap();
    c.wait_workservers(2, Duration::from_secs(30))
        .await
        .unwrap();
    signal(c.ws_pid(2).unwrap(), "STOP");
    let classic_ids = submit(&lms, &[request("adopt-1", None), request("adopt-2", None)]).await;
    let old_ids = submit(&lms, &[request("old-4", Some("old"))]).await;
    for id in &classic_ids {
        let v = lms.certificate(id.as_str()).await.unwrap().unwrap();
        assert!(
            v.state.is_pending(),
            "drawn while the only v1 workserver hangs: {v:?}"
        );
    }
    // Once it counts as dead (3 heartbeats), workserver 1 draws the classic jobs in
    // its own version; `old` jobs wait, and the status says for which template.
    let (t, classic_v2, mark) = one_kind(&drawn(&c, &classic_ids).await);
    assert_eq!((t.as_str(), mark), ("classic", true));
    assert_ne!(classic_v2, classic_v1);
    assert_ne!(letter_v2, classic_v2);
    // (The hung workserver may have leased it: it waits once the reaper takes it back.)
    let op = c.operator().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let waiting = loop {
        let status = op.status().await.unwrap().unwrap();
        let waiting: Vec<(String, String, u64)> = status
            .waiting_for_template
            .iter()
            .map(|w| (w.template.clone(), w.version.clone(), w.jobs))
            .collect();
        if !waiting.is_empty() || std::time::Instant::now() > deadline {
            break waiting;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(waiting, vec![("old".to_owned(), old_v1.clone(), 1)]);
    let v = lms.certificate(old_ids[0].as_str()).await.unwrap().unwrap();
    assert!(v.state.is_pending(), "{v:?}");

    // Workserver 2 restarts on v1 again: the waiting job is drawn, by `old`.
    c.kill_ws(2);
    c.start_ws(2).unwrap();
    let (t, v, mark) = one_kind(&drawn(&c, &old_ids).await);
    assert_eq!(
        (t.as_str(), v.as_str(), mark),
        ("old", old_v1.as_str(), false)
    );
    let status = op.status().await.unwrap().unwrap();
    assert!(
        status.waiting_for_template.is_empty(),
        "{:?}",
        status.waiting_for_template
    );
}

/// The version of each template, loaded from `dir`.
fn versions(dir: &Path) -> std::collections::BTreeMap<String, String> {
    testamur_ws::render::Renderer::load(dir)
        .unwrap()
        .catalog()
        .templates
        .iter()
        .map(|(n, t)| (n.clone(), t.version.clone()))
        .collect()
}

#[test]
fn a_template_version_changes_with_what_the_template_draws_and_only_then() {
    let root = tempfile::tempdir().unwrap();
    let shipped = testamur::devcluster::default_templates();
    let (a, b) = (root.path().join("a"), root.path().join("b"));
    copy_dir(&shipped, &a);
    copy_dir(&shipped, &b);
    let base = versions(&a);
    assert_eq!(versions(&b), base, "the same files in another folder");
    assert!(base.values().all(|v| v.len() == 12), "{base:?}");
    // A course rule is not part of any template.
    edit(
        &b.join("index.toml"),
        "[courses]\n",
        "[courses]\n\"course-v1:Z+*\" = \"letter\"\n",
    );
    assert_eq!(versions(&b), base);
    // New artwork under the same file name: the templates that draw it change.
    std::fs::copy(b.join("art/signature-2.png"), b.join("art/signature-1.png")).unwrap();
    let v = versions(&b);
    assert_ne!(v["classic"], base["classic"]);
    assert_ne!(v["letter"], base["letter"]);
    copy_dir(&shipped, &b);
    edit(
        &b.join("classic.toml"),
        "has successfully completed",
        "has completed",
    );
    let v = versions(&b);
    assert_ne!(v["classic"], base["classic"]);
    assert_eq!(v["letter"], base["letter"]);
}

#[test]
fn a_course_rule_can_give_a_language_and_a_bad_one_names_its_key() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("t");
    copy_dir(&testamur::devcluster::default_templates(), &dir);
    edit(
        &dir.join("index.toml"),
        "[courses]\n",
        "[courses]\n\"course-v1:TokyoX+*\" = { template = \"letter\", lang = \"ja\" }\n",
    );
    let r = testamur_ws::render::Renderer::load(&dir).unwrap();
    assert_eq!(
        r.catalog().course_lang("course-v1:TokyoX+1+2026"),
        Some("ja")
    );
    assert_eq!(
        r.catalog()
            .resolve(None, "course-v1:TokyoX+1+2026")
            .unwrap(),
        "letter"
    );
    for (bad, says) in [
        (
            "{ template = \"letter\", lang = \"not a tag\" }",
            "courses.\"course-v1:TokyoX+*\".lang",
        ),
        ("{ lang = \"ja\" }", "template"),
        ("{ template = \"letter\", lagn = \"ja\" }", "lagn"),
        ("3", "a template name, or a table"),
    ] {
        copy_dir(&testamur::devcluster::default_templates(), &dir);
        edit(
            &dir.join("index.toml"),
            "[courses]\n",
            &format!("[courses]\n\"course-v1:TokyoX+*\" = {bad}\n"),
        );
        let e = testamur_ws::render::Renderer::load(&dir)
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains(says) && e.contains("index.toml"), "{bad}: {e}");
    }
}

/// A CC upgraded under a running workserver finds its registration without a
/// catalogue digest or template versions: it still gets every job, as before.
#[tokio::test(flavor = "multi_thread")]
async fn a_workserver_registered_before_template_versions_still_gets_its_jobs() {
    let c = cluster(|s| s.workservers = 1).await;
    c.wait_workservers(1, Duration::from_secs(30))
        .await
        .unwrap();
    let ws = c.redis.cli(&["SMEMBERS", "tm:workservers"]).unwrap();
    let ws = ws.trim();
    c.redis
        .cli(&["HDEL", &format!("tm:ws:{ws}"), "catalog"])
        .unwrap();
    c.redis.cli(&["DEL", &format!("tm:ws:{ws}:tpl")]).unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let lms = c.lms().unwrap();
    // Checked and pinned against the last registered catalogue all the same.
    let id = lms
        .submit(&request("legacy-1", None))
        .await
        .unwrap()
        .unwrap()
        .cert_id;
    let v = match lms.wait_final(id.as_str(), Duration::from_secs(30)).await {
        Ok(v) => v,
        Err(e) => panic!("{e:#}\n{}", dump_logs(&c.dir().join("logs"))),
    };
    assert_eq!(v.state, CertState::Downloadable, "{:?}", v.error_reason);
    assert_eq!(v.template.as_deref(), Some("classic"));
}

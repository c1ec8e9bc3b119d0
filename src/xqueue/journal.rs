//! The bridge's journal (`state_file`): which submissions it took from xqueue and
//! has not answered yet, so that a restart resumes them.
//!
//! Append-only JSON lines, one event per line, each written and synced before the
//! bridge acts on it:
//!
//! ```text
//! {"event":"taken","key":K,"header":H,"body":B,"at":T}   pulled from xqueue
//! {"event":"submitting","key":K}                          a submit may reach the CC
//! {"event":"submitted","key":K,"cert_id":C}               the CC accepted it
//! {"event":"reoffered","key":K,"header":H}               xqueue handed it out again
//! {"event":"answered","key":K,"result":R,"at_ms":T}       put_result was accepted
//! ```
//!
//! `K` is the submission's key ([`Envelope::key`]: xqueue's `submission_id` and
//! the body, so every copy xqueue hands out has the same key). `reoffered` keeps
//! the newest header (the pull key xqueue will accept). `answered` keeps the
//! result for [`ANSWER_MEMORY`] so that a copy xqueue hands out again after the
//! LMS's callback failed is answered with the same result, without a new job.
//!
//! At start-up, and while running whenever the file has grown 2,000 lines
//! beyond what it needs, the file is compacted: the submissions not answered
//! (with their latest stage and header) and the remembered answers are written
//! to a temporary file (mode 0600: it holds learner names) that replaces the
//! journal atomically. A torn last line (the bridge died while writing it) is
//! skipped. Lines of older bridges (keyed by the header's hash, `answered`
//! without a result) are read and re-keyed.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::submission::Envelope;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Line {
    Taken {
        key: String,
        header: String,
        body: String,
        #[serde(default)]
        at: String,
    },
    Submitting {
        key: String,
    },
    Submitted {
        key: String,
        cert_id: String,
    },
    Reoffered {
        key: String,
        header: String,
    },
    Answered {
        key: String,
        /// The put_result body (absent in older journals).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result: Option<String>,
        #[serde(default)]
        at_ms: u64,
    },
}

/// How long an answer is remembered for copies xqueue hands out again (xqueue
/// re-offers a submission every `SUBMISSION_PROCESSING_DELAY` until the LMS
/// acknowledges it), and how many at most (the oldest are forgotten first).
pub const ANSWER_MEMORY: Duration = Duration::from_secs(7 * 24 * 3600);
pub const ANSWER_MEMORY_MAX: usize = 200_000;

/// How far a submission got before the bridge stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// Taken from xqueue; nothing sent to the CC yet.
    Taken,
    /// A submit was sent (or about to be): the CC may or may not have it.
    Submitting,
    /// The CC accepted it: follow this certificate.
    Submitted { cert_id: String },
}

/// A submission taken but not answered, found at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub envelope: Envelope,
    pub stage: Stage,
}

pub struct Journal {
    path: PathBuf,
    inner: Mutex<Inner>,
    /// Compact while running once the file has this many lines more than needed.
    slack: usize,
}

/// The open file and a mirror of what it says, so that it can be compacted
/// while the bridge runs.
struct Inner {
    file: File,
    state: Replay,
    /// Lines in the file.
    lines: usize,
}

const COMPACT_SLACK: usize = 2000;

fn now_ms() -> u64 {
    testamur_common::time_fmt::now_ms().max(0) as u64
}

impl Journal {
    /// Read and compact the journal at `path` (created if absent); returns the
    /// journal, open for appending, and the submissions still to answer in the
    /// order they were taken.
    pub fn open(path: &Path) -> anyhow::Result<(Self, Vec<Pending>)> {
        let mut state = Replay::default();
        match File::open(path) {
            Ok(f) => state.read(BufReader::new(f), path)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read state_file {}", path.display()))
            }
        };
        state.rekey();
        state.forget_old(now_ms());
        let (file, lines) = compact(path, &state)?;
        let pending = state.pending();
        Ok((
            Self {
                path: path.to_owned(),
                inner: Mutex::new(Inner { file, state, lines }),
                slack: COMPACT_SLACK,
            },
            pending,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn append(&self, line: Line) -> anyhow::Result<()> {
        let mut text = serde_json::to_string(&line)?;
        text.push('\n');
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let answered = matches!(line, Line::Answered { .. });
        inner.state.apply(line);
        inner
            .file
            .write_all(text.as_bytes())
            .and_then(|()| inner.file.sync_data())
            .with_context(|| format!("cannot append to state_file {}", self.path.display()))?;
        inner.lines += 1;
        if answered && inner.lines > inner.state.needed_lines() + self.slack {
            // Old answers go at compaction (not at every answer: that would
            // walk up to ANSWER_MEMORY_MAX entries each time).
            inner.state.forget_old(now_ms());
            match compact(&self.path, &inner.state) {
                Ok((file, lines)) => {
                    inner.file = file;
                    inner.lines = lines;
                }
                // The appended file is still complete: keep using it.
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "cannot compact the journal"),
            }
        }
        Ok(())
    }

    pub fn taken(&self, e: &Envelope) -> anyhow::Result<()> {
        self.append(Line::Taken {
            key: e.key(),
            header: e.header.clone(),
            body: e.body.clone(),
            at: testamur_common::time_fmt::rfc3339_ms(testamur_common::time_fmt::now_ms()),
        })
    }

    pub fn submitting(&self, e: &Envelope) -> anyhow::Result<()> {
        self.append(Line::Submitting { key: e.key() })
    }

    pub fn submitted(&self, e: &Envelope, cert_id: &str) -> anyhow::Result<()> {
        self.append(Line::Submitted {
            key: e.key(),
            cert_id: cert_id.to_owned(),
        })
    }

    /// xqueue handed the submission out again: its newest header.
    pub fn reoffered(&self, e: &Envelope) -> anyhow::Result<()> {
        self.append(Line::Reoffered {
            key: e.key(),
            header: e.header.clone(),
        })
    }

    /// xqueue accepted `result` for the submission.
    pub fn answered(&self, e: &Envelope, result: &str) -> anyhow::Result<()> {
        self.append(Line::Answered {
            key: e.key(),
            result: Some(result.to_owned()),
            at_ms: now_ms(),
        })
    }

    /// The result xqueue accepted for this submission, if it was answered
    /// within [`ANSWER_MEMORY`].
    pub fn answer_for(&self, e: &Envelope) -> Option<String> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.state.answered.get(&e.key()).map(|(_, r)| r.clone())
    }
}

/// Write what `state` still needs to a temporary file, sync it, rename it over
/// `path`; returns the new file open for appending and its line count.
fn compact(path: &Path, state: &Replay) -> anyhow::Result<(File, usize)> {
    let tmp = path.with_extension("compacting");
    let mut lines = 0;
    {
        // It holds learner names: readable by the bridge's user only.
        let mut opts = OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut out = opts
            .open(&tmp)
            .with_context(|| format!("cannot write {} (state_file)", tmp.display()))?;
        let mut text = String::new();
        for line in state.answered_lines() {
            text.push_str(&serde_json::to_string(&line)?);
            text.push('\n');
            lines += 1;
        }
        for p in state.pending() {
            for line in lines_for(&p) {
                text.push_str(&serde_json::to_string(&line)?);
                text.push('\n');
                lines += 1;
            }
        }
        out.write_all(text.as_bytes())?;
        out.sync_all()?;
    }
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot replace state_file {}", path.display()))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    let file = OpenOptions::new()
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open state_file {}", path.display()))?;
    Ok((file, lines))
}

fn lines_for(p: &Pending) -> Vec<Line> {
    let key = p.envelope.key();
    let mut v = vec![Line::Taken {
        key: key.clone(),
        header: p.envelope.header.clone(),
        body: p.envelope.body.clone(),
        at: String::new(),
    }];
    match &p.stage {
        Stage::Taken => {}
        Stage::Submitting => v.push(Line::Submitting { key }),
        Stage::Submitted { cert_id } => v.push(Line::Submitted {
            key,
            cert_id: cert_id.clone(),
        }),
    }
    v
}

fn stage_rank(s: &Stage) -> u8 {
    match s {
        Stage::Taken => 0,
        Stage::Submitting => 1,
        Stage::Submitted { .. } => 2,
    }
}

/// The submissions a journal says are not answered, in the order taken, and
/// the answers it remembers.
#[derive(Default)]
struct Replay {
    next: u64,
    map: HashMap<String, (u64, Pending)>,
    /// key → (when answered, ms; the result).
    answered: HashMap<String, (u64, String)>,
}

impl Replay {
    fn apply(&mut self, line: Line) {
        match line {
            Line::Taken {
                key, header, body, ..
            } => match self.map.get_mut(&key) {
                // Taken again (a copy xqueue handed out anew): keep the stage.
                Some((_, p)) => p.envelope = Envelope { header, body },
                None => {
                    self.next += 1;
                    self.map.insert(
                        key,
                        (
                            self.next,
                            Pending {
                                envelope: Envelope { header, body },
                                stage: Stage::Taken,
                            },
                        ),
                    );
                }
            },
            Line::Reoffered { key, header } => {
                if let Some((_, p)) = self.map.get_mut(&key) {
                    p.envelope.header = header;
                }
            }
            Line::Submitting { key } => {
                if let Some((_, p)) = self.map.get_mut(&key) {
                    if p.stage == Stage::Taken {
                        p.stage = Stage::Submitting;
                    }
                }
            }
            Line::Submitted { key, cert_id } => {
                if let Some((_, p)) = self.map.get_mut(&key) {
                    p.stage = Stage::Submitted { cert_id };
                }
            }
            Line::Answered { key, result, at_ms } => {
                self.map.remove(&key);
                if let Some(r) = result {
                    self.answered.insert(key, (at_ms, r));
                }
            }
        }
    }

    /// Key everything by [`Envelope::key`] (older bridges used the header's hash).
    fn rekey(&mut self) {
        let map = std::mem::take(&mut self.map);
        for (_, (seq, p)) in map {
            let key = p.envelope.key();
            match self.map.get(&key) {
                // Two copies of one submission: keep the further one.
                Some((_, q)) if stage_rank(&q.stage) >= stage_rank(&p.stage) => {}
                _ => {
                    self.map.insert(key, (seq, p));
                }
            }
        }
        self.map.retain(|k, _| !self.answered.contains_key(k));
    }

    /// Forget answers older than [`ANSWER_MEMORY`] and all but the newest
    /// [`ANSWER_MEMORY_MAX`].
    fn forget_old(&mut self, now_ms: u64) {
        let horizon = now_ms.saturating_sub(ANSWER_MEMORY.as_millis() as u64);
        self.answered.retain(|_, (at, _)| *at >= horizon);
        if self.answered.len() > ANSWER_MEMORY_MAX {
            let mut ats: Vec<u64> = self.answered.values().map(|(at, _)| *at).collect();
            ats.sort_unstable();
            let cut = ats[ats.len() - ANSWER_MEMORY_MAX];
            self.answered.retain(|_, (at, _)| *at >= cut);
        }
    }

    /// Lines a compacted journal holds.
    fn needed_lines(&self) -> usize {
        2 * self.map.len() + self.answered.len()
    }

    fn answered_lines(&self) -> Vec<Line> {
        let mut v: Vec<_> = self.answered.iter().collect();
        v.sort_by_key(|(_, (at, _))| *at);
        v.into_iter()
            .map(|(k, (at, r))| Line::Answered {
                key: k.clone(),
                result: Some(r.clone()),
                at_ms: *at,
            })
            .collect()
    }

    fn read(&mut self, r: impl BufRead, path: &Path) -> anyhow::Result<()> {
        for (n, line) in r.lines().enumerate() {
            let line =
                line.with_context(|| format!("cannot read state_file {}", path.display()))?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(&line) {
                Ok(l) => self.apply(l),
                Err(e) => {
                    tracing::warn!(state_file = %path.display(), line = n + 1, error = %e,
                        "skipping an unreadable journal line (torn write?)");
                }
            }
        }
        Ok(())
    }

    fn pending(&self) -> Vec<Pending> {
        let mut v: Vec<_> = self.map.values().collect();
        v.sort_by_key(|(seq, _)| *seq);
        v.into_iter().map(|(_, p)| p.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(i: u32) -> Envelope {
        Envelope {
            header: format!("{{\"submission_id\": {i}, \"submission_key\": \"k{i}\"}}"),
            body: format!("{{\"action\": \"add\", \"n\": {i}}}"),
        }
    }

    #[test]
    fn replays_compacts_and_skips_torn_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.jsonl");
        {
            let (j, pending) = Journal::open(&path).unwrap();
            assert!(pending.is_empty());
            for i in 1..=4 {
                j.taken(&env(i)).unwrap();
            }
            j.submitting(&env(2)).unwrap();
            j.submitting(&env(3)).unwrap();
            j.submitted(&env(3), "abc").unwrap();
            j.answered(&env(4), "{\"ok\": 4}").unwrap();
        }
        // A torn write at the end.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"event\":\"answ").unwrap();
        drop(f);

        let (j, pending) = Journal::open(&path).unwrap();
        let stages: Vec<_> = pending
            .iter()
            .map(|p| (p.envelope.clone(), p.stage.clone()))
            .collect();
        assert_eq!(
            stages,
            vec![
                (env(1), Stage::Taken),
                (env(2), Stage::Submitting),
                (
                    env(3),
                    Stage::Submitted {
                        cert_id: "abc".into()
                    }
                ),
            ]
        );
        j.answered(&env(1), "{\"ok\": 1}").unwrap();
        drop(j);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("\"n\": 4"), "compacted away: {text}");
        let (_, pending) = Journal::open(&path).unwrap();
        assert_eq!(pending.len(), 2);
        assert_eq!(pending[0].envelope, env(2));
    }

    #[test]
    fn compacts_while_running() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.jsonl");
        let (mut j, _) = Journal::open(&path).unwrap();
        j.slack = 20;
        j.taken(&env(0)).unwrap();
        for i in 1..=50 {
            j.taken(&env(i)).unwrap();
            j.answered(&env(i), "{}").unwrap();
        }
        // 101 lines appended; compacted: the pending one and the 50 answers.
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert!(lines < 75, "{lines} lines");
        j.submitted(&env(0), "c0").unwrap();
        drop(j);
        let (j, pending) = Journal::open(&path).unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(
            pending[0].stage,
            Stage::Submitted {
                cert_id: "c0".into()
            }
        );
        assert_eq!(j.answer_for(&env(7)).as_deref(), Some("{}"));
    }

    /// A copy xqueue hands out again keeps the stage and takes the newest
    /// header; an answer is remembered across restarts, then forgotten.
    #[test]
    fn reoffers_and_remembered_answers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.jsonl");
        let copy = |i: u32, pull: &str| Envelope {
            header: format!("{{\"submission_id\": {i}, \"submission_key\": \"{pull}\"}}"),
            body: format!("{{\"action\": \"add\", \"n\": {i}}}"),
        };
        {
            let (j, _) = Journal::open(&path).unwrap();
            j.taken(&copy(1, "a")).unwrap();
            j.submitted(&copy(1, "a"), "cert1").unwrap();
            j.reoffered(&copy(1, "b")).unwrap();
            j.taken(&copy(2, "a")).unwrap();
            j.answered(&copy(2, "a"), "{\"r\": 2}").unwrap();
            j.taken(&copy(2, "c")).unwrap();
            assert_eq!(j.answer_for(&copy(2, "z")).as_deref(), Some("{\"r\": 2}"));
        }
        let (j, pending) = Journal::open(&path).unwrap();
        assert_eq!(pending.len(), 1, "{pending:?}");
        assert_eq!(pending[0].envelope, copy(1, "b"));
        assert_eq!(
            pending[0].stage,
            Stage::Submitted {
                cert_id: "cert1".into()
            }
        );
        assert_eq!(j.answer_for(&copy(2, "q")).as_deref(), Some("{\"r\": 2}"));
        drop(j);
        // A week later it is forgotten.
        let old = now_ms() - ANSWER_MEMORY.as_millis() as u64 - 1000;
        let text = std::fs::read_to_string(&path).unwrap();
        let text: String = text
            .lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                if v["event"] == "answered" {
                    v["at_ms"] = old.into();
                }
                v.to_string() + "\n"
            })
            .collect();
        std::fs::write(&path, text).unwrap();
        let (j, _) = Journal::open(&path).unwrap();
        assert_eq!(j.answer_for(&copy(2, "q")), None);
    }

    /// Journals of the first bridge (keyed by the header's hash) resume.
    #[test]
    fn old_journal_lines_are_rekeyed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.jsonl");
        let e = env(5);
        let old_key = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(e.header.as_bytes()));
        let lines = [
            serde_json::json!({"event": "taken", "key": old_key, "header": e.header, "body": e.body}),
            serde_json::json!({"event": "submitted", "key": old_key, "cert_id": "c5"}),
        ];
        let text: String = lines.iter().map(|l| l.to_string() + "\n").collect();
        std::fs::write(&path, text).unwrap();
        let (j, pending) = Journal::open(&path).unwrap();
        assert_eq!(pending.len(), 1);
        j.answered(&e, "{}").unwrap();
        drop(j);
        let (_, pending) = Journal::open(&path).unwrap();
        assert!(pending.is_empty(), "{pending:?}");
    }
}

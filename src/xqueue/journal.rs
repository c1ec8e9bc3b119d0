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
//! {"event":"answered","key":K}                            put_result was accepted
//! ```
//!
//! `K` is sha256 of the xqueue header. At start-up, and while running whenever
//! the file has grown 2,000 lines beyond what it needs, the file is compacted:
//! only the submissions that are not answered are kept (with their latest stage),
//! written to a temporary file (mode 0600: it holds learner names) that replaces
//! the journal atomically. A torn last line (the bridge died while writing it)
//! is skipped.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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
    Answered {
        key: String,
    },
}

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
        if answered && inner.lines > 2 * inner.state.map.len() + self.slack {
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

    pub fn answered(&self, e: &Envelope) -> anyhow::Result<()> {
        self.append(Line::Answered { key: e.key() })
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

/// The submissions a journal says are not answered, in the order taken.
#[derive(Default)]
struct Replay {
    next: u64,
    map: HashMap<String, (u64, Pending)>,
}

impl Replay {
    fn apply(&mut self, line: Line) {
        match line {
            Line::Taken {
                key, header, body, ..
            } => {
                let seq = match self.map.get(&key) {
                    Some((seq, _)) => *seq,
                    None => {
                        self.next += 1;
                        self.next
                    }
                };
                self.map.insert(
                    key,
                    (
                        seq,
                        Pending {
                            envelope: Envelope { header, body },
                            stage: Stage::Taken,
                        },
                    ),
                );
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
            Line::Answered { key } => {
                self.map.remove(&key);
            }
        }
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
            j.answered(&env(4)).unwrap();
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
        j.answered(&env(1)).unwrap();
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
            j.answered(&env(i)).unwrap();
        }
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert!(lines < 30, "{lines} lines");
        j.submitted(&env(0), "c0").unwrap();
        drop(j);
        let (_, pending) = Journal::open(&path).unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(
            pending[0].stage,
            Stage::Submitted {
                cert_id: "c0".into()
            }
        );
    }
}

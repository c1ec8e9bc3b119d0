//! Group commit for the directory backend: files and directory entries written by
//! several jobs are made durable together, by one of them, in one round: on Linux
//! one `syncfs(2)` of the storage's filesystem (every dirty file, directory and
//! inode table block written in one batch of I/O) followed by an fsync of the
//! storage directory (a cache flush after that last metadata: ext4 without a
//! journal flushes before it); elsewhere, and for a round of one job's files, an
//! fsync of each file and directory.
//! An fsync per file costs one synchronous write per inode (and, on ext4 without a
//! journal, per new parent directory), each a VM exit on a virtual disk.
//!
//! A round collects what is written while the previous round is being synced.
//! A job waits for the rounds its writes went into; the first to wait when no
//! round is syncing syncs the open one itself, at once: a job alone never waits
//! for company, and jobs finishing together share a round. A round whose fsyncs
//! fail fails every job that wrote into it (another attempt writes its files
//! again: after a failed fsync what is on disk is unknown).

use std::collections::BTreeSet;
use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, OnceLock};

/// What one round makes durable, and its outcome once synced.
#[derive(Default)]
pub(super) struct Round {
    /// Filled in by the round's syncer; `Err` names what failed.
    result: OnceLock<Result<(), String>>,
}

#[derive(Default)]
struct State {
    /// Written files, by the handle they were written through.
    files: Vec<(PathBuf, File)>,
    /// Directories whose entries changed (a rename into it, a directory created).
    dirs: BTreeSet<PathBuf>,
    /// The round the writes above belong to.
    round: Arc<Round>,
    /// Whether a round is being synced now.
    syncing: bool,
}

pub(super) struct GroupCommit {
    state: Mutex<State>,
    synced: Condvar,
    /// The storage directory, open for the whole process: `syncfs` reports the
    /// writeback errors of the filesystem since the last call on this handle.
    root: File,
}

impl GroupCommit {
    pub(super) fn new(root: File) -> Self {
        Self {
            state: Mutex::default(),
            synced: Condvar::new(),
            root,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a written file (and the directory its name is in) to the open round;
    /// that round.
    pub(super) fn file(&self, path: PathBuf, file: File, dir: PathBuf) -> Arc<Round> {
        let mut s = self.lock();
        s.files.push((path, file));
        s.dirs.insert(dir);
        s.round.clone()
    }

    /// Adds a directory whose entries changed to the open round; that round.
    pub(super) fn dir(&self, dir: PathBuf) -> Arc<Round> {
        let mut s = self.lock();
        s.dirs.insert(dir);
        s.round.clone()
    }

    /// Returns once `round` is durable (syncing it, or the rounds before it,
    /// when nobody else is), or with what failed.
    pub(super) fn wait(&self, round: &Arc<Round>) -> Result<(), String> {
        let mut s = self.lock();
        loop {
            if let Some(r) = round.result.get() {
                return r.clone();
            }
            if !s.syncing {
                // Rounds are taken only by syncers, who fill in their result
                // before clearing `syncing`: an unsynced round is the open one.
                s.syncing = true;
                let files = std::mem::take(&mut s.files);
                let dirs = std::mem::take(&mut s.dirs);
                let taken = std::mem::take(&mut s.round);
                drop(s);
                let result = sync(&self.root, files, dirs);
                let _ = taken.result.set(result);
                s = self.lock();
                s.syncing = false;
                self.synced.notify_all();
                continue;
            }
            s = self.synced.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }
}

#[cfg(test)]
pub(super) static SYNCED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// A round of at most this many files (one job's) is synced file by file: a
/// `syncfs` also waits for whatever else is dirty on the filesystem (other
/// programs' writes), which a lone job need not pay for.
const SMALL_ROUND: usize = 3;

/// Makes the files and directories durable: after this a crash keeps them all.
fn sync(root: &File, files: Vec<(PathBuf, File)>, dirs: BTreeSet<PathBuf>) -> Result<(), String> {
    if files.len() <= SMALL_ROUND {
        return sync_each(files, dirs);
    }
    sync_all(root, files, dirs)
}

/// One `syncfs`, then a cache flush.
#[cfg(target_os = "linux")]
fn sync_all(
    root: &File,
    files: Vec<(PathBuf, File)>,
    dirs: BTreeSet<PathBuf>,
) -> Result<(), String> {
    use std::os::fd::AsRawFd;
    // SAFETY: syncfs only reads the descriptor, which `root` keeps open.
    if unsafe { libc::syncfs(root.as_raw_fd()) } != 0 {
        return Err(format!("syncfs: {}", std::io::Error::last_os_error()));
    }
    root.sync_all()
        .map_err(|e| format!("fsync of the storage directory: {e}"))?;
    #[cfg(test)]
    {
        let mut synced = SYNCED.lock().unwrap_or_else(|p| p.into_inner());
        synced.extend(files.into_iter().map(|(p, _)| p));
        synced.extend(dirs);
    }
    #[cfg(not(test))]
    drop((files, dirs));
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn sync_all(
    _root: &File,
    files: Vec<(PathBuf, File)>,
    dirs: BTreeSet<PathBuf>,
) -> Result<(), String> {
    sync_each(files, dirs)
}

/// fsyncs the files, then the directories.
fn sync_each(files: Vec<(PathBuf, File)>, dirs: BTreeSet<PathBuf>) -> Result<(), String> {
    for (path, f) in files {
        f.sync_all()
            .map_err(|e| format!("fsync {}: {e}", path.display()))?;
        #[cfg(test)]
        SYNCED.lock().unwrap_or_else(|p| p.into_inner()).push(path);
    }
    for dir in dirs {
        match super::disk::sync_dir(&dir) {
            Ok(()) => {}
            // Removed since (a delete): its removal was synced by its remover.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("fsync {}: {e}", dir.display())),
        }
    }
    Ok(())
}

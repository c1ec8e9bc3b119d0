//! The local-directory backend: files under a directory that any web server
//! serves at `base_url`. Writes are atomic and durable: a temporary file is
//! written, renamed over the target, then the file and the directory holding it
//! are fsynced (so is the parent of every directory created on the way), so a file
//! reported written survives a crash. A job's files ([`Batch`]) are fsynced
//! together with those of the jobs finishing at the same time, in one round
//! ([`super::group_commit`]), before the job reports; a single `put` waits for its
//! round alone. Before its round a file is whole for readers (the rename) but a
//! crash may lose it: its job has not reported, so another attempt writes it
//! again. A remove is fsynced at once, so a deleted certificate's files do not
//! come back after a crash.
//!
//! No HTTP headers are stored with the files: the web server serving the
//! directory sets `Cache-Control` (docs/DEPLOYMENT.md, "Published files: caching").

use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use testamur_common::config::StorageConfig;

use super::group_commit::{GroupCommit, Round};
use super::{Batch, Storage, StorageError};

pub struct DiskStorage {
    dir: PathBuf,
    base_url: String,
    keep_old_versions: bool,
    /// Where written files wait to be made durable, several jobs' together.
    commit: GroupCommit,
}

/// A filesystem error as a storage error: missing permission, a read-only
/// filesystem or a path that is not a directory will not fix themselves; a full
/// disk or an I/O error may.
fn io_error(op: &'static str, path: &Path, e: std::io::Error) -> StorageError {
    let retryable = !matches!(
        e.kind(),
        ErrorKind::PermissionDenied
            | ErrorKind::ReadOnlyFilesystem
            | ErrorKind::NotADirectory
            | ErrorKind::IsADirectory
            | ErrorKind::InvalidInput
    );
    let hint = if retryable {
        ""
    } else {
        " (check the permissions of storage.dir in ws.conf)"
    };
    StorageError {
        op,
        target: path.display().to_string(),
        detail: format!("{e}{hint}"),
        retryable,
    }
}

/// fsync a directory, so the entries created, renamed or removed in it are on
/// disk (the file's own fsync does not cover its name).
pub(super) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()?;
    #[cfg(test)]
    super::group_commit::SYNCED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(dir.to_owned());
    Ok(())
}

/// `create_dir_all`, telling `created` the parent of each directory it creates
/// (whose entry must be synced). Fails as `create_dir_all` does (a file in the
/// way: "not a directory").
fn create_dirs(
    dir: &Path,
    created: &mut dyn FnMut(&Path) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
    // mkdir first: a certificate's directory is new, and one stat fewer.
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        // There already (or just made by another job): its creator syncs its entry.
        Err(e) if e.kind() == ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let Some(parent) = parent else { return Err(e) };
            create_dirs(parent, created)?;
            match std::fs::create_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
    }
    match parent {
        Some(parent) => created(parent),
        None => Ok(()),
    }
}

/// `create_dir_all`, durably: each directory created is fsynced into its parent.
fn create_dirs_durably(dir: &Path) -> std::io::Result<()> {
    create_dirs(dir, &mut |parent| sync_dir(parent))
}

impl DiskStorage {
    pub fn new(dir: &Path, cfg: &StorageConfig) -> Result<Self, StorageError> {
        create_dirs_durably(dir).map_err(|e| io_error("create directory", dir, e))?;
        let root = std::fs::File::open(dir).map_err(|e| io_error("open directory", dir, e))?;
        Ok(Self {
            dir: dir.to_owned(),
            base_url: cfg.base_url.clone(),
            keep_old_versions: cfg.keep_old_versions,
            commit: GroupCommit::new(root),
        })
    }

    /// Writes `rel` whole (a temporary file renamed over it), not yet durable:
    /// the rounds of the group commit that make it so go into `rounds`.
    fn write(
        &self,
        rel: &str,
        bytes: &[u8],
        rounds: &mut Vec<Arc<Round>>,
    ) -> Result<(), StorageError> {
        let path = self.dir.join(rel);
        let parent = path.parent().unwrap_or(&self.dir).to_owned();
        create_dirs(&parent, &mut |p| {
            rounds.push(self.commit.dir(p.to_owned()));
            Ok(())
        })
        .map_err(|e| io_error("create directory", &parent, e))?;
        let tmp = parent.join(format!(".tmp-{}", testamur_common::ids::random_hex(8)));
        let write = || -> std::io::Result<std::fs::File> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            std::fs::rename(&tmp, &path)?;
            Ok(f)
        };
        let file = write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io_error("write", &path, e)
        })?;
        rounds.push(self.commit.file(path, file, parent));
        Ok(())
    }

    /// Returns once every round in `rounds` is durable.
    fn wait(&self, rounds: &[Arc<Round>]) -> Result<(), StorageError> {
        let mut seen: Vec<*const Round> = Vec::new();
        for r in rounds {
            if seen.contains(&Arc::as_ptr(r)) {
                continue;
            }
            seen.push(Arc::as_ptr(r));
            self.commit.wait(r).map_err(|detail| StorageError {
                op: "sync",
                target: self.dir.display().to_string(),
                detail,
                retryable: true,
            })?;
        }
        Ok(())
    }
}

/// A job's writes, durable together (with other jobs') at `commit`.
struct DiskBatch<'a> {
    storage: &'a DiskStorage,
    rounds: Vec<Arc<Round>>,
}

impl Batch for DiskBatch<'_> {
    fn put(&mut self, rel: &str, bytes: &[u8], _content_type: &str) -> Result<(), StorageError> {
        self.storage.write(rel, bytes, &mut self.rounds)
    }

    fn commit(self: Box<Self>) -> Result<(), StorageError> {
        self.storage.wait(&self.rounds)
    }
}

impl Storage for DiskStorage {
    fn exists(&self, rel: &str) -> Result<bool, StorageError> {
        let path = self.dir.join(rel);
        match std::fs::metadata(&path) {
            Ok(m) => Ok(m.is_file()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_error("look up", &path, e)),
        }
    }

    fn keeps_old_versions(&self) -> bool {
        self.keep_old_versions
    }

    fn url(&self, rel: &str) -> String {
        format!("{}{}", self.base_url, rel)
    }

    fn put(&self, rel: &str, bytes: &[u8], _content_type: &str) -> Result<(), StorageError> {
        let mut rounds = Vec::new();
        self.write(rel, bytes, &mut rounds)?;
        self.wait(&rounds)
    }

    fn batch(&self) -> Box<dyn Batch + '_> {
        Box::new(DiskBatch {
            storage: self,
            rounds: Vec::new(),
        })
    }

    /// Also removes the file's directory if that became empty.
    fn remove(&self, rel: &str) -> Result<(), StorageError> {
        let path = self.dir.join(rel);
        let parent = path.parent().unwrap_or(&self.dir).to_owned();
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_error("remove", &path, e)),
        }
        // When the directory went too, its removal is recorded in its parent.
        let removed_dir = parent != self.dir && std::fs::remove_dir(&parent).is_ok();
        let synced: &Path = if removed_dir {
            parent.parent().unwrap_or(self.dir.as_path())
        } else {
            &parent
        };
        match sync_dir(synced) {
            Ok(()) => Ok(()),
            // Nothing was there to remove.
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("sync directory", synced, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage(dir: &Path) -> DiskStorage {
        DiskStorage::new(
            dir,
            &StorageConfig {
                backend: testamur_common::config::StorageBackend::Dir {
                    dir: dir.to_owned(),
                },
                base_url: "https://certs.example.org/".into(),
                keep_old_versions: false,
                cache_max_age: std::time::Duration::from_secs(300),
            },
        )
        .unwrap()
    }

    /// A directory of our own under the system's temp dir, removed on drop.
    struct TempDir(PathBuf);
    impl TempDir {
        fn new() -> Self {
            let d = std::env::temp_dir()
                .join(format!("tm-disk-{}", testamur_common::ids::random_hex(6)));
            std::fs::create_dir(&d).unwrap();
            Self(d)
        }
        fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// What was fsynced under `root` since the last call (files and
    /// directories, in order); other tests' syncs stay.
    fn synced_under(root: &Path) -> Vec<PathBuf> {
        let mut all = crate::storage::group_commit::SYNCED
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let (mine, others) = all.drain(..).partition(|p: &PathBuf| p.starts_with(root));
        *all = others;
        mine
    }

    /// A put leaves exactly the file (no temporary), and fsyncs the file, the
    /// directory holding it after the rename and each directory it created into
    /// its parent; a remove fsyncs the directory it removed from.
    #[test]
    fn writes_and_removes_are_synced_into_their_directories() {
        let root = TempDir::new();
        let s = storage(root.path());
        let synced = || synced_under(root.path());
        synced();
        s.put("cert/u1/index.html", b"<p>ok</p>", "text/html")
            .unwrap();
        let cert = root.path().join("cert");
        let u1 = cert.join("u1");
        assert_eq!(std::fs::read(u1.join("index.html")).unwrap(), b"<p>ok</p>");
        let names: Vec<_> = std::fs::read_dir(&u1)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, ["index.html"], "no temporary file left");
        assert_eq!(
            synced(),
            [
                u1.join("index.html"),
                root.path().to_owned(),
                cert.clone(),
                u1.clone()
            ],
            "the file, then cert/ into the root, u1/ into cert/ and the renamed file in u1/"
        );
        // Overwriting: the file and its rename are synced again.
        s.put("cert/u1/index.html", b"<p>new</p>", "text/html")
            .unwrap();
        assert_eq!(synced(), [u1.join("index.html"), u1.clone()]);
        s.put("cert/u1/Certificate.pdf.sig", b"sig", "x").unwrap();
        assert_eq!(synced(), [u1.join("Certificate.pdf.sig"), u1.clone()]);
        // Removing one file syncs its directory; the last one removes the
        // directory, synced into its parent.
        s.remove("cert/u1/index.html").unwrap();
        assert_eq!(synced(), std::slice::from_ref(&u1));
        s.remove("cert/u1/Certificate.pdf.sig").unwrap();
        assert!(!u1.exists());
        assert_eq!(synced(), std::slice::from_ref(&cert));
        // Removing what is not there is not an error.
        s.remove("cert/u1/index.html").unwrap();
        s.remove("cert/u2/index.html").unwrap();
        // A file where a directory must go: refused for good, as create_dir_all would.
        std::fs::write(root.path().join("downloads"), b"x").unwrap();
        let e = s
            .put("downloads/d1/Certificate.pdf", b"%PDF", "x")
            .unwrap_err();
        assert!(!e.retryable, "{e}");
    }
    /// Jobs committing at the same time (one round or several): each commit
    /// returns only once that job's files and the directories naming them are
    /// fsynced, whoever synced them.
    #[test]
    fn a_commit_returns_only_once_its_files_are_durable() {
        let root = TempDir::new();
        let s = Arc::new(storage(root.path()));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let (s, root) = (s.clone(), root.path().to_owned());
                std::thread::spawn(move || {
                    for j in 0..20 {
                        let mut batch = s.batch();
                        let files = [
                            format!("downloads/d{t}-{j}/Certificate.pdf"),
                            format!("cert/v{t}-{j}/Certificate.pdf.sig"),
                            format!("cert/v{t}-{j}/index.html"),
                        ];
                        for f in &files {
                            batch.put(f, b"bytes", "x").unwrap();
                        }
                        batch.commit().unwrap();
                        let synced = crate::storage::group_commit::SYNCED
                            .lock()
                            .unwrap_or_else(|p| p.into_inner());
                        for f in &files {
                            let path = root.join(f);
                            let dir = path.parent().unwrap();
                            assert!(synced.contains(&path), "{f} not fsynced at its commit");
                            assert!(
                                synced.contains(&dir.to_owned()),
                                "{f}'s directory not fsynced"
                            );
                            assert!(
                                synced.contains(&dir.parent().unwrap().to_owned()),
                                "{f}'s directory's parent not fsynced"
                            );
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        synced_under(root.path());
    }
}

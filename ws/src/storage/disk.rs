//! The local-directory backend: files under a directory that any web server
//! serves at `base_url`. Writes are atomic and durable: a temporary file is
//! written and fsynced, renamed over the target, and the directory holding it is
//! fsynced (so is every directory created on the way), so a file reported
//! written survives a crash; a remove is fsynced the same way, so a deleted
//! certificate's files do not come back after one.
//!
//! No HTTP headers are stored with the files: the web server serving the
//! directory sets `Cache-Control` (docs/DEPLOYMENT.md, "Published files: caching").

use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use testamur_common::config::StorageConfig;

use super::{Storage, StorageError};

pub struct DiskStorage {
    dir: PathBuf,
    base_url: String,
    keep_old_versions: bool,
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

#[cfg(test)]
thread_local! {
    /// Directories fsynced by this thread (tests check the durable path runs).
    static DIR_SYNCS: std::cell::RefCell<Vec<PathBuf>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// fsync a directory, so the entries created, renamed or removed in it are on
/// disk (the file's own fsync does not cover its name).
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()?;
    #[cfg(test)]
    DIR_SYNCS.with(|d| d.borrow_mut().push(dir.to_owned()));
    Ok(())
}

/// `create_dir_all`, durably: each directory created is fsynced into its parent.
/// Fails as `create_dir_all` does (a file in the way: "not a directory").
fn create_dirs_durably(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        // Another job created it meanwhile: its creator syncs it.
        Err(e) if e.kind() == ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let Some(parent) = parent else { return Err(e) };
            create_dirs_durably(parent)?;
            match std::fs::create_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
    }
    match parent {
        Some(parent) => sync_dir(parent),
        None => Ok(()),
    }
}

impl DiskStorage {
    pub fn new(dir: &Path, cfg: &StorageConfig) -> Result<Self, StorageError> {
        create_dirs_durably(dir).map_err(|e| io_error("create directory", dir, e))?;
        Ok(Self {
            dir: dir.to_owned(),
            base_url: cfg.base_url.clone(),
            keep_old_versions: cfg.keep_old_versions,
        })
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
        let path = self.dir.join(rel);
        let parent = path.parent().unwrap_or(&self.dir).to_owned();
        create_dirs_durably(&parent).map_err(|e| io_error("create directory", &parent, e))?;
        let tmp = parent.join(format!(".tmp-{}", testamur_common::ids::random_hex(8)));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io_error("write", &path, e)
        })?;
        // Only now is the new name durable.
        sync_dir(&parent).map_err(|e| io_error("sync directory", &parent, e))
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

    fn synced() -> Vec<PathBuf> {
        DIR_SYNCS.with(|d| std::mem::take(&mut *d.borrow_mut()))
    }

    /// A put leaves exactly the file (no temporary), and fsyncs the directory
    /// holding it after the rename and each directory it created into its parent;
    /// a remove fsyncs the directory it removed from.
    #[test]
    fn writes_and_removes_are_synced_into_their_directories() {
        let root = TempDir::new();
        let s = storage(root.path());
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
            [root.path().to_owned(), cert.clone(), u1.clone()],
            "cert/ into the root, u1/ into cert/, then the renamed file in u1/"
        );
        // Overwriting: the rename is synced again.
        s.put("cert/u1/index.html", b"<p>new</p>", "text/html")
            .unwrap();
        assert_eq!(synced(), std::slice::from_ref(&u1));
        s.put("cert/u1/Certificate.pdf.sig", b"sig", "x").unwrap();
        assert_eq!(synced(), std::slice::from_ref(&u1));
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
}

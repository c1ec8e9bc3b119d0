//! Secrets: never printed, compared in constant time, loaded from the config file
//! itself, an environment variable or a file.
//!
//! In a config file a secret is written as one of
//! `"literal"`, `{ env = "VAR" }` or `{ file = "/path" }`. Secret files must not be
//! readable by group or others (like ssh keys); a trailing newline is trimmed.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use subtle::ConstantTimeEq;

/// A secret value. `Debug` and `Display` print `[redacted]`.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The secret itself. Call only where it is sent or compared.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// Constant-time comparison (the length is not hidden, the content is).
    pub fn matches(&self, candidate: &str) -> bool {
        self.0.as_bytes().ct_eq(candidate.as_bytes()).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// Where a secret comes from, as written in a config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    untagged,
    expecting = "a string, { env = \"VAR\" } or { file = \"/path\" }"
)]
pub enum SecretSource {
    Literal(String),
    Env { env: String },
    File { file: PathBuf },
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "environment variable {0} is not set or not UTF-8; export it or put the secret in a file"
    )]
    MissingEnv(String),
    #[error("cannot read secret file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("secret file {0} is readable by group or others; run `chmod 600 {0}`")]
    Permissions(PathBuf),
    #[error("the secret is empty")]
    Empty,
}

impl SecretSource {
    /// Resolve the secret; relative file paths are taken from `base_dir` (the
    /// directory of the config file).
    pub fn load(&self, base_dir: &Path) -> Result<Secret, SecretError> {
        let value = match self {
            SecretSource::Literal(s) => s.clone(),
            SecretSource::Env { env } => {
                std::env::var(env).map_err(|_| SecretError::MissingEnv(env.clone()))?
            }
            SecretSource::File { file } => {
                let path = base_dir.join(file);
                check_permissions(&path)?;
                let s = std::fs::read_to_string(&path).map_err(|source| SecretError::Read {
                    path: path.clone(),
                    source,
                })?;
                s.trim_end_matches(['\n', '\r']).to_owned()
            }
        };
        if value.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Secret(value))
    }
}

fn check_permissions(path: &Path) -> Result<(), SecretError> {
    let open = group_or_other_access(path).map_err(|source| SecretError::Read {
        path: path.to_owned(),
        source,
    })?;
    if open {
        return Err(SecretError::Permissions(path.to_owned()));
    }
    Ok(())
}

/// Whether group or others have any access to the file at `path` (mode bits
/// 0o077, following symlinks): a file holding a secret must have none. Always
/// false where files have no such bits.
#[cfg(unix)]
pub fn group_or_other_access(path: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::PermissionsExt;
    Ok(std::fs::metadata(path)?.permissions().mode() & 0o077 != 0)
}

#[cfg(not(unix))]
pub fn group_or_other_access(_path: &Path) -> std::io::Result<bool> {
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted_and_compare_works() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
        assert!(s.matches("hunter2"));
        assert!(!s.matches("hunter3"));
        assert!(!s.matches("hunter"));
    }

    #[cfg(unix)]
    #[test]
    fn secret_files_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("tm-secret-{}", crate::ids::random_hex(4)));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("pass");
        std::fs::write(&f, "s3cret\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let src = SecretSource::File {
            file: "pass".into(),
        };
        assert!(matches!(src.load(&dir), Err(SecretError::Permissions(_))));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(src.load(&dir).unwrap().expose(), "s3cret");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

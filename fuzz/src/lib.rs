//! What the fuzz targets share: a scratch directory laid out like a deployment
//! (so config loaders get past their "file exists" checks and reach every other
//! check), the environment variables the example configs name, and the
//! repository's templates loaded once.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// 32 characters: long enough for every secret check.
pub const SECRET: &str = "0123456789abcdef0123456789abcdef";

/// The repository root (the configs and templates of the seed corpus live there).
pub fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// A directory holding the files the example configs name (certs/server.pem,
/// certs/server.key, certs/ca.pem, keys/signing.key, templates/index.toml, a
/// 0600 secret file `secret`), with the environment variables they read set.
/// Config files are parsed as if they were `<dir>/cc.conf` and so on.
pub fn deployment() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("testamur-fuzz-{}", std::process::id()));
        for sub in ["certs", "keys", "templates", "state"] {
            std::fs::create_dir_all(dir.join(sub)).expect("scratch directory");
        }
        for f in [
            "certs/server.pem",
            "certs/server.key",
            "certs/ca.pem",
            "keys/signing.key",
            "templates/index.toml",
        ] {
            std::fs::write(dir.join(f), "x").expect("scratch file");
        }
        let secret = dir.join("secret");
        std::fs::write(&secret, SECRET).expect("secret file");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600))
            .expect("chmod 600");
        for var in [
            "TESTAMUR_CC_PASS",
            "TESTAMUR_LMS_KEY",
            "TESTAMUR_LMS_CALLBACK_SECRET",
            "TESTAMUR_OPERATOR_KEY",
            "TESTAMUR_XQUEUE_PASSWORD",
            "TESTAMUR_LMS_API_KEY",
        ] {
            // Only at start-up, before any other thread reads the environment.
            std::env::set_var(var, SECRET);
        }
        dir
    })
}

/// The repository's templates directory, loaded once (fonts from the system, as
/// scripts/setup.sh installs them).
pub fn templates() -> &'static testamur_ws::render::template::Templates {
    static T: OnceLock<testamur_ws::render::template::Templates> = OnceLock::new();
    T.get_or_init(|| {
        testamur_ws::render::template::Templates::load(&repo().join("templates"))
            .expect("the repository's templates load (fonts installed by scripts/setup.sh?)")
    })
}

/// The repository's catalogue as the CC holds it: the catalogues of the live
/// workservers (here one).
pub fn catalogs() -> &'static testamur_common::catalogs::Catalogs {
    static C: OnceLock<testamur_common::catalogs::Catalogs> = OnceLock::new();
    C.get_or_init(|| {
        testamur_common::catalogs::Catalogs(vec![std::sync::Arc::new(templates().catalog.clone())])
    })
}

/// Input as text, the way the servers see it (serde_json and toml take UTF-8).
pub fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

//! `xqueue.conf`: the bridge's TOML configuration (an annotated example is
//! `xqueue.conf` at the repository root).
//!
//! Like cc.conf and ws.conf: unknown keys are refused, every error names the file
//! and the key, relative paths are taken from the config file's directory, and
//! secrets are `"literal"`, `{ env = "VAR" }` or `{ file = "/path" }`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use testamur_common::config::{parse_toml, read_text, ConfigError, LogFormat};
use testamur_common::secret::{Secret, SecretSource};

use super::mapping::{Mapping, TemplateMapping, TemplateRule};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct XqueueFile {
    xqueue_url: String,
    queue_name: String,
    xqueue_username: String,
    xqueue_password: SecretSource,
    #[serde(default)]
    basic_auth_user: Option<String>,
    #[serde(default)]
    basic_auth_password: Option<SecretSource>,
    #[serde(default)]
    xqueue_ca_certs: Option<PathBuf>,
    #[serde(default)]
    allow_http: bool,
    cc_url: String,
    #[serde(default)]
    cc_ca_certs: Option<PathBuf>,
    api_key: SecretSource,
    state_file: PathBuf,
    #[serde(default = "default_max_in_flight")]
    max_in_flight: usize,
    #[serde(default = "default_poll_interval_ms")]
    poll_interval_ms: u64,
    #[serde(default)]
    log_format: LogFormat,
    #[serde(default)]
    template_map: BTreeMap<String, String>,
    #[serde(default)]
    template_rules: Vec<TemplateRule>,
    #[serde(default)]
    template_default: Option<String>,
    #[serde(default)]
    course_names: BTreeMap<String, String>,
}

fn default_max_in_flight() -> usize {
    100
}
fn default_poll_interval_ms() -> u64 {
    1000
}

/// Validated bridge settings.
#[derive(Debug, Clone)]
pub struct XqueueConfig {
    /// Where the config was read from (for messages).
    pub file: PathBuf,
    /// Without a trailing `/`.
    pub xqueue_url: String,
    pub queue_name: String,
    pub xqueue_username: String,
    pub xqueue_password: Secret,
    /// HTTP basic auth in front of xqueue (the old agent's QUEUE_AUTH_USER/PASS).
    pub basic_auth: Option<(String, Secret)>,
    pub xqueue_ca_certs: Option<PathBuf>,
    /// Accept an `http://` xqueue_url (the password and learners' data then
    /// cross the network unencrypted).
    pub allow_http: bool,
    /// Without a trailing `/`.
    pub cc_url: String,
    pub cc_ca_certs: Option<PathBuf>,
    pub api_key: Secret,
    pub state_file: PathBuf,
    pub max_in_flight: usize,
    pub poll_interval: Duration,
    pub log_format: LogFormat,
    /// `template_pdf` values (as the LMS sends them) → testamur templates
    /// (`[template_map]`, `[[template_rules]]`, `template_default`), and the
    /// course names of `[course_names]`.
    pub mapping: Mapping,
}

fn key_err(file: &Path, key: &str, message: impl std::fmt::Display) -> ConfigError {
    ConfigError {
        file: file.to_owned(),
        message: format!("key `{key}`: {message}"),
    }
}

impl XqueueConfig {
    pub fn load(file: &Path) -> Result<Self, ConfigError> {
        Self::from_toml(file, &read_text(file)?)
    }

    /// The settings in `text`, as if read from `file` (relative paths are taken
    /// from its directory). [`XqueueConfig::load`] is this on the file's contents.
    pub fn from_toml(file: &Path, text: &str) -> Result<Self, ConfigError> {
        let raw: XqueueFile = parse_toml(file, text)?;
        let base = file.parent().map(Path::to_owned).unwrap_or_default();
        let secret =
            |key: &str, src: &SecretSource| src.load(&base).map_err(|e| key_err(file, key, e));
        let existing = |key: &str, p: &Path| {
            let full = base.join(p);
            if full.is_file() {
                Ok(full)
            } else {
                Err(key_err(
                    file,
                    key,
                    format!("file {} does not exist", full.display()),
                ))
            }
        };

        let xqueue_url = raw.xqueue_url.trim_end_matches('/').to_owned();
        if !(xqueue_url.starts_with("http://") || xqueue_url.starts_with("https://")) {
            return Err(key_err(
                file,
                "xqueue_url",
                "must be an https:// URL (without /xqueue/), e.g. https://xqueue.example.org",
            ));
        }
        if xqueue_url.starts_with("http://") && !raw.allow_http {
            return Err(key_err(
                file,
                "xqueue_url",
                format!(
                    "{xqueue_url} is http://: the bridge would send xqueue_password (and \
                     basic_auth_password) and learners' names unencrypted; use xqueue's \
                     https:// URL, or add `allow_http = true` to {} if xqueue is on this \
                     host or a network you trust",
                    file.display()
                ),
            ));
        }
        if raw.queue_name.trim().is_empty() {
            return Err(key_err(file, "queue_name", "must not be empty"));
        }
        if raw.xqueue_username.trim().is_empty() {
            return Err(key_err(file, "xqueue_username", "must not be empty"));
        }
        let cc_url = raw.cc_url.trim_end_matches('/').to_owned();
        if !cc_url.starts_with("https://") {
            return Err(key_err(
                file,
                "cc_url",
                "must be an https:// URL (the CC only speaks TLS)",
            ));
        }
        let basic_auth = match (&raw.basic_auth_user, &raw.basic_auth_password) {
            (None, None) => None,
            (Some(u), Some(p)) => Some((u.clone(), secret("basic_auth_password", p)?)),
            (Some(_), None) => {
                return Err(key_err(
                    file,
                    "basic_auth_password",
                    "is required when basic_auth_user is set",
                ))
            }
            (None, Some(_)) => {
                return Err(key_err(
                    file,
                    "basic_auth_user",
                    "is required when basic_auth_password is set",
                ))
            }
        };
        if raw.max_in_flight == 0 || raw.max_in_flight > 100_000 {
            return Err(key_err(
                file,
                "max_in_flight",
                "must be between 1 and 100000",
            ));
        }
        if raw.poll_interval_ms < 10 || raw.poll_interval_ms > 600_000 {
            return Err(key_err(
                file,
                "poll_interval_ms",
                "must be between 10 and 600000",
            ));
        }
        for (pdf, template) in &raw.template_map {
            if template.trim().is_empty() {
                return Err(key_err(
                    file,
                    &format!("template_map.\"{pdf}\""),
                    "must name a template",
                ));
            }
        }
        for (i, rule) in raw.template_rules.iter().enumerate() {
            if let Some(problem) = rule.problem() {
                return Err(key_err(file, &format!("template_rules[{i}]"), problem));
            }
        }
        for (course, name) in &raw.course_names {
            if name.trim().is_empty() {
                return Err(key_err(
                    file,
                    &format!("course_names.\"{course}\""),
                    "must name the course",
                ));
            }
        }
        let state_file = base.join(&raw.state_file);
        match state_file.parent() {
            Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => {
                return Err(key_err(
                    file,
                    "state_file",
                    format!("directory {} does not exist", dir.display()),
                ))
            }
            _ => {}
        }
        if state_file.is_dir() {
            return Err(key_err(
                file,
                "state_file",
                format!("{} is a directory; name a file", state_file.display()),
            ));
        }
        let api_key = secret("api_key", &raw.api_key)?;
        Ok(Self {
            file: file.to_owned(),
            xqueue_url,
            queue_name: raw.queue_name,
            xqueue_username: raw.xqueue_username,
            xqueue_password: secret("xqueue_password", &raw.xqueue_password)?,
            basic_auth,
            xqueue_ca_certs: raw
                .xqueue_ca_certs
                .as_deref()
                .map(|p| existing("xqueue_ca_certs", p))
                .transpose()?,
            allow_http: raw.allow_http,
            cc_url,
            cc_ca_certs: raw
                .cc_ca_certs
                .as_deref()
                .map(|p| existing("cc_ca_certs", p))
                .transpose()?,
            api_key,
            state_file,
            max_in_flight: raw.max_in_flight,
            poll_interval: Duration::from_millis(raw.poll_interval_ms),
            log_format: raw.log_format,
            mapping: Mapping {
                templates: TemplateMapping {
                    map: raw.template_map,
                    rules: raw.template_rules,
                    default: raw.template_default.map(|d| d.trim().to_owned()),
                },
                course_names: raw.course_names,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let f = dir.join("xqueue.conf");
        std::fs::write(&f, text).unwrap();
        f
    }

    const GOOD: &str = r#"
xqueue_url = "https://xqueue.example.org/"
queue_name = "certificates"
xqueue_username = "lms"
xqueue_password = "pw"
cc_url = "https://cc.example.org:8443"
api_key = "0123456789abcdef"
state_file = "state.jsonl"

[template_map]
"old-MITx.pdf" = "letter"
"#;

    #[test]
    fn loads_with_defaults_and_names_bad_keys() {
        let dir = tempfile::tempdir().unwrap();
        let c = XqueueConfig::load(&write(dir.path(), GOOD)).unwrap();
        assert_eq!(c.xqueue_url, "https://xqueue.example.org");
        assert_eq!(c.max_in_flight, 100);
        assert_eq!(c.poll_interval, Duration::from_secs(1));
        assert_eq!(c.state_file, dir.path().join("state.jsonl"));
        assert_eq!(c.mapping.templates.map["old-MITx.pdf"], "letter");
        assert!(c.mapping.templates.rules.is_empty());
        assert_eq!(c.mapping.templates.default, None);
        assert!(!format!("{c:?}").contains("pw\""));

        let e = XqueueConfig::load(&write(dir.path(), &format!("{GOOD}\nbogus = 1\n")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus"), "{e}");
        let e = XqueueConfig::load(&write(
            dir.path(),
            &GOOD.replace("https://cc.example.org:8443", "http://cc"),
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("key `cc_url`"), "{e}");
        let e = XqueueConfig::load(&write(
            dir.path(),
            &GOOD.replace(
                "state_file = \"state.jsonl\"",
                "state_file = \"nope/s.jsonl\"\nbasic_auth_user = \"u\"",
            ),
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("key `basic_auth_password`"), "{e}");
    }

    #[test]
    fn template_rules_default_and_course_names() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "template_default = \"classic\"\n{GOOD}\n[[template_rules]]\norg = \"MITx\"\nmode = \"verified\"\ntemplate = \"mit-{{mode}}\"\n\n[course_names]\n\"course-v1:A+B+C\" = \"Bridges\"\n"
        );
        let c = XqueueConfig::load(&write(dir.path(), &text)).unwrap();
        let t = &c.mapping.templates;
        assert_eq!(t.default.as_deref(), Some("classic"));
        assert_eq!(t.rules[0].template, "mit-{mode}");
        assert_eq!(c.mapping.course_names["course-v1:A+B+C"], "Bridges");
        assert_eq!(
            t.resolve(
                "certificate-template-MITx-6.002x-verified.pdf",
                "course-v1:MITx+6.002x+R"
            )
            .template
            .as_deref(),
            Some("mit-verified")
        );
        let bad = text.replace("mode = \"verified\"", "mode = \"honour\"");
        let e = XqueueConfig::load(&write(dir.path(), &bad))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("template_rules[0]") && e.contains("honour"),
            "{e}"
        );
        let bad = text.replace("org = \"MITx\"", "orgs = \"MITx\"");
        let e = XqueueConfig::load(&write(dir.path(), &bad))
            .unwrap_err()
            .to_string();
        assert!(e.contains("orgs"), "{e}");
    }

    /// An http:// xqueue would get the password in clear text: refused unless
    /// the file says `allow_http = true`.
    #[test]
    fn http_xqueue_needs_allow_http() {
        let dir = tempfile::tempdir().unwrap();
        let http = GOOD.replace("https://xqueue.example.org/", "http://xqueue.example.org/");
        let e = XqueueConfig::load(&write(dir.path(), &http))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("key `xqueue_url`")
                && e.contains("unencrypted")
                && e.contains("allow_http = true"),
            "{e}"
        );
        let c =
            XqueueConfig::load(&write(dir.path(), &format!("allow_http = true\n{http}"))).unwrap();
        assert!(c.allow_http);
        assert_eq!(c.xqueue_url, "http://xqueue.example.org");
        let c = XqueueConfig::load(&write(dir.path(), GOOD)).unwrap();
        assert!(!c.allow_http, "off by default");
    }

    /// The annotated example at the repository root loads as shipped (with its
    /// secrets given literally and its paths pointed into a temp dir).
    #[test]
    fn the_example_config_loads() {
        let dir = tempfile::tempdir().unwrap();
        let example = include_str!("../../xqueue.conf");
        assert!(example.contains("/var/lib/testamur/xqueue-bridge.jsonl"));
        let text = example
            .replace(
                "/var/lib/testamur/xqueue-bridge.jsonl",
                &dir.path().join("bridge.jsonl").display().to_string(),
            )
            .replace(
                "{ env = \"TESTAMUR_XQUEUE_PASSWORD\" }",
                "\"xqueue-password\"",
            )
            .replace(
                "{ env = \"TESTAMUR_LMS_API_KEY\" }",
                "\"0123456789abcdef0123\"",
            );
        std::fs::create_dir_all(dir.path().join("certs")).unwrap();
        std::fs::write(dir.path().join("certs/ca.pem"), "not parsed at load").unwrap();
        let c = XqueueConfig::load(&write(dir.path(), &text)).unwrap();
        assert_eq!(c.queue_name, "certificates");
    }
}

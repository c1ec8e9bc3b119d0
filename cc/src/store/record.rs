//! Reading certificate records: the compact JSON the scripts keep per certificate
//! (`c:{cert_id}`, layout in record.lua) turned into the API's views, a certificate
//! with its history and the public verification record of one version. Records in
//! the earlier format are migrated on first read (migrate.lua), and `migrate_all`
//! moves every one (`testamur migrate`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use redis::AsyncCommands;
use serde::{Deserialize, Deserializer};
use serde_json::Value as Json;
use testamur_common::ids::{CertId, CourseId, PublicUuid, Username};
use testamur_common::layout;
use testamur_common::state::CertState;
use testamur_common::status_list::{CredentialStatus, StatusEntry};
use testamur_common::wire::{CertificateView, HistoryEntry, Verification, VerificationStatus};

use super::{corrupt, parse_state, Result, Store, StoreError, P};

/// A certificate record as record.lua writes it.
#[derive(Debug, Deserialize)]
pub(super) struct Record {
    /// Not stored (the key names it): put back by the scripts, or by the reader.
    #[serde(default)]
    id: String,
    #[serde(default, deserialize_with = "map_or_empty")]
    f: BTreeMap<String, String>,
    s: String,
    #[serde(default)]
    u: Option<String>,
    /// The pending job, whose `attempt` counts while it is pending.
    #[serde(default)]
    j: Option<String>,
    #[serde(default)]
    a: Option<u32>,
    #[serde(default)]
    e: Option<ErrorPart>,
    #[serde(default)]
    c: Option<usize>,
    #[serde(default)]
    g: Option<u8>,
    #[serde(default)]
    sha: Option<String>,
    #[serde(default)]
    t: Option<String>,
    #[serde(default)]
    tv: Option<String>,
    #[serde(default, deserialize_with = "seq_or_empty")]
    h: Vec<Vec<Json>>,
    #[serde(default, deserialize_with = "seq_or_empty")]
    vs: Vec<Version>,
}

#[derive(Debug, Deserialize)]
struct ErrorPart {
    #[serde(default)]
    r: Option<String>,
    #[serde(default)]
    c: Option<String>,
}

/// One published version.
#[derive(Debug, Deserialize)]
struct Version {
    v: String,
    #[serde(default)]
    d: String,
    /// Interned URL base.
    #[serde(default)]
    b: Option<i64>,
    /// The URLs themselves, when they are not base + layout.
    #[serde(default, rename = "U")]
    urls: Option<Urls>,
    #[serde(default)]
    nv: Option<u8>,
    /// 1: an Open Badges credential is published beside the page.
    #[serde(default)]
    cr: Option<u8>,
    /// The PDF signing certificate's SHA-256 (interned like `k`).
    #[serde(default)]
    pk: Option<Json>,
    /// Its credential's global status list index.
    #[serde(default)]
    si: Option<u64>,
    /// Interned signing key id, or the fingerprint itself.
    #[serde(default)]
    k: Option<Json>,
    #[serde(default)]
    p: Option<String>,
    #[serde(default)]
    st: Option<String>,
    #[serde(default)]
    sa: Option<String>,
    #[serde(default)]
    ra: Option<String>,
    #[serde(default)]
    u: Option<String>,
    #[serde(default, deserialize_with = "map_or_empty")]
    x: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct Urls {
    #[serde(default)]
    d: String,
    #[serde(default)]
    v: String,
    #[serde(default)]
    s: String,
    #[serde(default)]
    c: String,
}

/// A version's public URLs.
struct VersionUrls {
    download: String,
    verify: Option<String>,
    signature: String,
    credential: Option<String>,
}

/// Lua's JSON encoder writes an empty table as `{}`: an empty list.
fn seq_or_empty<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> std::result::Result<Vec<T>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either<T> {
        Seq(Vec<T>),
        Map(serde::de::IgnoredAny),
    }
    Ok(match Either::<T>::deserialize(d)? {
        Either::Seq(v) => v,
        Either::Map(_) => Vec::new(),
    })
}

/// Lua's JSON encoder writes an empty table as `[]` too, in places.
fn map_or_empty<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Map(BTreeMap<String, String>),
        Seq(serde::de::IgnoredAny),
    }
    Ok(match Either::deserialize(d)? {
        Either::Map(m) => m,
        Either::Seq(_) => BTreeMap::new(),
    })
}

/// The learner fields of a stored record (what a leased job draws).
pub(super) fn learner_fields(json: &str) -> Result<BTreeMap<String, String>> {
    #[derive(Deserialize)]
    struct Fields {
        #[serde(default, deserialize_with = "map_or_empty")]
        f: BTreeMap<String, String>,
    }
    serde_json::from_str::<Fields>(json)
        .map(|r| r.f)
        .map_err(|e| StoreError::Corrupt(format!("certificate record: {e}")))
}

/// The fields a verification shows as printed (record.lua's PRINTED).
const PRINTED: [&str; 5] = ["name", "course_id", "course_name", "org", "issued_date"];

/// Interned values (URL bases, signing key fingerprints) by kind and id: an id
/// names one value forever, so they are cached for the life of the process.
#[derive(Default)]
pub(super) struct Interned(Mutex<HashMap<(&'static str, i64), String>>);

fn nonempty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

impl Record {
    /// `id`: the certificate's, when the JSON is as stored (without it).
    pub(super) fn parse(json: &str, id: Option<&str>) -> Result<Self> {
        let mut r: Self = serde_json::from_str(json)
            .map_err(|e| StoreError::Corrupt(format!("certificate record: {e}")))?;
        if let Some(id) = id {
            r.id = id.to_owned();
        }
        // `u` is left out when it is the newest history entry's time.
        if r.u.is_none() {
            r.u =
                r.h.last()
                    .and_then(|e| e.get(1))
                    .and_then(Json::as_str)
                    .map(str::to_owned);
        }
        Ok(r)
    }

    pub(super) fn state(&self) -> &str {
        &self.s
    }

    /// The verify uuid of every published version, oldest first.
    pub(super) fn version_uuids(&self) -> impl Iterator<Item = &str> {
        self.vs.iter().map(|v| v.v.as_str())
    }

    /// The current version whose files should be published (none once a delete
    /// removed them): download uuid, verify uuid, whether it has a verification
    /// page, and the `{template}@{version}` that drew it.
    pub(super) fn published_files(&self) -> Option<(&str, &str, bool, Option<String>)> {
        if self.g.is_some() {
            return None;
        }
        let v = self.current()?;
        let tq = match (&self.t, &self.tv) {
            (Some(t), Some(tv)) if !t.is_empty() && !tv.is_empty() => Some(format!("{t}@{tv}")),
            _ => None,
        };
        Some((
            &v.d,
            &v.v,
            v.nv.is_none() && v.urls.as_ref().is_none_or(|u| !u.v.is_empty()),
            tq,
        ))
    }

    fn field(&self, k: &str) -> Option<String> {
        self.f.get(k).and_then(|v| nonempty(v))
    }

    fn current(&self) -> Option<&Version> {
        self.c.and_then(|c| self.vs.get(c.checked_sub(1)?))
    }

    /// What version `k` (0-based) printed: the learner fields overlaid with the
    /// differences of every version from the newest down to `k`.
    fn printed(&self, k: usize) -> BTreeMap<&'static str, String> {
        let mut p: BTreeMap<&'static str, String> = PRINTED
            .iter()
            .map(|n| (*n, self.f.get(*n).cloned().unwrap_or_default()))
            .collect();
        for v in self.vs[k..].iter().rev() {
            for (name, value) in &v.x {
                if let Some(slot) = PRINTED.iter().find(|n| **n == name.as_str()) {
                    p.insert(slot, value.clone());
                }
            }
        }
        p
    }
}

impl Store {
    /// The value of an interned id of `kind` ('base' | 'key').
    async fn interned(&self, kind: &'static str, id: i64) -> Result<String> {
        if let Some(v) = self
            .interned
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(kind, id))
        {
            return Ok(v.clone());
        }
        let v: Option<String> = self
            .conn
            .clone()
            .hget(format!("{P}intern:{kind}"), id)
            .await?;
        let v = v.ok_or_else(|| StoreError::Corrupt(format!("no interned {kind} {id}")))?;
        self.interned
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((kind, id), v.clone());
        Ok(v)
    }

    /// A version's URLs (record.lua `version_urls`).
    async fn urls(&self, v: &Version) -> Result<VersionUrls> {
        if let Some(u) = &v.urls {
            return Ok(VersionUrls {
                download: u.d.clone(),
                verify: nonempty(&u.v),
                signature: u.s.clone(),
                credential: nonempty(&u.c),
            });
        }
        let base = match v.b {
            Some(id) => self.interned("base", id).await?,
            None => String::new(),
        };
        let d = PublicUuid::parse(&v.d).map_err(corrupt)?;
        if v.nv.is_some() {
            return Ok(VersionUrls {
                download: format!("{base}{}", layout::pdf_path(&d)),
                verify: None,
                signature: format!("{base}{}", layout::pdf_sig_path(&d)),
                credential: None,
            });
        }
        let vu = PublicUuid::parse(&v.v).map_err(corrupt)?;
        Ok(VersionUrls {
            download: format!("{base}{}", layout::pdf_path(&d)),
            verify: Some(format!("{base}{}", layout::verify_dir(&vu))),
            signature: format!("{base}{}", layout::sig_path(&vu)),
            credential: v
                .cr
                .map(|_| format!("{base}{}", layout::credential_path(&vu))),
        })
    }

    async fn key_fingerprint(&self, v: &Version) -> Result<Option<String>> {
        self.key_ref(&v.k).await
    }

    /// A signing key id of a version (`k`, `pk`): interned, or the value itself.
    async fn key_ref(&self, k: &Option<Json>) -> Result<Option<String>> {
        Ok(match k {
            Some(Json::Number(n)) => match n.as_i64() {
                Some(id) => Some(self.interned("key", id).await?),
                None => None,
            },
            Some(Json::String(s)) => nonempty(s),
            _ => None,
        })
    }

    /// The record of `id` (a cert id, or with mode "verify" a verify uuid),
    /// migrating it first if it is in the earlier format; `None` if there is none.
    async fn record(&self, mode: &str, id: &str) -> Result<Option<Record>> {
        let mut c = self.conn.clone();
        if mode == "cert" {
            if let Some(json) = c.get::<_, Option<String>>(format!("{P}c:{id}")).await? {
                return Record::parse(&json, Some(id)).map(Some);
            }
        }
        let reply: Vec<String> = self
            .scripts
            .migrate
            .prepare_invoke()
            .arg(P)
            .arg(mode)
            .arg(id)
            .invoke_async(&mut c)
            .await?;
        match reply.into_iter().next().filter(|j| !j.is_empty()) {
            Some(json) => Record::parse(&json, None).map(Some),
            None => Ok(None),
        }
    }

    /// A certificate with its full history; `None` if it was never added.
    pub async fn certificate(&self, id: &CertId) -> Result<Option<CertificateView>> {
        match self.record("cert", id.as_str()).await? {
            Some(r) => Ok(Some(self.cert_view(&r, true).await?)),
            None => Ok(None),
        }
    }

    /// A certificate record (a list script's entry) as the API shows it.
    pub(super) async fn listed_view(&self, json: &str) -> Result<CertificateView> {
        self.cert_view(&Record::parse(json, None)?, false).await
    }

    async fn cert_view(&self, r: &Record, with_history: bool) -> Result<CertificateView> {
        let req = |k: &str| {
            r.field(k)
                .ok_or_else(|| StoreError::Corrupt(format!("certificate {} lacks {k}", r.id)))
        };
        let current = r.current();
        let (download_url, verify_url, signature_url, credential_url) = match current {
            Some(v) if r.g.is_none() => {
                let u = self.urls(v).await?;
                (Some(u.download), u.verify, Some(u.signature), u.credential)
            }
            _ => (None, None, None, None),
        };
        let uuid = |s: &str| {
            (!s.is_empty())
                .then(|| PublicUuid::parse(s).map_err(corrupt))
                .transpose()
        };
        // While a job is pending its attempts are the job's (the lease counts them
        // there; the record takes them when the job ends).
        let attempts = match r.j.as_deref().filter(|j| !j.is_empty()) {
            Some(j) => {
                let a: Option<u32> = self
                    .conn
                    .clone()
                    .hget(format!("{P}job:{j}"), "attempt")
                    .await?;
                a.or(r.a).unwrap_or(0)
            }
            None => r.a.unwrap_or(0),
        };
        let history = if with_history {
            let mut out = Vec::with_capacity(r.h.len());
            for e in &r.h {
                out.push(self.history_entry(r, e)?);
            }
            Some(out)
        } else {
            None
        };
        Ok(CertificateView {
            cert_id: CertId::parse(&r.id).map_err(corrupt)?,
            course_id: CourseId::parse(req("course_id")?).map_err(corrupt)?,
            username: Username::parse(req("username")?).map_err(corrupt)?,
            state: parse_state(&r.s)?,
            download_url,
            verify_url,
            signature_url,
            credential_url,
            download_uuid: current.map(|v| uuid(&v.d)).transpose()?.flatten(),
            verify_uuid: current.map(|v| uuid(&v.v)).transpose()?.flatten(),
            sha256: r.sha.clone().filter(|s| !s.is_empty()),
            error_reason: r
                .e
                .as_ref()
                .and_then(|e| e.r.clone())
                .filter(|s| !s.is_empty()),
            error_code: r
                .e
                .as_ref()
                .and_then(|e| e.c.clone())
                .filter(|s| !s.is_empty()),
            attempts,
            updated_at: r.u.clone().unwrap_or_default(),
            template: r.t.clone().filter(|s| !s.is_empty()),
            template_version: r.tv.clone().filter(|s| !s.is_empty()),
            history,
        })
    }

    /// One history entry `[state, at, detail]`; a number detail names the version
    /// that was published.
    fn history_entry(&self, r: &Record, e: &[Json]) -> Result<HistoryEntry> {
        let bad = || StoreError::Corrupt(format!("history of {}: entry {e:?}", r.id));
        let state: CertState = parse_state(e.first().and_then(Json::as_str).ok_or_else(bad)?)?;
        let at = e.get(1).and_then(Json::as_str).ok_or_else(bad)?.to_owned();
        let detail = match e.get(2) {
            None | Some(Json::Null) => None,
            Some(Json::String(s)) => nonempty(s),
            Some(Json::Number(n)) => {
                let k = n.as_u64().ok_or_else(bad)? as usize;
                let v = k.checked_sub(1).and_then(|i| r.vs.get(i)).ok_or_else(bad)?;
                Some(format!(
                    "published download_uuid={} verify_uuid={}",
                    v.d, v.v
                ))
            }
            Some(_) => return Err(bad()),
        };
        Ok(HistoryEntry { state, at, detail })
    }

    /// The public verification record of the version published under `verify`;
    /// `None` if nothing was ever published under it.
    pub async fn verification(&self, verify: &PublicUuid) -> Result<Option<Verification>> {
        let mut c = self.conn.clone();
        let cid: Option<String> = c.get(format!("{P}v:{verify}")).await?;
        let r = match cid {
            Some(cid) => self.record("cert", &cid).await?,
            None => self.record("verify", verify.as_str()).await?,
        };
        let Some(r) = r else { return Ok(None) };
        let Some(k) = r.vs.iter().position(|v| v.v == verify.as_str()) else {
            return Ok(None);
        };
        let v = &r.vs[k];
        let status = match v.st.as_deref() {
            None => VerificationStatus::Valid,
            Some("s") => VerificationStatus::Superseded,
            Some("r") => VerificationStatus::Revoked,
            Some(other) => {
                return Err(StoreError::Corrupt(format!(
                    "version {verify} of {} has status {other:?}",
                    r.id
                )))
            }
        };
        // The version that replaced a superseded one is the next; its page counts
        // while it is valid.
        let current_verify_url = match (status, r.vs.get(k + 1)) {
            (VerificationStatus::Superseded, Some(next)) if next.st.is_none() => {
                self.urls(next).await?.verify
            }
            _ => None,
        };
        let printed = r.printed(k);
        let get = |n: &str| printed.get(n).cloned().unwrap_or_default();
        let urls = self.urls(v).await?;
        let credential_status = match (&urls.credential, v.si.and_then(StatusEntry::from_global)) {
            (Some(cred), Some(e)) => Some(CredentialStatus {
                // Beside the credential: the same base URL, the list's path.
                status_list_url: format!(
                    "{}{}",
                    cred.strip_suffix(&layout::credential_path(verify))
                        .unwrap_or(cred),
                    layout::status_list_path(e.list)
                ),
                status_list_index: e.index,
                revoked: status != VerificationStatus::Valid,
                list_published_at: c.hget(format!("{P}status:{}:pub", e.list), "at").await?,
            }),
            _ => None,
        };
        // Left out of the version while the history entry naming it holds it.
        let published_at = v.p.clone().or_else(|| {
            r.h.iter()
                .find(|e| e.get(2).and_then(Json::as_u64) == Some(k as u64 + 1))
                .and_then(|e| e.get(1)?.as_str().map(str::to_owned))
        });
        let published_at = published_at.unwrap_or_default();
        let updated_at =
            v.u.clone()
                .or_else(|| v.ra.clone())
                .or_else(|| v.sa.clone())
                .unwrap_or_else(|| published_at.clone());
        Ok(Some(Verification {
            status,
            name: nonempty(&get("name")),
            course_id: get("course_id"),
            course_name: nonempty(&get("course_name")),
            org: nonempty(&get("org")),
            issued_date: get("issued_date"),
            download_url: nonempty(&urls.download),
            signature_url: nonempty(&urls.signature),
            credential_url: urls.credential,
            credential_status,
            key_fingerprint: self.key_fingerprint(v).await?,
            pdf_signer_sha256: self.key_ref(&v.pk).await?,
            updated_at,
            verify_uuid: verify.clone(),
            published_at,
            superseded_at: v.sa.clone().filter(|s| !s.is_empty()),
            revoked_at: v.ra.clone().filter(|s| !s.is_empty()),
            current_verify_url,
        }))
    }

    /// One `SCAN` step over the keys of certificates in the earlier format:
    /// the next cursor (0 at the end) and the cert ids found.
    async fn scan_old(&self, cursor: u64, count: usize) -> Result<(u64, Vec<String>)> {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{P}cert:*"))
            .arg("COUNT")
            .arg(count)
            .query_async(&mut self.conn.clone())
            .await?;
        let ids = keys
            .iter()
            .filter_map(|k| k.strip_prefix(P)?.strip_prefix("cert:"))
            .filter(|id| !id.contains(':'))
            .map(str::to_owned)
            .collect();
        Ok((next, ids))
    }

    /// Move every certificate still in the earlier format into records, `chunk`
    /// per script call; resumable (what moved is not seen again) and safe while
    /// CCs run. Also drops the listing index no longer kept (`bystate:downloadable`).
    /// Returns how many moved.
    pub async fn migrate_all(&self, chunk: usize, mut progress: impl FnMut(u64)) -> Result<u64> {
        let chunk = chunk.max(1);
        let mut moved = 0u64;
        let mut cursor: u64 = 0;
        loop {
            let (next, ids) = self.scan_old(cursor, chunk * 4).await?;
            for part in ids.chunks(chunk) {
                let n: u64 = self
                    .scripts
                    .migrate
                    .prepare_invoke()
                    .arg(P)
                    .arg("bulk")
                    .arg(part)
                    .invoke_async(&mut self.conn.clone())
                    .await?;
                moved += n;
                progress(moved);
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        let _: i64 = redis::cmd("UNLINK")
            .arg(format!("{P}bystate:downloadable"))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(moved)
    }

    /// Whether any certificate is still in the earlier format.
    pub async fn unmigrated(&self) -> Result<bool> {
        let mut cursor: u64 = 0;
        loop {
            let (next, ids) = self.scan_old(cursor, 1000).await?;
            if !ids.is_empty() {
                return Ok(true);
            }
            cursor = next;
            if cursor == 0 {
                return Ok(false);
            }
        }
    }
}

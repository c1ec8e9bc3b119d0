//! What `testamur reconcile` needs from Redis: every certificate record with its
//! published version and whether each version's `v:{uuid}` index still names it,
//! and the two repairs (the index written again; a version whose files are gone
//! republished under its own uuids, a regen job that removes nothing).

use redis::AsyncCommands;
use testamur_common::ids::{CertId, JobId, PublicUuid};
use testamur_common::state::{Action, CertState};

use super::record::Record;
use super::{corrupt, parse_state, NewJob, Result, Store, SubmitOutcome, IDEMPOTENCY_TTL, P};

/// The published version a certificate's files should be there for.
#[derive(Debug, Clone)]
pub struct Published {
    pub download_uuid: PublicUuid,
    pub verify_uuid: PublicUuid,
    /// Published with a verification page (`cert/{verify_uuid}/`).
    pub verification_page: bool,
    /// `{template}@{version}` that drew it, to pin the republish to.
    pub template_queue: Option<String>,
}

/// One certificate as reconcile sees it.
#[derive(Debug)]
pub struct RecordCheck {
    pub cert_id: CertId,
    pub state: CertState,
    /// Its current version, unless its files were removed (deleted).
    pub published: Option<Published>,
    /// Verify uuids of its versions whose `v:{uuid}` index is missing or names
    /// another certificate.
    pub missing_index: Vec<String>,
}

impl Store {
    /// One `SCAN` step over the certificate records: the next cursor (0 at the
    /// end) and each record found, checked against the verify index.
    pub async fn scan_records(&self, cursor: u64, count: usize) -> Result<(u64, Vec<RecordCheck>)> {
        let mut c = self.conn.clone();
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{P}c:*"))
            .arg("COUNT")
            .arg(count)
            .query_async(&mut c)
            .await?;
        if keys.is_empty() {
            return Ok((next, Vec::new()));
        }
        let raws: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(&mut c).await?;
        let mut out = Vec::new();
        for (key, raw) in keys.iter().zip(raws) {
            let (Some(id), Some(raw)) = (key.strip_prefix(&format!("{P}c:")), raw) else {
                continue;
            };
            let r = Record::parse(&raw, Some(id))?;
            let uuids: Vec<&str> = r.version_uuids().filter(|v| !v.is_empty()).collect();
            let mut pipe = redis::pipe();
            for v in &uuids {
                pipe.get(format!("{P}v:{v}"));
            }
            let owners: Vec<Option<String>> = pipe.query_async(&mut c).await?;
            let missing_index = uuids
                .iter()
                .zip(owners)
                .filter(|(_, owner)| owner.as_deref() != Some(id))
                .map(|(v, _)| v.to_string())
                .collect();
            let published = match r.published_files() {
                Some((d, v, page, tq)) => Some(Published {
                    download_uuid: PublicUuid::parse(d).map_err(corrupt)?,
                    verify_uuid: PublicUuid::parse(v).map_err(corrupt)?,
                    verification_page: page,
                    template_queue: tq,
                }),
                None => None,
            };
            out.push(RecordCheck {
                cert_id: CertId::parse(id).map_err(corrupt)?,
                state: parse_state(r.state())?,
                published,
                missing_index,
            });
        }
        Ok((next, out))
    }

    /// Write the verify index of `verify` (naming `cert`) again.
    pub async fn restore_verify_index(&self, verify: &str, cert: &CertId) -> Result<()> {
        let _: () = self
            .conn
            .clone()
            .set(format!("{P}v:{verify}"), cert.as_str())
            .await?;
        Ok(())
    }

    /// Queue a job that publishes `p` again under its own uuids (a downloadable
    /// certificate whose files are gone); the certificate is regenerating meanwhile.
    pub async fn republish(&self, cert: &CertId, p: &Published) -> Result<SubmitOutcome> {
        let job = NewJob {
            cert_id: cert.clone(),
            job_id: JobId::generate(),
            action: Action::Regen,
            new_uuids: Some((p.download_uuid.clone(), p.verify_uuid.clone())),
            fields: Vec::new(),
            queue: p.template_queue.clone(),
            callback: None,
            idempotency: None,
        };
        let mut out = self.submit_many(vec![job], IDEMPOTENCY_TTL).await?;
        out.pop()
            .ok_or_else(|| super::StoreError::Corrupt("submit script answered nothing".into()))
    }
}

//! Paging through certificates (`GET /v1/certificates`) over the listing indexes
//! the scripts keep: every certificate, per course, per state.

use redis::Value;
use testamur_common::ids::{CertId, CourseId};
use testamur_common::state::CertState;
use testamur_common::wire::CertificateView;

use super::{value_string, Result, Store, StoreError, P};

/// Which index to walk.
pub enum ListIndex<'a> {
    All,
    Course(&'a CourseId),
    State(CertState),
}

/// Certificates examined at most per page when a filter skips many.
const SCAN_BUDGET: usize = 5_000;

impl Store {
    /// One page of at most `limit` certificates after `cursor` (a cert id), in
    /// cert id order, optionally only those in `state`. The next cursor is `None`
    /// when the walk is complete; a page may be short (even empty) and still have
    /// a next cursor when the filter skipped many certificates.
    pub async fn list_certificates(
        &self,
        index: ListIndex<'_>,
        state: Option<CertState>,
        cursor: Option<&CertId>,
        limit: usize,
    ) -> Result<(Vec<CertificateView>, Option<CertId>)> {
        let (key, state) = match index {
            ListIndex::All => ("certs".to_owned(), state),
            ListIndex::Course(c) => (format!("course:{c}"), state),
            // Nearly every certificate ends downloadable: that state has no index
            // of its own (lib.lua's move_state), every certificate is walked.
            ListIndex::State(CertState::Downloadable) => {
                ("certs".to_owned(), Some(CertState::Downloadable))
            }
            // The index holds exactly that state: no filter needed.
            ListIndex::State(s) => (format!("bystate:{}", s.as_str()), None),
        };
        let reply: Value = self
            .scripts
            .list
            .prepare_invoke()
            .arg(P)
            .arg(key)
            .arg(cursor.map(|c| c.as_str()).unwrap_or(""))
            .arg(limit)
            .arg(state.map(|s| s.as_str()).unwrap_or(""))
            .arg(SCAN_BUDGET.max(limit))
            .invoke_async(&mut self.conn.clone())
            .await?;
        let Value::Array(items) = reply else {
            return Err(StoreError::Corrupt(
                "list script did not answer a list".into(),
            ));
        };
        let mut items = items.into_iter();
        let next = items
            .next()
            .map(value_string)
            .transpose()?
            .unwrap_or_default();
        let next = if next.is_empty() {
            None
        } else {
            Some(CertId::parse(&next).map_err(|e| StoreError::Corrupt(e.to_string()))?)
        };
        let mut out = Vec::new();
        for item in items {
            out.push(self.listed_view(&value_string(item)?).await?);
        }
        Ok((out, next))
    }
}

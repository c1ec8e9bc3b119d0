//! Publishing a status list (a leased [`LeasedStatusList`]): the signed
//! Bitstring Status List credential of the bits the CC sent, written over the
//! list's file in storage (`status/{list}.json`) behind the lease's fence. The
//! CC leases at most one publication of a list at a time and records which of
//! its versions was published, so a newer list is never overwritten by an older
//! one of a live lease; the fence keeps a lost lease from writing.

use testamur_common::failure::FailCode;
use testamur_common::status_list::LeasedStatusList;
use testamur_common::wire::JobResult;
use time::OffsetDateTime;

use crate::fence::LeaseCheck;
use crate::job::{Fenced, JobError, Pipeline};
use crate::storage::{self, CONTENT_JSON};

impl Pipeline {
    /// Signs and publishes the list as `task` gives it; the result has nothing
    /// to report but its success.
    pub fn publish_status_list(
        &self,
        task: &LeasedStatusList,
        fence: &dyn LeaseCheck,
    ) -> Result<JobResult, JobError> {
        let stage = format!("status list {} on {}", task.list, self.workserver);
        let Some(issuer) = &self.credentials else {
            return Err(JobError::permanent(
                FailCode::Internal,
                &stage,
                "this workserver issues no credentials (no [credentials] in ws.conf) \
                 but was leased a status list",
            ));
        };
        let bitmap = task
            .bitmap()
            .map_err(|e| JobError::permanent(FailCode::Internal, &stage, e))?;
        let rel = storage::status_list_path(task.list);
        let now = crate::signed_at::whole_seconds(OffsetDateTime::now_utc());
        let bytes = issuer
            .issue_status_list(&self.storage.url(&rel), &bitmap, &now)
            .map_err(|e| JobError::permanent(FailCode::Signing, &stage, e))?;
        let job = Fenced {
            pipeline: self,
            fence,
        };
        let mut batch = self.storage.batch();
        job.store(batch.as_mut(), &rel, &bytes, CONTENT_JSON)?;
        job.commit(batch)?;
        tracing::info!(
            list = task.list,
            version = task.version,
            "status list published"
        );
        Ok(JobResult::default())
    }
}

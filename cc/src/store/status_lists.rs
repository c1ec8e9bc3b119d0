//! The Bitstring Status Lists as the operator status shows them: each list's
//! changes, the version published and when, whether a publication is out (the
//! keys are lib.lua's; the scripts change them).

use redis::AsyncCommands;
use testamur_common::status_list::StatusListStatus;

use super::{Result, Store, P};

impl Store {
    /// Every status list's changes and publication (operator status).
    pub async fn status_lists(&self) -> Result<Vec<StatusListStatus>> {
        let mut c = self.conn.clone();
        let mut lists: Vec<u32> = c.smembers(format!("{P}status:lists")).await?;
        lists.sort_unstable();
        if lists.is_empty() {
            // (Redis refuses an empty pipeline.)
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for n in &lists {
            pipe.get(format!("{P}status:{n}:ver"))
                .cmd("HMGET")
                .arg(format!("{P}status:{n}:pub"))
                .arg("ver")
                .arg("at")
                .exists(format!("{P}status:{n}:job"));
        }
        // Per list: its changes, (the version published, when), a publication out.
        type Row = (Option<u64>, (Option<u64>, Option<String>), bool);
        let rows: Vec<Row> = pipe.query_async(&mut c).await?;
        Ok(lists
            .into_iter()
            .zip(rows)
            .map(
                |(list, (changes, (published, published_at), publishing))| StatusListStatus {
                    list,
                    changes: changes.unwrap_or(0),
                    published: published.unwrap_or(0),
                    published_at,
                    publishing,
                },
            )
            .collect())
    }
}

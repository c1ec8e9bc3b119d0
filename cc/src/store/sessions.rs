//! Dashboard logins: a session token (in an HttpOnly cookie) maps to the name of
//! the operator key that logged in. Kept in Redis so every CC accepts it.

use std::time::Duration;

use redis::AsyncCommands;

use super::{Result, Store, P};

impl Store {
    pub async fn create_session(
        &self,
        token_hash: &str,
        key_name: &str,
        ttl: Duration,
    ) -> Result<()> {
        let mut c = self.conn.clone();
        let _: () = c
            .set_ex(format!("{P}session:{token_hash}"), key_name, ttl.as_secs())
            .await?;
        Ok(())
    }

    /// The operator key name of a live session.
    pub async fn session(&self, token_hash: &str) -> Result<Option<String>> {
        let mut c = self.conn.clone();
        Ok(c.get(format!("{P}session:{token_hash}")).await?)
    }

    pub async fn delete_session(&self, token_hash: &str) -> Result<()> {
        let mut c = self.conn.clone();
        let _: () = c.del(format!("{P}session:{token_hash}")).await?;
        Ok(())
    }
}

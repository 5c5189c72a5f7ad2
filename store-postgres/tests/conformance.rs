//! The shared conformance suite against a real PostgreSQL (`DATABASE_URL`),
//! each case with its table in a schema of its own and the per-user index
//! on, so its cases run.

mod common;

use async_trait::async_trait;
use common::Namespaced;
use sessionkit_conformance::Fixture;
use sessionkit_core::encryption::Codec;
use sessionkit_core::time::{self, Timestamp};
use sessionkit_core::{SessionId, Store};
use std::sync::Arc;

#[async_trait]
impl Fixture for Namespaced {
    fn store(&self) -> Arc<dyn Store> {
        Arc::new(self.store.clone())
    }

    async fn put_raw(&self, id: &str, raw: &str, expires: Timestamp) -> anyhow::Result<()> {
        // A `json` column cannot hold text that is not JSON: garbage goes in
        // as a JSON string, which is just as much "not a session".
        let value = if serde_json::from_str::<serde_json::Value>(raw).is_ok() {
            "$2::json"
        } else {
            "to_json($2::text)"
        };
        let sql = format!(
            "INSERT INTO {t} (sid, sess, expire) VALUES ($1, {value}, $3 AT TIME ZONE $4) \
             ON CONFLICT (sid) DO UPDATE SET sess = EXCLUDED.sess, expire = EXCLUDED.expire",
            t = self.store.qualified_table()
        );
        sqlx::query(&sql)
            .bind(id)
            .bind(raw)
            .bind(expires)
            .bind(self.store.time_zone())
            .execute(self.store.pool())
            .await?;
        Ok(())
    }

    async fn force_expire(&self, id: &SessionId) -> anyhow::Result<()> {
        let past = time::from_millis(time::now().timestamp_millis() - 1000);
        let sql = format!(
            "UPDATE {} SET expire = $2 AT TIME ZONE $3 WHERE sid = $1",
            self.store.qualified_table()
        );
        sqlx::query(&sql)
            .bind(id.as_str())
            .bind(past)
            .bind(self.store.time_zone())
            .execute(self.store.pool())
            .await?;
        Ok(())
    }

    async fn raw(&self, id: &SessionId) -> anyhow::Result<Option<(String, Timestamp)>> {
        let sql = format!(
            "SELECT sess::text, expire AT TIME ZONE $2 FROM {} WHERE sid = $1",
            self.store.qualified_table()
        );
        Ok(sqlx::query_as(&sql)
            .bind(id.as_str())
            .bind(self.store.time_zone())
            .fetch_optional(self.store.pool())
            .await?)
    }

    fn with_codec(&self, codec: Codec) -> Option<Arc<dyn Store>> {
        Some(Arc::new(self.store.clone().with_codec(codec)))
    }
}

#[allow(clippy::panic)]
async fn fixture() -> Namespaced {
    match Namespaced::with(|b| b.principal_index(true)).await {
        Ok(ns) => ns,
        Err(e) => panic!("cannot reach PostgreSQL at {}: {e:#}", common::url()),
    }
}

sessionkit_conformance::conformance_tests!(fixture());

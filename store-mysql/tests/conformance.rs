//! The shared conformance suite against a real MySQL / MariaDB (`MYSQL_URL`),
//! each case with a table of its own (`conformance_<random>`) and the
//! per-user index on, so its cases run.

mod common;

use async_trait::async_trait;
use common::Namespaced;
use sessionkit_conformance::Fixture;
use sessionkit_core::encryption::Codec;
use sessionkit_core::time::{self, Timestamp};
use sessionkit_core::{SessionId, Store};
use sessionkit_mysql::{from_expires, to_expires};
use std::sync::Arc;

#[async_trait]
impl Fixture for Namespaced {
    fn store(&self) -> Arc<dyn Store> {
        Arc::new(self.store.clone())
    }

    async fn put_raw(&self, id: &str, raw: &str, expires: Timestamp) -> anyhow::Result<()> {
        // REPLACE: the way express-mysql-session's upsert leaves the row.
        let sql = format!(
            "REPLACE INTO {} (session_id, expires, data) VALUES (?, ?, ?)",
            self.store.quoted_table()
        );
        sqlx::query(&sql)
            .bind(id)
            .bind(to_expires(&expires))
            .bind(raw)
            .execute(self.store.pool())
            .await?;
        Ok(())
    }

    async fn force_expire(&self, id: &SessionId) -> anyhow::Result<()> {
        // One second before now, rounded like the store: expired for it
        // (`expires < now`) and for express-mysql-session alike.
        let past = to_expires(&time::now()).saturating_sub(1);
        let sql = format!(
            "UPDATE {} SET expires = ? WHERE session_id = ?",
            self.store.quoted_table()
        );
        sqlx::query(&sql)
            .bind(past)
            .bind(id.as_str())
            .execute(self.store.pool())
            .await?;
        Ok(())
    }

    async fn raw(&self, id: &SessionId) -> anyhow::Result<Option<(String, Timestamp)>> {
        let sql = format!(
            "SELECT data, expires FROM {} WHERE session_id = ?",
            self.store.quoted_table()
        );
        // Bytes: sqlx refuses `utf8mb4_bin` columns as text.
        let row: Option<(Option<Vec<u8>>, u32)> = sqlx::query_as(&sql)
            .bind(id.as_str())
            .fetch_optional(self.store.pool())
            .await?;
        row.map(|(data, expires)| {
            let text = String::from_utf8(data.unwrap_or_default())?;
            Ok((text, from_expires(expires)))
        })
        .transpose()
    }

    fn with_codec(&self, codec: Codec) -> Option<Arc<dyn Store>> {
        Some(Arc::new(self.store.clone().with_codec(codec)))
    }
}

#[allow(clippy::panic)]
async fn fixture() -> Namespaced {
    match Namespaced::with("conformance", |b| b.principal_index(true)).await {
        Ok(ns) => ns,
        Err(e) => panic!("cannot reach MySQL at {}: {e:#}", common::url()),
    }
}

sessionkit_conformance::conformance_tests!(fixture());

//! The shared conformance suite against SQLite, one database file per case,
//! with the per-user index on so its cases run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use async_trait::async_trait;
use sessionkit_conformance::Fixture;
use sessionkit_core::encryption::Codec;
use sessionkit_core::time::{self, Timestamp};
use sessionkit_core::{SessionId, Store};
use sessionkit_sqlite::{format_date, parse_date, SqliteStore};
use std::sync::Arc;

struct Sqlite {
    store: SqliteStore,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Sqlite {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("sessions.db");
    let store = SqliteStore::builder(path.display().to_string())
        .create_schema(true)
        .principal_index(true)
        .prune_interval(None)
        .connect()
        .await
        .expect("open SQLite");
    Sqlite { store, _dir: dir }
}

#[async_trait]
impl Fixture for Sqlite {
    fn store(&self) -> Arc<dyn Store> {
        Arc::new(self.store.clone())
    }

    async fn put_raw(&self, id: &str, raw: &str, expires: Timestamp) -> anyhow::Result<()> {
        let now = format_date(&time::now());
        // Names the columns: the table also has the `principal` column. A
        // replaced row loses its principal, as when Node rewrites it.
        sqlx::query(
            r#"INSERT OR REPLACE INTO "Sessions" (sid, expires, data, "createdAt", "updatedAt")
               VALUES (?, ?, ?, ?, ?)"#,
        )
        .bind(id)
        .bind(format_date(&expires))
        .bind(raw)
        .bind(&now)
        .bind(&now)
        .execute(self.store.pool())
        .await?;
        Ok(())
    }

    async fn force_expire(&self, id: &SessionId) -> anyhow::Result<()> {
        let past = time::from_millis(time::now().timestamp_millis() - 1000);
        sqlx::query(r#"UPDATE "Sessions" SET expires = ? WHERE sid = ?"#)
            .bind(format_date(&past))
            .bind(id.as_str())
            .execute(self.store.pool())
            .await?;
        Ok(())
    }

    async fn raw(&self, id: &SessionId) -> anyhow::Result<Option<(String, Timestamp)>> {
        let row: Option<(String, String)> =
            sqlx::query_as(r#"SELECT data, expires FROM "Sessions" WHERE sid = ?"#)
                .bind(id.as_str())
                .fetch_optional(self.store.pool())
                .await?;
        Ok(match row {
            Some((data, exp)) => Some((
                data,
                parse_date(&exp).ok_or_else(|| anyhow::anyhow!("bad date {exp}"))?,
            )),
            None => None,
        })
    }

    fn with_codec(&self, codec: Codec) -> Option<Arc<dyn Store>> {
        Some(Arc::new(self.store.clone().with_codec(codec)))
    }
}

sessionkit_conformance::conformance_tests!(fixture());

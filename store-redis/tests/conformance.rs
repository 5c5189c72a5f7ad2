//! The shared conformance suite against a real Redis (`REDIS_URL`), each case
//! under a random key prefix of its own.

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
        let key = format!("{}{id}", self.store.prefix());
        let ms = expires.timestamp_millis() - time::now().timestamp_millis();
        let mut conn = self.store.connection();
        if ms <= 0 {
            let _: i64 = redis::cmd("DEL").arg(&key).query_async(&mut conn).await?;
        } else {
            let _: () = redis::cmd("SET")
                .arg(&key)
                .arg(raw)
                .arg("PX")
                .arg(ms)
                .query_async(&mut conn)
                .await?;
        }
        Ok(())
    }

    async fn force_expire(&self, id: &SessionId) -> anyhow::Result<()> {
        // Redis cannot hold an expired key: an expiry in the past deletes it.
        let mut conn = self.store.connection();
        let _: i64 = redis::cmd("PEXPIREAT")
            .arg(self.store.key(id))
            .arg(1)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn raw(&self, id: &SessionId) -> anyhow::Result<Option<(String, Timestamp)>> {
        let key = self.store.key(id);
        let mut conn = self.store.connection();
        let now = time::now();
        let (value, pttl): (Option<String>, i64) = redis::pipe()
            .cmd("GET")
            .arg(&key)
            .cmd("PTTL")
            .arg(&key)
            .query_async(&mut conn)
            .await?;
        Ok(match value {
            None => None,
            Some(_) if pttl < 0 => anyhow::bail!("key {key} has no TTL (PTTL {pttl})"),
            Some(v) => Some((v, time::from_millis(now.timestamp_millis() + pttl))),
        })
    }

    fn with_codec(&self, codec: Codec) -> Option<Arc<dyn Store>> {
        Some(Arc::new(self.store.clone().with_codec(codec)))
    }
}

#[allow(clippy::panic)]
async fn fixture() -> Namespaced {
    match Namespaced::new().await {
        Ok(ns) => ns,
        Err(e) => panic!("cannot reach Redis at {}: {e:#}", common::url()),
    }
}

sessionkit_conformance::conformance_tests!(fixture());

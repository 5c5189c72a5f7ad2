//! The shared conformance suite against a real MongoDB-compatible server
//! (`MONGODB_URL`), each case in a collection of its own.

mod common;

use async_trait::async_trait;
use common::Namespaced;
use mongodb::bson::{doc, DateTime};
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
        self.store
            .collection()
            .replace_one(
                doc! { "_id": id },
                doc! {
                    "_id": id,
                    "expires": DateTime::from_millis(expires.timestamp_millis()),
                    "session": raw,
                },
            )
            .upsert(true)
            .await?;
        Ok(())
    }

    async fn force_expire(&self, id: &SessionId) -> anyhow::Result<()> {
        // Left in place, as if the TTL monitor (every 60 s) had not run yet.
        let past = DateTime::from_millis(time::now().timestamp_millis() - 1000);
        self.store
            .collection()
            .update_one(
                doc! { "_id": id.as_str() },
                doc! { "$set": { "expires": past } },
            )
            .await?;
        Ok(())
    }

    async fn raw(&self, id: &SessionId) -> anyhow::Result<Option<(String, Timestamp)>> {
        let Some(d) = self
            .store
            .collection()
            .find_one(doc! { "_id": id.as_str() })
            .await?
        else {
            return Ok(None);
        };
        let session = d.get_str("session")?.to_owned();
        let expires = time::from_millis(d.get_datetime("expires")?.timestamp_millis());
        Ok(Some((session, expires)))
    }

    fn with_codec(&self, codec: Codec) -> Option<Arc<dyn Store>> {
        Some(Arc::new(self.store.clone().with_codec(codec)))
    }
}

#[allow(clippy::panic)]
async fn fixture() -> Namespaced {
    match Namespaced::new().await {
        Ok(ns) => ns,
        Err(e) => panic!("cannot reach MongoDB at {}: {e:#}", common::url()),
    }
}

sessionkit_conformance::conformance_tests!(fixture());

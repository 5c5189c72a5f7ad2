//! The whole sessionkit conformance suite against `TinyStore`: one test
//! per case (`cargo test -p custom-store-example`).

use async_trait::async_trait;
use custom_store_example::TinyStore;
use sessionkit_conformance::Fixture;
use sessionkit_core::time::{self, Timestamp};
use sessionkit_core::{SessionId, Store};
use std::sync::Arc;

/// The store under test, with the three backdoors the suite needs.
struct Tiny(TinyStore);

#[async_trait]
impl Fixture for Tiny {
    fn store(&self) -> Arc<dyn Store> {
        Arc::new(self.0.clone())
    }

    async fn put_raw(&self, id: &str, raw: &str, expires: Timestamp) -> anyhow::Result<()> {
        self.0.put_raw(SessionId::parse(id)?, raw, expires);
        Ok(())
    }

    async fn force_expire(&self, id: &SessionId) -> anyhow::Result<()> {
        if let Some((json, _)) = self.0.raw(id) {
            let past = time::from_millis(time::now().timestamp_millis() - 1000);
            self.0.put_raw(id.clone(), &json, past);
        }
        Ok(())
    }

    async fn raw(&self, id: &SessionId) -> anyhow::Result<Option<(String, Timestamp)>> {
        Ok(self.0.raw(id))
    }
}

sessionkit_conformance::conformance_tests!(async { Tiny(TinyStore::new()) });

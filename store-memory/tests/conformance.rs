//! The shared conformance suite against the in-process store.

use async_trait::async_trait;
use sessionkit_conformance::Fixture;
use sessionkit_core::time::{self, Timestamp};
use sessionkit_core::{SessionId, Store};
use sessionkit_memory::MemoryStore;
use std::sync::Arc;

struct Memory(MemoryStore);

#[async_trait]
impl Fixture for Memory {
    fn store(&self) -> Arc<dyn Store> {
        Arc::new(self.0.clone())
    }

    async fn put_raw(&self, id: &str, raw: &str, expires: Timestamp) -> anyhow::Result<()> {
        self.0.insert_raw(SessionId::parse(id)?, raw, expires);
        Ok(())
    }

    async fn force_expire(&self, id: &SessionId) -> anyhow::Result<()> {
        if let Some((json, _)) = self.0.get_raw(id) {
            let past = time::from_millis(time::now().timestamp_millis() - 1000);
            self.0.insert_raw(id.clone(), json, past);
        }
        Ok(())
    }

    async fn raw(&self, id: &SessionId) -> anyhow::Result<Option<(String, Timestamp)>> {
        Ok(self.0.get_raw(id))
    }
}

sessionkit_conformance::conformance_tests!(async { Memory(MemoryStore::new()) });

//! The store as the demo holds it.

use anyhow::{bail, Context};
use session_core::{HashedIds, SessionId, Store};
use std::sync::Arc;

/// The session store: what the session layer uses ([`DemoStore::store`]),
/// plus, with hashed ids, the [`HashedIds`] wrapper itself.
///
/// The "active sessions" page needs the wrapper: through it the per-user
/// index lists records under their storage keys (the ids themselves are not
/// stored), and only [`HashedIds::destroy_key`] destroys a record by its key
/// (`Store::destroy` would hash the key again and miss). So the demo takes
/// `hashed_ids` out of the URL and wraps the store itself, instead of
/// letting `session_stores` hide the wrapper behind `Arc<dyn Store>`.
#[derive(Clone)]
pub struct DemoStore {
    store: Arc<dyn Store>,
    hashed: Option<Arc<HashedIds<Arc<dyn Store>>>>,
}

impl std::fmt::Debug for DemoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoStore")
            .field("hashed_ids", &self.hashed.is_some())
            .finish_non_exhaustive()
    }
}

impl DemoStore {
    /// A store used as it is.
    pub fn new(store: Arc<dyn Store>) -> Self {
        DemoStore {
            store,
            hashed: None,
        }
    }

    /// `inner` with hashed ids ([`HashedIds`]).
    pub fn hashed(inner: Arc<dyn Store>) -> Self {
        let wrapper = Arc::new(HashedIds::new(inner));
        DemoStore {
            store: wrapper.clone(),
            hashed: Some(wrapper),
        }
    }

    /// Connects to the store `url` names ([`session_stores::connect_with`]),
    /// with encryption keys from the environment and hashed ids when the URL
    /// says `hashed_ids=true`.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let mut at_rest = session_stores::AtRest::from_env()?;
        let (url, hashed_in_url) = take_hashed_ids(url)?;
        let hashed = hashed_in_url || at_rest.hashed_ids;
        at_rest.hashed_ids = false;
        let inner = session_stores::connect_with(&url, &at_rest)
            .await
            .with_context(|| format!("cannot open the session store {}", crate::redact(&url)))?;
        Ok(if hashed {
            DemoStore::hashed(inner)
        } else {
            DemoStore::new(inner)
        })
    }

    /// The store, for the session layer and for direct calls.
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// Whether records are kept under hashed ids.
    pub fn hashed_ids(&self) -> bool {
        self.hashed.is_some()
    }

    /// The id under which `Store::principal_sessions` lists the session `id`.
    pub fn listed_id(&self, id: &SessionId) -> SessionId {
        match &self.hashed {
            Some(_) => HashedIds::<Arc<dyn Store>>::key(id),
            None => id.clone(),
        }
    }

    /// Destroys a record as `Store::principal_sessions` listed it.
    pub async fn destroy_listed(&self, listed: &SessionId) -> session_core::Result<()> {
        match &self.hashed {
            Some(wrapper) => wrapper.destroy_key(listed).await,
            None => self.store.destroy(listed).await,
        }
    }
}

/// Takes the `hashed_ids` option out of a store URL's query string (the
/// values `session_stores` accepts); the rest of the URL is kept as written.
fn take_hashed_ids(url: &str) -> anyhow::Result<(String, bool)> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), false));
    };
    let mut hashed = false;
    let mut kept = Vec::new();
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key != "hashed_ids" {
            kept.push(pair);
            continue;
        }
        hashed = match value {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            other => bail!("option hashed_ids={other:?} is not true or false"),
        };
    }
    let url = if kept.iter().all(|p| p.is_empty()) {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, hashed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_ids_is_taken_out_of_the_url() -> anyhow::Result<()> {
        assert_eq!(
            take_hashed_ids("sqlite://s.db")?,
            ("sqlite://s.db".into(), false)
        );
        assert_eq!(
            take_hashed_ids("memory://?hashed_ids=true")?,
            ("memory://".into(), true)
        );
        assert_eq!(
            take_hashed_ids("sqlite://s.db?principal_index=true&hashed_ids=1&ttl=60")?,
            ("sqlite://s.db?principal_index=true&ttl=60".into(), true)
        );
        assert_eq!(
            take_hashed_ids("redis://:p@h/?hashed_ids=off")?,
            ("redis://:p@h/".into(), false)
        );
        assert!(take_hashed_ids("memory://?hashed_ids=maybe").is_err());
        Ok(())
    }
}

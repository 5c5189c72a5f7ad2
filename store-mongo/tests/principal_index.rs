//! The per-user index's MongoDB layout against a real server
//! (`MONGODB_URL`): a top-level `principal` field written beside
//! connect-mongo's fields and removed with the principal, left alone by
//! Node's writes, and a sparse index on it.

mod common;

use anyhow::{ensure, Context, Result};
use common::{builder, unique_collection, Namespaced};
use futures::TryStreamExt;
use mongodb::bson::{doc, DateTime, Document};
use mongodb::options::IndexOptions;
use mongodb::IndexModel;
use sessionkit_core::time;
use sessionkit_core::{CasOutcome, Record, SessionId, SessionMeta, Store, WriteOutcome};
use sessionkit_mongo::MongoStore;
use std::time::Duration;

fn tagged(principal: Option<&str>) -> Result<Record> {
    let mut r = Record::new(SessionId::generate());
    r.cookie
        .set_max_age(Some(Duration::from_secs(3600)), time::now());
    let mut meta = SessionMeta::default();
    meta.principal = principal.map(str::to_owned);
    r.set_meta(Some(&meta))?;
    Ok(r)
}

fn with_principal(r: &Record, principal: Option<&str>) -> Result<Record> {
    let mut next = r.clone();
    let mut meta = next.meta()?.unwrap_or_default();
    meta.principal = principal.map(str::to_owned);
    next.set_meta(Some(&meta))?;
    Ok(next)
}

async fn document(store: &MongoStore, id: &SessionId) -> Result<Document> {
    store
        .collection()
        .find_one(doc! { "_id": id.as_str() })
        .await?
        .context("no document")
}

/// The `principal` field, `None` when absent.
async fn field(store: &MongoStore, id: &SessionId) -> Result<Option<String>> {
    let d = document(store, id).await?;
    Ok(d.get_str("principal").ok().map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn principal_field_follows_every_write() -> Result<()> {
    let ns = Namespaced::new().await?;
    let store = &ns.store;
    let r = tagged(Some("alice"))?;
    store.create(&r).await?;
    let d = document(store, &r.id).await?;
    let keys: Vec<&str> = d.keys().map(String::as_str).collect();
    ensure!(
        keys == ["_id", "expires", "session", "principal"],
        "{keys:?}"
    );
    ensure!(d.get_str("principal")? == "alice");

    let untagged = Record::new(SessionId::generate());
    store.create(&untagged).await?;
    let keys: Vec<String> = document(store, &untagged.id)
        .await?
        .keys()
        .cloned()
        .collect();
    ensure!(keys == ["_id", "expires", "session"], "{keys:?}");

    // touch leaves it; save and save_if move it; no principal removes it.
    ensure!(store.touch(&r.id, None).await? == WriteOutcome::Written);
    ensure!(field(store, &r.id).await?.as_deref() == Some("alice"));
    let bob = with_principal(&r, Some("bob"))?;
    ensure!(store.save(&bob).await? == WriteOutcome::Written);
    ensure!(field(store, &r.id).await?.as_deref() == Some("bob"));
    let (_, version) = store.load_versioned(&r.id).await?.context("gone")?;
    let carol = with_principal(&r, Some("carol"))?;
    ensure!(matches!(
        store.save_if(&carol, &version).await?,
        CasOutcome::Written(_)
    ));
    ensure!(field(store, &r.id).await?.as_deref() == Some("carol"));
    ensure!(store.save(&with_principal(&r, None)?).await? == WriteOutcome::Written);
    ensure!(field(store, &r.id).await?.is_none());

    // A create over an expired document takes its field away too.
    let reused = tagged(Some("zed"))?;
    store.create(&reused).await?;
    store
        .collection()
        .update_one(
            doc! { "_id": reused.id.as_str() },
            doc! { "$set": { "expires": DateTime::from_millis(1) } },
        )
        .await?;
    let fresh = with_principal(&reused, None)?;
    store.create(&fresh).await?;
    ensure!(field(store, &reused.id).await?.is_none());
    ensure!(store.principal_sessions("zed").await?.is_empty());
    Ok(())
}

/// connect-mongo's `set` (`$set` of `_id`, `session`, `expires`, upsert)
/// keeps the field, and the session's `__meta` rides along in its JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_writes_keep_the_field() -> Result<()> {
    let ns = Namespaced::new().await?;
    let store = &ns.store;
    let mut r = tagged(Some("alice"))?;
    store.create(&r).await?;
    r.data.insert("views".into(), 2.into());
    let expires = r.cookie.expires.context("expiry")?;
    store
        .collection()
        .update_one(
            doc! { "_id": r.id.as_str() },
            doc! { "$set": {
                "_id": r.id.as_str(),
                "session": r.to_json()?,
                "expires": DateTime::from_millis(expires.timestamp_millis()),
            } },
        )
        .upsert(true)
        .await?;
    ensure!(field(store, &r.id).await?.as_deref() == Some("alice"));
    ensure!(store.principal_sessions("alice").await? == vec![r.clone()]);
    Ok(())
}

/// The session's own principal decides: a document whose field disagrees
/// with its session (written by hand) is not listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_checks_the_session_itself() -> Result<()> {
    let ns = Namespaced::new().await?;
    let store = &ns.store;
    let r = tagged(Some("bob"))?;
    store.create(&r).await?;
    store
        .collection()
        .update_one(
            doc! { "_id": r.id.as_str() },
            doc! { "$set": { "principal": "alice" } },
        )
        .await?;
    ensure!(store.principal_sessions("alice").await?.is_empty());
    ensure!(store.principal_sessions("bob").await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn principal_index_is_created_and_an_existing_one_kept() -> Result<()> {
    let ns = Namespaced::new().await?;
    let indexes: Vec<IndexModel> = ns
        .store
        .collection()
        .list_indexes()
        .await?
        .try_collect()
        .await?;
    let ix = indexes
        .iter()
        .find(|i| i.keys == doc! { "principal": 1 })
        .context("no index on principal")?;
    let options = ix.options.clone().unwrap_or_default();
    ensure!(options.name.as_deref() == Some("principal_1"));
    ensure!(options.sparse == Some(true), "{options:?}");
    ns.store.create_indexes().await?;

    // Created by hand, not sparse, under the same name: kept.
    let collection = unique_collection();
    let plain = builder()
        .collection(&collection)
        .create_indexes(false)
        .connect()
        .await?;
    plain
        .collection()
        .create_index(
            IndexModel::builder()
                .keys(doc! { "principal": 1 })
                .options(
                    IndexOptions::builder()
                        .name("principal_1".to_owned())
                        .build(),
                )
                .build(),
        )
        .await?;
    let result = plain.create_indexes().await;
    plain.collection().drop().await?;
    result?;
    Ok(())
}

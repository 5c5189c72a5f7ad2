//! The per-user index's Redis layout against a real server: one SET per
//! principal under its own prefix, outliving its members, emptied of dead
//! ids, invisible to `ids`/`count`, removed by `clear`. Also run on a
//! cluster and on Sentinel (`conformance_cluster.rs`,
//! `conformance_sentinel.rs` include this file).

// `conformance_cluster.rs` declares `common` too.
#[allow(clippy::duplicate_mod)]
mod common;

use anyhow::{ensure, Context, Result};
use common::{builder, unique_prefix, url, Namespaced};
use sessionkit_core::encryption::{Encryption, Key};
use sessionkit_core::time;
use sessionkit_core::{Error, Record, SessionId, SessionMeta, Store, WriteOutcome};
use sessionkit_redis::RedisStore;
use std::time::Duration;

fn tagged(principal: Option<&str>, hours: u64) -> Result<Record> {
    let mut r = Record::new(SessionId::generate());
    r.cookie
        .set_max_age(Some(Duration::from_secs(hours * 3600)), time::now());
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

fn set_key(store: &RedisStore, principal: &str) -> Result<String> {
    store.principal_key(principal).context("index is off")
}

async fn members(store: &RedisStore, principal: &str) -> Result<Vec<String>> {
    let mut conn = store.connection();
    let mut m: Vec<String> = redis::cmd("SMEMBERS")
        .arg(set_key(store, principal)?)
        .query_async(&mut conn)
        .await?;
    m.sort();
    Ok(m)
}

async fn pttl(store: &RedisStore, key: &str) -> Result<i64> {
    let mut conn = store.connection();
    Ok(redis::cmd("PTTL").arg(key).query_async(&mut conn).await?)
}

async fn exists(store: &RedisStore, key: &str) -> Result<bool> {
    let mut conn = store.connection();
    let n: i64 = redis::cmd("EXISTS").arg(key).query_async(&mut conn).await?;
    Ok(n > 0)
}

fn sorted(ids: &[&SessionId]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
    v.sort();
    v
}

/// The set's key comes from the prefix, `ids`/`count` never see it and
/// `clear` removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sets_have_their_own_prefix() -> Result<()> {
    let ns = Namespaced::new().await?;
    let store = &ns.store;
    let base = store.prefix().strip_suffix("sess:").context("prefix")?;
    ensure!(store.principal_prefix() == Some(&*format!("{base}sess-principal:")));
    ensure!(set_key(store, "alice")? == format!("{base}sess-principal:alice"));
    let r = tagged(Some("alice"), 1)?;
    store.create(&r).await?;
    ensure!(members(store, "alice").await? == sorted(&[&r.id]));
    ensure!(store.count().await? == 1, "count sees the index set");
    ensure!(store.ids().await? == vec![r.id.clone()]);
    store.clear().await?;
    ensure!(
        !exists(store, &set_key(store, "alice")?).await?,
        "clear left the set"
    );
    Ok(())
}

/// After its sessions died by destroy, expiry and a change of principal,
/// the listing is empty and the set is gone; while they live the set lives
/// at least as long as the longest of them, also after a touch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_ids_leave_the_set_and_the_set_outlives_its_members() -> Result<()> {
    let ns = Namespaced::new().await?;
    let store = &ns.store;
    let set = set_key(store, "alice")?;
    let short = tagged(Some("alice"), 1)?;
    let long = tagged(Some("alice"), 3)?;
    let mid = tagged(Some("alice"), 2)?;
    for r in [&short, &long, &mid] {
        store.create(r).await?;
    }
    ensure!(members(store, "alice").await? == sorted(&[&short.id, &long.id, &mid.id]));
    let longest = pttl(store, &store.key(&long.id)).await?;
    ensure!(
        pttl(store, &set).await? >= longest,
        "set expires before a member"
    );

    // A touch beyond every member lengthens the set too.
    let later = time::from_millis(time::now().timestamp_millis() + 5 * 3_600_000);
    ensure!(store.touch(&short.id, Some(later)).await? == WriteOutcome::Written);
    let touched = pttl(store, &store.key(&short.id)).await?;
    ensure!(touched > longest);
    ensure!(
        pttl(store, &set).await? >= touched,
        "touch did not lengthen the set"
    );

    // Three deaths: destroy, expiry, another principal.
    store.destroy(&short.id).await?;
    let mut conn = store.connection();
    let _: i64 = redis::cmd("PEXPIREAT")
        .arg(store.key(&long.id))
        .arg(1)
        .query_async(&mut conn)
        .await?;
    let bobs = with_principal(&mid, Some("bob"))?;
    ensure!(store.save(&bobs).await? == WriteOutcome::Written);
    // All three stay in alice's set until its next read (a save does not
    // read the principal it replaces); bob's set has the moved session.
    ensure!(members(store, "alice").await? == sorted(&[&short.id, &long.id, &mid.id]));
    ensure!(members(store, "bob").await? == sorted(&[&mid.id]));

    ensure!(store.principal_sessions("alice").await?.is_empty());
    ensure!(
        !exists(store, &set).await?,
        "alice's set still holds dead ids"
    );
    ensure!(store.destroy_principal("alice", None).await? == 0);
    ensure!(store.principal_sessions("bob").await?.len() == 1);
    Ok(())
}

/// A member whose session belongs to someone else (left by a write that
/// could not take it out) is pruned by the next read; a session missing
/// from its set (an index write that failed) is back after its next save.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_members_are_pruned_and_missing_ones_come_back() -> Result<()> {
    let ns = Namespaced::new().await?;
    let store = &ns.store;
    let r = tagged(Some("bob"), 1)?;
    store.create(&r).await?;
    let mut conn = store.connection();
    let _: i64 = redis::cmd("SADD")
        .arg(set_key(store, "alice")?)
        .arg(r.id.as_str())
        .arg("not an id!")
        .query_async(&mut conn)
        .await?;
    ensure!(store.principal_sessions("alice").await?.is_empty());
    ensure!(!exists(store, &set_key(store, "alice")?).await?);

    let _: i64 = redis::cmd("DEL")
        .arg(set_key(store, "bob")?)
        .query_async(&mut conn)
        .await?;
    ensure!(store.principal_sessions("bob").await?.is_empty());
    let mut next = r.clone();
    next.data.insert("n".into(), 1.into());
    ensure!(store.save(&next).await? == WriteOutcome::Written);
    let listed = store.principal_sessions("bob").await?;
    ensure!(listed.len() == 1 && listed[0] == next);
    // A touch re-adds it too.
    let _: i64 = redis::cmd("DEL")
        .arg(set_key(store, "bob")?)
        .query_async(&mut conn)
        .await?;
    ensure!(store.touch(&r.id, None).await? == WriteOutcome::Written);
    ensure!(members(store, "bob").await? == sorted(&[&r.id]));
    Ok(())
}

/// The principal is read from encrypted values too; the set holds ids only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_sessions_are_indexed() -> Result<()> {
    let ns = Namespaced::new().await?;
    let encryption = Encryption::new([Key::from_bytes([7; 32])])?;
    let store = ns
        .store
        .clone()
        .with_codec(sessionkit_core::encryption::Codec::encrypted(encryption));
    let r = tagged(Some("alice"), 1)?;
    store.create(&r).await?;
    let mut conn = store.connection();
    let raw: String = redis::cmd("GET")
        .arg(store.key(&r.id))
        .query_async(&mut conn)
        .await?;
    ensure!(!raw.contains("alice"), "stored in clear");
    ensure!(store.principal_sessions("alice").await? == vec![r.clone()]);
    let bobs = with_principal(&r, Some("bob"))?;
    ensure!(store.save(&bobs).await? == WriteOutcome::Written);
    ensure!(store.principal_sessions("alice").await?.is_empty());
    ensure!(!exists(&store, &set_key(&store, "alice")?).await?);
    ensure!(store.destroy_principal("bob", None).await? == 1);
    ensure!(store.load(&r.id).await?.is_none());
    Ok(())
}

/// Prefixes: an explicit one that overlaps the sessions' is refused; a
/// session prefix without a final `:` gives no default (index off); the
/// index can be turned off, and then no set is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_rules_and_turning_the_index_off() -> Result<()> {
    let prefix = unique_prefix();
    for bad in [format!("{prefix}idx:"), String::new(), "test:".to_owned()] {
        let result = builder(&url())
            .prefix(&prefix)
            .principal_prefix(bad.clone())
            .connect()
            .await;
        ensure!(
            matches!(result, Err(Error::Config(_))),
            "principal prefix {bad:?}: {result:?}"
        );
    }
    let explicit = builder(&url())
        .prefix(&prefix)
        .principal_prefix(format!("{}-users:", SessionId::generate()))
        .connect()
        .await?;
    ensure!(explicit.capabilities().principal_index);

    let no_colon = builder(&url())
        .prefix(prefix.trim_end_matches(':'))
        .connect()
        .await?;
    ensure!(no_colon.principal_prefix().is_none());
    ensure!(!no_colon.capabilities().principal_index);
    ensure!(matches!(
        no_colon.principal_sessions("alice").await,
        Err(Error::Unsupported(_))
    ));

    let off = builder(&url())
        .prefix(&prefix)
        .principal_index(false)
        .connect()
        .await?;
    ensure!(!off.capabilities().principal_index);
    let r = tagged(Some("alice"), 1)?;
    off.create(&r).await?;
    let derived = format!("{}-principal:alice", prefix.trim_end_matches(':'));
    ensure!(!exists(&off, &derived).await?, "index written while off");
    ensure!(off.save(&r).await? == WriteOutcome::Written);
    ensure!(off.touch(&r.id, None).await? == WriteOutcome::Written);
    ensure!(matches!(
        off.destroy_principal("alice", None).await,
        Err(Error::Unsupported(_))
    ));
    off.clear().await?;
    Ok(())
}

/// Writes that move one session between two principals, racing with
/// listings that prune: afterwards the session is in its principal's set
/// (whatever the interleaving), and listed there only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writes_and_listings_never_drop_the_session() -> Result<()> {
    let ns = Namespaced::new().await?;
    let store = ns.store.clone();
    let r = tagged(Some("alice"), 1)?;
    store.create(&r).await?;
    let mut tasks = tokio::task::JoinSet::new();
    for writer in 0..4usize {
        let (store, r) = (store.clone(), r.clone());
        tasks.spawn(async move {
            for round in 0..100usize {
                let p = if (writer + round) % 2 == 0 {
                    "alice"
                } else {
                    "bob"
                };
                let next = with_principal(&r, Some(p))?;
                ensure!(store.save(&next).await? == WriteOutcome::Written);
                if round % 5 == 0 {
                    ensure!(store.touch(&r.id, None).await? == WriteOutcome::Written);
                }
            }
            Ok(())
        });
    }
    for reader in ["alice", "bob"] {
        let store = store.clone();
        tasks.spawn(async move {
            for _ in 0..100 {
                store.principal_sessions(reader).await?;
            }
            Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let owner = store
        .load(&r.id)
        .await?
        .context("session gone")?
        .principal()
        .context("no principal")?
        .to_owned();
    let other = if owner == "alice" { "bob" } else { "alice" };
    ensure!(
        members(&store, &owner).await?.contains(&r.id.to_string()),
        "{owner}'s set lost its session"
    );
    ensure!(store.principal_sessions(&owner).await?.len() == 1);
    ensure!(store.principal_sessions(other).await?.is_empty());
    ensure!(!exists(&store, &set_key(&store, other)?).await?);
    Ok(())
}

//! The cases. Each takes a fresh [`Fixture`] and returns an error describing
//! the first broken promise.

use crate::Fixture;
use anyhow::{bail, ensure, Context, Result};
use futures::{stream, StreamExt, TryStreamExt};
use serde_json::{json, Value};
use sessionkit_core::encryption::{Codec, Encryption};
use sessionkit_core::time::{self, Timestamp};
use sessionkit_core::{
    CasOutcome, Error, HashedIds, Record, SessionId, SessionMeta, Store, Version, WriteOutcome,
    DEFAULT_TTL,
};
use std::sync::Arc;
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);

/// A record whose cookie expires in an hour, with `{"n": n}` as data.
fn live(n: i64) -> Record {
    let mut r = Record::new(SessionId::generate());
    r.cookie.set_max_age(Some(HOUR), time::now());
    r.data.insert("n".into(), n.into());
    r
}

fn in_secs(secs: i64) -> Timestamp {
    time::from_millis(time::now().timestamp_millis() + secs * 1000)
}

fn close(a: Timestamp, b: Timestamp, tolerance_ms: i64) -> bool {
    (a.timestamp_millis() - b.timestamp_millis()).abs() <= tolerance_ms
}

async fn must_load(f: &dyn Fixture, id: &SessionId) -> Result<Record> {
    f.store()
        .load(id)
        .await
        .context("load failed")?
        .context("live record not found")
}

/// What was created loads back equal.
pub async fn round_trip(f: &dyn Fixture) -> Result<()> {
    let mut r = live(1);
    r.data.insert("user".into(), json!("bob"));
    f.store().create(&r).await?;
    let back = must_load(f, &r.id).await?;
    ensure!(back == r, "loaded {back:?}, created {r:?}");
    Ok(())
}

/// The backend holds express-session's JSON, byte for byte.
pub async fn stored_text_is_express_session_json(f: &dyn Fixture) -> Result<()> {
    let mut r = live(1);
    r.data.insert("user".into(), json!("bob"));
    f.store().create(&r).await?;
    let (raw, _) = f.raw(&r.id).await?.context("nothing stored")?;
    let stored: Value = serde_json::from_str(&raw).context("stored text is not JSON")?;
    let expected: Value = serde_json::from_str(&r.to_json()?)?;
    ensure!(stored == expected, "stored {raw}");
    ensure!(
        raw.starts_with(r#"{"cookie":{"originalMaxAge":3600000,"expires":""#),
        "{raw}"
    );
    Ok(())
}

/// An id never stored loads as `None`.
pub async fn load_missing_is_none(f: &dyn Fixture) -> Result<()> {
    ensure!(f.store().load(&SessionId::generate()).await?.is_none());
    Ok(())
}

/// `save` after `create` updates the data.
pub async fn create_then_save(f: &dyn Fixture) -> Result<()> {
    let mut r = live(1);
    f.store().create(&r).await?;
    r.data.insert("n".into(), 2.into());
    ensure!(f.store().save(&r).await? == WriteOutcome::Written);
    ensure!(must_load(f, &r.id).await?.data["n"] == 2);
    Ok(())
}

/// `create` on a live id is a collision and leaves the first record alone.
pub async fn create_on_live_id_is_collision(f: &dyn Fixture) -> Result<()> {
    let first = live(1);
    f.store().create(&first).await?;
    let mut second = first.clone();
    second.data.insert("n".into(), 2.into());
    match f.store().create(&second).await {
        Err(Error::Collision) => {}
        other => bail!("expected Collision, got {other:?}"),
    }
    ensure!(must_load(f, &first.id).await?.data["n"] == 1, "overwritten");
    Ok(())
}

/// An expired record does not block `create` with its id.
pub async fn create_over_expired_record_succeeds(f: &dyn Fixture) -> Result<()> {
    let first = live(1);
    f.store().create(&first).await?;
    f.force_expire(&first.id).await?;
    let mut second = first.clone();
    second.data.insert("n".into(), 2.into());
    f.store().create(&second).await?;
    ensure!(must_load(f, &first.id).await?.data["n"] == 2);
    Ok(())
}

/// `save` of a record that was never created is gone and writes nothing.
pub async fn save_without_create_is_gone(f: &dyn Fixture) -> Result<()> {
    let r = live(1);
    ensure!(f.store().save(&r).await? == WriteOutcome::Gone);
    ensure!(
        f.store().load(&r.id).await?.is_none(),
        "save created a record"
    );
    ensure!(f.raw(&r.id).await?.is_none(), "backend holds a record");
    Ok(())
}

/// A slow request cannot undo a logout.
pub async fn save_after_destroy_is_gone(f: &dyn Fixture) -> Result<()> {
    let r = live(1);
    f.store().create(&r).await?;
    f.store().destroy(&r.id).await?;
    ensure!(f.store().save(&r).await? == WriteOutcome::Gone);
    ensure!(f.store().load(&r.id).await?.is_none(), "logout undone");
    Ok(())
}

/// A slow request cannot revive an expired session.
pub async fn save_after_expiry_is_gone(f: &dyn Fixture) -> Result<()> {
    let r = live(1);
    f.store().create(&r).await?;
    f.force_expire(&r.id).await?;
    ensure!(f.store().save(&r).await? == WriteOutcome::Gone);
    ensure!(
        f.store().load(&r.id).await?.is_none(),
        "expired session revived"
    );
    Ok(())
}

/// A save replaces the data: removed keys are gone.
pub async fn save_replaces_all_data(f: &dyn Fixture) -> Result<()> {
    let mut r = live(1);
    r.data.insert("cart".into(), json!(["a", "b"]));
    f.store().create(&r).await?;
    r.data.shift_remove("cart");
    ensure!(f.store().save(&r).await? == WriteOutcome::Written);
    let back = must_load(f, &r.id).await?;
    ensure!(!back.data.contains_key("cart"), "removed key still stored");
    Ok(())
}

/// A save whose expiry is already past deletes the record.
pub async fn save_with_past_expiry_deletes(f: &dyn Fixture) -> Result<()> {
    let mut r = live(1);
    f.store().create(&r).await?;
    r.cookie.expires = Some(in_secs(-10));
    let _ = f.store().save(&r).await?;
    ensure!(f.store().load(&r.id).await?.is_none());
    Ok(())
}

/// A create whose expiry is already past stores nothing loadable.
pub async fn create_with_past_expiry_stores_nothing(f: &dyn Fixture) -> Result<()> {
    let mut r = live(1);
    r.cookie.expires = Some(in_secs(-10));
    f.store().create(&r).await?;
    ensure!(f.store().load(&r.id).await?.is_none());
    Ok(())
}

/// `load` never returns an expired record, even one the backend still holds.
pub async fn expired_record_is_not_returned(f: &dyn Fixture) -> Result<()> {
    let r = live(1);
    let other = live(2);
    f.store().create(&r).await?;
    f.store().create(&other).await?;
    f.force_expire(&r.id).await?;
    ensure!(
        f.store().load(&r.id).await?.is_none(),
        "expired record returned"
    );
    ensure!(must_load(f, &other.id).await?.data["n"] == 2);
    Ok(())
}

/// The backend's expiry follows `cookie.expires`.
pub async fn cookie_expiry_is_store_expiry(f: &dyn Fixture) -> Result<()> {
    let r = live(1);
    f.store().create(&r).await?;
    let (_, exp) = f.raw(&r.id).await?.context("nothing stored")?;
    let want = r.cookie.expires.context("live() sets expires")?;
    // connect-redis rounds the TTL up to whole seconds.
    ensure!(
        close(exp, want, 2_000),
        "stored expiry {exp}, cookie {want}"
    );
    Ok(())
}

/// A cookie without expiry is kept for the store's default TTL (one day).
pub async fn default_ttl_without_cookie_expiry(f: &dyn Fixture) -> Result<()> {
    let r = Record::new(SessionId::generate());
    let before = time::now();
    f.store().create(&r).await?;
    let (_, exp) = f.raw(&r.id).await?.context("nothing stored")?;
    let want = time::store_expiry(None, DEFAULT_TTL, before);
    ensure!(
        close(exp, want, 10_000),
        "stored expiry {exp}, wanted about {want}"
    );
    Ok(())
}

/// `touch` moves the expiry and leaves the stored text alone.
pub async fn touch_extends_expiry_and_keeps_data(f: &dyn Fixture) -> Result<()> {
    let mut r = live(1);
    r.cookie.expires = Some(in_secs(600));
    f.store().create(&r).await?;
    let (raw_before, _) = f.raw(&r.id).await?.context("nothing stored")?;
    let later = in_secs(7200);
    ensure!(f.store().touch(&r.id, Some(later)).await? == WriteOutcome::Written);
    let (raw_after, exp) = f.raw(&r.id).await?.context("touch deleted the record")?;
    ensure!(close(exp, later, 2_000), "expiry {exp}, wanted {later}");
    ensure!(raw_after == raw_before, "touch rewrote the data");
    ensure!(must_load(f, &r.id).await?.data["n"] == 1);
    Ok(())
}

/// `touch` without an expiry uses the default TTL.
pub async fn touch_without_expiry_uses_default_ttl(f: &dyn Fixture) -> Result<()> {
    let r = live(1);
    f.store().create(&r).await?;
    let before = time::now();
    ensure!(f.store().touch(&r.id, None).await? == WriteOutcome::Written);
    let (_, exp) = f.raw(&r.id).await?.context("nothing stored")?;
    let want = time::store_expiry(None, DEFAULT_TTL, before);
    ensure!(
        close(exp, want, 10_000),
        "stored expiry {exp}, wanted about {want}"
    );
    Ok(())
}

/// `touch` never creates.
pub async fn touch_missing_is_gone_and_creates_nothing(f: &dyn Fixture) -> Result<()> {
    let id = SessionId::generate();
    ensure!(f.store().touch(&id, Some(in_secs(600))).await? == WriteOutcome::Gone);
    ensure!(f.raw(&id).await?.is_none(), "touch created a record");
    Ok(())
}

/// `touch` after `destroy` does not bring the session back.
pub async fn touch_after_destroy_does_not_resurrect(f: &dyn Fixture) -> Result<()> {
    let r = live(1);
    f.store().create(&r).await?;
    f.store().destroy(&r.id).await?;
    ensure!(f.store().touch(&r.id, Some(in_secs(600))).await? == WriteOutcome::Gone);
    ensure!(f.store().load(&r.id).await?.is_none(), "touch resurrected");
    Ok(())
}

/// `touch` of an expired record is gone and it stays unloadable.
pub async fn touch_after_expiry_is_gone(f: &dyn Fixture) -> Result<()> {
    let r = live(1);
    f.store().create(&r).await?;
    f.force_expire(&r.id).await?;
    ensure!(f.store().touch(&r.id, Some(in_secs(600))).await? == WriteOutcome::Gone);
    ensure!(f.store().load(&r.id).await?.is_none(), "touch revived");
    Ok(())
}

/// `destroy` deletes.
pub async fn destroy_removes_record(f: &dyn Fixture) -> Result<()> {
    let r = live(1);
    let keep = live(2);
    f.store().create(&r).await?;
    f.store().create(&keep).await?;
    f.store().destroy(&r.id).await?;
    ensure!(f.store().load(&r.id).await?.is_none());
    ensure!(f.raw(&r.id).await?.is_none(), "backend still holds it");
    ensure!(
        must_load(f, &keep.id).await?.data["n"] == 2,
        "destroyed too much"
    );
    Ok(())
}

/// `destroy` of an unknown id is fine.
pub async fn destroy_missing_succeeds(f: &dyn Fixture) -> Result<()> {
    f.store().destroy(&SessionId::generate()).await?;
    Ok(())
}

/// Non-ASCII keys and values survive.
pub async fn unicode_keys_and_values(f: &dyn Fixture) -> Result<()> {
    let mut r = live(1);
    r.data
        .insert("名前".into(), json!("Zoë 🚀 \u{0} \"quoted\" \\ ünïcødé"));
    r.data.insert("emoji🔑".into(), json!({"ключ": "значение"}));
    f.store().create(&r).await?;
    ensure!(must_load(f, &r.id).await? == r);
    Ok(())
}

/// Deeply nested values, arrays, numbers, booleans and nulls survive.
pub async fn nested_json(f: &dyn Fixture) -> Result<()> {
    let mut r = live(1);
    let mut deep = json!("leaf");
    for i in 0..40 {
        deep = json!({ "level": i, "child": deep, "list": [1, 2.5, true, null, "x"] });
    }
    r.data.insert("deep".into(), deep);
    r.data
        .insert("big".into(), json!(9_007_199_254_740_991_i64));
    r.data.insert("neg".into(), json!(-0.000_001));
    f.store().create(&r).await?;
    ensure!(must_load(f, &r.id).await? == r);
    Ok(())
}

/// A 1 MiB session round-trips.
pub async fn one_mib_record(f: &dyn Fixture) -> Result<()> {
    let mut r = live(1);
    r.data.insert("blob".into(), json!("x".repeat(1 << 20)));
    f.store().create(&r).await?;
    ensure!(must_load(f, &r.id).await? == r);
    r.data.insert("blob".into(), json!("y".repeat(1 << 20)));
    ensure!(f.store().save(&r).await? == WriteOutcome::Written);
    ensure!(must_load(f, &r.id).await? == r);
    Ok(())
}

/// 10,000 sessions created and loaded back (32 at a time).
pub async fn ten_thousand_sessions(f: &dyn Fixture) -> Result<()> {
    let store = f.store();
    let records: Vec<Record> = (0..10_000).map(live).collect();
    stream::iter(&records)
        .map(|r| {
            let store = store.clone();
            async move { store.create(r).await }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await?;
    stream::iter(&records)
        .map(|r| {
            let store = store.clone();
            async move {
                let back = store.load(&r.id).await?;
                ensure!(back.as_ref() == Some(r), "record {} differs", r.data["n"]);
                Ok(())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// 32 tasks each saving their own session repeatedly do not interfere.
pub async fn concurrent_saves_32_tasks(f: &dyn Fixture) -> Result<()> {
    let mut tasks = Vec::new();
    for t in 0..32 {
        let store = f.store();
        tasks.push(tokio::spawn(async move {
            let mut r = live(t);
            store.create(&r).await?;
            for i in 0..10 {
                r.data.insert("i".into(), i.into());
                ensure!(store.save(&r).await? == WriteOutcome::Written);
            }
            anyhow::Ok(r)
        }));
    }
    for task in tasks {
        let r = task.await??;
        let back = must_load(f, &r.id).await?;
        ensure!(
            back.data["i"] == 9 && back.data["n"] == r.data["n"],
            "{back:?}"
        );
    }
    Ok(())
}

/// ids / count / clear work where the store says they do, and say
/// `Unsupported` where it does not. Expired records are not listed.
pub async fn ids_count_clear(f: &dyn Fixture) -> Result<()> {
    let store = f.store();
    let caps = store.capabilities();
    let live_records = [live(1), live(2), live(3)];
    for r in &live_records {
        store.create(r).await?;
    }
    let dead = live(4);
    store.create(&dead).await?;
    f.force_expire(&dead.id).await?;
    let mut want: Vec<SessionId> = live_records.iter().map(|r| r.id.clone()).collect();
    want.sort();

    match store.ids().await {
        Ok(mut ids) if caps.ids => {
            ids.sort();
            ensure!(ids == want, "ids {ids:?}, wanted {want:?}");
        }
        Err(Error::Unsupported(_)) if !caps.ids => {}
        other => bail!("ids: {other:?} with capabilities {caps:?}"),
    }
    match store.count().await {
        Ok(n) if caps.count => ensure!(n == 3, "count {n}"),
        Err(Error::Unsupported(_)) if !caps.count => {}
        other => bail!("count: {other:?} with capabilities {caps:?}"),
    }
    match store.clear().await {
        Ok(()) if caps.clear => {
            for r in &live_records {
                ensure!(store.load(&r.id).await?.is_none(), "clear left a record");
            }
            if caps.count {
                ensure!(store.count().await? == 0);
            }
        }
        Err(Error::Unsupported(_)) if !caps.clear => {}
        other => bail!("clear: {other:?} with capabilities {caps:?}"),
    }
    Ok(())
}

/// `delete_expired` removes the expired records and only them.
pub async fn delete_expired_removes_only_expired(f: &dyn Fixture) -> Result<()> {
    let store = f.store();
    let (a, b, c, d) = (live(1), live(2), live(3), live(4));
    for r in [&a, &b, &c, &d] {
        store.create(r).await?;
    }
    f.force_expire(&c.id).await?;
    f.force_expire(&d.id).await?;
    match store.delete_expired().await {
        Ok(n) if store.capabilities().delete_expired => {
            ensure!(n == 2, "deleted {n}, wanted 2");
            ensure!(f.raw(&c.id).await?.is_none() && f.raw(&d.id).await?.is_none());
        }
        Err(Error::Unsupported(_)) if !store.capabilities().delete_expired => {}
        other => bail!("delete_expired: {other:?}"),
    }
    ensure!(must_load(f, &a.id).await?.data["n"] == 1);
    ensure!(must_load(f, &b.id).await?.data["n"] == 2);
    Ok(())
}

/// The JSON connect-redis (express-session 1.18) writes, with every cookie
/// field set, loads with all of them.
pub async fn connect_redis_json_loads_all_cookie_fields(f: &dyn Fixture) -> Result<()> {
    let id = SessionId::generate();
    let expires = in_secs(3600);
    let raw = format!(
        r#"{{"cookie":{{"originalMaxAge":3600000,"partitioned":true,"priority":"high","expires":"{}","secure":true,"httpOnly":true,"domain":"example.com","path":"/app","sameSite":"lax"}},"user":{{"name":"bob","roles":["admin"]}},"views":3}}"#,
        time::to_iso(&expires)
    );
    f.put_raw(id.as_str(), &raw, expires).await?;
    let r = must_load(f, &id).await?;
    let c = &r.cookie;
    ensure!(c.original_max_age == Some(3_600_000));
    ensure!(c.expires == Some(expires), "expires {:?}", c.expires);
    ensure!(c.partitioned == Some(true) && c.secure == Some(true) && c.http_only == Some(true));
    ensure!(c.priority == Some(sessionkit_core::Priority::High));
    ensure!(c.same_site == Some(sessionkit_core::SameSite::Lax));
    ensure!(c.domain.as_deref() == Some("example.com") && c.path.as_deref() == Some("/app"));
    ensure!(r.data["user"]["roles"][0] == "admin" && r.data["views"] == 3);
    ensure!(
        r.to_json()? == raw,
        "re-encoded differently: {}",
        r.to_json()?
    );
    Ok(())
}

/// Garbage under an id is a decode error, not a panic and not `None`.
pub async fn garbage_is_decode_error(f: &dyn Fixture) -> Result<()> {
    let id = SessionId::generate();
    f.put_raw(id.as_str(), "not json {", in_secs(3600)).await?;
    match f.store().load(&id).await {
        Err(Error::Decode(_)) => Ok(()),
        other => bail!("expected a decode error, got {other:?}"),
    }
}

/// JSON without `cookie` is a decode error.
pub async fn json_without_cookie_is_decode_error(f: &dyn Fixture) -> Result<()> {
    let id = SessionId::generate();
    f.put_raw(id.as_str(), r#"{"user":"bob"}"#, in_secs(3600))
        .await?;
    match f.store().load(&id).await {
        Err(Error::Decode(_)) => Ok(()),
        other => bail!("expected a decode error, got {other:?}"),
    }
}

/// `load_versioned` + `save_if` with an unchanged record writes, and the
/// returned version chains; without the capability both are `Unsupported`.
pub async fn cas_save_with_loaded_version_writes(f: &dyn Fixture) -> Result<()> {
    let store = f.store();
    let r = live(1);
    store.create(&r).await?;
    if !store.capabilities().compare_and_set {
        ensure!(matches!(
            store.load_versioned(&r.id).await,
            Err(Error::Unsupported(_))
        ));
        ensure!(matches!(
            store.save_if(&r, &Version::new("")).await,
            Err(Error::Unsupported(_))
        ));
        return Ok(());
    }
    let (mut loaded, v1) = store.load_versioned(&r.id).await?.context("not found")?;
    ensure!(loaded == r);
    let (raw, _) = f.raw(&r.id).await?.context("nothing stored")?;
    ensure!(v1.as_str() == raw, "version is not the stored text");
    loaded.data.insert("n".into(), 2.into());
    let CasOutcome::Written(v2) = store.save_if(&loaded, &v1).await? else {
        bail!("save_if with the current version did not write");
    };
    loaded.data.insert("n".into(), 3.into());
    ensure!(
        matches!(store.save_if(&loaded, &v2).await?, CasOutcome::Written(_)),
        "chained save_if"
    );
    ensure!(must_load(f, &r.id).await?.data["n"] == 3);
    Ok(())
}

/// A stale version conflicts and writes nothing.
pub async fn cas_stale_version_conflicts(f: &dyn Fixture) -> Result<()> {
    let store = f.store();
    if !store.capabilities().compare_and_set {
        return Ok(());
    }
    let r = live(1);
    store.create(&r).await?;
    let (mut mine, v1) = store.load_versioned(&r.id).await?.context("not found")?;
    let mut theirs = r.clone();
    theirs.data.insert("by".into(), json!("them"));
    ensure!(store.save(&theirs).await? == WriteOutcome::Written);
    mine.data.insert("by".into(), json!("me"));
    ensure!(
        store.save_if(&mine, &v1).await? == CasOutcome::Conflict,
        "stale write accepted"
    );
    ensure!(
        must_load(f, &r.id).await?.data["by"] == "them",
        "their update was lost"
    );
    Ok(())
}

/// `save_if` never brings back a destroyed or expired session.
pub async fn cas_after_destroy_or_expiry_is_gone(f: &dyn Fixture) -> Result<()> {
    let store = f.store();
    if !store.capabilities().compare_and_set {
        return Ok(());
    }
    let (a, b) = (live(1), live(2));
    store.create(&a).await?;
    store.create(&b).await?;
    let (ra, va) = store.load_versioned(&a.id).await?.context("a")?;
    let (rb, vb) = store.load_versioned(&b.id).await?.context("b")?;
    store.destroy(&a.id).await?;
    f.force_expire(&b.id).await?;
    ensure!(store.save_if(&ra, &va).await? == CasOutcome::Gone);
    ensure!(store.save_if(&rb, &vb).await? == CasOutcome::Gone);
    ensure!(store.load(&a.id).await?.is_none() && store.load(&b.id).await?.is_none());
    Ok(())
}

/// 20 tasks incrementing one counter with compare-and-set and retry lose no update.
pub async fn cas_concurrent_increments_lose_nothing(f: &dyn Fixture) -> Result<()> {
    let store = f.store();
    if !store.capabilities().compare_and_set {
        return Ok(());
    }
    let r = live(0);
    store.create(&r).await?;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let store = store.clone();
        let id = r.id.clone();
        tasks.push(tokio::spawn(async move {
            for _attempt in 0..1000 {
                let (mut rec, v) = store.load_versioned(&id).await?.context("vanished")?;
                let n = rec.data["n"].as_i64().context("n")?;
                rec.data.insert("n".into(), (n + 1).into());
                match store.save_if(&rec, &v).await? {
                    CasOutcome::Written(_) => return anyhow::Ok(()),
                    CasOutcome::Conflict => tokio::task::yield_now().await,
                    CasOutcome::Gone => bail!("session vanished"),
                }
            }
            bail!("no progress after 1000 attempts")
        }));
    }
    for t in tasks {
        t.await??;
    }
    ensure!(must_load(f, &r.id).await?.data["n"] == 20, "lost updates");
    Ok(())
}

// ---- Encryption at rest and hashed ids (stores with something at rest) ----

fn key(byte: u8) -> sessionkit_core::encryption::Key {
    sessionkit_core::encryption::Key::from_bytes([byte; 32])
}

fn sealed_with(keys: &[u8]) -> Result<Codec> {
    Ok(Codec::encrypted(Encryption::new(
        keys.iter().map(|b| key(*b)),
    )?))
}

/// Stored text with a JSON-string wrapping (PostgreSQL's `json` column) removed.
fn unquoted(raw: &str) -> Result<String> {
    if raw.starts_with('"') {
        Ok(serde_json::from_str(raw)?)
    } else {
        Ok(raw.to_owned())
    }
}

/// An encrypted store keeps no session data in clear, round-trips every
/// operation, and a store without the key cannot read its records.
pub async fn encrypted_records_are_opaque_and_round_trip(f: &dyn Fixture) -> Result<()> {
    let Some(store) = f.with_codec(sealed_with(&[1])?) else {
        return Ok(());
    };
    let mut r = live(1);
    r.data.insert("secret".into(), json!("hunter2-marker"));
    store.create(&r).await?;
    let (raw, _) = f.raw(&r.id).await?.context("nothing stored")?;
    let sealed = unquoted(&raw)?;
    ensure!(
        !raw.contains("hunter2-marker") && !sealed.starts_with('{'),
        "stored in clear: {raw}"
    );
    ensure!(store.load(&r.id).await?.as_ref() == Some(&r));
    match f.store().load(&r.id).await {
        Err(Error::Decode(_)) => {}
        other => bail!("a store without encryption read a sealed record: {other:?}"),
    }
    r.data.insert("n".into(), 2.into());
    ensure!(store.save(&r).await? == WriteOutcome::Written);
    ensure!(store.touch(&r.id, Some(in_secs(7200))).await? == WriteOutcome::Written);
    ensure!(store.load(&r.id).await?.context("gone after touch")?.data["n"] == 2);
    if store.capabilities().compare_and_set {
        let (loaded, version) = store.load_versioned(&r.id).await?.context("no record")?;
        ensure!(loaded == r);
        let mut next = loaded.clone();
        next.data.insert("n".into(), 3.into());
        ensure!(matches!(
            store.save_if(&next, &version).await?,
            CasOutcome::Written(_)
        ));
        ensure!(store.save_if(&next, &version).await? == CasOutcome::Conflict);
    }
    store.destroy(&r.id).await?;
    ensure!(store.load(&r.id).await?.is_none());
    Ok(())
}

/// Any change to a sealed record is detected: a decode error, never data.
pub async fn encrypted_tampering_is_decode_error(f: &dyn Fixture) -> Result<()> {
    let Some(store) = f.with_codec(sealed_with(&[1])?) else {
        return Ok(());
    };
    let r = live(1);
    store.create(&r).await?;
    let (raw, expires) = f.raw(&r.id).await?.context("nothing stored")?;
    let mut sealed: Vec<u8> = unquoted(&raw)?.into_bytes();
    let mid = sealed.len() / 2;
    sealed[mid] = if sealed[mid] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(sealed)?;
    let tampered = if raw.starts_with('"') {
        serde_json::to_string(&tampered)?
    } else {
        tampered
    };
    f.put_raw(r.id.as_str(), &tampered, expires).await?;
    match store.load(&r.id).await {
        Err(Error::Decode(_)) => Ok(()),
        other => bail!("expected a decode error for a tampered record, got {other:?}"),
    }
}

/// Someone who can write the store but holds no key copies another user's
/// sealed record under their own session id: it does not open there (the
/// storage key is the record's associated data), and the original still
/// opens under its own id.
pub async fn encrypted_record_copied_under_another_id_does_not_open(f: &dyn Fixture) -> Result<()> {
    let Some(store) = f.with_codec(sealed_with(&[1])?) else {
        return Ok(());
    };
    let mut admin = live(1);
    admin.data.insert("role".into(), "admin".into());
    store.create(&admin).await?;
    let attacker = live(2);
    store.create(&attacker).await?;
    let (raw, expires) = f.raw(&admin.id).await?.context("nothing stored")?;
    f.put_raw(attacker.id.as_str(), &raw, expires).await?;
    match store.load(&attacker.id).await {
        Err(Error::Decode(_)) => {}
        other => bail!("a sealed record opened under another id: {other:?}"),
    }
    ensure!(store.load(&admin.id).await?.as_ref() == Some(&admin));
    Ok(())
}

/// Records sealed under an old key still open after rotation; new records
/// are sealed with the new key only.
pub async fn encryption_key_rotation(f: &dyn Fixture) -> Result<()> {
    let (Some(old), Some(rotated)) = (
        f.with_codec(sealed_with(&[1])?),
        f.with_codec(sealed_with(&[2, 1])?),
    ) else {
        return Ok(());
    };
    let before = live(1);
    old.create(&before).await?;
    ensure!(rotated.load(&before.id).await?.as_ref() == Some(&before));
    let after = live(2);
    rotated.create(&after).await?;
    ensure!(rotated.load(&after.id).await?.as_ref() == Some(&after));
    match old.load(&after.id).await {
        Err(Error::Decode(_)) => Ok(()),
        other => bail!("the old key alone opened a record sealed with the new one: {other:?}"),
    }
}

/// Records in clear are refused by an encrypted store unless it is
/// migrating, and a migrating store seals them on their next write.
pub async fn encryption_refuses_plaintext_unless_migrating(f: &dyn Fixture) -> Result<()> {
    let (Some(strict), Some(migrating)) = (
        f.with_codec(sealed_with(&[1])?),
        f.with_codec(Codec::encrypted(
            Encryption::new([key(1)])?.allow_plaintext_reads(true),
        )),
    ) else {
        return Ok(());
    };
    let mut r = live(1);
    f.store().create(&r).await?;
    match strict.load(&r.id).await {
        Err(Error::Decode(_)) => {}
        other => bail!("a record in clear was accepted: {other:?}"),
    }
    ensure!(migrating.load(&r.id).await?.as_ref() == Some(&r));
    r.data.insert("n".into(), 2.into());
    ensure!(migrating.save(&r).await? == WriteOutcome::Written);
    let (raw, _) = f.raw(&r.id).await?.context("nothing stored")?;
    ensure!(!unquoted(&raw)?.starts_with('{'), "still in clear: {raw}");
    ensure!(strict.load(&r.id).await?.as_ref() == Some(&r));
    Ok(())
}

/// With [`HashedIds`], the backend holds the record under SHA-256 of the
/// id and never under the id itself; every operation still works by id.
pub async fn hashed_ids_store_only_the_digest(f: &dyn Fixture) -> Result<()> {
    let hashed = HashedIds::new(f.store());
    let mut r = live(1);
    hashed.create(&r).await?;
    let key = HashedIds::<()>::key(&r.id);
    ensure!(f.raw(&r.id).await?.is_none(), "the id itself was stored");
    ensure!(f.raw(&key).await?.is_some(), "nothing under the digest");
    ensure!(f.store().load(&r.id).await?.is_none());
    ensure!(hashed.load(&r.id).await?.as_ref() == Some(&r));
    ensure!(matches!(hashed.create(&r).await, Err(Error::Collision)));
    r.data.insert("n".into(), 2.into());
    ensure!(hashed.save(&r).await? == WriteOutcome::Written);
    ensure!(hashed.touch(&r.id, None).await? == WriteOutcome::Written);
    ensure!(hashed.load(&r.id).await?.context("gone")?.data["n"] == 2);
    ensure!(matches!(hashed.ids().await, Err(Error::Unsupported(_))));
    hashed.destroy(&r.id).await?;
    ensure!(f.raw(&key).await?.is_none(), "destroy left the record");
    ensure!(hashed.touch(&r.id, None).await? == WriteOutcome::Gone);
    Ok(())
}

// ---- Per-user index (capability `principal_index`) ----

fn tagged(principal: Option<&str>, agent: &str) -> Result<Record> {
    let mut r = live(1);
    let mut meta = SessionMeta::default();
    meta.principal = principal.map(str::to_owned);
    meta.user_agent = Some(agent.to_owned());
    meta.created = Some(time::now());
    r.set_meta(Some(&meta))?;
    Ok(r)
}

fn sorted_ids(records: &[Record]) -> Vec<String> {
    let mut ids: Vec<String> = records.iter().map(|r| r.id.to_string()).collect();
    ids.sort();
    ids
}

fn ids_of(records: &[&Record]) -> Vec<String> {
    let mut ids: Vec<String> = records.iter().map(|r| r.id.to_string()).collect();
    ids.sort();
    ids
}

/// Without the capability both operations are `Unsupported`; returns
/// whether the store has it.
async fn has_principal_index(store: &dyn Store) -> Result<bool> {
    if store.capabilities().principal_index {
        return Ok(true);
    }
    ensure!(matches!(
        store.principal_sessions("alice").await,
        Err(Error::Unsupported(_))
    ));
    ensure!(matches!(
        store.destroy_principal("alice", None).await,
        Err(Error::Unsupported(_))
    ));
    Ok(false)
}

/// A principal's live sessions are listed with their metadata; expired,
/// destroyed, untagged and other principals' sessions are not.
pub async fn principal_sessions_lists_only_live_ones(f: &dyn Fixture) -> Result<()> {
    let store = f.store();
    if !has_principal_index(&*store).await? {
        return Ok(());
    }
    let a1 = tagged(Some("alice"), "phone")?;
    let a2 = tagged(Some("alice"), "laptop")?;
    let expired = tagged(Some("alice"), "old")?;
    let destroyed = tagged(Some("alice"), "gone")?;
    let bob = tagged(Some("bob"), "desk")?;
    let anonymous = tagged(None, "anon")?;
    for r in [&a1, &a2, &expired, &destroyed, &bob, &anonymous] {
        store.create(r).await?;
    }
    f.force_expire(&expired.id).await?;
    store.destroy(&destroyed.id).await?;
    let listed = store.principal_sessions("alice").await?;
    ensure!(
        sorted_ids(&listed) == ids_of(&[&a1, &a2]),
        "alice's sessions: {:?}",
        sorted_ids(&listed)
    );
    let phone = listed
        .iter()
        .find(|r| r.id == a1.id)
        .context("phone session not listed")?;
    ensure!(phone == &a1, "listed {phone:?}, stored {a1:?}");
    ensure!(phone.meta()?.and_then(|m| m.user_agent).as_deref() == Some("phone"));
    ensure!(sorted_ids(&store.principal_sessions("bob").await?) == ids_of(&[&bob]));
    ensure!(store.principal_sessions("nobody").await?.is_empty());
    Ok(())
}

/// "Log out everywhere else": every session of the principal but the kept
/// one is destroyed, and nobody else's.
pub async fn destroy_principal_keeps_the_current_one(f: &dyn Fixture) -> Result<()> {
    let store = f.store();
    if !has_principal_index(&*store).await? {
        return Ok(());
    }
    let mine: Vec<Record> = (0..3)
        .map(|i| tagged(Some("alice"), &format!("device {i}")))
        .collect::<Result<_>>()?;
    let bob = tagged(Some("bob"), "desk")?;
    for r in mine.iter().chain([&bob]) {
        store.create(r).await?;
    }
    let n = store.destroy_principal("alice", Some(&mine[0].id)).await?;
    ensure!(n == 2, "destroyed {n}, expected 2");
    ensure!(
        store.load(&mine[0].id).await?.is_some(),
        "kept session gone"
    );
    for r in &mine[1..] {
        ensure!(store.load(&r.id).await?.is_none(), "revoked session loads");
    }
    ensure!(store.load(&bob.id).await?.is_some(), "bob was logged out");
    ensure!(sorted_ids(&store.principal_sessions("alice").await?) == ids_of(&[&mine[0]]));
    ensure!(store.destroy_principal("alice", None).await? == 1);
    ensure!(store.principal_sessions("alice").await?.is_empty());
    ensure!(store.destroy_principal("nobody", None).await? == 0);
    Ok(())
}

/// "Revoke this device": a listed session is found by [`Store::listed_id`]
/// and ended by [`Store::destroy_listed`], on the store itself and through
/// [`HashedIds`] (whose listing carries storage keys, not ids).
pub async fn destroy_listed_revokes_one_session(f: &dyn Fixture) -> Result<()> {
    let plain = f.store();
    if !has_principal_index(&*plain).await? {
        return Ok(());
    }
    let hashed: Arc<dyn Store> = Arc::new(HashedIds::new(f.store()));
    for (store, principal) in [(plain, "dave"), (hashed, "erin")] {
        let this = tagged(Some(principal), "this browser")?;
        let other = tagged(Some(principal), "lost phone")?;
        for r in [&this, &other] {
            store.create(r).await?;
        }
        let listed = store.principal_sessions(principal).await?;
        let this_key = store.listed_id(&this.id);
        let other_key = store.listed_id(&other.id);
        ensure!(
            sorted_ids(&listed) == {
                let mut keys = vec![this_key.to_string(), other_key.to_string()];
                keys.sort();
                keys
            },
            "{principal}: listed {:?}",
            sorted_ids(&listed)
        );
        let found = listed
            .iter()
            .find(|r| r.id == other_key)
            .context("the other session is not listed")?;
        ensure!(found.meta()?.and_then(|m| m.user_agent).as_deref() == Some("lost phone"));
        store.destroy_listed(&found.id).await?;
        ensure!(
            store.load(&other.id).await?.is_none(),
            "{principal}: the revoked session still loads"
        );
        ensure!(
            store.load(&this.id).await?.is_some(),
            "{principal}: revoking one ended the other"
        );
        ensure!(
            sorted_ids(&store.principal_sessions(principal).await?) == vec![this_key.to_string()]
        );
        // Destroying a listed id that is no longer there succeeds.
        store.destroy_listed(&found.id).await?;
    }
    Ok(())
}

/// A session whose principal changes (another user logs in on it) or is
/// removed (logout keeping the session) moves in the index; writes through
/// `save`, `save_if` and `touch` keep it where it is.
pub async fn principal_change_moves_the_session(f: &dyn Fixture) -> Result<()> {
    let store = f.store();
    if !has_principal_index(&*store).await? {
        return Ok(());
    }
    let mut r = tagged(Some("alice"), "kiosk")?;
    store.create(&r).await?;
    ensure!(store.touch(&r.id, Some(in_secs(7200))).await? == WriteOutcome::Written);
    ensure!(sorted_ids(&store.principal_sessions("alice").await?) == ids_of(&[&r]));
    let mut meta = r.meta()?.context("no meta")?;
    meta.principal = Some("bob".into());
    r.set_meta(Some(&meta))?;
    ensure!(store.save(&r).await? == WriteOutcome::Written);
    ensure!(
        store.principal_sessions("alice").await?.is_empty(),
        "still alice's"
    );
    ensure!(sorted_ids(&store.principal_sessions("bob").await?) == ids_of(&[&r]));
    if store.capabilities().compare_and_set {
        let (loaded, version) = store.load_versioned(&r.id).await?.context("gone")?;
        let mut next = loaded.clone();
        let mut meta = next.meta()?.context("no meta")?;
        meta.principal = Some("carol".into());
        next.set_meta(Some(&meta))?;
        ensure!(matches!(
            store.save_if(&next, &version).await?,
            CasOutcome::Written(_)
        ));
        ensure!(
            store.principal_sessions("bob").await?.is_empty(),
            "still bob's"
        );
        ensure!(sorted_ids(&store.principal_sessions("carol").await?) == ids_of(&[&next]));
        r = next;
    }
    r.set_meta(None)?;
    ensure!(store.save(&r).await? == WriteOutcome::Written);
    for p in ["alice", "bob", "carol"] {
        ensure!(
            store.principal_sessions(p).await?.is_empty(),
            "{p} still lists a session that has no principal"
        );
    }
    ensure!(store.load(&r.id).await?.is_some());
    Ok(())
}

/// Sessions that died by every route (destroy, expiry, a write with a past
/// expiry) are neither listed nor counted by `destroy_principal`.
pub async fn principal_index_forgets_dead_sessions(f: &dyn Fixture) -> Result<()> {
    let store = f.store();
    if !has_principal_index(&*store).await? {
        return Ok(());
    }
    let records: Vec<Record> = (0..30)
        .map(|i| tagged(Some("dora"), &format!("d{i}")))
        .collect::<Result<_>>()?;
    for r in &records {
        store.create(r).await?;
    }
    for (i, r) in records.iter().enumerate() {
        match i % 3 {
            0 => store.destroy(&r.id).await?,
            1 => f.force_expire(&r.id).await?,
            _ => {
                let mut dead = r.clone();
                dead.cookie.expires = Some(in_secs(-10));
                ensure!(store.save(&dead).await? == WriteOutcome::Written);
            }
        }
    }
    ensure!(store.principal_sessions("dora").await?.is_empty());
    ensure!(store.destroy_principal("dora", None).await? == 0);
    Ok(())
}

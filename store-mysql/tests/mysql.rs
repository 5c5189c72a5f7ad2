//! MySQL-specific behaviour against a real server (`MYSQL_URL`):
//! express-mysql-session's exact DDL, its expiry in rounded seconds, odd
//! names, bad stored data, concurrent creates, the prune task, and servers
//! that are down.

mod common;

use anyhow::{ensure, Context, Result};
use common::{
    builder, closed_port_url, host_port, silent_server, unique_table, url, via, Namespaced, Proxy,
};
use serde_json::json;
use sessionkit_conformance::net;
use sessionkit_core::time::{self, Timestamp};
use sessionkit_core::{
    CasOutcome, Error, Record, SessionId, SessionMeta, Store, Version, WriteOutcome,
};
use sessionkit_mysql::{from_expires, to_expires, MySqlStore, PRUNE_BATCH};
use sqlx::mysql::MySqlPool;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Guards against a hang: a call that never returns fails the test instead
/// of blocking the suite. Not a timing assertion.
const HANG_GUARD: Duration = Duration::from_secs(120);

/// Table names of this test binary start with this.
const PREFIX: &str = "mysql_test";

/// express-mysql-session 3.0.3's `schema.sql`, verbatim.
const NODE_SCHEMA_SQL: &str = "CREATE TABLE IF NOT EXISTS `sessions` (
  `session_id` varchar(128) COLLATE utf8mb4_bin NOT NULL,
  `expires` int(11) unsigned NOT NULL,
  `data` mediumtext COLLATE utf8mb4_bin,
  PRIMARY KEY (`session_id`)
) ENGINE=InnoDB";

fn in_secs(secs: i64) -> Timestamp {
    time::from_millis(time::now().timestamp_millis() + secs * 1000)
}

fn live_record(secs: u64) -> Record {
    let mut r = Record::new(SessionId::generate());
    r.cookie
        .set_max_age(Some(Duration::from_secs(secs)), time::now());
    r
}

async fn pool() -> Result<MySqlPool> {
    Ok(MySqlPool::connect(&url()).await?)
}

async fn drop_table(pool: &MySqlPool, table: &str) -> Result<()> {
    sqlx::query(&format!("DROP TABLE IF EXISTS `{table}`"))
        .execute(pool)
        .await?;
    Ok(())
}

/// Columns (name, type, nullable, collation) and indexes (name, column,
/// unique) of a table.
type Layout = (
    Vec<(String, String, String, Option<String>)>,
    Vec<(String, String, bool)>,
);

async fn layout(pool: &MySqlPool, table: &str) -> Result<Layout> {
    // CAST … AS CHAR: information_schema's columns come back as binary
    // strings on some servers.
    let columns: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
        "SELECT CAST(COLUMN_NAME AS CHAR), CAST(COLUMN_TYPE AS CHAR), CAST(IS_NULLABLE AS CHAR), \
         CAST(COLLATION_NAME AS CHAR) FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
    )
    .bind(table)
    .fetch_all(pool)
    .await?;
    let indexes: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT CAST(INDEX_NAME AS CHAR), CAST(COLUMN_NAME AS CHAR), CAST(NON_UNIQUE AS SIGNED) \
         FROM information_schema.STATISTICS \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY INDEX_NAME, SEQ_IN_INDEX",
    )
    .bind(table)
    .fetch_all(pool)
    .await?;
    Ok((
        columns,
        indexes
            .into_iter()
            .map(|(name, column, non_unique)| (name, column, non_unique == 0))
            .collect(),
    ))
}

/// Writes a row the way express-mysql-session's `set` does.
async fn node_set(store: &MySqlStore, id: &str, data: &str, expires_ms: i64) -> Result<()> {
    // `Math.round(expires.getTime() / 1000)`.
    let expires = (expires_ms as f64 / 1000.0).round() as u32;
    sqlx::query(&format!(
        "INSERT INTO {} (session_id, expires, data) VALUES (?, ?, ?) \
         ON DUPLICATE KEY UPDATE expires = VALUES(expires), data = VALUES(data)",
        store.quoted_table()
    ))
    .bind(id)
    .bind(expires)
    .bind(data)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// express-mysql-session's `get`: the row, then `row.expires < now` means
/// expired, with `now = Math.round(Date.now() / 1000)`.
async fn node_get(store: &MySqlStore, id: &str) -> Result<Option<String>> {
    let row: Option<(Option<Vec<u8>>, u32)> = sqlx::query_as(&format!(
        "SELECT data, expires FROM {} WHERE session_id = ?",
        store.quoted_table()
    ))
    .bind(id)
    .fetch_optional(store.pool())
    .await?;
    let now = (time::now().timestamp_millis() as f64 / 1000.0).round() as u32;
    Ok(match row {
        Some((Some(data), expires)) if expires >= now => Some(String::from_utf8(data)?),
        _ => None,
    })
}

async fn raw_expires(store: &MySqlStore, id: &SessionId) -> Result<Option<u32>> {
    Ok(sqlx::query_scalar(&format!(
        "SELECT expires FROM {} WHERE session_id = ?",
        store.quoted_table()
    ))
    .bind(id.as_str())
    .fetch_optional(store.pool())
    .await?)
}

// ---------------------------------------------------------------------------
// The table.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_is_express_mysql_session_schema_sql_plus_an_expires_index() -> Result<()> {
    let pool = pool().await?;
    let node_table = unique_table(PREFIX);
    sqlx::query(&NODE_SCHEMA_SQL.replace("`sessions`", &format!("`{node_table}`")))
        .execute(&pool)
        .await?;
    let ours = Namespaced::new(PREFIX).await?;
    let result = async {
        let (node_cols, node_idx) = layout(&pool, &node_table).await?;
        let (our_cols, our_idx) = layout(&pool, &ours.table).await?;
        ensure!(
            node_cols == our_cols,
            "columns differ:\n node {node_cols:?}\n ours {our_cols:?}"
        );
        ensure!(node_cols.len() == 3, "{node_cols:?}");
        let primary = |idx: &[(String, String, bool)]| -> Vec<(String, String, bool)> {
            idx.iter().filter(|i| i.0 == "PRIMARY").cloned().collect()
        };
        ensure!(primary(&node_idx) == primary(&our_idx), "{our_idx:?}");
        ensure!(
            our_idx.contains(&("expires".into(), "expires".into(), false)),
            "no index on expires: {our_idx:?}"
        );
        Ok(())
    }
    .await;
    drop_table(&pool, &node_table).await?;
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_made_by_express_mysql_session_is_used_as_it_is() -> Result<()> {
    let pool = pool().await?;
    let table = unique_table(PREFIX);
    sqlx::query(&NODE_SCHEMA_SQL.replace("`sessions`", &format!("`{table}`")))
        .execute(&pool)
        .await?;
    let result = async {
        let before = layout(&pool, &table).await?;
        let store = builder()
            .table(&table)
            .create_schema(true)
            .connect()
            .await?;
        ensure!(layout(&pool, &table).await? == before, "table altered");
        let r = live_record(600);
        store.create(&r).await?;
        ensure!(store.load(&r.id).await?.as_ref() == Some(&r));
        Ok(())
    }
    .await;
    drop_table(&pool, &table).await?;
    result
}

/// A record tagged with `principal` (in its `__meta`), live for an hour.
fn tagged(principal: &str) -> Result<Record> {
    let mut r = live_record(3600);
    let mut meta = SessionMeta::default();
    meta.principal = Some(principal.into());
    r.set_meta(Some(&meta))?;
    Ok(r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn principal_index_is_added_to_a_node_table_and_skips_node_rows() -> Result<()> {
    let pool = pool().await?;
    let table = unique_table(PREFIX);
    sqlx::query(&NODE_SCHEMA_SQL.replace("`sessions`", &format!("`{table}`")))
        .execute(&pool)
        .await?;
    let result = async {
        let before = layout(&pool, &table).await?;
        // Off (the default), the table is left exactly as it is.
        let plain = builder()
            .table(&table)
            .create_schema(true)
            .connect()
            .await?;
        ensure!(layout(&pool, &table).await? == before, "table altered");
        ensure!(!plain.capabilities().principal_index);
        ensure!(matches!(
            plain.destroy_principal("alice", None).await,
            Err(Error::Unsupported(_))
        ));
        // A session Node wrote for alice: the metadata is in `data`, the
        // column does not exist yet (and Node never sets it).
        let from_node = tagged("alice")?;
        node_set(
            &plain,
            from_node.id.as_str(),
            &from_node.to_json()?,
            in_secs(3600).timestamp_millis(),
        )
        .await?;

        // On: two processes starting at once, then a third call.
        let indexed = || {
            builder()
                .table(&table)
                .create_schema(true)
                .principal_index(true)
                .connect()
        };
        let (store, _other) = tokio::try_join!(indexed(), indexed())?;
        store.create_schema().await?;
        ensure!(store.capabilities().principal_index);
        let (columns, indexes) = layout(&pool, &table).await?;
        ensure!(columns[..3] == before.0[..], "{columns:?}");
        ensure!(
            columns[3..]
                == [(
                    "principal".into(),
                    "varchar(255)".into(),
                    "YES".into(),
                    Some("utf8mb4_bin".into())
                )],
            "{columns:?}"
        );
        ensure!(
            indexes.contains(&("principal".into(), "principal".into(), false)),
            "{indexes:?}"
        );

        let from_rust = tagged("alice")?;
        store.create(&from_rust).await?;
        let listed = store.principal_sessions("alice").await?;
        ensure!(listed.len() == 1 && listed[0] == from_rust, "{listed:?}");
        ensure!(store.load(&from_node.id).await?.is_some());
        // `utf8mb4_bin` pads spaces; the index does not.
        ensure!(store.principal_sessions("alice ").await?.is_empty());
        ensure!(store.destroy_principal("alice ", None).await? == 0);

        // Node rewrites the Rust session for bob: the column still says
        // alice, the decoded record does not, so neither lists it.
        let mut rewritten = tagged("bob")?;
        rewritten.id = from_rust.id.clone();
        node_set(
            &store,
            rewritten.id.as_str(),
            &rewritten.to_json()?,
            in_secs(3600).timestamp_millis(),
        )
        .await?;
        ensure!(store.principal_sessions("alice").await?.is_empty());
        ensure!(store.principal_sessions("bob").await?.is_empty());

        ensure!(store.destroy_principal("alice", None).await? == 1);
        ensure!(store.load(&from_node.id).await?.is_some(), "Node row left");
        // Written by Rust, the Node session joins the index; touch keeps it.
        let loaded = store.load(&from_node.id).await?.context("gone")?;
        ensure!(store.save(&loaded).await? == WriteOutcome::Written);
        ensure!(store.touch(&loaded.id, None).await? == WriteOutcome::Written);
        ensure!(store.principal_sessions("alice").await?.len() == 1);

        // A principal the column cannot hold is refused, not truncated.
        let long = tagged(&"x".repeat(sessionkit_mysql::MAX_PRINCIPAL_CHARS + 1))?;
        ensure!(matches!(store.create(&long).await, Err(Error::Encode(_))));
        Ok(())
    }
    .await;
    drop_table(&pool, &table).await?;
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_schema_is_idempotent_and_safe_concurrently() -> Result<()> {
    let pool = pool().await?;
    let table = unique_table(PREFIX);
    let result = async {
        let store = builder().table(&table).connect().await?;
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move { store.create_schema().await }));
        }
        for t in tasks {
            t.await??;
        }
        store.create_schema().await?;
        let r = live_record(600);
        store.create(&r).await?;
        ensure!(store.load(&r.id).await?.is_some());
        Ok(())
    }
    .await;
    drop_table(&pool, &table).await?;
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_table_and_column_names_are_quoted() -> Result<()> {
    let table = format!("{} `odd` é", unique_table(PREFIX));
    let ns = Namespaced::with(PREFIX, |b| {
        b.table(&table).columns("sid`x", "exp ires", "sess;data")
    })
    .await?;
    let store = &ns.store;
    ensure!(store.quoted_table().contains("``odd``"));
    let mut r = live_record(600);
    store.create(&r).await?;
    r.data.insert("n".into(), json!(1));
    ensure!(store.save(&r).await? == WriteOutcome::Written);
    ensure!(store.touch(&r.id, Some(in_secs(900))).await? == WriteOutcome::Written);
    ensure!(store.load(&r.id).await?.as_ref() == Some(&r));
    ensure!(store.count().await? == 1);
    ensure!(store.ids().await? == vec![r.id.clone()]);
    let (_, v) = store.load_versioned(&r.id).await?.context("gone")?;
    ensure!(matches!(
        store.save_if(&r, &v).await?,
        CasOutcome::Written(_)
    ));
    ensure!(store.delete_expired().await? == 0);
    store.destroy(&r.id).await?;
    ensure!(store.load(&r.id).await?.is_none());
    Ok(())
}

// ---------------------------------------------------------------------------
// Sharing rows with express-mysql-session.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_and_rust_agree_on_rows_and_expiry() -> Result<()> {
    let ns = Namespaced::new(PREFIX).await?;
    let store = &ns.store;

    // Node writes, Rust reads (express-session JSON, `expires` rounded).
    let id = SessionId::generate();
    let expires = in_secs(600);
    let node_json = format!(
        r#"{{"cookie":{{"originalMaxAge":600000,"expires":"{}","httpOnly":true,"path":"/"}},"user":"bob"}}"#,
        time::to_iso(&expires)
    );
    node_set(store, id.as_str(), &node_json, expires.timestamp_millis()).await?;
    let r = store.load(&id).await?.context("Node's row not loaded")?;
    ensure!(r.data["user"] == "bob");
    ensure!(r.to_json()? == node_json, "re-encoded differently");

    // Rust writes, Node reads; `expires` is Math.round(ms / 1000).
    let mut mine = live_record(3600);
    mine.data.insert("cart".into(), json!(["a"]));
    store.create(&mine).await?;
    let want = to_expires(&mine.cookie.expires.context("expires")?);
    ensure!(raw_expires(store, &mine.id).await? == Some(want));
    ensure!(node_get(store, mine.id.as_str()).await? == Some(mine.to_json()?));

    // A row expired for Node (expires < now) is expired for Rust too; a
    // Node touch after that would not bring it back for Rust's save.
    let old = SessionId::generate();
    let past = in_secs(-2).timestamp_millis();
    node_set(store, old.as_str(), &node_json, past).await?;
    ensure!(node_get(store, old.as_str()).await?.is_none());
    ensure!(store.load(&old).await?.is_none());
    ensure!(store.count().await? == 2);
    ensure!(store.delete_expired().await? == 1);
    ensure!(from_expires(want) == time::from_millis(i64::from(want) * 1000));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_past_2106_is_clamped_to_the_column() -> Result<()> {
    let ns = Namespaced::new(PREFIX).await?;
    let store = &ns.store;
    let mut r = Record::new(SessionId::generate());
    r.cookie.expires = time::parse_iso("2200-01-01T00:00:00.000Z");
    store.create(&r).await?;
    ensure!(raw_expires(store, &r.id).await? == Some(u32::MAX));
    ensure!(store.load(&r.id).await?.as_ref() == Some(&r));
    ensure!(store.touch(&r.id, r.cookie.expires).await? == WriteOutcome::Written);
    Ok(())
}

// ---------------------------------------------------------------------------
// Bad stored data and bad records: errors, never panics.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_that_are_not_sessions_are_decode_errors() -> Result<()> {
    let ns = Namespaced::new(PREFIX).await?;
    let store = &ns.store;
    let t = store.quoted_table();
    for data in [
        Some("not json {"),
        Some(""),
        Some("[1,2,3]"),
        Some(r#"{"cookie":"#),
        None,
    ] {
        let id = SessionId::generate();
        sqlx::query(&format!(
            "INSERT INTO {t} (session_id, expires, data) VALUES (?, ?, ?)"
        ))
        .bind(id.as_str())
        .bind(to_expires(&in_secs(600)))
        .bind(data)
        .execute(store.pool())
        .await?;
        let loaded = store.load(&id).await;
        ensure!(
            matches!(loaded, Err(Error::Decode(_))),
            "{data:?}: {loaded:?}"
        );
        let versioned = store.load_versioned(&id).await;
        ensure!(
            matches!(versioned, Err(Error::Decode(_))),
            "{data:?}: {versioned:?}"
        );
        // The id stays taken, and the row can still be destroyed.
        let mut r = live_record(600);
        r.id = id.clone();
        ensure!(matches!(store.create(&r).await, Err(Error::Collision)));
        store.destroy(&id).await?;
        ensure!(store.load(&id).await?.is_none());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_larger_than_mediumtext_is_an_encode_error() -> Result<()> {
    let ns = Namespaced::new(PREFIX).await?;
    let store = &ns.store;
    let mut r = live_record(600);
    r.data.insert("blob".into(), json!("x".repeat(17 << 20)));
    ensure!(matches!(store.create(&r).await, Err(Error::Encode(_))));
    ensure!(
        raw_expires(store, &r.id).await?.is_none(),
        "something stored"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_and_set_compares_bytes_not_the_padded_collation() -> Result<()> {
    let ns = Namespaced::new(PREFIX).await?;
    let store = &ns.store;
    let r = live_record(600);
    // Stored with a trailing space (valid JSON): utf8mb4_bin would call it
    // equal to the text without the space.
    let stored = format!("{} ", r.to_json()?);
    sqlx::query(&format!(
        "INSERT INTO {} (session_id, expires, data) VALUES (?, ?, ?)",
        store.quoted_table()
    ))
    .bind(r.id.as_str())
    .bind(to_expires(&in_secs(600)))
    .bind(&stored)
    .execute(store.pool())
    .await?;
    let (loaded, v) = store.load_versioned(&r.id).await?.context("not found")?;
    ensure!(v.as_str() == stored);
    let trimmed = Version::new(stored.trim_end());
    ensure!(store.save_if(&loaded, &trimmed).await? == CasOutcome::Conflict);
    ensure!(matches!(
        store.save_if(&loaded, &v).await?,
        CasOutcome::Written(_)
    ));
    Ok(())
}

// ---------------------------------------------------------------------------
// Concurrency.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_of_one_id_make_exactly_one_session() -> Result<()> {
    let ns = Namespaced::new(PREFIX).await?;
    let store = Arc::new(ns.store.clone());
    for expired_first in [false, true] {
        let base = live_record(600);
        if expired_first {
            // An expired row not yet pruned holds the id.
            node_set(
                &ns.store,
                base.id.as_str(),
                &base.to_json()?,
                in_secs(-5).timestamp_millis(),
            )
            .await?;
        }
        let mut tasks = Vec::new();
        for n in 0..16 {
            let store = store.clone();
            let mut r = base.clone();
            r.data.insert("n".into(), json!(n));
            tasks.push(tokio::spawn(async move { (n, store.create(&r).await) }));
        }
        let mut winners = Vec::new();
        for t in tasks {
            match t.await? {
                (n, Ok(())) => winners.push(n),
                (_, Err(Error::Collision)) => {}
                (_, Err(e)) => return Err(e.into()),
            }
        }
        ensure!(winners.len() == 1, "winners {winners:?}");
        let stored = store.load(&base.id).await?.context("no session")?;
        ensure!(stored.data["n"] == json!(winners[0]), "a loser overwrote");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_expired_works_through_batches() -> Result<()> {
    let ns = Namespaced::new(PREFIX).await?;
    let store = &ns.store;
    let n = PRUNE_BATCH * 2 + 17;
    let values: Vec<String> = (0..n)
        .map(|i| format!("('expired_{i:08}', 1, '{{}}')"))
        .collect();
    sqlx::query(&format!(
        "INSERT INTO {} (session_id, expires, data) VALUES {}",
        store.quoted_table(),
        values.join(",")
    ))
    .execute(store.pool())
    .await?;
    let keep = live_record(600);
    store.create(&keep).await?;
    ensure!(store.delete_expired().await? == n);
    ensure!(store.delete_expired().await? == 0);
    ensure!(store.load(&keep.id).await?.is_some());
    Ok(())
}

// ---------------------------------------------------------------------------
// The prune task.

/// Collects what the `fmt` subscriber writes.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn contains(&self, needle: &str) -> bool {
        self.0
            .lock()
            .map(|v| String::from_utf8_lossy(&v).contains(needle))
            .unwrap_or(false)
    }
}

// A current-thread runtime: the prune task runs on this thread, where the
// capturing subscriber is installed.
#[tokio::test]
async fn prune_task_logs_errors_keeps_running_and_stops() -> Result<()> {
    let logs = Capture::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let table = unique_table(PREFIX);
    let pool = pool().await?;
    let result = async {
        let store = builder()
            .table(&table)
            .create_schema(true)
            .prune_interval(Some(Duration::from_millis(10)))
            .connect()
            .await?;
        ensure!(store.is_pruning());
        let t = store.quoted_table().to_owned();
        // Break pruning: the table disappears under the task.
        sqlx::query(&format!("DROP TABLE {t}"))
            .execute(store.pool())
            .await?;
        tokio::time::timeout(HANG_GUARD, async {
            while !logs.contains("pruning expired sessions failed") {
                tokio::task::yield_now().await;
            }
        })
        .await
        .context("no prune failure logged")?;
        ensure!(store.is_pruning(), "the task died");

        // Repair: the same task prunes again.
        store.create_schema().await?;
        let old = SessionId::generate();
        node_set(
            &store,
            old.as_str(),
            "{\"cookie\":{}}",
            in_secs(-60).timestamp_millis(),
        )
        .await?;
        tokio::time::timeout(HANG_GUARD, async {
            while raw_expires(&store, &old).await?.is_some() {
                tokio::task::yield_now().await;
            }
            anyhow::Ok(())
        })
        .await
        .context("expired row never pruned")??;

        store.stop_pruning().await;
        ensure!(!store.is_pruning());
        // The store still works without its task.
        let r = live_record(60);
        store.create(&r).await?;
        ensure!(store.load(&r.id).await?.is_some());
        Ok(())
    }
    .await;
    drop_table(&pool, &table).await?;
    result
}

// ---------------------------------------------------------------------------
// Servers that are down.

#[tokio::test]
async fn server_down_is_a_clear_transient_error() -> Result<()> {
    let e = net::expect_unavailable(
        MySqlStore::builder(closed_port_url()?)
            .connect_timeout(Duration::from_millis(500))
            .connect(),
    )
    .await?;
    let cause = std::error::Error::source(&e)
        .context("cause kept")?
        .to_string();
    ensure!(cause.to_lowercase().contains("refused"), "cause: {cause}");
    Ok(())
}

#[tokio::test]
async fn server_that_never_answers_times_out() -> Result<()> {
    let (_listener, url) = silent_server()?;
    net::expect_unavailable(
        MySqlStore::builder(url)
            .connect_timeout(Duration::from_millis(500))
            .connect(),
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn wrong_password_is_a_backend_error_not_transient() -> Result<()> {
    let bad = url().replacen("mysql://root", "mysql://no_such_user:x", 1);
    let result = tokio::time::timeout(HANG_GUARD, MySqlStore::builder(bad).connect())
        .await
        .context("connect hung")?;
    let e = result.err().context("connected as an unknown user")?;
    ensure!(
        matches!(e, Error::Backend { .. }),
        "expected Backend, got {e:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_going_away_and_coming_back() -> Result<()> {
    let mut proxy = Proxy::start("127.0.0.1:0", host_port(&url(), 3306)?).await?;
    let addr = proxy.addr;
    let table = unique_table(PREFIX);
    let store = MySqlStore::builder(via(&url(), addr))
        .table(&table)
        .create_schema(true)
        .prune_interval(None)
        .connect_timeout(Duration::from_millis(500))
        .connect()
        .await?;
    let result = async {
        let r = live_record(600);
        store.create(&r).await?;

        // Down: every call is a transient error, never a hang or a panic.
        proxy.stop().await;
        let e = tokio::time::timeout(HANG_GUARD, store.load(&r.id))
            .await
            .context("load hung")?
            .err()
            .context("load succeeded with the server down")?;
        ensure!(matches!(e, Error::Unavailable { .. }), "{e:?}");
        let e = tokio::time::timeout(HANG_GUARD, store.save(&r))
            .await
            .context("save hung")?
            .err()
            .context("save succeeded with the server down")?;
        ensure!(e.is_transient(), "{e:?}");

        // Back on the same address: the pool reconnects by itself.
        let mut back = Proxy::start(&addr.to_string(), host_port(&url(), 3306)?).await?;
        let loaded = store.load(&r.id).await;
        back.stop().await;
        ensure!(
            loaded?.as_ref() == Some(&r),
            "session lost across the outage"
        );
        Ok(())
    }
    .await;
    drop_table(&pool().await?, &table).await?;
    result
}

// ---------------------------------------------------------------------------
// Servers that stop answering: every operation is bounded.

/// The operation timeout of the hang tests.
const BOUND: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_answering_is_unavailable_within_the_operation_timeout() -> Result<()> {
    let proxy = Proxy::start("127.0.0.1:0", host_port(&url(), 3306)?).await?;
    let table = unique_table(PREFIX);
    let store = MySqlStore::builder(via(&url(), proxy.addr))
        .table(&table)
        .create_schema(true)
        .prune_interval(None)
        .principal_index(true)
        .connect_timeout(BOUND)
        .operation_timeout(BOUND)
        .connect()
        .await?;
    let r = live_record(600);
    store.create(&r).await?;
    proxy.pause();
    let other = live_record(600);
    let took = [
        net::expect_bounded(store.load(&r.id)).await?,
        net::expect_bounded(store.create(&other)).await?,
        net::expect_bounded(store.save(&r)).await?,
        net::expect_bounded(store.touch(&r.id, None)).await?,
        net::expect_bounded(store.destroy(&r.id)).await?,
        net::expect_bounded(store.principal_sessions("alice")).await?,
        net::expect_bounded(store.count()).await?,
    ];
    eprintln!("mysql, server not answering: Unavailable after {took:?} (bound {BOUND:?})");
    proxy.resume();
    let pool = MySqlPool::connect(&url()).await?;
    sqlx::query(&format!("DROP TABLE IF EXISTS `{table}`"))
        .execute(&pool)
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_locked_by_another_client_is_unavailable_within_the_operation_timeout() -> Result<()>
{
    use sqlx::{Connection, Executor};
    let fixture = Namespaced::with(PREFIX, |b| b.operation_timeout(BOUND)).await?;
    let store = &fixture.store;
    let r = live_record(600);
    store.create(&r).await?;
    // Another client locks the table for writing and keeps the lock.
    let mut locker = sqlx::MySqlConnection::connect(&url()).await?;
    locker
        .execute(format!("LOCK TABLES {} WRITE", store.quoted_table()).as_str())
        .await?;
    let took = [
        net::expect_bounded(store.load(&r.id)).await?,
        net::expect_bounded(store.save(&r)).await?,
        net::expect_bounded(store.touch(&r.id, None)).await?,
    ];
    eprintln!("mysql, table locked: Unavailable after {took:?} (bound {BOUND:?})");
    locker.execute("UNLOCK TABLES").await?;
    let loaded = tokio::time::timeout(HANG_GUARD, store.load(&r.id))
        .await
        .context("load hung after the lock was released")??;
    ensure!(loaded.as_ref() == Some(&r), "session lost behind the lock");
    Ok(())
}

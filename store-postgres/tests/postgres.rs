//! PostgreSQL-specific behaviour against a real server (`DATABASE_URL`):
//! connect-pg-simple's exact DDL, concurrent schema creation, the time-zone
//! rule shared with node-postgres, the prune task, and servers that are down.

mod common;

use anyhow::{ensure, Context, Result};
use common::{
    builder, closed_port_url, host_port, silent_server, unique_schema, url, via, Namespaced, Proxy,
};
use sessionkit_conformance::net;
use sessionkit_core::time::{self, Timestamp};
use sessionkit_core::{Error, Record, SessionId, SessionMeta, Store, WriteOutcome};
use sessionkit_postgres::PostgresStore;
use sqlx::postgres::{PgConnection, PgPoolOptions};
use sqlx::{Connection, Executor};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Guards against a hang: a call that never returns fails the test instead
/// of blocking the suite. Not a timing assertion.
const HANG_GUARD: Duration = Duration::from_secs(120);

fn in_secs(secs: i64) -> Timestamp {
    time::from_millis(time::now().timestamp_millis() + secs * 1000)
}

fn live_record(secs: u64) -> Record {
    let mut r = Record::new(SessionId::generate());
    r.cookie
        .set_max_age(Some(Duration::from_secs(secs)), time::now());
    r
}

async fn drop_schema(schema: &str) -> Result<()> {
    let mut c = PgConnection::connect(&url()).await?;
    c.execute(format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE").as_str())
        .await?;
    Ok(())
}

/// Columns (name, type, not null), primary key and indexes of a table.
type Layout = (
    Vec<(String, String, bool)>,
    Vec<(String, String)>,
    Vec<(String, String)>,
);

async fn layout(c: &mut PgConnection, schema: &str, table: &str) -> Result<Layout> {
    let qualified = format!("\"{schema}\".\"{table}\"");
    let columns = sqlx::query_as(
        "SELECT attname::text, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute \
         WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
    )
    .bind(&qualified)
    .fetch_all(&mut *c)
    .await?;
    let constraints = sqlx::query_as(
        "SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint \
         WHERE conrelid = $1::regclass ORDER BY conname",
    )
    .bind(&qualified)
    .fetch_all(&mut *c)
    .await?;
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT indexname::text, indexdef FROM pg_indexes \
         WHERE schemaname = $1 AND tablename = $2 ORDER BY indexname",
    )
    .bind(schema)
    .bind(table)
    .fetch_all(&mut *c)
    .await?;
    // Index definitions name the schema: compare them without it.
    let indexes = indexes
        .into_iter()
        .map(|(n, d)| (n, d.replace(&format!("{schema}."), "")))
        .collect();
    Ok((columns, constraints, indexes))
}

/// connect-pg-simple's `table.sql`, verbatim, with the table name qualified
/// the way its `createTableIfMissing` does.
fn connect_pg_simple_table_sql(schema: &str) -> String {
    r#"CREATE TABLE "session" (
  "sid" varchar NOT NULL COLLATE "default",
  "sess" json NOT NULL,
  "expire" timestamp(6) NOT NULL
)
WITH (OIDS=FALSE);

ALTER TABLE "session" ADD CONSTRAINT "session_pkey" PRIMARY KEY ("sid") NOT DEFERRABLE INITIALLY IMMEDIATE;

CREATE INDEX "IDX_session_expire" ON "session" ("expire");
"#
    .replace("\"session\"", &format!("\"{schema}\".\"session\""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_is_connect_pg_simple_table_sql() -> Result<()> {
    let ns = Namespaced::new().await?;
    let node_schema = unique_schema();
    let mut c = PgConnection::connect(&url()).await?;
    c.execute(format!("CREATE SCHEMA \"{node_schema}\"").as_str())
        .await?;
    sqlx::raw_sql(&connect_pg_simple_table_sql(&node_schema))
        .execute(&mut c)
        .await?;
    let ours = layout(&mut c, &ns.schema, "session").await?;
    let node = layout(&mut c, &node_schema, "session").await;
    drop_schema(&node_schema).await?;
    let node = node?;
    assert_eq!(ours, node, "same DDL as connect-pg-simple");
    assert_eq!(
        ours.0,
        vec![
            ("sid".into(), "character varying".into(), true),
            ("sess".into(), "json".into(), true),
            (
                "expire".into(),
                "timestamp(6) without time zone".into(),
                true
            ),
        ]
    );
    assert_eq!(
        ours.1,
        vec![("session_pkey".into(), "PRIMARY KEY (sid)".into())]
    );
    assert!(ours.2.iter().any(|(name, def)| name == "IDX_session_expire"
        && def == "CREATE INDEX \"IDX_session_expire\" ON session USING btree (expire)"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_made_by_connect_pg_simple_is_used_as_it_is() -> Result<()> {
    let schema = unique_schema();
    let mut c = PgConnection::connect(&url()).await?;
    c.execute(format!("CREATE SCHEMA \"{schema}\"").as_str())
        .await?;
    sqlx::raw_sql(&connect_pg_simple_table_sql(&schema))
        .execute(&mut c)
        .await?;
    let before = layout(&mut c, &schema, "session").await?;
    let result = async {
        let store = builder()
            .schema(&schema)
            .create_schema(true)
            .connect()
            .await?;
        store.create_schema().await?;
        ensure!(
            layout(&mut c, &schema, "session").await? == before,
            "table altered"
        );
        let mut r = live_record(3600);
        store.create(&r).await?;
        r.data.insert("n".into(), 1.into());
        ensure!(store.save(&r).await? == WriteOutcome::Written);
        ensure!(store.load(&r.id).await?.as_ref() == Some(&r));
        Ok(())
    }
    .await;
    drop_schema(&schema).await?;
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
async fn principal_index_is_added_to_a_connect_pg_simple_table_and_skips_node_rows() -> Result<()> {
    let schema = unique_schema();
    let mut c = PgConnection::connect(&url()).await?;
    c.execute(format!("CREATE SCHEMA \"{schema}\"").as_str())
        .await?;
    sqlx::raw_sql(&connect_pg_simple_table_sql(&schema))
        .execute(&mut c)
        .await?;
    let before = layout(&mut c, &schema, "session").await?;
    let result = async {
        let t = format!("\"{schema}\".\"session\"");
        // A session Node wrote for alice: the metadata is in `sess`, the
        // column (which connect-pg-simple does not know) stays NULL.
        let from_node = tagged("alice")?;
        node_set(&mut c, &t, &from_node.id, &from_node.to_json()?, now_secs() + 3600).await?;

        // Off (the default), the table is left exactly as it is.
        let plain = builder().schema(&schema).create_schema(true).connect().await?;
        ensure!(layout(&mut c, &schema, "session").await? == before, "altered");
        ensure!(!plain.capabilities().principal_index);
        ensure!(matches!(
            plain.principal_sessions("alice").await,
            Err(Error::Unsupported(_))
        ));

        // On: two processes starting at once, then a third call.
        let indexed = || {
            builder()
                .schema(&schema)
                .create_schema(true)
                .principal_index(true)
                .connect()
        };
        let (store, _other) = tokio::try_join!(indexed(), indexed())?;
        store.create_schema().await?;
        ensure!(store.capabilities().principal_index);
        let (columns, _, indexes) = layout(&mut c, &schema, "session").await?;
        ensure!(columns[..3] == before.0[..], "{columns:?}");
        ensure!(columns[3..] == [("principal".into(), "text".into(), false)]);
        ensure!(
            indexes.iter().any(|(name, def)| name == "IDX_session_principal"
                && def == "CREATE INDEX \"IDX_session_principal\" ON session USING btree (principal)"),
            "{indexes:?}"
        );

        let from_rust = tagged("alice")?;
        store.create(&from_rust).await?;
        let listed = store.principal_sessions("alice").await?;
        ensure!(listed.len() == 1 && listed[0] == from_rust, "{listed:?}");
        ensure!(store.load(&from_node.id).await?.is_some());

        // Node rewrites the Rust session for bob: the column still says
        // alice, the decoded record does not, so neither lists it.
        let mut rewritten = tagged("bob")?;
        rewritten.id = from_rust.id.clone();
        node_set(&mut c, &t, &rewritten.id, &rewritten.to_json()?, now_secs() + 3600).await?;
        ensure!(store.principal_sessions("alice").await?.is_empty());
        ensure!(store.principal_sessions("bob").await?.is_empty());

        ensure!(store.destroy_principal("alice", None).await? == 1);
        ensure!(store.load(&from_node.id).await?.is_some(), "Node row left");
        // Written by Rust, the Node session joins the index; touch keeps it.
        let loaded = store.load(&from_node.id).await?.context("gone")?;
        ensure!(store.save(&loaded).await? == WriteOutcome::Written);
        ensure!(store.touch(&loaded.id, None).await? == WriteOutcome::Written);
        ensure!(store.principal_sessions("alice").await?.len() == 1);
        Ok(())
    }
    .await;
    drop_schema(&schema).await?;
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_schema_is_idempotent_and_safe_concurrently() -> Result<()> {
    for _ in 0..5 {
        let schema = unique_schema();
        let result = async {
            // Two pools, as two processes starting at the same moment would have.
            let (a, b) = tokio::try_join!(
                builder().schema(&schema).connect(),
                builder().schema(&schema).connect()
            )?;
            let (ra, rb) = tokio::join!(a.create_schema(), b.create_schema());
            ra.context("first process")?;
            rb.context("second process")?;
            a.create_schema().await.context("third call")?;
            let r = live_record(60);
            a.create(&r).await?;
            ensure!(b.load(&r.id).await?.is_some());
            Ok(())
        }
        .await;
        drop_schema(&schema).await?;
        result?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_schema_and_table_names_are_quoted() -> Result<()> {
    let schema = format!("{} \"Odd\"", unique_schema());
    let result = async {
        let store = builder()
            .schema(&schema)
            .table("my sessions; DROP TABLE x")
            .create_schema(true)
            .connect()
            .await?;
        let r = live_record(60);
        store.create(&r).await?;
        ensure!(store.load(&r.id).await?.is_some());
        let index: Option<String> = sqlx::query_scalar(
            "SELECT indexname::text FROM pg_indexes WHERE schemaname = $1 AND indexname = $2",
        )
        .bind(&schema)
        .bind("IDX_my sessions; DROP TABLE x_expire")
        .fetch_optional(store.pool())
        .await?;
        ensure!(index.is_some(), "index named after the table");
        Ok(())
    }
    .await;
    let mut c = PgConnection::connect(&url()).await?;
    c.execute(
        format!(
            "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
            schema.replace('"', "\"\"")
        )
        .as_str(),
    )
    .await?;
    result
}

#[tokio::test]
async fn unknown_time_zone_is_a_config_error() -> Result<()> {
    let result = builder().time_zone("Mars/Olympus_Mons").connect().await;
    assert!(matches!(result, Err(Error::Config(_))), "{result:?}");
    Ok(())
}

// ---------------------------------------------------------------------------
// The time-zone rule. A node-postgres connection uses the server's default
// TimeZone; it is emulated by a second connection with `SET TimeZone`,
// running connect-pg-simple's own statements.

/// A connection that behaves like node-postgres on a server whose default
/// zone is `zone`.
async fn node_connection(zone: &str) -> Result<PgConnection> {
    let mut c = PgConnection::connect(&url()).await?;
    sqlx::query("SELECT set_config('TimeZone', $1, false)")
        .bind(zone)
        .execute(&mut c)
        .await?;
    Ok(c)
}

/// connect-pg-simple's `set`: `expire = to_timestamp(<seconds>)`.
async fn node_set(
    c: &mut PgConnection,
    t: &str,
    id: &SessionId,
    json: &str,
    expire_secs: i64,
) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO {t} (sess, expire, sid) SELECT $1::json, to_timestamp($2::float8), $3 \
         ON CONFLICT (sid) DO UPDATE SET sess=$1::json, expire=to_timestamp($2::float8) RETURNING sid"
    ))
    .bind(json)
    .bind(expire_secs as f64)
    .bind(id.as_str())
    .fetch_one(c)
    .await?;
    Ok(())
}

/// connect-pg-simple's `get`: `expire >= to_timestamp(<now seconds>)`.
async fn node_get(
    c: &mut PgConnection,
    t: &str,
    id: &SessionId,
    now_secs: i64,
) -> Result<Option<String>> {
    Ok(sqlx::query_scalar(&format!(
        "SELECT sess::text FROM {t} WHERE sid = $1 AND expire >= to_timestamp($2::float8)"
    ))
    .bind(id.as_str())
    .bind(now_secs as f64)
    .fetch_optional(c)
    .await?)
}

fn now_secs() -> i64 {
    // connect-pg-simple's currentTimestamp(): Math.ceil(Date.now() / 1000).
    (time::now().timestamp_millis() + 999) / 1000
}

async fn node_and_rust_agree(zone: &str) -> Result<()> {
    let ns = Namespaced::with(|b| b.time_zone(zone)).await?;
    let store = &ns.store;
    let t = store.qualified_table();
    let mut node = node_connection(zone).await?;
    let json = Record::new(SessionId::generate()).to_json()?;

    // Node writes a session that lives another hour: Rust loads it, and
    // reads the same expiry instant back.
    let alive = SessionId::generate();
    let expire = now_secs() + 3600;
    node_set(&mut node, t, &alive, &json, expire).await?;
    ensure!(
        store.load(&alive).await?.is_some(),
        "{zone}: node session not loaded"
    );
    let stored: Timestamp = sqlx::query_scalar(&format!(
        "SELECT expire AT TIME ZONE $2 FROM {t} WHERE sid = $1"
    ))
    .bind(alive.as_str())
    .bind(store.time_zone())
    .fetch_one(store.pool())
    .await?;
    ensure!(
        stored.timestamp() == expire,
        "{zone}: read {stored}, node wrote {expire}"
    );

    // Node writes a session that expired ten minutes ago (well inside any
    // zone offset): Rust does not load it, and prunes it.
    let dead = SessionId::generate();
    node_set(&mut node, t, &dead, &json, now_secs() - 600).await?;
    ensure!(
        store.load(&dead).await?.is_none(),
        "{zone}: expired node session loaded"
    );
    ensure!(
        store.touch(&dead, None).await? == WriteOutcome::Gone,
        "{zone}: touch revived"
    );
    ensure!(
        store.delete_expired().await? == 1,
        "{zone}: prune missed it"
    );
    ensure!(
        store.load(&alive).await?.is_some(),
        "{zone}: prune took a live one"
    );

    // Rust writes a session for an hour: Node sees it now, not two hours
    // from now (a zone mix-up shifts expiry by the zone's offset).
    let r = live_record(3600);
    store.create(&r).await?;
    ensure!(
        node_get(&mut node, t, &r.id, now_secs()).await?.is_some(),
        "{zone}: node misses it"
    );
    ensure!(
        node_get(&mut node, t, &r.id, now_secs() + 7200)
            .await?
            .is_none(),
        "{zone}: node would keep it too long"
    );
    // ... and Node's prune (`expire < to_timestamp(now)`) leaves it alone.
    let pruned = sqlx::query(&format!(
        "DELETE FROM {t} WHERE expire < to_timestamp($1::float8)"
    ))
    .bind(now_secs() as f64)
    .execute(&mut node)
    .await?;
    ensure!(
        pruned.rows_affected() == 0,
        "{zone}: node pruned a live session"
    );

    // A cookie expiring at a fraction of a second: the row holds what
    // connect-pg-simple writes for it (whole seconds, rounded up), so Node
    // keeps it through that last second as it keeps its own rows.
    let mut frac = live_record(3600);
    let at = time::from_millis((now_secs() + 30) * 1000 + 603);
    frac.cookie.expires = Some(at);
    store.create(&frac).await?;
    let ceil = (at.timestamp_millis() + 999) / 1000;
    let stored: Timestamp = sqlx::query_scalar(&format!(
        "SELECT expire AT TIME ZONE $2 FROM {t} WHERE sid = $1"
    ))
    .bind(frac.id.as_str())
    .bind(store.time_zone())
    .fetch_one(store.pool())
    .await?;
    ensure!(
        stored.timestamp_millis() == ceil * 1000,
        "{zone}: stored {stored}, connect-pg-simple would store {ceil}"
    );
    ensure!(
        node_get(&mut node, t, &frac.id, ceil).await?.is_some(),
        "{zone}: node expires a Rust row early"
    );
    ensure!(store.touch(&frac.id, Some(at)).await? == WriteOutcome::Written);
    ensure!(node_get(&mut node, t, &frac.id, ceil).await?.is_some());

    // Rust touches to ten minutes from now: Node agrees on that too.
    ensure!(store.touch(&r.id, Some(in_secs(600))).await? == WriteOutcome::Written);
    ensure!(node_get(&mut node, t, &r.id, now_secs()).await?.is_some());
    ensure!(node_get(&mut node, t, &r.id, now_secs() + 1200)
        .await?
        .is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_on_a_new_york_server_and_rust_agree_on_expiry() -> Result<()> {
    node_and_rust_agree("America/New_York").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_on_a_kolkata_server_and_rust_agree_on_expiry() -> Result<()> {
    node_and_rust_agree("Asia/Kolkata").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_on_a_utc_server_and_rust_defaults_agree_on_expiry() -> Result<()> {
    node_and_rust_agree("UTC").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_does_not_depend_on_the_pools_own_time_zone() -> Result<()> {
    let schema = unique_schema();
    // A pool whose connections were switched to another zone: sqlx's UTC no
    // longer holds, and the store must not care.
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .after_connect(|c, _| {
            Box::pin(async move {
                c.execute("SET TimeZone TO 'Pacific/Auckland'").await?;
                Ok(())
            })
        })
        .connect(&url())
        .await?;
    let result = async {
        let store = builder()
            .schema(&schema)
            .create_schema(true)
            .with_pool(pool)
            .await?;
        // A whole second: the column holds seconds rounded up, as
        // connect-pg-simple writes them.
        let at = time::from_millis(in_secs(3600).timestamp() * 1000);
        let mut r = Record::new(SessionId::generate());
        r.cookie.expires = Some(at);
        store.create(&r).await?;
        ensure!(store.load(&r.id).await?.is_some());
        // Seen from a plain UTC session, `expire` is the UTC wall clock.
        let mut c = PgConnection::connect(&url()).await?;
        let wall: chrono::NaiveDateTime = sqlx::query_scalar(&format!(
            "SELECT expire FROM {} WHERE sid = $1",
            store.qualified_table()
        ))
        .bind(r.id.as_str())
        .fetch_one(&mut c)
        .await?;
        ensure!(
            wall == at.naive_utc(),
            "stored {wall}, wanted {}",
            at.naive_utc()
        );
        Ok(())
    }
    .await;
    drop_schema(&schema).await?;
    result
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

    let schema = unique_schema();
    let result = async {
        let store = builder()
            .schema(&schema)
            .create_schema(true)
            .prune_interval(Some(Duration::from_millis(10)))
            .connect()
            .await?;
        ensure!(store.is_pruning());
        let t = store.qualified_table().to_owned();
        // Break pruning: the table disappears under the task.
        sqlx::query(&format!("DROP TABLE {t}")).execute(store.pool()).await?;
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
        sqlx::query(&format!(
            "INSERT INTO {t} (sid, sess, expire) VALUES ($1, '{{\"cookie\":{{}}}}', $2 AT TIME ZONE 'UTC')"
        ))
        .bind(old.as_str())
        .bind(in_secs(-60))
        .execute(store.pool())
        .await?;
        let exists = format!("SELECT EXISTS (SELECT 1 FROM {t} WHERE sid = $1)");
        tokio::time::timeout(HANG_GUARD, async {
            loop {
                let there: bool = sqlx::query_scalar(&exists)
                    .bind(old.as_str())
                    .fetch_one(store.pool())
                    .await?;
                if !there {
                    return anyhow::Ok(());
                }
                tokio::task::yield_now().await;
            }
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
    drop_schema(&schema).await?;
    result
}

// ---------------------------------------------------------------------------
// Servers that are down.

#[tokio::test]
async fn server_down_is_a_clear_transient_error() -> Result<()> {
    let e = net::expect_unavailable(
        PostgresStore::builder(closed_port_url()?)
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
        PostgresStore::builder(url)
            .connect_timeout(Duration::from_millis(500))
            .connect(),
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_going_away_and_coming_back() -> Result<()> {
    let mut proxy = Proxy::start("127.0.0.1:0", host_port(&url(), 5432)?).await?;
    let addr = proxy.addr;
    let schema = unique_schema();
    let store = PostgresStore::builder(via(&url(), addr))
        .schema(&schema)
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
        let mut back = Proxy::start(&addr.to_string(), host_port(&url(), 5432)?).await?;
        let loaded = store.load(&r.id).await;
        back.stop().await;
        ensure!(
            loaded?.as_ref() == Some(&r),
            "session lost across the outage"
        );
        Ok(())
    }
    .await;
    drop_schema(&schema).await?;
    result
}

// ---------------------------------------------------------------------------
// Servers that stop answering: every operation is bounded.

/// The operation timeout of the hang tests.
const BOUND: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_answering_is_unavailable_within_the_operation_timeout() -> Result<()> {
    let proxy = Proxy::start("127.0.0.1:0", host_port(&url(), 5432)?).await?;
    let schema = unique_schema();
    let store = PostgresStore::builder(via(&url(), proxy.addr))
        .schema(&schema)
        .create_schema(true)
        .prune_interval(None)
        .principal_index(true)
        .connect_timeout(BOUND)
        .operation_timeout(BOUND)
        .connect()
        .await?;
    let result = async {
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
        eprintln!("postgres, server not answering: Unavailable after {took:?} (bound {BOUND:?})");
        proxy.resume();
        Ok(())
    }
    .await;
    drop_schema(&schema).await?;
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_locked_by_another_client_is_unavailable_within_the_operation_timeout() -> Result<()>
{
    let fixture = Namespaced::with(|b| b.operation_timeout(BOUND)).await?;
    let store = &fixture.store;
    let r = live_record(600);
    store.create(&r).await?;
    // Another client takes an exclusive lock on the table and keeps it.
    let mut locker = PgConnection::connect(&url()).await?;
    locker.execute("BEGIN").await?;
    locker
        .execute(
            format!(
                "LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
                store.qualified_table()
            )
            .as_str(),
        )
        .await?;
    let took = [
        net::expect_bounded(store.load(&r.id)).await?,
        net::expect_bounded(store.save(&r)).await?,
        net::expect_bounded(store.touch(&r.id, None)).await?,
    ];
    eprintln!("postgres, table locked: Unavailable after {took:?} (bound {BOUND:?})");
    locker.execute("ROLLBACK").await?;
    // The server cancelled the waits itself: the pool's connections are fine.
    let loaded = tokio::time::timeout(HANG_GUARD, store.load(&r.id))
        .await
        .context("load hung after the lock was released")??;
    ensure!(loaded.as_ref() == Some(&r), "session lost behind the lock");
    Ok(())
}

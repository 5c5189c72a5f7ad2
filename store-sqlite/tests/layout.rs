//! SQLite-specific behaviour: the Sequelize layout, schema creation, the
//! prune task, the in-memory database and the opt-in per-user index.

use anyhow::Context;
use sessionkit_core::time;
use sessionkit_core::{Error, Record, SessionId, SessionMeta, Store, WriteOutcome};
use sessionkit_sqlite::{format_date, parse_date, SqliteStore};
use std::time::Duration;

async fn open(dir: &tempfile::TempDir, table: &str) -> anyhow::Result<SqliteStore> {
    Ok(
        SqliteStore::builder(dir.path().join("s.db").display().to_string())
            .table(table)
            .create_schema(true)
            .prune_interval(None)
            .connect()
            .await?,
    )
}

#[tokio::test]
async fn table_has_sequelize_columns_and_dates() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = open(&dir, "Sessions").await?;
    let cols: Vec<(String, String, i64, i64)> = sqlx::query_as(
        r#"SELECT name, type, "notnull", pk FROM pragma_table_info('Sessions') ORDER BY cid"#,
    )
    .fetch_all(store.pool())
    .await?;
    let want = [
        ("sid", "VARCHAR(36)", 0, 1),
        ("expires", "DATETIME", 0, 0),
        ("data", "TEXT", 0, 0),
        ("createdAt", "DATETIME", 1, 0),
        ("updatedAt", "DATETIME", 1, 0),
    ];
    let got: Vec<(&str, &str, i64, i64)> = cols
        .iter()
        .map(|(n, t, nn, pk)| (n.as_str(), t.as_str(), *nn, *pk))
        .collect();
    assert_eq!(got, want);

    let mut r = Record::new(SessionId::generate());
    r.cookie
        .set_max_age(Some(Duration::from_secs(60)), time::now());
    store.create(&r).await?;
    let (exp, created, updated): (String, String, String) =
        sqlx::query_as(r#"SELECT expires, "createdAt", "updatedAt" FROM "Sessions" WHERE sid = ?"#)
            .bind(r.id.as_str())
            .fetch_one(store.pool())
            .await?;
    for d in [&exp, &created, &updated] {
        assert!(d.ends_with(" +00:00") && d.len() == 30, "{d}");
    }
    assert_eq!(parse_date(&exp), r.cookie.expires);
    let journal: (String,) = sqlx::query_as("PRAGMA journal_mode")
        .fetch_one(store.pool())
        .await?;
    assert_eq!(journal.0, "wal");
    Ok(())
}

#[tokio::test]
async fn schema_creation_is_idempotent_and_concurrent() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (a, b) = tokio::join!(open(&dir, "custom_sessions"), open(&dir, "custom_sessions"));
    let (a, b) = (a?, b?);
    a.create_schema().await?;
    b.create_schema().await?;
    let r = Record::new(SessionId::generate());
    a.create(&r).await?;
    assert!(b.load(&r.id).await?.is_some(), "both see one table");
    Ok(())
}

#[tokio::test]
async fn bad_table_name_is_a_config_error() {
    let err = SqliteStore::builder("sqlite::memory:")
        .table("x\"; DROP TABLE y; --")
        .connect()
        .await
        .expect_err("refused");
    assert!(matches!(err, sessionkit_core::Error::Config(_)), "{err:?}");
}

#[tokio::test]
async fn in_memory_database_keeps_sessions() -> anyhow::Result<()> {
    let store = SqliteStore::builder("sqlite::memory:")
        .create_schema(true)
        .connect()
        .await?;
    let r = Record::new(SessionId::generate());
    store.create(&r).await?;
    assert!(store.load(&r.id).await?.is_some());
    Ok(())
}

#[tokio::test]
async fn prune_task_deletes_expired_rows() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("p.db").display().to_string();
    let store = SqliteStore::builder(&path)
        .create_schema(true)
        .prune_interval(Some(Duration::from_millis(10)))
        .connect()
        .await?;
    let r = Record::new(SessionId::generate());
    store.create(&r).await?;
    sqlx::query(r#"UPDATE "Sessions" SET expires = '2000-01-01 00:00:00.000 +00:00'"#)
        .execute(store.pool())
        .await?;
    loop {
        let (n,): (i64,) = sqlx::query_as(r#"SELECT COUNT(*) FROM "Sessions""#)
            .fetch_one(store.pool())
            .await?;
        if n == 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    Ok(())
}

#[tokio::test]
async fn unopenable_path_is_a_clear_error() {
    let err = SqliteStore::builder("/nonexistent-dir/for/sure/s.db")
        .connect()
        .await
        .expect_err("cannot open");
    assert!(err.to_string().contains("open SQLite database"), "{err}");
}

#[tokio::test]
async fn delete_expired_works_across_batches() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = open(&dir, "Sessions").await?;
    let n = sessionkit_sqlite::PRUNE_BATCH * 2 + 7;
    sqlx::query(
        r#"WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < ?)
INSERT INTO "Sessions" SELECT 'expired' || i, '2000-01-01 00:00:00.000 +00:00', '{}',
  '2000-01-01 00:00:00.000 +00:00', '2000-01-01 00:00:00.000 +00:00' FROM seq"#,
    )
    .bind(n as i64)
    .execute(store.pool())
    .await?;
    let live = Record::new(SessionId::generate());
    store.create(&live).await?;
    assert_eq!(store.delete_expired().await?, n);
    assert!(store.load(&live.id).await?.is_some());
    let (left,): (i64,) = sqlx::query_as(r#"SELECT COUNT(*) FROM "Sessions""#)
        .fetch_one(store.pool())
        .await?;
    assert_eq!(left, 1);
    Ok(())
}

/// A session tagged with `principal`, live for an hour.
fn tagged(principal: &str) -> anyhow::Result<Record> {
    let mut r = Record::new(SessionId::generate());
    r.cookie
        .set_max_age(Some(Duration::from_secs(3600)), time::now());
    let mut meta = SessionMeta::default();
    meta.principal = Some(principal.into());
    r.set_meta(Some(&meta))?;
    Ok(r)
}

async fn columns(store: &SqliteStore, table: &str) -> anyhow::Result<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT name FROM pragma_table_info(?) ORDER BY cid")
            .bind(table)
            .fetch_all(store.pool())
            .await?,
    )
}

#[tokio::test]
async fn principal_index_is_off_by_default_and_leaves_the_table_alone() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = open(&dir, "Sessions").await?;
    assert!(!store.capabilities().principal_index);
    assert_eq!(
        columns(&store, "Sessions").await?,
        ["sid", "expires", "data", "createdAt", "updatedAt"]
    );
    store.create(&tagged("alice")?).await?;
    assert!(matches!(
        store.principal_sessions("alice").await,
        Err(Error::Unsupported(_))
    ));
    assert!(matches!(
        store.destroy_principal("alice", None).await,
        Err(Error::Unsupported(_))
    ));
    Ok(())
}

#[tokio::test]
async fn principal_index_is_added_to_an_existing_table_and_skips_node_rows() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.db").display().to_string();
    // The table as connect-session-sequelize made it, with a row Node wrote
    // for alice (it carries the metadata but never sets the column).
    let node = open(&dir, "Sessions").await?;
    let from_node = tagged("alice")?;
    let now = format_date(&time::now());
    sqlx::query(r#"INSERT INTO "Sessions" VALUES (?, ?, ?, ?, ?)"#)
        .bind(from_node.id.as_str())
        .bind(format_date(&time::from_millis(
            time::now().timestamp_millis() + 3_600_000,
        )))
        .bind(from_node.to_json()?)
        .bind(&now)
        .bind(&now)
        .execute(node.pool())
        .await?;

    let indexed = || {
        SqliteStore::builder(&path)
            .create_schema(true)
            .principal_index(true)
            .prune_interval(None)
            .connect()
    };
    // Two processes starting at once, then a restart: idempotent.
    let (store, other) = tokio::join!(indexed(), indexed());
    let (store, _other) = (store?, other?);
    store.create_schema().await?;
    assert!(store.capabilities().principal_index);
    assert_eq!(
        columns(&store, "Sessions").await?,
        [
            "sid",
            "expires",
            "data",
            "createdAt",
            "updatedAt",
            "principal"
        ]
    );
    let indexes: Vec<String> =
        sqlx::query_scalar("SELECT name FROM pragma_index_list('Sessions') ORDER BY name")
            .fetch_all(store.pool())
            .await?;
    assert!(
        indexes.iter().any(|i| i == "Sessions_principal"),
        "{indexes:?}"
    );

    let from_rust = tagged("alice")?;
    store.create(&from_rust).await?;
    let listed = store.principal_sessions("alice").await?;
    assert_eq!(listed.len(), 1, "the Node row is not listed");
    assert_eq!(listed[0], from_rust);
    assert!(
        store.load(&from_node.id).await?.is_some(),
        "still a session"
    );
    assert_eq!(store.destroy_principal("alice", None).await?, 1);
    assert!(store.load(&from_node.id).await?.is_some(), "Node row left");
    assert!(store.load(&from_rust.id).await?.is_none());
    // Written again by Rust, the Node session joins the index; touched, it stays.
    let loaded = store.load(&from_node.id).await?.context("gone")?;
    assert_eq!(store.save(&loaded).await?, WriteOutcome::Written);
    assert_eq!(
        store.touch(&from_node.id, None).await?,
        WriteOutcome::Written
    );
    assert_eq!(store.principal_sessions("alice").await?.len(), 1);
    Ok(())
}

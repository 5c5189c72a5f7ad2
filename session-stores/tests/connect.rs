//! `connect(url)` against real backends and with bad input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use sessionkit_core::{Error, Record, SessionId, SessionMeta};

fn config_message(err: Error) -> String {
    match err {
        Error::Config(msg) => msg.into_owned(),
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[tokio::test]
async fn memory_and_sqlite_urls_give_working_stores() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = format!(
        "sqlite://{}?ttl=60&table=app_sessions",
        dir.path().join("s.db").display()
    );
    for url in [
        "memory://",
        "memory://?capacity=10&ttl=60",
        "sqlite::memory:",
        file.as_str(),
    ] {
        let store = sessionkit_stores::connect(url).await?;
        let r = Record::new(SessionId::generate());
        store.create(&r).await?;
        assert!(store.load(&r.id).await?.is_some(), "{url}");
        // The store owns its TTL; the middleware reads it from there.
        let ttl = if url.contains("ttl=60") { 60 } else { 86_400 };
        assert_eq!(
            store.default_ttl(),
            std::time::Duration::from_secs(ttl),
            "{url}"
        );
    }
    Ok(())
}

/// `principal_index=true` turns on the per-user index of the SQL stores;
/// without it they stay without one (their tables stay the Node ones).
#[tokio::test]
async fn principal_index_option_turns_on_the_per_user_index() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("p.db");
    let plain = sessionkit_stores::connect(&format!("sqlite://{}", file.display())).await?;
    assert!(!plain.capabilities().principal_index);
    assert!(matches!(
        plain.principal_sessions("alice").await,
        Err(Error::Unsupported(_))
    ));
    // The same file, now with the index (the column is added to the table).
    for url in [
        "sqlite::memory:?principal_index=true".to_owned(),
        format!("sqlite://{}?principal_index=true", file.display()),
    ] {
        let store = sessionkit_stores::connect(&url).await?;
        assert!(store.capabilities().principal_index, "{url}");
        let r = tagged("alice")?;
        store.create(&r).await?;
        assert_eq!(store.principal_sessions("alice").await?.len(), 1, "{url}");
        assert_eq!(store.destroy_principal("alice", None).await?, 1, "{url}");
    }
    let err = sessionkit_stores::connect("sqlite::memory:?principal_index=sometimes")
        .await
        .err()
        .expect("refused");
    assert!(config_message(err).contains("principal_index"));
    Ok(())
}

/// A record tagged with `principal`.
fn tagged(principal: &str) -> anyhow::Result<Record> {
    let mut r = Record::new(SessionId::generate());
    let mut meta = SessionMeta::default();
    meta.principal = Some(principal.into());
    r.set_meta(Some(&meta))?;
    Ok(r)
}

#[tokio::test]
async fn bad_urls_are_clear_errors() {
    let cases = [
        ("oracle://db", "unknown store URL scheme \"oracle\""),
        ("memory://?colour=red", "unknown option \"colour\""),
        ("memory://?ttl=tomorrow", "ttl=\"tomorrow\""),
        ("sqlite://", "no path"),
        ("sqlite::memory:?table=bad;name", "table name"),
        ("sqlite::memory:?create_schema=perhaps", "create_schema"),
        ("justtext", "no scheme"),
    ];
    for (url, want) in cases {
        let err = match sessionkit_stores::connect(url).await {
            Ok(_) => panic!("{url} was accepted"),
            Err(e) => e,
        };
        let msg = config_message(err);
        assert!(msg.contains(want), "{url}: {msg}");
    }
}

#[cfg(not(feature = "redis"))]
#[tokio::test]
async fn backend_with_feature_off_names_the_feature() {
    let err = sessionkit_stores::connect("redis://127.0.0.1:6379")
        .await
        .err();
    let msg = config_message(err.expect("refused"));
    assert!(msg.contains("`redis` cargo feature"), "{msg}");
}

/// The server backends through their URLs, with store options in the query.
#[cfg(all(feature = "redis", feature = "postgres", feature = "mongo"))]
#[tokio::test]
async fn server_urls_give_working_stores() -> anyhow::Result<()> {
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_owned());
    let join = |url: String, opt: &str| {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}{opt}")
    };
    let tag = SessionId::generate().as_str()[..8]
        .to_ascii_lowercase()
        .replace('-', "_");
    let urls = [
        join(
            env("REDIS_URL", "redis://127.0.0.1:6379"),
            &format!("prefix=stores-{tag}:&ttl=60"),
        ),
        join(
            env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test"),
            &format!("table=stores_{tag}&prune_interval=0&connect_timeout=5"),
        ),
        join(
            env("MONGODB_URL", "mongodb://127.0.0.1:27017"),
            &format!("collection=stores_{tag}"),
        ),
        // connect-mongo's `stringify: false` shape (store-mongo's tests
        // check the documents).
        join(
            env("MONGODB_URL", "mongodb://127.0.0.1:27017"),
            &format!("collection=stores_s_{tag}&stringify=false"),
        ),
    ];
    for url in &urls {
        let store = sessionkit_stores::connect(url).await?;
        let r = Record::new(SessionId::generate());
        store.create(&r).await?;
        assert!(store.load(&r.id).await?.is_some(), "{url}");
        store.clear().await?;
    }
    Ok(())
}

/// A MySQL / MariaDB URL (`MYSQL_URL`), with store options in the query;
/// `mariadb://` is the same backend.
#[cfg(feature = "mysql")]
#[tokio::test]
async fn mysql_urls_give_working_stores() -> anyhow::Result<()> {
    let base = std::env::var("MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned());
    let sep = if base.contains('?') { '&' } else { '?' };
    let tag = SessionId::generate().as_str()[..8]
        .to_ascii_lowercase()
        .replace('-', "_");
    let url = format!("{base}{sep}table=stores_{tag}&ttl=60&prune_interval=0&connect_timeout=5");
    let store = sessionkit_stores::connect(&url).await?;
    let r = Record::new(SessionId::generate());
    store.create(&r).await?;
    assert!(store.load(&r.id).await?.is_some(), "{url}");
    // The same table through the other scheme.
    let other = sessionkit_stores::connect(&url.replacen("mysql://", "mariadb://", 1)).await?;
    assert!(other.load(&r.id).await?.is_some(), "mariadb://");
    store.clear().await?;
    for bad in [
        format!("{base}{sep}table="),
        format!("{base}{sep}prune_interval=soon"),
        format!("{base}{sep}ttl=-5"),
    ] {
        let err = sessionkit_stores::connect(&bad)
            .await
            .err()
            .expect("refused");
        assert!(matches!(err, Error::Config(_)), "{bad}: {err:?}");
    }
    Ok(())
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn bad_server_option_values_are_refused() {
    for url in [
        "redis://127.0.0.1:6379?ttl=-5",
        "redis://127.0.0.1:6379?connect_timeout=x",
    ] {
        let err = sessionkit_stores::connect(url)
            .await
            .err()
            .expect("refused");
        assert!(config_message(err).contains("number of seconds"), "{url}");
    }
}

/// `principal_index=true` on the PostgreSQL and MySQL URLs.
#[cfg(all(feature = "postgres", feature = "mysql"))]
#[tokio::test]
async fn server_sql_urls_take_principal_index() -> anyhow::Result<()> {
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_owned());
    let join = |url: String, opt: &str| {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}{opt}")
    };
    let tag = SessionId::generate().as_str()[..8]
        .to_ascii_lowercase()
        .replace('-', "_");
    let opts = format!("table=stores_p_{tag}&prune_interval=0&principal_index=true");
    for url in [
        join(
            env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test"),
            &opts,
        ),
        join(env("MYSQL_URL", "mysql://root@127.0.0.1:3306/test"), &opts),
    ] {
        let store = sessionkit_stores::connect(&url).await?;
        assert!(store.capabilities().principal_index, "{url}");
        let (a, b) = (tagged("alice")?, tagged("alice")?);
        store.create(&a).await?;
        store.create(&b).await?;
        assert_eq!(store.principal_sessions("alice").await?.len(), 2, "{url}");
        assert_eq!(
            store.destroy_principal("alice", Some(&a.id)).await?,
            1,
            "{url}"
        );
        store.clear().await?;
    }
    Ok(())
}

/// Redis keeps the per-user index unless `principal_index=false`, under
/// `principal_prefix` when given; MongoDB always keeps it.
#[cfg(all(feature = "redis", feature = "mongo"))]
#[tokio::test]
async fn redis_and_mongo_urls_and_the_principal_index() -> anyhow::Result<()> {
    let redis = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let sep = if redis.contains('?') { '&' } else { '?' };
    let tag = SessionId::generate();
    let on = sessionkit_stores::connect(&format!("{redis}{sep}prefix=stores-{tag}:")).await?;
    assert!(on.capabilities().principal_index);
    let off = sessionkit_stores::connect(&format!(
        "{redis}{sep}prefix=stores-{tag}:&principal_index=false"
    ))
    .await?;
    assert!(!off.capabilities().principal_index);
    let named = sessionkit_stores::connect(&format!(
        "{redis}{sep}prefix=stores-{tag}:&principal_prefix=users-{tag}:"
    ))
    .await?;
    assert!(named.capabilities().principal_index);
    let overlapping = sessionkit_stores::connect(&format!(
        "{redis}{sep}prefix=stores-{tag}:&principal_prefix=stores-{tag}:p:"
    ))
    .await;
    assert!(
        matches!(overlapping, Err(Error::Config(_))),
        "an overlapping principal_prefix was accepted"
    );

    let mongo =
        std::env::var("MONGODB_URL").unwrap_or_else(|_| "mongodb://127.0.0.1:27017".to_owned());
    let sep = if mongo.contains('?') { '&' } else { '?' };
    let tag = tag.as_str()[..8].to_ascii_lowercase().replace('-', "_");
    let store =
        sessionkit_stores::connect(&format!("{mongo}{sep}collection=stores_p_{tag}")).await?;
    assert!(store.capabilities().principal_index);
    store.clear().await?;
    Ok(())
}

/// A database whose `TimeZone` is America/New_York, shared with a Node
/// service whose connections use that default: `?time_zone=` in the URL
/// makes Rust and Node agree on every row's expiry.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_time_zone_through_the_url_matches_a_new_york_database() -> anyhow::Result<()> {
    use sqlx::{Connection, Executor};
    let server = std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let base = server.split('?').next().unwrap_or(&server);
    let (root, _) = base.rsplit_once('/').unwrap_or((base, ""));
    let db = format!(
        "stores_ny_{}",
        SessionId::generate().as_str()[..8]
            .to_ascii_lowercase()
            .replace('-', "_")
    );
    let mut admin = sqlx::PgConnection::connect(&server).await?;
    admin
        .execute(format!("CREATE DATABASE {db}").as_str())
        .await?;
    admin
        .execute(format!("ALTER DATABASE {db} SET timezone TO 'America/New_York'").as_str())
        .await?;
    let url = format!("{root}/{db}");
    let result = async {
        let store = sessionkit_stores::connect(&format!(
            "{url}?time_zone=America/New_York&table=s&prune_interval=0"
        ))
        .await?;
        // A connection as node-postgres makes it: in the database's zone
        // (sqlx itself asks for UTC at start-up; node-postgres does not).
        let mut node = sqlx::PgConnection::connect(&url).await?;
        let zone: String = sqlx::query_scalar(
            "SELECT split_part(c, '=', 2) FROM pg_db_role_setting, unnest(setconfig) AS c \
             WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             AND lower(c) LIKE 'timezone=%'",
        )
        .fetch_one(&mut node)
        .await?;
        anyhow::ensure!(zone == "America/New_York", "{zone}");
        sqlx::query("SELECT set_config('TimeZone', $1, false)")
            .bind(&zone)
            .execute(&mut node)
            .await?;
        let now = (sessionkit_core::time::now().timestamp_millis() + 999) / 1000;
        let json = Record::new(SessionId::generate()).to_json()?;
        for (id, expire, live) in [
            (SessionId::generate(), now + 3600, true),
            (SessionId::generate(), now - 600, false),
        ] {
            sqlx::query(
                "INSERT INTO s (sess, expire, sid) SELECT $1::json, to_timestamp($2::float8), $3",
            )
            .bind(&json)
            .bind(expire as f64)
            .bind(id.as_str())
            .execute(&mut node)
            .await?;
            anyhow::ensure!(
                store.load(&id).await?.is_some() == live,
                "node row, live={live}"
            );
        }
        let mut r = Record::new(SessionId::generate());
        r.cookie.set_max_age(
            Some(std::time::Duration::from_secs(3600)),
            sessionkit_core::time::now(),
        );
        store.create(&r).await?;
        let seen = |at: i64| {
            sqlx::query_scalar::<_, String>(
                "SELECT sid FROM s WHERE sid = $1 AND expire >= to_timestamp($2::float8)",
            )
            .bind(r.id.as_str().to_owned())
            .bind(at as f64)
        };
        anyhow::ensure!(
            seen(now).fetch_optional(&mut node).await?.is_some(),
            "node misses it"
        );
        anyhow::ensure!(
            seen(now + 7200).fetch_optional(&mut node).await?.is_none(),
            "node would keep it hours too long"
        );
        node.close().await?;
        anyhow::Ok(())
    }
    .await;
    admin
        .execute(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)").as_str())
        .await?;
    result
}

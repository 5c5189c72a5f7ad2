//! A store that stops answering never holds a request: the demo answers 503
//! once the store's `operation_timeout` (here 1 s, from the store URL) has
//! passed, and serves the same session again once the store is back.
//!
//! PostgreSQL and MySQL with their session table locked by another client;
//! Redis and MongoDB behind a proxy that stops forwarding. Servers from
//! `DATABASE_URL`, `MYSQL_URL`, `REDIS_URL` and `MONGODB_URL` (as `cargo
//! xtask` sets them), else their usual local ports (MongoDB: skipped).

use anyhow::{ensure, Context, Result};
use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::StatusCode;
use session_demo::Settings;
use sessionkit_conformance::net::{host_port, via, Proxy, OPERATION_GUARD};
use sessionkit_core::SessionId;
use sqlx::{Connection, Executor};
use std::time::{Duration, Instant};

const SECRET: &str = "hung-store-test-secret-long-enough-to-sign-cookies";

fn env_url(var: &str, default: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

fn with_options(url: &str, options: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{options}")
}

fn unique(prefix: &str) -> String {
    let tag: String = SessionId::generate()
        .as_str()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(10)
        .collect();
    format!("{prefix}_{}", tag.to_ascii_lowercase())
}

/// Serves the demo on `store_url`; its base URL.
async fn serve(store_url: String) -> Result<String> {
    let settings = Settings {
        store_url,
        secrets: vec![SECRET.to_owned()],
        addr: ([127, 0, 0, 1], 0).into(),
        trust_proxy: None,
    };
    let store = session_demo::connect(&settings.store_url).await?;
    let app = session_demo::app(store, &settings)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(session_demo::serve(listener, app, std::future::pending()));
    Ok(base)
}

/// `GET /` with `cookie`: the status, the session cookie it set, and how
/// long it took (reported, not asserted).
async fn get_home(
    base: &str,
    cookie: Option<&str>,
) -> Result<(StatusCode, Option<String>, Duration)> {
    let client = reqwest::Client::new();
    let mut req = client.get(format!("{base}/")).timeout(OPERATION_GUARD);
    if let Some(c) = cookie {
        req = req.header(COOKIE, c);
    }
    let start = Instant::now();
    let res = req.send().await.context("the request hung or failed")?;
    let took = start.elapsed();
    let set = res
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("connect.sid="))
        .map(|rest| format!("connect.sid={}", rest.split(';').next().unwrap_or_default()));
    Ok((res.status(), set, took))
}

/// A new session: its cookie.
async fn new_session(name: &str, base: &str) -> Result<String> {
    let (status, cookie, _) = get_home(base, None).await?;
    ensure!(status == StatusCode::OK, "{name}: first request: {status}");
    cookie.context("no session cookie")
}

/// With the store hung: a 503, in bounded time.
async fn expect_503(name: &str, base: &str, cookie: &str) -> Result<()> {
    let (status, _, took) = get_home(base, Some(cookie)).await?;
    eprintln!("{name}: store hung: {status} after {took:?} (operation_timeout 1 s)");
    ensure!(
        status == StatusCode::SERVICE_UNAVAILABLE,
        "{name}: expected 503 while the store hangs, got {status}"
    );
    Ok(())
}

/// With the store back: the same session.
async fn expect_same_session(name: &str, base: &str, cookie: &str) -> Result<()> {
    let (status, again, _) = get_home(base, Some(cookie)).await?;
    ensure!(status == StatusCode::OK, "{name}: after release: {status}");
    ensure!(
        again.is_none(),
        "{name}: the session was replaced: {again:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_table_locked_answers_503_then_recovers() -> Result<()> {
    let server = env_url("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test");
    let table = unique("demo_hang");
    let base = serve(with_options(
        &server,
        &format!("table={table}&operation_timeout=1"),
    ))
    .await?;
    let mut locker = sqlx::PgConnection::connect(&server).await?;
    let cookie = new_session("postgres", &base).await?;
    locker.execute("BEGIN").await?;
    locker
        .execute(format!("LOCK TABLE \"{table}\" IN ACCESS EXCLUSIVE MODE").as_str())
        .await?;
    let hung = expect_503("postgres", &base, &cookie).await;
    locker.execute("ROLLBACK").await?;
    let back = expect_same_session("postgres", &base, &cookie).await;
    locker
        .execute(format!("DROP TABLE IF EXISTS \"{table}\"").as_str())
        .await?;
    hung.and(back)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_table_locked_answers_503_then_recovers() -> Result<()> {
    let server = env_url("MYSQL_URL", "mysql://root@127.0.0.1:3306/test");
    let table = unique("demo_hang");
    let base = serve(with_options(
        &server,
        &format!("table={table}&operation_timeout=1"),
    ))
    .await?;
    let mut locker = sqlx::MySqlConnection::connect(&server).await?;
    let cookie = new_session("mysql", &base).await?;
    locker
        .execute(format!("LOCK TABLES `{table}` WRITE").as_str())
        .await?;
    let hung = expect_503("mysql", &base, &cookie).await;
    locker.execute("UNLOCK TABLES").await?;
    let back = expect_same_session("mysql", &base, &cookie).await;
    locker
        .execute(format!("DROP TABLE IF EXISTS `{table}`").as_str())
        .await?;
    hung.and(back)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_not_answering_answers_503_then_recovers() -> Result<()> {
    let server = env_url("REDIS_URL", "redis://127.0.0.1:6379");
    let proxy = Proxy::start("127.0.0.1:0", host_port(&server, 6379)?).await?;
    let prefix = format!("{}:", unique("demo-hang"));
    let url = with_options(
        &via(&server, proxy.addr),
        &format!("prefix={prefix}&operation_timeout=1"),
    );
    let base = serve(url).await?;
    let cookie = new_session("redis", &base).await?;
    proxy.pause();
    let hung = expect_503("redis", &base, &cookie).await;
    proxy.resume();
    let back = expect_same_session("redis", &base, &cookie).await;
    hung.and(back)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_not_answering_answers_503_then_recovers() -> Result<()> {
    // No usual port to fall back on: the MongoDB test server is one xtask
    // starts (`cargo xtask conformance` sets `MONGODB_URL`).
    let Some(server) = std::env::var("MONGODB_URL").ok().filter(|u| !u.is_empty()) else {
        eprintln!("mongo: no MONGODB_URL (run `cargo xtask servers`); skipped");
        return Ok(());
    };
    let proxy = Proxy::start("127.0.0.1:0", host_port(&server, 27017)?).await?;
    let collection = unique("demo_hang");
    let url = with_options(
        &via(&server, proxy.addr),
        &format!("directConnection=true&collection={collection}&operation_timeout=1"),
    );
    let base = serve(url).await?;
    let cookie = new_session("mongo", &base).await?;
    proxy.pause();
    let hung = expect_503("mongo", &base, &cookie).await;
    proxy.resume();
    let back = expect_same_session("mongo", &base, &cookie).await;
    hung.and(back)
}

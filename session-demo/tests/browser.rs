//! The demo in a real browser: headless Chromium driven over WebDriver.
//!
//! Ignored in a plain `cargo test` (it needs Debian's `chromium` and
//! `chromium-driver`); `cargo xtask ci` runs it once per store with
//! `SESSION_STORE_URL` set. Without `SESSION_STORE_URL` it uses the
//! default: a SQLite file in a temporary working directory.

use anyhow::{bail, ensure, Context, Result};
use fantoccini::{Client, ClientBuilder, Locator};
use sessionkit_core::{Secret, Signer};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SECRET: &str = "browser-test-secret-that-is-long-enough-to-sign";

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Polls until something accepts connections on the port (bounded).
fn wait_for_port(port: u16, child: &mut Child, what: &str) -> Result<()> {
    let start = Instant::now();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    while start.elapsed() < Duration::from_secs(60) {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("{what} exited before listening: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{what} did not listen on {port} within 60 s")
}

fn start_demo(dir: &Path, port: u16, store_url: Option<&str>) -> Result<Proc> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_session-demo"));
    cmd.current_dir(dir)
        .env("PORT", port.to_string())
        .env("SESSION_SECRET", SECRET)
        .env_remove("SESSION_STORE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(url) = store_url {
        cmd.env("SESSION_STORE_URL", url);
    }
    let mut child = cmd.spawn().context("starting session-demo")?;
    wait_for_port(port, &mut child, "session-demo")?;
    Ok(Proc(child))
}

fn find(bin: &str, fallback: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(bin))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| PathBuf::from(fallback))
}

async fn browser(profile: &Path) -> Result<(Client, Proc)> {
    let driver = find("chromedriver", "/usr/bin/chromedriver");
    let port = free_port()?;
    let mut child = Command::new(&driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| {
            format!(
                "starting {} (apt-get install chromium-driver)",
                driver.display()
            )
        })?;
    wait_for_port(port, &mut child, "chromedriver")?;
    let driver = Proc(child);
    let chromium = find("chromium", "/usr/bin/chromium");
    let caps = serde_json::json!({
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1100,900",
                format!("--user-data-dir={}", profile.display()),
            ]
        }
    });
    let caps = match caps {
        serde_json::Value::Object(m) => m,
        _ => bail!("capabilities are an object"),
    };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .context("connecting to chromedriver")?;
    Ok((client, driver))
}

/// A plain HTTP/1.1 GET with a Cookie header (to replay a cookie the browser dropped).
fn raw_get(port: u16, path: &str, cookie: &str) -> Result<String> {
    use std::io::{Read as _, Write as _};
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// Logs `user` in over plain HTTP/1.1 as another device with its own
/// `User-Agent`; returns the `connect.sid=…` cookie it was given.
fn raw_login(port: u16, user: &str, user_agent: &str) -> Result<String> {
    use std::io::{Read as _, Write as _};
    let exchange = |request: String| -> Result<String> {
        let mut s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        s.write_all(request.as_bytes())?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    };
    let session_cookie = |out: &str| {
        let head = out.split("\r\n\r\n").next().unwrap_or_default();
        head.lines()
            .filter_map(|l| l.split_once(':'))
            .filter(|(k, _)| k.trim().eq_ignore_ascii_case("set-cookie"))
            .find_map(|(_, v)| v.trim().strip_prefix("connect.sid="))
            .and_then(|v| v.split(';').next())
            .map(|v| format!("connect.sid={v}"))
    };
    // The login form first, as a browser would: its session and CSRF token.
    let form = exchange(format!(
        "GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: {user_agent}\r\nConnection: close\r\n\r\n"
    ))?;
    let cookie = session_cookie(&form).context("no session cookie on the login form")?;
    let token = form
        .split(r#"name="_csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .context("no CSRF field in the login form")?;
    let body = format!("username={user}&_csrf={token}");
    let out = exchange(format!(
        "POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: {user_agent}\r\nCookie: {cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ))?;
    let head = out.split("\r\n\r\n").next().unwrap_or_default().to_owned();
    session_cookie(&out).with_context(|| format!("no session cookie on login: {head}"))
}

/// Whether a WebDriver error is a page still being replaced under us.
fn stale(e: &fantoccini::error::CmdError) -> bool {
    let msg = e.to_string();
    msg.contains("stale element") || msg.contains("no such element")
}

/// The text of an element, waiting (bounded) while a navigation replaces the page.
async fn text(c: &Client, css: &str) -> Result<String> {
    let mut last = None;
    for _ in 0..100 {
        let found = match c
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(css))
            .await
        {
            Ok(el) => el.text().await,
            Err(e) => Err(e),
        };
        match found {
            Ok(t) => return Ok(t),
            Err(e) if stale(&e) => {
                last = Some(e);
                tokio::task::yield_now().await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    bail!("{css} kept going stale: {last:?}")
}

/// Types into or clicks an element, retrying while the page is being replaced.
async fn act(c: &Client, id: &str, keys: Option<&str>) -> Result<()> {
    act_on(c, Locator::Id(id), keys).await
}

/// [`act`] on any element.
async fn act_on(c: &Client, at: Locator<'_>, keys: Option<&str>) -> Result<()> {
    let mut last = None;
    for _ in 0..100 {
        let el = c
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(at)
            .await?;
        let done = match keys {
            Some(k) => el.send_keys(k).await,
            None => el.click().await,
        };
        match done {
            Ok(()) => return Ok(()),
            Err(e) if stale(&e) => {
                last = Some(e);
                tokio::task::yield_now().await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    bail!("{at:?} kept going stale: {last:?}")
}

async fn views(c: &Client) -> Result<u64> {
    Ok(text(c, "#views").await?.trim().parse()?)
}

#[tokio::test]
#[ignore = "needs chromium and chromium-driver; run by `cargo xtask ci`"]
async fn login_counter_cart_restart_logout() -> Result<()> {
    let store_url = std::env::var("SESSION_STORE_URL")
        .ok()
        .filter(|s| !s.is_empty());
    let label = store_url
        .as_deref()
        .and_then(|u| u.split(':').next())
        .unwrap_or("sqlite-default")
        .to_owned();
    let persistent = !store_url
        .as_deref()
        .is_some_and(|u| u.starts_with("memory:"));
    let work = tempfile::tempdir()?;
    let profile = tempfile::tempdir()?;
    let port = free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let mut demo = start_demo(work.path(), port, store_url.as_deref())?;
    let (c, _driver) = browser(profile.path()).await?;
    let result = async {
        // The counter grows on reload.
        c.goto(&base).await?;
        let first = views(&c).await?;
        c.refresh().await?;
        ensure!(views(&c).await? == first + 1, "counter did not grow");

        // Log in: the id changes, the cookie has the secure defaults.
        let before = c.get_named_cookie("connect.sid").await?.value().to_owned();
        c.goto(&format!("{base}/login")).await?;
        act(&c, "username", Some("alice")).await?;
        act(&c, "login-submit", None).await?;
        // A click does not wait for the next page: wait for what it shows.
        c.wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Id("user"))
            .await?;
        ensure!(text(&c, "#user").await? == "alice", "not logged in");
        let cookie = c.get_named_cookie("connect.sid").await?;
        ensure!(
            cookie.value() != before,
            "session id not regenerated on login"
        );
        ensure!(cookie.http_only() == Some(true), "cookie not HttpOnly");
        ensure!(
            cookie.same_site().map(|s| s.to_string()).as_deref() == Some("Lax"),
            "cookie SameSite {:?}",
            cookie.same_site()
        );
        ensure!(
            cookie.path() == Some("/"),
            "cookie path {:?}",
            cookie.path()
        );
        let signed = cookie.value().to_owned();

        // The cart.
        c.goto(&format!("{base}/cart")).await?;
        act(&c, "item", Some("teapot")).await?;
        act(&c, "add", None).await?;
        // The empty cart page stays until the redirect lands: wait for an
        // item, which only the next page has.
        ensure!(
            text(&c, "#cart .item").await?.contains("teapot"),
            "item not in cart"
        );

        // Restart the demo: the session survives in the store.
        if persistent {
            drop(std::mem::replace(
                &mut demo,
                Proc(Command::new("true").spawn()?),
            ));
            demo = start_demo(work.path(), port, store_url.as_deref())?;
            c.goto(&format!("{base}/cart")).await?;
            ensure!(
                text(&c, "#cart").await?.contains("teapot"),
                "cart lost on restart"
            );
            ensure!(text(&c, "#user").await? == "alice", "login lost on restart");
        }
        c.goto(&format!("{base}/session")).await?;
        ensure!(text(&c, "#data").await?.contains("teapot"));

        let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/browser");
        std::fs::create_dir_all(&shots)?;

        // Your active sessions: alice on another device is listed beside
        // this browser; revoking it signs that device out.
        let other = raw_login(port, "alice", "OtherDevice/1.0")?;
        act(&c, "sessions-link", None).await?;
        ensure!(
            text(&c, "#this-session").await? == "This session",
            "this session not marked"
        );
        let listed = text(&c, "#sessions").await?;
        ensure!(
            listed.contains("OtherDevice/1.0") && listed.contains("Chrome"),
            "sessions listed: {listed}"
        );
        let png = c.screenshot().await?;
        std::fs::write(shots.join(format!("sessions-{label}.png")), png)?;
        act_on(&c, Locator::Css("button.revoke"), None).await?;
        ensure!(
            text(&c, "#notice").await?.contains("revoked"),
            "no notice after revoking"
        );
        ensure!(
            !text(&c, "#sessions").await?.contains("OtherDevice/1.0"),
            "revoked session still listed"
        );
        let page = raw_get(port, "/", &other)?;
        ensure!(
            page.contains("login-link") && !page.contains("id=\"user\""),
            "the revoked device is still signed in"
        );
        ensure!(
            text(&c, "#user").await? == "alice",
            "revoking signed this browser out"
        );
        c.goto(&base).await?;
        let png = c.screenshot().await?;
        std::fs::write(shots.join(format!("logged-in-{label}.png")), png)?;

        // Log out: the session is gone from the store, the cookie expired.
        act(&c, "logout", None).await?;
        // A click does not wait for the next page: wait (bounded) for it.
        c.wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Id("login-link"))
            .await
            .context("still logged in after logout")?;
        let id = Signer::new([Secret::new(SECRET)?])?
            .unsign_cookie(&signed)
            .context("the browser's cookie does not verify")?
            .id;
        if persistent {
            let url = store_url.clone().unwrap_or_else(|| {
                format!("sqlite://{}", work.path().join("sessions.db").display())
            });
            let store = sessionkit_stores::connect(&url).await?;
            ensure!(
                store.load(&id).await?.is_none(),
                "session still in the store"
            );
        }
        // Replaying the old cookie finds nothing.
        let page = raw_get(port, "/", &format!("connect.sid={signed}"))?;
        ensure!(
            page.contains("login-link") && !page.contains("id=\"user\""),
            "old cookie still logs in"
        );
        Ok(())
    }
    .await;
    let _ = c.close().await;
    drop(demo);
    result
}

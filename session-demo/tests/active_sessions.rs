//! "Your active sessions" through the real demo: a server on 127.0.0.1:0 and
//! one HTTP client per "device", each with its own user agent and cookie.
//!
//! Every scenario runs on the in-process store, on SQLite with the per-user
//! index, on the in-process store with hashed ids (where the index lists
//! storage keys, not ids), and on the server stores (`REDIS_URL`,
//! `DATABASE_URL`, `MYSQL_URL`, `MONGODB_URL`, else their usual local
//! ports; PostgreSQL and MySQL with `principal_index=true`), each run in its
//! own key prefix, table or collection.

use anyhow::{bail, ensure, Context, Result};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use session_demo::Settings;
use sessionkit_core::Store;
use sessionkit_core::{Secret, SessionId, Signer};
use std::sync::Arc;

const SECRET: &str = "active-sessions-test-secret-long-enough-to-sign";

/// The demo served on a free loopback port.
struct Site {
    base: String,
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

async fn site(url: impl FnOnce(&std::path::Path) -> String) -> Result<Site> {
    let dir = tempfile::tempdir()?;
    let (base, store) = serve(url(dir.path())).await?;
    Ok(Site {
        base,
        store,
        _dir: dir,
    })
}

/// Serves the demo on the store `url` names; its base URL and store.
async fn serve(store_url: String) -> Result<(String, Arc<dyn Store>)> {
    let settings = Settings {
        store_url,
        secrets: vec![SECRET.to_owned()],
        addr: ([127, 0, 0, 1], 0).into(),
        trust_proxy: None,
    };
    let store = session_demo::connect(&settings.store_url).await?;
    let app = session_demo::app(store.clone(), &settings)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(session_demo::serve(listener, app, std::future::pending()));
    Ok((base, store))
}

/// A browser on some device: its user agent and its one cookie.
struct Device {
    base: String,
    client: reqwest::Client,
    cookie: Option<String>,
}

/// A response: status, `Location`, body.
struct Page {
    status: StatusCode,
    location: Option<String>,
    body: String,
}

impl Device {
    fn new(base: &str, user_agent: &str) -> Result<Self> {
        Ok(Device {
            base: base.to_owned(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(user_agent.to_owned())
                .build()?,
            cookie: None,
        })
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Result<Page> {
        let req = match &self.cookie {
            Some(c) => req.header(COOKIE, c),
            None => req,
        };
        let res = req.send().await?;
        // The jar: keep `connect.sid`, drop it when the server expires it.
        for value in res.headers().get_all(SET_COOKIE) {
            let value = value.to_str()?;
            let Some(rest) = value.strip_prefix("connect.sid=") else {
                continue;
            };
            let pair = rest.split(';').next().unwrap_or_default();
            let lower = value.to_ascii_lowercase();
            if lower.contains("max-age=0") || lower.contains("01 jan 1970") {
                self.cookie = None;
            } else {
                self.cookie = Some(format!("connect.sid={pair}"));
            }
        }
        Ok(Page {
            status: res.status(),
            location: res
                .headers()
                .get(LOCATION)
                .and_then(|l| l.to_str().ok())
                .map(str::to_owned),
            body: res.text().await?,
        })
    }

    async fn get(&mut self, path: &str) -> Result<Page> {
        let req = self.client.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    /// Posts `form` as the browser would: with the CSRF token of this
    /// device's session, read from a page's form.
    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Result<Page> {
        let page = self.get("/cart").await?;
        let token = page
            .body
            .split(r#"name="_csrf" value=""#)
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .context("no CSRF field on the cart page")?
            .to_owned();
        let mut fields = form.to_vec();
        fields.push(("_csrf", &token));
        let req = self
            .client
            .post(format!("{}{path}", self.base))
            .form(&fields);
        self.send(req).await
    }

    async fn login(&mut self, name: &str) -> Result<()> {
        let page = self.post("/login", &[("username", name)]).await?;
        ensure!(
            page.status == StatusCode::SEE_OTHER && self.cookie.is_some(),
            "login answered {} without a cookie",
            page.status
        );
        ensure!(self.user().await?.as_deref() == Some(name), "not logged in");
        Ok(())
    }

    /// Who the home page says is signed in.
    async fn user(&mut self) -> Result<Option<String>> {
        let page = self.get("/").await?;
        ensure!(
            page.status == StatusCode::OK,
            "home answered {}",
            page.status
        );
        Ok(page
            .body
            .split_once(r#"<strong id="user">"#)
            .and_then(|(_, rest)| rest.split_once("</strong>"))
            .map(|(name, _)| name.to_owned()))
    }

    /// The session id in this device's cookie.
    fn id(&self) -> Result<SessionId> {
        let cookie = self.cookie.as_deref().context("no cookie")?;
        let value = cookie.trim_start_matches("connect.sid=");
        Ok(Signer::new([Secret::new(SECRET)?])?
            .unsign_cookie(value)
            .context("cookie does not verify")?
            .id)
    }

    /// "Your active sessions", which must list.
    async fn sessions(&mut self) -> Result<Vec<Row>> {
        let page = self.get("/sessions").await?;
        ensure!(
            page.status == StatusCode::OK,
            "sessions page answered {}",
            page.status
        );
        ensure!(
            !page.body.contains(r#"id="unsupported""#),
            "the store has no index"
        );
        rows(&page.body)
    }
}

/// One listed session as the page shows it.
#[derive(Debug)]
struct Row {
    reference: String,
    current: bool,
    html: String,
}

fn rows(body: &str) -> Result<Vec<Row>> {
    let mut out = Vec::new();
    for chunk in body.split("<tr class=\"session").skip(1) {
        let html = chunk.split("</tr>").next().unwrap_or_default().to_owned();
        let reference = html
            .split_once("data-session=\"")
            .and_then(|(_, r)| r.split_once('"'))
            .map(|(r, _)| r.to_owned())
            .context("row without a reference")?;
        out.push(Row {
            reference,
            current: html.starts_with(" current\""),
            html,
        });
    }
    let current = out.iter().filter(|r| r.current).count();
    ensure!(current <= 1, "{current} rows marked as this session");
    Ok(out)
}

fn row_of<'a>(rows: &'a [Row], agent: &str) -> Result<&'a Row> {
    match rows.iter().find(|r| r.html.contains(agent)) {
        Some(r) => Ok(r),
        None => bail!("no session of {agent} listed in {rows:?}"),
    }
}

/// Two devices of alice list each other; revoking the other one signs it
/// out; foreign and malformed references are refused and end nothing.
async fn revoke_one(site: &Site) -> Result<()> {
    let mut laptop = Device::new(&site.base, "LaptopBrowser/1.0")?;
    let mut phone = Device::new(&site.base, "PhoneBrowser/2.0")?;
    let mut bob = Device::new(&site.base, "BobBrowser/3.0")?;
    laptop.login("alice").await?;
    phone.login("alice").await?;
    bob.login("bob").await?;

    let listed = laptop.sessions().await?;
    ensure!(
        listed.len() == 2,
        "alice has {} sessions listed",
        listed.len()
    );
    let mine = row_of(&listed, "LaptopBrowser/1.0")?;
    let other = row_of(&listed, "PhoneBrowser/2.0")?;
    ensure!(mine.current && !other.current, "this session not marked");
    ensure!(
        mine.html.contains("127.0.0.1") && other.html.contains("127.0.0.1"),
        "client address not shown"
    );
    ensure!(
        other.html.contains("class=\"danger revoke\"") && !mine.html.contains("revoke"),
        "revoke buttons on the wrong rows"
    );
    let from_phone = phone.sessions().await?;
    ensure!(
        row_of(&from_phone, "PhoneBrowser/2.0")?.current,
        "the phone's page does not mark the phone"
    );
    let bobs = bob.sessions().await?;
    ensure!(bobs.len() == 1 && bobs[0].current, "bob sees {bobs:?}");
    ensure!(
        !bobs[0].html.contains("Browser/1.0") && !bobs[0].html.contains("Browser/2.0"),
        "bob sees alice's sessions"
    );

    // Refused, each with a 4xx, and nothing ends.
    let bob_id = bob.id()?;
    let hashed_bob = sessionkit_core::HashedIds::<()>::key(&bob_id);
    let refusals: Vec<(String, StatusCode)> = vec![
        (bobs[0].reference.clone(), StatusCode::NOT_FOUND), // bob's, from his own page
        (hashed_bob.as_str().to_owned(), StatusCode::NOT_FOUND), // bob's by another hash
        (bob_id.as_str().to_owned(), StatusCode::BAD_REQUEST), // a raw id
        (mine.reference.clone(), StatusCode::BAD_REQUEST),  // this session
        (String::new(), StatusCode::BAD_REQUEST),
        ("../../etc/passwd".into(), StatusCode::BAD_REQUEST),
        ("A".repeat(43), StatusCode::NOT_FOUND),
        ("é".repeat(40), StatusCode::BAD_REQUEST),
        ("\u{0}".repeat(43), StatusCode::BAD_REQUEST),
        ("x".repeat(100_000), StatusCode::BAD_REQUEST),
    ];
    for (reference, status) in &refusals {
        let page = laptop
            .post("/sessions/revoke", &[("session", reference)])
            .await?;
        ensure!(
            page.status == *status,
            "revoking {:.50?} answered {} (expected {status})",
            reference,
            page.status
        );
        ensure!(page.body.contains(r#"id="message""#), "no explanation");
    }
    let page = laptop.post("/sessions/revoke", &[]).await?;
    ensure!(
        page.status == StatusCode::BAD_REQUEST,
        "no field: {}",
        page.status
    );
    let raw = laptop
        .client
        .post(format!("{}/sessions/revoke", laptop.base))
        .header(COOKIE, laptop.cookie.clone().unwrap_or_default())
        .body("not a form")
        .send()
        .await?;
    ensure!(
        raw.status().is_client_error(),
        "not a form: {}",
        raw.status()
    );
    // Without a login: refused, whatever the reference.
    let mut stranger = Device::new(&site.base, "Stranger/0")?;
    let page = stranger
        .post("/sessions/revoke", &[("session", &other.reference)])
        .await?;
    ensure!(
        page.status == StatusCode::UNAUTHORIZED,
        "stranger: {}",
        page.status
    );
    let page = stranger.post("/sessions/revoke-others", &[]).await?;
    ensure!(
        page.status == StatusCode::UNAUTHORIZED,
        "stranger: {}",
        page.status
    );
    let page = stranger.get("/sessions").await?;
    ensure!(
        page.status == StatusCode::SEE_OTHER && page.location.as_deref() == Some("/login"),
        "stranger's sessions page: {}",
        page.status
    );
    ensure!(
        phone.user().await?.as_deref() == Some("alice"),
        "phone signed out"
    );
    ensure!(
        bob.user().await?.as_deref() == Some("bob"),
        "bob signed out"
    );
    ensure!(
        laptop.sessions().await?.len() == 2,
        "a session of alice ended"
    );

    // Revoke the phone from the laptop.
    let page = laptop
        .post("/sessions/revoke", &[("session", &other.reference)])
        .await?;
    ensure!(
        page.status == StatusCode::SEE_OTHER
            && page.location.as_deref() == Some("/sessions?revoked=1"),
        "revoke answered {} {:?}",
        page.status,
        page.location
    );
    ensure!(
        phone.user().await?.is_none(),
        "the revoked phone is still alice"
    );
    let page = laptop.get("/sessions?revoked=1").await?;
    ensure!(page.body.contains(r#"id="notice""#), "no notice");
    let left = rows(&page.body)?;
    ensure!(left.len() == 1 && left[0].current, "left: {left:?}");
    ensure!(
        laptop.user().await?.as_deref() == Some("alice"),
        "laptop signed out"
    );
    ensure!(
        bob.user().await?.as_deref() == Some("bob"),
        "bob signed out"
    );
    // The same reference again: already gone.
    let page = laptop
        .post("/sessions/revoke", &[("session", &other.reference)])
        .await?;
    ensure!(
        page.status == StatusCode::NOT_FOUND,
        "again: {}",
        page.status
    );
    Ok(())
}

/// "Log out everywhere else" ends alice's other sessions only.
async fn everywhere_else(site: &Site) -> Result<()> {
    let mut laptop = Device::new(&site.base, "LaptopBrowser/1.0")?;
    let mut phone = Device::new(&site.base, "PhoneBrowser/2.0")?;
    let mut tablet = Device::new(&site.base, "TabletBrowser/4.0")?;
    let mut bob = Device::new(&site.base, "BobBrowser/3.0")?;
    for d in [&mut laptop, &mut phone, &mut tablet] {
        d.login("carol").await?;
    }
    bob.login("bob").await?;
    ensure!(laptop.sessions().await?.len() == 3, "carol's sessions");
    let page = laptop.post("/sessions/revoke-others", &[]).await?;
    ensure!(
        page.status == StatusCode::SEE_OTHER
            && page.location.as_deref() == Some("/sessions?ended=2"),
        "revoke-others answered {} {:?}",
        page.status,
        page.location
    );
    ensure!(
        laptop.user().await?.as_deref() == Some("carol"),
        "kept session ended"
    );
    ensure!(phone.user().await?.is_none(), "phone still signed in");
    ensure!(tablet.user().await?.is_none(), "tablet still signed in");
    ensure!(
        bob.user().await?.as_deref() == Some("bob"),
        "bob signed out"
    );
    let left = laptop.sessions().await?;
    ensure!(left.len() == 1 && left[0].current, "left: {left:?}");
    // Nothing else to end.
    let page = laptop.post("/sessions/revoke-others", &[]).await?;
    ensure!(
        page.location.as_deref() == Some("/sessions?ended=0"),
        "{:?}",
        page.location
    );
    Ok(())
}

async fn scenarios(site: Site) -> Result<()> {
    revoke_one(&site).await?;
    everywhere_else(&site).await?;
    Ok(())
}

#[tokio::test]
async fn memory_store() -> Result<()> {
    scenarios(site(|_| "memory://".into()).await?).await
}

#[tokio::test]
async fn memory_store_with_hashed_ids() -> Result<()> {
    let site = site(|_| "memory://?hashed_ids=true".into()).await?;
    // The index lists storage keys, not ids.
    let id = SessionId::generate();
    ensure!(site.store.listed_id(&id) != id);
    scenarios(site).await
}

#[tokio::test]
async fn sqlite_with_the_index() -> Result<()> {
    scenarios(
        site(|dir| {
            format!(
                "sqlite://{}?principal_index=true",
                dir.join("sessions.db").display()
            )
        })
        .await?,
    )
    .await
}

/// Without the index the page says so, and both actions are refused.
#[tokio::test]
async fn sqlite_without_the_index_says_so() -> Result<()> {
    let site = site(|dir| format!("sqlite://{}", dir.join("sessions.db").display())).await?;
    let mut laptop = Device::new(&site.base, "LaptopBrowser/1.0")?;
    let mut phone = Device::new(&site.base, "PhoneBrowser/2.0")?;
    laptop.login("alice").await?;
    phone.login("alice").await?;
    let page = laptop.get("/sessions").await?;
    ensure!(
        page.status == StatusCode::OK && page.body.contains(r#"id="unsupported""#),
        "sessions page without index: {}",
        page.status
    );
    let reference = sessionkit_core::HashedIds::<()>::key(&phone.id()?);
    let page = laptop
        .post("/sessions/revoke", &[("session", reference.as_str())])
        .await?;
    ensure!(
        page.status == StatusCode::NOT_IMPLEMENTED,
        "revoke: {}",
        page.status
    );
    let page = laptop.post("/sessions/revoke-others", &[]).await?;
    ensure!(
        page.status == StatusCode::NOT_IMPLEMENTED,
        "revoke-others: {}",
        page.status
    );
    ensure!(
        phone.user().await?.as_deref() == Some("alice"),
        "phone signed out"
    );
    ensure!(
        laptop.user().await?.as_deref() == Some("alice"),
        "laptop signed out"
    );
    Ok(())
}

/// Sessions written before the index was turned on join it when next
/// written; the sessions page writes its own session at once.
#[tokio::test]
async fn sqlite_index_turned_on_later() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("sessions.db");
    let (before, _) = serve(format!("sqlite://{}", file.display())).await?;
    let mut laptop = Device::new(&before, "LaptopBrowser/1.0")?;
    let mut phone = Device::new(&before, "PhoneBrowser/2.0")?;
    laptop.login("alice").await?;
    phone.login("alice").await?;
    let (after, _) = serve(format!("sqlite://{}?principal_index=true", file.display())).await?;
    laptop.base = after.clone();
    phone.base = after;
    let listed = laptop.sessions().await?;
    ensure!(
        listed.len() == 1 && listed[0].current,
        "the page's own session is not listed: {listed:?}"
    );
    ensure!(
        phone.user().await?.as_deref() == Some("alice"),
        "phone signed out"
    );
    let listed = laptop.sessions().await?;
    ensure!(
        listed.len() == 2,
        "a written session is not listed: {listed:?}"
    );
    Ok(())
}

/// A server's URL from the environment (as `cargo xtask` sets it), else its
/// usual local address, with this run's own key prefix, table or collection.
fn server_url(var: &str, default: &str, options: &str) -> String {
    let url = std::env::var(var)
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| default.to_owned());
    let sep = if url.contains('?') { '&' } else { '?' };
    let tag = SessionId::generate().as_str()[..8]
        .to_ascii_lowercase()
        .replace('-', "_");
    format!("{url}{sep}{}", options.replace("{tag}", &tag))
}

/// The scenarios on a server store, which is emptied afterwards.
async fn on_server(url: String) -> Result<()> {
    let site = site(|_| url).await?;
    let store = site.store.clone();
    let result = scenarios(site).await;
    store.clear().await?;
    result
}

#[tokio::test]
async fn redis_store() -> Result<()> {
    on_server(server_url(
        "REDIS_URL",
        "redis://127.0.0.1:6379",
        "prefix=demo-active-{tag}:&ttl=600",
    ))
    .await
}

#[tokio::test]
async fn postgres_with_the_index() -> Result<()> {
    on_server(server_url(
        "DATABASE_URL",
        "postgres://postgres@127.0.0.1:5432/test",
        "table=demo_active_{tag}&prune_interval=0&principal_index=true",
    ))
    .await
}

#[tokio::test]
async fn mysql_with_the_index() -> Result<()> {
    on_server(server_url(
        "MYSQL_URL",
        "mysql://root@127.0.0.1:3306/test",
        "table=demo_active_{tag}&prune_interval=0&principal_index=true",
    ))
    .await
}

#[tokio::test]
async fn mongo_store() -> Result<()> {
    on_server(server_url(
        "MONGODB_URL",
        "mongodb://127.0.0.1:27017",
        "collection=demo_active_{tag}",
    ))
    .await
}

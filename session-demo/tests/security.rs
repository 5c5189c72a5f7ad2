//! The demo's own security settings through a real server: the cookie is
//! `Secure` behind a trusted HTTPS proxy, and store passwords never reach
//! an error message.

use anyhow::{ensure, Context, Result};
use reqwest::header::SET_COOKIE;
use session_demo::Settings;

const SECRET: &str = "demo-security-test-secret-long-enough-to-sign";

async fn serve(trust_proxy: Option<bool>) -> Result<String> {
    let settings = Settings {
        store_url: "memory://".into(),
        secrets: vec![SECRET.to_owned()],
        addr: ([127, 0, 0, 1], 0).into(),
        trust_proxy,
    };
    let store = session_demo::connect(&settings.store_url).await?;
    let app = session_demo::app(store, &settings)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(session_demo::serve(listener, app, std::future::pending()));
    Ok(base)
}

fn client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}

fn session_cookie(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("connect.sid="))
        .map(str::to_owned)
}

/// The login form's session cookie (`name=value`) and CSRF token.
async fn login_form(base: &str, https: bool) -> Result<(String, String)> {
    let mut req = client()?.get(format!("{base}/login"));
    if https {
        req = req.header("x-forwarded-proto", "https");
    }
    let res = req.send().await?;
    let cookie = session_cookie(&res).context("the login form set no cookie")?;
    let page = res.text().await?;
    let token = page
        .split(r#"name="_csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .context("no CSRF field in the login form")?
        .to_owned();
    let pair = cookie.split(';').next().unwrap_or_default().to_owned();
    Ok((pair, token))
}

/// The session cookie a login sets, with or without `X-Forwarded-Proto`.
async fn login_cookie(base: &str, https: bool) -> Result<String> {
    let (cookie, token) = login_form(base, https).await?;
    let mut req = client()?
        .post(format!("{base}/login"))
        .header(reqwest::header::COOKIE, cookie)
        .form(&[("username", "alice"), ("_csrf", token.as_str())]);
    if https {
        req = req.header("x-forwarded-proto", "https");
    }
    let res = req.send().await?;
    ensure!(
        res.status() == reqwest::StatusCode::SEE_OTHER,
        "login: {}",
        res.status()
    );
    session_cookie(&res).context("no session cookie")
}

/// Login CSRF: an attacker's page that posts the login form with the
/// attacker's name would sign the victim in as the attacker. Refused by
/// origin, and without the form's token.
#[tokio::test]
async fn a_cross_site_login_does_not_sign_the_victim_in() -> Result<()> {
    let base = serve(None).await?;
    // The victim's browser, on the attacker's page: Origin is the attacker's.
    for headers in [
        vec![("origin", "http://evil.example")],
        vec![("sec-fetch-site", "cross-site")],
    ] {
        let mut req = client()?
            .post(format!("{base}/login"))
            .form(&[("username", "attacker")]);
        for (k, v) in &headers {
            req = req.header(*k, *v);
        }
        let res = req.send().await?;
        ensure!(
            res.status() == reqwest::StatusCode::FORBIDDEN,
            "{headers:?}: {}",
            res.status()
        );
        ensure!(
            session_cookie(&res).is_none(),
            "{headers:?}: a session cookie was set"
        );
    }
    // No browser signal at all (an old browser): the missing token refuses it.
    let res = client()?
        .post(format!("{base}/login"))
        .form(&[("username", "attacker")])
        .send()
        .await?;
    ensure!(
        res.status() == reqwest::StatusCode::FORBIDDEN,
        "no token: {}",
        res.status()
    );
    ensure!(session_cookie(&res).is_none());
    // A token from another session does not help either.
    let (_, foreign) = login_form(&base, false).await?;
    let (cookie, _) = login_form(&base, false).await?;
    let res = client()?
        .post(format!("{base}/login"))
        .header(reqwest::header::COOKIE, cookie)
        .form(&[("username", "attacker"), ("_csrf", foreign.as_str())])
        .send()
        .await?;
    ensure!(
        res.status() == reqwest::StatusCode::FORBIDDEN,
        "foreign token: {}",
        res.status()
    );
    // The real form works.
    login_cookie(&base, false).await?;
    Ok(())
}

#[tokio::test]
async fn the_cookie_is_secure_behind_a_trusted_https_proxy() -> Result<()> {
    let base = serve(Some(true)).await?;
    let cookie = login_cookie(&base, true).await?;
    ensure!(cookie.contains("; Secure"), "{cookie}");
    // Plain HTTP (local development) still gets a cookie it can send back.
    let cookie = login_cookie(&base, false).await?;
    ensure!(!cookie.contains("; Secure"), "{cookie}");
    // An untrusted proxy header is ignored.
    let base = serve(None).await?;
    let cookie = login_cookie(&base, true).await?;
    ensure!(!cookie.contains("; Secure"), "{cookie}");
    Ok(())
}

#[tokio::test]
async fn store_passwords_never_reach_error_messages() -> Result<()> {
    for url in [
        "redis://:hunter2-userinfo@127.0.0.1:1/?connect_timeout=1",
        "redis://127.0.0.1:1/?password=hunter2-query&connect_timeout=1",
        "postgres://app:hunter2-userinfo@127.0.0.1:1/db?connect_timeout=1",
        "mysql://app:hunter2-userinfo@127.0.0.1:1/db?connect_timeout=1",
        "redis+sentinel://127.0.0.1:1/mymaster?sentinel_password=hunter2-sentinel&connect_timeout=1",
        "redis://127.0.0.1:1/?password=hunter2-query&no_such_option=1",
    ] {
        let err = match session_demo::connect(url).await {
            Ok(_) => anyhow::bail!("connected to {url}"),
            Err(e) => format!("{e:#} {e:?}"),
        };
        ensure!(!err.contains("hunter2"), "{url}: {err}");
    }
    Ok(())
}

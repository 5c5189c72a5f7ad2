//! express-session peers: the interop app (`interop/app.js`), started with
//! `node` and the store chosen by its environment, on its `/counter` route.

use crate::env::Env;
use crate::server::{MAX_AGE, SECRET};
use anyhow::{bail, Context, Result};
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub struct NodeApp {
    pub addr: SocketAddr,
    child: Child,
}

/// `npm ci` in `interop/` when its `node_modules` is missing.
pub async fn ensure_modules(env: &Env) -> Result<()> {
    let dir = env.root.join("interop");
    if dir.join("node_modules").join("express-session").is_dir() {
        return Ok(());
    }
    eprintln!("bench: npm ci in {}", dir.display());
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .status()
        .await
        .context("running npm ci")?;
    if !status.success() {
        bail!("npm ci failed ({status})");
    }
    Ok(())
}

/// Starts the app with `STORE=store` and waits for its "listening on" line.
pub async fn start(env: &Env, store: &str) -> Result<NodeApp> {
    let mut cmd = Command::new("node");
    cmd.arg("app.js")
        .current_dir(env.root.join("interop"))
        .env("STORE", store)
        .env("SECRETS", SECRET)
        .env("PORT", "0")
        .env("MAX_AGE_MS", MAX_AGE.as_millis().to_string())
        .env("NODE_ENV", "production")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    if let Some(url) = &env.redis_url {
        cmd.env("REDIS_URL", url);
    }
    if let Some(url) = &env.mongo_url {
        cmd.env("MONGODB_URL", url)
            .env("MONGODB_DB", crate::env::MONGO_DATABASE);
    }
    if let Some(url) = env.pg_bench_url() {
        cmd.env("DATABASE_URL", url);
    }
    if let Some(url) = &env.mysql_url {
        cmd.env("MYSQL_URL", url).env("MYSQL_TABLE", "http_express");
    }
    let mut child = cmd.spawn().context("starting node")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(a) = line.strip_prefix("listening on ") {
                return Ok(a.trim().parse::<SocketAddr>()?);
            }
        }
        bail!("the Node app exited before listening")
    })
    .await
    .context("the Node app did not listen within 30 s")??;
    // Keep draining stdout so the app never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(NodeApp { addr, child })
}

impl NodeApp {
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            // SIGTERM first: the app closes its store client.
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
                .await
                .is_ok()
            {
                return;
            }
        }
        let _ = self.child.kill().await;
    }
}

/// The session id inside an express-session cookie `connect.sid=s%3A<id>.<mac>`.
pub fn express_id(cookie: &str) -> Option<String> {
    let value = cookie.split_once('=')?.1;
    let value = value.replace("%3A", ":");
    let signed = value.strip_prefix("s:")?;
    let (id, _mac) = signed.rsplit_once('.')?;
    Some(id.to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn express_ids_are_extracted() {
        assert_eq!(
            super::express_id("connect.sid=s%3Aabc_DEF-1.mac%2Bsig").as_deref(),
            Some("abc_DEF-1")
        );
        assert_eq!(super::express_id("connect.sid=plain"), None);
    }
}

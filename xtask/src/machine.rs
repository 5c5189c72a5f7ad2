//! What `cargo xtask ci` needs from the machine, checked before the long
//! build (a missing tool stops the run at once, with the command that
//! installs it), and installed when that is safe: Chromium and its driver
//! through apt when running as root. Servers are not installed: a missing
//! server is started from the machine's binaries by `servers.rs`.

use crate::servers::{is_root, listening, which};
use anyhow::{bail, Result};
use std::path::Path;
use std::process::Command;

fn var_set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.trim().is_empty())
}

/// A server is reachable (its URL variable, its usual port) or can be
/// started from a binary of the machine.
fn server_available(var: &str, port: u16, binaries: &[&str]) -> bool {
    var_set(var)
        || listening(port)
        || binaries.iter().any(|b| {
            which(b).is_some()
                || std::fs::read_dir("/usr/lib/postgresql")
                    .into_iter()
                    .flatten()
                    .flatten()
                    .any(|v| v.path().join("bin").join(b).is_file())
        })
}

/// Installs Debian packages with apt (`apt-get update`, then `install`
/// without recommends), as root.
pub fn apt_install(packages: &[&str]) -> Result<()> {
    eprintln!("xtask: installing {} (apt-get)", packages.join(", "));
    let install = [
        &["install", "-y", "-qq", "--no-install-recommends"][..],
        packages,
    ]
    .concat();
    for args in [&["update", "-qq"][..], &install[..]] {
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()?;
        if !status.success() {
            bail!("apt-get {} failed ({status})", args.join(" "));
        }
    }
    Ok(())
}

/// Checks the machine for `cargo xtask ci`, installing the browser when
/// missing and possible; fails at once listing everything else missing.
pub fn prepare() -> Result<()> {
    let mut missing: Vec<String> = Vec::new();
    for (tool, what) in [
        (
            "node",
            "Node.js 20 or later (the interop apps and the bench's express-session)",
        ),
        ("npm", "npm (installs the interop app's packages)"),
        (
            "python3",
            "Python 3 with venv (the MongoDB wire-compatible test server)",
        ),
        ("openssl", "openssl (the TLS tests' certificates)"),
    ] {
        if which(tool).is_none() {
            missing.push(what.to_owned());
        }
    }
    if !server_available("REDIS_URL", 6379, &["redis-server"]) {
        missing.push("Redis (apt-get install redis-server, or REDIS_URL)".to_owned());
    }
    if !server_available("DATABASE_URL", 5432, &["initdb"]) {
        missing.push("PostgreSQL (apt-get install postgresql, or DATABASE_URL)".to_owned());
    }
    if !server_available("MYSQL_URL", 3306, &["mariadbd", "mysqld"]) {
        missing.push("MariaDB (apt-get install mariadb-server, or MYSQL_URL)".to_owned());
    }
    let browser = which("chromium").is_some() && which("chromedriver").is_some()
        || Path::new("/usr/bin/chromedriver").is_file() && Path::new("/usr/bin/chromium").is_file();
    if !browser {
        if is_root() && which("apt-get").is_some() {
            apt_install(&["chromium", "chromium-driver"])?;
        } else {
            missing.push(
                "Chromium and its WebDriver (as root: apt-get install chromium chromium-driver)"
                    .to_owned(),
            );
        }
    }
    // The conformance suite in containers: an engine that answers, or
    // Podman (installed here as root).
    if !crate::containers::engine_answers() {
        if let Err(e) = crate::containers::install_podman() {
            missing.push(format!("{e:#}"));
        }
    }
    if !missing.is_empty() {
        bail!(
            "cargo xtask ci needs, before it builds anything:\n  - {}",
            missing.join("\n  - ")
        );
    }
    Ok(())
}

//! Throw-away certificates for the TLS servers, made per run with the
//! machine's `openssl`: a CA, a server certificate it signs for
//! `IP:127.0.0.1` only (so `localhost` is a wrong host name), and a second,
//! unrelated CA (an unknown issuer for the negative tests).

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The files, under a directory of their own.
#[derive(Debug, Clone)]
pub struct Certs {
    /// The CA that signed the server certificate (PEM).
    pub ca: PathBuf,
    /// The server certificate (PEM).
    pub cert: PathBuf,
    /// The server key (PEM, unencrypted).
    pub key: PathBuf,
    /// A CA that signed nothing the servers use.
    pub other_ca: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .context("running openssl (apt-get install openssl)")?;
    if !out.status.success() {
        bail!(
            "openssl {} failed: {}",
            args.first().copied().unwrap_or_default(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn self_signed_ca(dir: &Path, name: &str, cn: &str) -> Result<()> {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "7",
            "-subj",
            &format!("/CN={cn}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
        ],
    )
}

/// Makes the certificates in `dir` (created if missing); the paths are absolute.
pub fn generate(dir: &Path) -> Result<Certs> {
    std::fs::create_dir_all(dir)?;
    // Absolute: servers change directory, tests run in their package's.
    let dir = &dir.canonicalize()?;
    self_signed_ca(dir, "ca", "session-test CA")?;
    self_signed_ca(dir, "other-ca", "some other CA")?;
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    )?;
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "7",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ],
    )?;
    Ok(Certs {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
        other_ca: dir.join("other-ca.pem"),
    })
}

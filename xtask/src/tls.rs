//! Throw-away certificates for the TLS servers, made per run with the
//! machine's `openssl`: a CA, a server certificate it signs for
//! `IP:127.0.0.1` only (so `localhost` is a wrong host name), and a second,
//! unrelated CA (an unknown issuer for the negative tests), and a client
//! certificate the CA signs for the PostgreSQL role [`CLIENT_USER`].

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
    /// A client certificate for [`CLIENT_USER`] (PEM), signed by `ca`.
    pub client_cert: PathBuf,
    /// Its key (PEM, unencrypted, mode 0600).
    pub client_key: PathBuf,
}

/// The PostgreSQL role that logs in with the client certificate only (its
/// common name; the TLS server's `pg_hba.conf` says `cert` for it).
pub const CLIENT_USER: &str = "session_cert";

/// Signs `name.csr` with the CA into `name.pem`, with the extensions `ext`.
fn sign(dir: &Path, name: &str, ext: &str) -> Result<()> {
    std::fs::write(dir.join(format!("{name}.ext")), ext)?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "7",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.pem"),
        ],
    )
}

/// A key and a certificate request for `cn` (`name.key`, `name.csr`).
fn request(dir: &Path, name: &str, cn: &str) -> Result<()> {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &format!("/CN={cn}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ],
    )
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
    request(dir, "server", "127.0.0.1")?;
    sign(
        dir,
        "server",
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )?;
    request(dir, "client", CLIENT_USER)?;
    sign(
        dir,
        "client",
        "basicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n",
    )?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("client.key"),
        std::fs::Permissions::from_mode(0o600),
    )?;
    Ok(Certs {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
        other_ca: dir.join("other-ca.pem"),
        client_cert: dir.join("client.pem"),
        client_key: dir.join("client.key"),
    })
}

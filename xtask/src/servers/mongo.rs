//! The MongoDB wire-compatible test server, installed from PyPI into a venv.

use super::*;

/// The venv's python with the MongoDB test server installed (installs it
/// when missing).
pub fn mongo_python() -> Result<PathBuf> {
    let venv = crate::target_dir().join("mongo-venv");
    let python = venv.join("bin").join("python");
    let installed = Command::new(&python)
        .args(["-c", "import secantus"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        eprintln!(
            "xtask: installing {SECANTUS_VERSION} into {}",
            venv.display()
        );
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()?
            .success()
            && Command::new(venv.join("bin").join("pip"))
                .args([
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    SECANTUS_VERSION,
                ])
                .status()?
                .success();
        if !ok {
            bail!(
                "could not install {SECANTUS_VERSION} into {}",
                venv.display()
            );
        }
    }
    Ok(python)
}

//! The app refuses a missing or unknown store with a clear error, never a
//! panic. (Also makes `cargo test --workspace` build the binary, which
//! `cargo xtask interop` then runs: one build for CI.)

#![allow(clippy::expect_used)] // test helpers

use std::process::Command;

fn run(env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_interop-app"));
    cmd.env_remove("STORE").env_remove("SECRETS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("the interop app runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_missing_store_is_named() {
    let (ok, err) = run(&[]);
    assert!(!ok);
    assert!(err.contains("STORE"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn an_unknown_store_is_refused() {
    let (ok, err) = run(&[
        ("STORE", "oracle"),
        ("SECRETS", "a secret of at least thirty-two bytes!"),
    ]);
    assert!(!ok);
    assert!(err.contains("unknown or disabled STORE"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

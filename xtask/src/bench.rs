//! `cargo xtask bench [--quick] [ARGS]...`: builds `bench/` (a workspace of
//! its own, so the peers' dependencies never enter the main build) in
//! release and runs it with the servers' URLs. The report is printed and
//! written to `target/bench/results.md`; `--help` lists the options.

use crate::servers::Servers;
use crate::{cargo, run as step, Backend};
use anyhow::Result;
use std::path::Path;
use std::process::Command;

/// The bench's own target directory: under `target/` (ignored by git), and
/// apart from the main workspace's build so neither waits on the other's lock.
const TARGET_DIR: &str = "target/bench-build";

pub fn run(args: &[String], servers: &mut Servers) -> Result<()> {
    if !args.iter().any(|a| a == "-h" || a == "--help") {
        for b in [
            Backend::Redis,
            Backend::Postgres,
            Backend::Mongo,
            Backend::Mysql,
        ] {
            if let Err(e) = servers.ensure(b) {
                eprintln!("xtask: the bench runs without {}: {e:#}", b.name());
            }
        }
    }
    step(
        "build bench/ (release)",
        Command::new(cargo()).args([
            "build",
            "--release",
            "--manifest-path",
            "bench/Cargo.toml",
            "--target-dir",
            TARGET_DIR,
        ]),
    )?;
    let mut cmd = Command::new(Path::new(TARGET_DIR).join("release").join("session-bench"));
    cmd.args(args);
    cmd.env(
        "BENCH_COMMAND",
        format!("cargo xtask bench {}", args.join(" ")).trim_end(),
    );
    servers.apply_env(&mut cmd);
    step("bench", &mut cmd)
}

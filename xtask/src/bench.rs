//! `cargo xtask bench [--quick] [ARGS]...`: builds `bench/` (a workspace of
//! its own, so the peers' dependencies never enter the main build) in
//! release (`--quick`: unoptimised) and runs it with the servers' URLs.
//! The report is printed and written to `target/bench/results.md`;
//! `--help` lists the options.

use crate::servers::Servers;
use crate::{cargo, run as step, Backend};
use anyhow::Result;
use std::process::Command;

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
        // The TLS section's servers, unless `--section` leaves it out.
        let sections: Vec<&String> = args
            .windows(2)
            .filter(|w| w[0] == "--section")
            .map(|w| &w[1])
            .collect();
        let tls = sections.is_empty() || sections.iter().any(|s| *s == "tls");
        if tls {
            if let Err(e) = servers.start_bench_tls() {
                eprintln!("xtask: the bench runs without its TLS section: {e:#}");
            }
        }
    }
    // The bench's own target directory: under the main one (ignored by
    // git), and apart from the main workspace's build so neither waits on
    // the other's lock.
    let target = crate::target_dir().join("bench-build");
    // `--quick` is a smoke test whose figures mean nothing: it builds with
    // bench/'s unoptimised `smoke` profile, in a third of the release time.
    let profile = if args.iter().any(|a| a == "--quick") {
        "smoke"
    } else {
        "release"
    };
    step(
        &format!("build bench/ ({profile})"),
        Command::new(cargo()).args([
            "build",
            "--profile",
            profile,
            "--manifest-path",
            "bench/Cargo.toml",
            "--target-dir",
            &target.to_string_lossy(),
        ]),
    )?;
    let mut cmd = Command::new(target.join(profile).join("session-bench"));
    cmd.args(args);
    cmd.env(
        "BENCH_COMMAND",
        format!("cargo xtask bench {}", args.join(" ")).trim_end(),
    );
    servers.apply_env(&mut cmd);
    step("bench", &mut cmd)
}

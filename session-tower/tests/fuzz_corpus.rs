//! Replays the committed corpus of the `cookie_header` fuzz target (and the
//! inputs that once crashed it) through the very checks the fuzz target
//! runs, on the code the middleware runs (`read_session_cookie`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../fuzz/checks/cookie_header.rs"]
mod check;

use std::path::Path;

fn replay(dir: &str) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz")
        .join(dir);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return 0;
    };
    let mut n = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| check::check(&data));
        assert!(outcome.is_ok(), "{} fails the fuzz checks", path.display());
        n += 1;
    }
    n
}

#[test]
fn cookie_header_corpus_replays_clean() {
    assert!(
        replay("corpus/cookie_header") >= 10,
        "the corpus is committed"
    );
}

#[test]
fn cookie_header_regressions_replay_clean() {
    // No input has crashed this target so far; any that does goes here.
    let _ = replay("regressions/cookie_header");
}

//! Replays the committed corpus of the `record_json` fuzz target (and the
//! inputs that once crashed it) through the very checks the fuzz target runs:
//! no panic, and decode → encode → decode gives the same record.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../fuzz/checks/record_json.rs"]
mod check;

use std::path::Path;

fn replay(dir: &str) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz")
        .join(dir);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| check::check(&data));
        assert!(outcome.is_ok(), "{} fails the fuzz checks", path.display());
        n += 1;
    }
    n
}

#[test]
fn record_json_corpus_replays_clean() {
    assert!(replay("corpus/record_json") >= 5, "the corpus is committed");
}

#[test]
fn record_json_regressions_replay_clean() {
    assert!(replay("regressions/record_json") >= 1);
}

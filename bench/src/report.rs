//! The markdown report.

use crate::cleanup::PruneRow;
use crate::http::{HttpRow, Who};
use crate::memory::MemRow;
use crate::middleware::MwRow;
use crate::stats::{fmt_dur, fmt_rate, fmt_ratio, Sample};
use crate::store_level::Row;
use std::fmt::Write;

pub struct Report<'a> {
    pub header: String,
    pub store: &'a [Row],
    pub http: &'a [HttpRow],
    pub memory: &'a [MemRow],
    pub middleware: &'a [MwRow],
    pub prune: &'a [PruneRow],
    pub tls: &'a crate::tls::Results,
    pub log: &'a [String],
}

fn errors(s: &Sample) -> String {
    if s.errors == 0 {
        "0".into()
    } else {
        format!("**{}**", s.errors)
    }
}

impl Report<'_> {
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}", self.header);
        if !self.store.is_empty() {
            let _ = writeln!(
                out,
                "### Store operations (1 KiB session), ours vs the raw driver\n"
            );
            let _ = writeln!(out, "Raw: the same commands on the same layout and pool settings, the JSON built once, no (de)serialisation.\n");
            let _ = writeln!(out, "| backend | operation | tasks | ours ops/s | ours p50 | ours p99 | raw ops/s | raw p50 | raw p99 | ours ÷ raw |");
            let _ = writeln!(out, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|");
            for r in self.store {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    r.backend.name(),
                    r.op.name(),
                    r.conc,
                    fmt_rate(r.ours.rate()),
                    fmt_dur(r.ours.p50()),
                    fmt_dur(r.ours.p99()),
                    fmt_rate(r.raw.rate()),
                    fmt_dur(r.raw.p50()),
                    fmt_dur(r.raw.p99()),
                    fmt_ratio(r.ours.rate(), r.raw.rate()),
                );
            }
            let _ = writeln!(out);
        }
        if !self.http.is_empty() {
            let _ = writeln!(
                out,
                "### HTTP: a counter in the session (one load + one save per request)\n"
            );
            let _ = writeln!(out, "Each connection keeps its own session cookie; every answer is checked to be the previous one + 1.\n");
            let _ = writeln!(out, "| backend | contender | store | req/s | p50 | p99 | ÷ HTTP floor | ÷ store floor | ours ÷ it | errors |");
            let _ = writeln!(out, "|---|---|---|--:|--:|--:|--:|--:|--:|--:|");
            let floor = self
                .http
                .iter()
                .find(|r| r.who == Who::Floor)
                .map(|r| r.sample.rate())
                .unwrap_or(0.0);
            for r in self.http {
                let rate = r.sample.rate();
                let same = |w: Who| {
                    self.http
                        .iter()
                        .find(|x| x.backend == r.backend && x.who == w)
                        .map(|x| x.sample.rate())
                        .unwrap_or(0.0)
                };
                let (vs_raw, vs_ours) = match r.who {
                    Who::Floor | Who::Raw => ("–".to_owned(), "–".to_owned()),
                    Who::Ours => (fmt_ratio(rate, same(Who::Raw)), "–".to_owned()),
                    Who::Tower | Who::Express => (
                        fmt_ratio(rate, same(Who::Raw)),
                        fmt_ratio(same(Who::Ours), rate),
                    ),
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    r.backend.map_or("–", |b| b.name()),
                    r.who.label(),
                    r.store,
                    fmt_rate(rate),
                    fmt_dur(r.sample.p50()),
                    fmt_dur(r.sample.p99()),
                    if r.who == Who::Floor {
                        "1.00×".to_owned()
                    } else {
                        fmt_ratio(rate, floor)
                    },
                    vs_raw,
                    vs_ours,
                    errors(&r.sample),
                );
            }
            let _ = writeln!(out);
        }
        if !self.middleware.is_empty() {
            let _ = writeln!(
                out,
                "### Per-request cost without sockets (HTTP counter app, memory stores)\n"
            );
            let _ = writeln!(out, "The app called in-process on one thread, 32 clients in turn; instruction counts: see `bench/src/middleware.rs` (callgrind).\n");
            let _ = writeln!(
                out,
                "| contender | requests | ns/request | allocations/request | ns above the floor |"
            );
            let _ = writeln!(out, "|---|--:|--:|--:|--:|");
            let floor = self
                .middleware
                .iter()
                .find(|r| r.who == Who::Floor)
                .map(MwRow::ns_per_request);
            for r in self.middleware {
                let _ = writeln!(
                    out,
                    "| {} | {} | {:.0} | {:.1} | {} |",
                    r.who.label(),
                    r.requests,
                    r.ns_per_request(),
                    r.allocs_per_request(),
                    match (r.who, floor) {
                        (Who::Floor, _) | (_, None) => "–".to_owned(),
                        (_, Some(f)) => format!("{:.0}", r.ns_per_request() - f),
                    }
                );
            }
            let _ = writeln!(out);
        }
        if !self.memory.is_empty() {
            let _ = writeln!(out, "### Memory per session\n");
            let _ = writeln!(out, "| store | sessions | payload | stored JSON | bytes per session | target ≤ 2×payload + 150 |");
            let _ = writeln!(out, "|---|--:|--:|--:|--:|--:|");
            for m in self.memory {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} B | {} B | {:.0} B | {} B |",
                    m.store,
                    m.sessions,
                    m.payload,
                    m.json_len,
                    m.bytes_per_session,
                    2 * m.payload + 150
                );
            }
            let _ = writeln!(out);
        }
        if !self.prune.is_empty() {
            let _ = writeln!(
                out,
                "### Pruning expired rows while serving (ours, HTTP counter)\n"
            );
            let _ = writeln!(out, "| backend | expired rows | while | rows deleted | prune took | req/s | p50 | p99 | max | errors |");
            let _ = writeln!(out, "|---|--:|---|--:|--:|--:|--:|--:|--:|--:|");
            for p in self.prune {
                let line =
                    |out: &mut String, what: &str, deleted: String, took: String, s: &Sample| {
                        let _ = writeln!(
                            out,
                            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                            p.backend.name(),
                            p.rows,
                            what,
                            deleted,
                            took,
                            fmt_rate(s.rate()),
                            fmt_dur(s.p50()),
                            fmt_dur(s.p99()),
                            fmt_dur(s.max()),
                            errors(s),
                        );
                    };
                line(
                    &mut out,
                    "before (no prune)",
                    "–".into(),
                    format!("(insert {:.1} s)", p.insert.as_secs_f64()),
                    &p.before,
                );
                for (how, n, took, s) in &p.during {
                    line(&mut out, how, n.to_string(), fmt_dur(*took), s);
                }
            }
            let _ = writeln!(out);
        }
        self.tls.markdown(&mut out);
        if !self.log.is_empty() {
            let _ = writeln!(out, "### Notes from the run\n");
            for l in self.log {
                let _ = writeln!(out, "- {l}");
            }
            let _ = writeln!(out);
        }
        out
    }
}

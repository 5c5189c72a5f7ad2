//! The load generator: N keep-alive HTTP/1.1 connections on loopback, each
//! with its own cookie jar of one cookie, on one thread (like `wrk -t1`).
//! Every answer must be the session's counter, one more than the last one
//! this connection saw: a lost session or an error page counts as an error.

use crate::stats::{self, Sample};
use anyhow::{Context, Result};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::header::{COOKIE, HOST, SET_COOKIE};
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone)]
pub struct LoadOpts {
    pub conns: usize,
    pub warmup: Duration,
    pub measure: Duration,
    pub path: &'static str,
    /// Check that each answer is the counter + 1.
    pub check: bool,
    /// Ends the measurement early when set.
    pub stop: Option<Arc<AtomicBool>>,
}

pub struct LoadResult {
    pub sample: Sample,
    /// The last cookie of each connection (`name=value`), for cleanup.
    pub cookies: Vec<String>,
}

/// Runs the generator on a thread of its own and waits for it.
pub async fn run(addr: SocketAddr, opts: LoadOpts) -> Result<LoadResult> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("load".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            let result = match rt {
                Ok(rt) => rt.block_on(generate(addr, opts)),
                Err(e) => Err(e.into()),
            };
            let _ = tx.send(result);
        })?;
    rx.await.context("load generator thread died")?
}

async fn generate(addr: SocketAddr, opts: LoadOpts) -> Result<LoadResult> {
    let start = Instant::now();
    let measure_from = start + opts.warmup;
    let end = measure_from + opts.measure;
    let mut tasks = Vec::new();
    for _ in 0..opts.conns {
        let opts = opts.clone();
        tasks.push(tokio::spawn(connection(addr, opts, measure_from, end)));
    }
    let mut total = Sample::empty();
    let mut cookies = Vec::new();
    for t in tasks {
        let (s, cookie) = t.await?;
        total.hist.add(&s.hist).ok();
        total.ops += s.ops;
        total.errors += s.errors;
        if total.first_error.is_none() {
            total.first_error = s.first_error;
        }
        cookies.extend(cookie);
    }
    let stopped = Instant::now().min(end);
    total.elapsed = stopped.saturating_duration_since(measure_from);
    Ok(LoadResult {
        sample: total,
        cookies,
    })
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn connection(
    addr: SocketAddr,
    opts: LoadOpts,
    measure_from: Instant,
    end: Instant,
) -> (Sample, Option<String>) {
    let mut s = Sample::empty();
    let mut cookie: Option<String> = None;
    let mut expect: u64 = 1;
    let mut sender: Option<Sender> = None;
    let fail = |s: &mut Sample, counted: bool, msg: String| {
        if counted {
            s.errors += 1;
            if s.first_error.is_none() {
                s.first_error = Some(msg);
            }
        }
    };
    loop {
        let now = Instant::now();
        if now >= end
            || opts
                .stop
                .as_ref()
                .is_some_and(|f| f.load(Ordering::Relaxed))
        {
            break;
        }
        let counted = now >= measure_from;
        let mut tx = match sender.take() {
            Some(tx) => tx,
            None => match connect(addr).await {
                Ok(tx) => tx,
                Err(e) => {
                    fail(&mut s, true, format!("connect: {e:#}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let mut req = Request::get(opts.path).header(HOST, "127.0.0.1");
        if let Some(c) = &cookie {
            req = req.header(COOKIE, c.as_str());
        }
        let Ok(req) = req.body(Empty::<Bytes>::new()) else {
            break;
        };
        let t0 = Instant::now();
        let answer = async {
            tx.ready().await?;
            let resp = tx.send_request(req).await?;
            let status = resp.status();
            let set_cookie = resp
                .headers()
                .get(SET_COOKIE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .map(str::to_owned);
            let body = resp.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, set_cookie, body))
        }
        .await;
        let elapsed = t0.elapsed();
        if counted {
            stats::record(&mut s.hist, elapsed);
            s.ops += 1;
        }
        match answer {
            Ok((status, set_cookie, body)) => {
                sender = Some(tx);
                if let Some(c) = set_cookie {
                    cookie = Some(c);
                }
                if !status.is_success() {
                    fail(
                        &mut s,
                        counted,
                        format!("status {status}: {}", String::from_utf8_lossy(&body)),
                    );
                    continue;
                }
                if opts.check {
                    let n: Option<u64> = std::str::from_utf8(&body)
                        .ok()
                        .and_then(|b| b.trim().parse().ok());
                    match n {
                        Some(n) if n == expect => expect = n + 1,
                        Some(n) => {
                            fail(
                                &mut s,
                                counted,
                                format!("counter {n}, expected {expect} (session lost?)"),
                            );
                            expect = n + 1;
                        }
                        None => fail(
                            &mut s,
                            counted,
                            format!("not a counter: {:?}", String::from_utf8_lossy(&body)),
                        ),
                    }
                }
            }
            Err(e) => fail(&mut s, counted, format!("request: {e:#}")),
        }
    }
    (s, cookie)
}

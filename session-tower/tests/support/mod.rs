//! Test support: an instrumented store, a real server on 127.0.0.1:0 and a
//! real HTTP client that reads raw `Set-Cookie` headers.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use async_trait::async_trait;
use axum::Router;
use sessionkit_core::time::Timestamp;
use sessionkit_core::{Error, Record, Result, Secret, SessionId, Signer, Store, WriteOutcome};
use sessionkit_memory::MemoryStore;
use sessionkit_tower::{SessionConfig, SessionConfigBuilder, SessionLayer};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

pub const SECRET: &str = "test secret number one, thirty-two bytes or more";
pub const OLD_SECRET: &str = "test secret number zero, also long enough to use";
pub const LEAK: &str = "password=hunter2 host=10.0.0.5";

/// Which operations fail.
#[derive(Debug, Default, Clone, Copy)]
pub struct Fail {
    pub load: bool,
    pub create: bool,
    pub save: bool,
    pub touch: bool,
    pub destroy: bool,
}

/// A MemoryStore that counts calls and can be told to fail.
#[derive(Default)]
pub struct Counting {
    pub inner: MemoryStore,
    pub loads: AtomicUsize,
    pub creates: AtomicUsize,
    pub saves: AtomicUsize,
    pub touches: AtomicUsize,
    pub destroys: AtomicUsize,
    pub fail: Mutex<Fail>,
    pub touch_expiries: Mutex<Vec<Option<Timestamp>>>,
}

fn down(op: &'static str) -> Error {
    Error::unavailable(op, std::io::Error::other(LEAK))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub loads: usize,
    pub creates: usize,
    pub saves: usize,
    pub touches: usize,
    pub destroys: usize,
}

pub const NONE: Counts = Counts {
    loads: 0,
    creates: 0,
    saves: 0,
    touches: 0,
    destroys: 0,
};

impl Counting {
    pub fn new() -> Arc<Self> {
        Arc::new(Counting::default())
    }

    pub fn counts(&self) -> Counts {
        Counts {
            loads: self.loads.load(SeqCst),
            creates: self.creates.load(SeqCst),
            saves: self.saves.load(SeqCst),
            touches: self.touches.load(SeqCst),
            destroys: self.destroys.load(SeqCst),
        }
    }

    pub fn reset(&self) {
        for c in [
            &self.loads,
            &self.creates,
            &self.saves,
            &self.touches,
            &self.destroys,
        ] {
            c.store(0, SeqCst);
        }
        self.touch_expiries.lock().unwrap().clear();
    }

    pub fn set_fail(&self, fail: Fail) {
        *self.fail.lock().unwrap() = fail;
    }

    fn fails(&self) -> Fail {
        *self.fail.lock().unwrap()
    }

    /// Reads a record directly, bypassing counters.
    pub async fn peek(&self, id: &SessionId) -> Option<Record> {
        self.inner.load(id).await.unwrap()
    }

    /// Puts a record directly, bypassing counters.
    pub async fn put(&self, record: &Record) {
        self.inner.create(record).await.unwrap();
    }
}

#[async_trait]
impl Store for Counting {
    async fn load(&self, id: &SessionId) -> Result<Option<Record>> {
        self.loads.fetch_add(1, SeqCst);
        if self.fails().load {
            return Err(down("load"));
        }
        self.inner.load(id).await
    }
    async fn create(&self, record: &Record) -> Result<()> {
        self.creates.fetch_add(1, SeqCst);
        if self.fails().create {
            return Err(down("create"));
        }
        self.inner.create(record).await
    }
    async fn save(&self, record: &Record) -> Result<WriteOutcome> {
        self.saves.fetch_add(1, SeqCst);
        if self.fails().save {
            return Err(down("save"));
        }
        self.inner.save(record).await
    }
    async fn touch(&self, id: &SessionId, expires: Option<Timestamp>) -> Result<WriteOutcome> {
        self.touches.fetch_add(1, SeqCst);
        self.touch_expiries.lock().unwrap().push(expires);
        if self.fails().touch {
            return Err(down("touch"));
        }
        self.inner.touch(id, expires).await
    }
    async fn destroy(&self, id: &SessionId) -> Result<()> {
        self.destroys.fetch_add(1, SeqCst);
        if self.fails().destroy {
            return Err(down("destroy"));
        }
        self.inner.destroy(id).await
    }
}

/// `/none` (never touches the session), `/read` (reads `n`) and `/inc`
/// (increments `n`): the routes most middleware tests start from.
pub fn base_routes() -> Router {
    use axum::routing::get;
    use sessionkit_tower::{Session, SessionError};
    Router::new()
        .route("/none", get(|| async { "ok" }))
        .route(
            "/read",
            get(|s: Session| async move {
                let n: Option<u64> = s.get("n").await?;
                Ok::<_, SessionError>(format!("n={n:?}"))
            }),
        )
        .route(
            "/inc",
            get(|s: Session| async move {
                let n: u64 = s.get("n").await?.unwrap_or(0) + 1;
                s.insert("n", n).await?;
                Ok::<_, SessionError>(n.to_string())
            }),
        )
}

/// The default builder with the test secret.
pub fn config() -> SessionConfigBuilder {
    SessionConfig::builder().secret(SECRET)
}

pub fn signer(secret: &str) -> Signer {
    Signer::new([Secret::new(secret).unwrap()]).unwrap()
}

/// The cookie value the middleware sends for `id`.
pub fn cookie_for(id: &SessionId) -> String {
    format!("connect.sid={}", signer(SECRET).sign_cookie(id))
}

/// Serves `router` wrapped in a session layer over `store`; returns the base URL.
pub async fn serve(router: Router, store: Arc<Counting>, config: SessionConfig) -> String {
    serve_plain(router.layer(SessionLayer::from_arc(store, config))).await
}

/// Serves `router` as is.
pub async fn serve_plain(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub set_cookies: Vec<String>,
    pub body: String,
    pub headers: reqwest::header::HeaderMap,
}

impl Resp {
    /// The value of response header `name` (the first), if any.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    }

    /// The one Set-Cookie header (panics in tests when there are several).
    pub fn set_cookie(&self) -> Option<&str> {
        assert!(self.set_cookies.len() <= 1, "{:?}", self.set_cookies);
        self.set_cookies.first().map(String::as_str)
    }

    /// `name=value` of the Set-Cookie, to send back.
    pub fn cookie(&self) -> String {
        let sc = self.set_cookie().expect("a Set-Cookie header");
        sc.split(';').next().unwrap().to_owned()
    }

    /// The session id in the Set-Cookie, verified with the current secret.
    pub fn sid(&self) -> SessionId {
        let pair = self.cookie();
        let value = pair.split_once('=').unwrap().1;
        signer(SECRET)
            .unsign_cookie(value)
            .expect("signed with SECRET")
            .id
    }
}

pub async fn get(url: &str, headers: &[(&str, &str)]) -> Resp {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut req = client.get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let set_cookies = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let headers = res.headers().clone();
    let body = res.text().await.unwrap();
    Resp {
        status,
        set_cookies,
        body,
        headers,
    }
}

pub async fn get_with_cookie(url: &str, cookie: &str) -> Resp {
    get(url, &[("cookie", cookie)]).await
}

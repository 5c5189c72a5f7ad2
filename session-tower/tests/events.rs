//! Lifecycle events: created, regenerated, destroyed, expired.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use axum::routing::get as route;
use axum::Router;
use sessionkit_core::{time, Record, SessionId, SessionMeta};
use sessionkit_tower::{
    ExpiredReason, Session, SessionError, SessionEvent, TokenHeader, Transport, UnsetPolicy,
};
use std::sync::{Arc, Mutex};
use support::*;

type Log = Arc<Mutex<Vec<String>>>;

/// Events as text, with the ids they carry.
fn describe(e: &SessionEvent) -> String {
    match e {
        SessionEvent::Created { id, .. } => format!("created {id}"),
        SessionEvent::Regenerated { old, new, .. } => format!("regenerated {old} {new}"),
        SessionEvent::Destroyed { id, .. } => format!("destroyed {id}"),
        SessionEvent::Expired {
            id,
            reason: ExpiredReason::AbsoluteDeadline,
            ..
        } => format!("expired deadline {id}"),
        SessionEvent::Expired { id, .. } => format!("expired missing {id}"),
        _ => "other".into(),
    }
}

fn routes() -> Router {
    base_routes()
        .route(
            "/login",
            route(|s: Session| async move {
                s.regenerate().await?;
                s.insert("user", "alice").await?;
                Ok::<_, SessionError>("ok")
            }),
        )
        .route(
            "/login-twice",
            route(|s: Session| async move {
                s.regenerate().await?;
                s.regenerate().await?;
                s.insert("user", "alice").await?;
                Ok::<_, SessionError>("ok")
            }),
        )
        .route(
            "/destroy",
            route(|s: Session| async move {
                s.destroy().await?;
                Ok::<_, SessionError>("ok")
            }),
        )
        .route(
            "/unset",
            route(|s: Session| async move {
                s.unset().await?;
                Ok::<_, SessionError>("ok")
            }),
        )
}

async fn app(
    store: &Arc<Counting>,
    builder: sessionkit_tower::SessionConfigBuilder,
) -> (String, Log) {
    let log: Log = Arc::default();
    let sink = log.clone();
    let config = builder
        .on_event(move |e| sink.lock().unwrap().push(describe(e)))
        .build()
        .unwrap();
    (serve(routes(), store.clone(), config).await, log)
}

fn take(log: &Log) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

#[tokio::test]
async fn created_regenerated_destroyed() {
    let store = Counting::new();
    let (base, log) = app(&store, config()).await;

    let r = get(&format!("{base}/inc"), &[]).await;
    let (cookie, id) = (r.cookie(), r.sid());
    assert_eq!(take(&log), [format!("created {id}")]);

    // Requests that only read or change data report nothing.
    get_with_cookie(&format!("{base}/read"), &cookie).await;
    get_with_cookie(&format!("{base}/inc"), &cookie).await;
    get(&format!("{base}/none"), &[]).await;
    get(&format!("{base}/read"), &[]).await;
    assert!(take(&log).is_empty());

    let r = get_with_cookie(&format!("{base}/login"), &cookie).await;
    let new = r.sid();
    assert_eq!(take(&log), [format!("regenerated {id} {new}")]);

    // Regenerating twice in one request still names the id it came with.
    let r = get_with_cookie(&format!("{base}/login-twice"), &r.cookie()).await;
    let newer = r.sid();
    assert_eq!(take(&log), [format!("regenerated {new} {newer}")]);

    get_with_cookie(&format!("{base}/destroy"), &r.cookie()).await;
    assert_eq!(take(&log), [format!("destroyed {newer}")]);

    // A new session regenerated before it was ever stored is just created.
    let r = get(&format!("{base}/login"), &[]).await;
    assert_eq!(take(&log), [format!("created {}", r.sid())]);
}

#[tokio::test]
async fn unset_with_destroy_reports_destroyed() {
    let store = Counting::new();
    let (base, log) = app(&store, config().unset(UnsetPolicy::Destroy)).await;
    let r = get(&format!("{base}/inc"), &[]).await;
    take(&log);
    get_with_cookie(&format!("{base}/unset"), &r.cookie()).await;
    assert_eq!(take(&log), [format!("destroyed {}", r.sid())]);
}

#[tokio::test]
async fn expiries_the_middleware_can_see() {
    let store = Counting::new();
    let (base, log) = app(&store, config()).await;

    // A signed id the store no longer has.
    let gone = SessionId::generate();
    get_with_cookie(&format!("{base}/read"), &cookie_for(&gone)).await;
    assert_eq!(take(&log), [format!("expired missing {gone}")]);

    // A stored session past its absolute deadline.
    let id = SessionId::generate();
    let mut record = Record::new(id.clone());
    let now = time::now();
    let mut meta = SessionMeta::default();
    meta.absolute_deadline = Some(time::from_millis(now.timestamp_millis() - 1));
    record.set_meta(Some(&meta)).unwrap();
    record.cookie.expires = Some(time::from_millis(now.timestamp_millis() + 60_000));
    store.put(&record).await;
    let r = get_with_cookie(&format!("{base}/inc"), &cookie_for(&id)).await;
    assert_eq!(
        take(&log),
        [
            format!("expired deadline {id}"),
            format!("created {}", r.sid())
        ]
    );
}

#[tokio::test]
async fn failed_writes_report_nothing() {
    let store = Counting::new();
    let (base, log) = app(&store, config()).await;
    store.set_fail(Fail {
        create: true,
        ..Fail::default()
    });
    let r = get(&format!("{base}/inc"), &[]).await;
    assert_eq!(r.status, 503);
    assert!(take(&log).is_empty());
}

#[tokio::test]
async fn header_sessions_report_the_same_events() {
    let store = Counting::new();
    let (base, log) = app(
        &store,
        config()
            .transport(Transport::Header)
            .token_header(TokenHeader::Named("x-session-id".into())),
    )
    .await;
    let token = get(&format!("{base}/inc"), &[])
        .await
        .header("x-session-id")
        .unwrap();
    let id = signer(SECRET).unsign(&token).unwrap().id;
    assert_eq!(take(&log), [format!("created {id}")]);
    get(&format!("{base}/destroy"), &[("x-session-id", &token)]).await;
    assert_eq!(take(&log), [format!("destroyed {id}")]);
}

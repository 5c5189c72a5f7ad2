//! "Your active sessions": the signed-in user's live sessions, read from the
//! store's per-user index (`Store::principal_sessions`), with a "Revoke"
//! button per other session and "Log out everywhere else"
//! (`Store::destroy_principal`).
//!
//! Sessions are named on the page and in the forms by a *reference*, the
//! SHA-256 of the id the index lists, never by the id itself: ids are
//! credentials and stay out of the HTML. A revoke request is honoured only
//! when its reference matches one of the user's own listed sessions, so a
//! user can end nothing but their own sessions, whatever they post.

use crate::pages;
use axum::extract::{Form, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use sessionkit_core::{HashedIds, Record, SessionId, Store, WriteOutcome};
use sessionkit_tower::{Session, SessionError};
use std::sync::Arc;

/// What a handler of these pages can fail with.
#[derive(Debug)]
pub(crate) enum PageError {
    /// The session middleware failed (its own opaque response).
    Session(SessionError),
    /// A direct store call failed: logged, answered with an opaque 503.
    Store(&'static str, sessionkit_core::Error),
    /// A refused request: this status and a short page saying why.
    Refused {
        status: StatusCode,
        user: Option<String>,
        message: &'static str,
    },
}

impl From<SessionError> for PageError {
    fn from(e: SessionError) -> Self {
        PageError::Session(e)
    }
}

impl PageError {
    fn refused(status: StatusCode, user: Option<&str>, message: &'static str) -> Self {
        PageError::Refused {
            status,
            user: user.map(str::to_owned),
            message,
        }
    }

    /// 401: nobody is signed in.
    fn not_signed_in() -> Self {
        Self::refused(StatusCode::UNAUTHORIZED, None, NOT_SIGNED_IN)
    }

    /// 501: the store keeps no per-user index.
    fn no_index(user: &str) -> Self {
        Self::refused(StatusCode::NOT_IMPLEMENTED, Some(user), NO_INDEX)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::Session(e) => e.into_response(),
            PageError::Store(op, err) => {
                // The cause goes to the log, never to the client.
                tracing::error!(operation = op, error = %err, "session store call failed");
                let status = StatusCode::SERVICE_UNAVAILABLE;
                let page =
                    pages::message(None, "Try again later", "The session store is unavailable.");
                no_store((status, Html(page)).into_response())
            }
            PageError::Refused {
                status,
                user,
                message,
            } => {
                let title = status.canonical_reason().unwrap_or("Refused");
                no_store(
                    (
                        status,
                        Html(pages::message(user.as_deref(), title, message)),
                    )
                        .into_response(),
                )
            }
        }
    }
}

/// The page lists personal data: no cache keeps it.
fn no_store(mut res: Response) -> Response {
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

const NOT_SIGNED_IN: &str = "Log in first: only your own sessions can be listed or revoked.";
const NO_INDEX: &str = "This session store keeps no per-user session index, so your sessions cannot be listed or revoked here (the store URL needs principal_index=true: see docs/guide.md, Demo).";

/// The signed-in user, who is also the sessions' principal. A session
/// signed in before principals were set gets its tag now (stored at the
/// end of this request), so it is listed from the next request on.
async fn owner(session: &Session) -> Result<Option<String>, SessionError> {
    let Some(user) = session.get::<String>("user").await? else {
        return Ok(None);
    };
    if session.principal().await?.as_deref() != Some(user.as_str()) {
        session.set_principal(Some(user.clone())).await?;
    }
    Ok(Some(user))
}

/// The reference of a listed session in pages and forms: base64url SHA-256
/// of the id the index lists (43 characters). Not a credential.
pub(crate) fn reference(listed: &SessionId) -> String {
    HashedIds::<()>::key(listed).as_str().to_owned()
}

/// Whether `text` has the shape of a [`reference`].
fn well_formed(text: &str) -> bool {
    text.len() == 43
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The user's live sessions, or `None` when the store has no index.
async fn list(store: &Arc<dyn Store>, user: &str) -> Result<Option<Vec<Record>>, PageError> {
    if !store.capabilities().principal_index {
        return Ok(None);
    }
    match store.principal_sessions(user).await {
        // Defensive: only records that really carry this principal.
        Ok(records) => Ok(Some(
            records
                .into_iter()
                .filter(|r| r.principal() == Some(user))
                .collect(),
        )),
        Err(sessionkit_core::Error::Unsupported(_)) => Ok(None),
        Err(e) => Err(PageError::Store("principal_sessions", e)),
    }
}

/// `?revoked=1` / `?ended=N`: what the last action did.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Notice {
    revoked: Option<u64>,
    ended: Option<u64>,
}

/// Most rows on the sessions page.
const MAX_ROWS: usize = 50;

/// `GET /sessions`.
pub(crate) async fn page(
    State(store): State<Arc<dyn Store>>,
    session: Session,
    Query(notice): Query<Notice>,
) -> Result<Response, PageError> {
    let Some(user) = owner(&session).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let view = match list(&store, &user).await? {
        None => pages::SessionsView::Unsupported,
        Some(mut records) => {
            let current = session.id().await?.map(|id| store.listed_id(&id));
            // A session last written while the store kept no index (a SQL
            // store before `principal_index=true`) is not in it: write it
            // now, which indexes it, and list again. Only then does this
            // page write.
            if current
                .as_ref()
                .is_some_and(|c| !records.iter().any(|r| &r.id == c))
                && session.save().await? == WriteOutcome::Written
            {
                records = list(&store, &user).await?.unwrap_or_default();
            }
            let mut rows: Vec<pages::SessionRow> = records
                .iter()
                .map(|r| {
                    let meta = r.meta().ok().flatten().unwrap_or_default();
                    pages::SessionRow {
                        reference: reference(&r.id),
                        current: current.as_ref() == Some(&r.id),
                        created: meta.created,
                        last_seen: meta.last_seen,
                        expires: r.cookie.expires,
                        user_agent: meta.user_agent,
                        ip: meta.ip,
                    }
                })
                .collect();
            // This session first, then the most recently seen.
            rows.sort_by(|a, b| {
                b.current
                    .cmp(&a.current)
                    .then(b.last_seen.cmp(&a.last_seen))
            });
            // A bounded page: sessions written elsewhere (Node, a store
            // without the cap) could be thousands.
            let total = rows.len();
            rows.truncate(MAX_ROWS);
            let more = (total > MAX_ROWS)
                .then(|| format!("Showing the {MAX_ROWS} most recently used of {total} sessions."));
            let notice = match (notice.revoked, notice.ended) {
                (Some(_), _) => Some(
                    "The session was revoked: it is signed out at its next request.".to_owned(),
                ),
                (None, Some(0)) => Some("There were no other sessions to end.".to_owned()),
                (None, Some(1)) => Some("Ended 1 other session.".to_owned()),
                (None, Some(n)) => Some(format!("Ended {n} other sessions.")),
                (None, None) => None,
            };
            let notice = match (notice, more) {
                (Some(n), Some(m)) => Some(format!("{n} {m}")),
                (n, m) => n.or(m),
            };
            pages::SessionsView::List { rows, notice }
        }
    };
    Ok(no_store(
        Html(pages::sessions(Some(&user), &view)).into_response(),
    ))
}

/// The revoke form.
#[derive(Debug, Deserialize)]
pub(crate) struct RevokeForm {
    /// The session's [`reference`].
    #[serde(default)]
    session: String,
}

/// `POST /sessions/revoke`: ends one of the user's other sessions.
pub(crate) async fn revoke(
    State(store): State<Arc<dyn Store>>,
    session: Session,
    Form(form): Form<RevokeForm>,
) -> Result<Response, PageError> {
    let Some(user) = owner(&session).await? else {
        return Err(PageError::not_signed_in());
    };
    let wanted = form.session.trim();
    if !well_formed(wanted) {
        return Err(PageError::refused(
            StatusCode::BAD_REQUEST,
            Some(&user),
            "That is not a session reference from this page.",
        ));
    }
    let Some(records) = list(&store, &user).await? else {
        return Err(PageError::no_index(&user));
    };
    // Only a session in the user's own list can be revoked.
    let Some(target) = records.iter().find(|r| reference(&r.id) == wanted) else {
        return Err(PageError::refused(
            StatusCode::NOT_FOUND,
            Some(&user),
            "None of your sessions has that reference: it has ended already, or it is not yours.",
        ));
    };
    let current = session.id().await?.map(|id| store.listed_id(&id));
    if current.as_ref() == Some(&target.id) {
        return Err(PageError::refused(
            StatusCode::BAD_REQUEST,
            Some(&user),
            "That is the session you are using: log out to end it.",
        ));
    }
    store
        .destroy_listed(&target.id)
        .await
        .map_err(|e| PageError::Store("destroy", e))?;
    tracing::info!("a user revoked one of their sessions");
    Ok(Redirect::to("/sessions?revoked=1").into_response())
}

/// `POST /sessions/revoke-others`: "log out everywhere else".
pub(crate) async fn revoke_others(
    State(store): State<Arc<dyn Store>>,
    session: Session,
) -> Result<Response, PageError> {
    let Some(user) = owner(&session).await? else {
        return Err(PageError::not_signed_in());
    };
    let Some(current) = session.id().await? else {
        return Err(PageError::not_signed_in());
    };
    if !store.capabilities().principal_index {
        return Err(PageError::no_index(&user));
    }
    let ended = match store.destroy_principal(&user, Some(&current)).await {
        Ok(n) => n,
        Err(sessionkit_core::Error::Unsupported(_)) => {
            return Err(PageError::no_index(&user));
        }
        Err(e) => return Err(PageError::Store("destroy_principal", e)),
    };
    tracing::info!(ended, "a user logged out everywhere else");
    Ok(Redirect::to(&format!("/sessions?ended={ended}")).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_well_formed_and_not_the_id() {
        let id = SessionId::generate();
        let r = reference(&id);
        assert!(well_formed(&r));
        assert_ne!(r, id.as_str());
        assert!(!well_formed(id.as_str()), "a raw id is not a reference");
        assert!(!well_formed(""));
        assert!(!well_formed(&"é".repeat(43)));
        assert!(!well_formed(&format!("{}=", &r[..42])));
    }
}

//! Session lifecycle events, for audit logs and for keeping other state in
//! step with sessions.

use sessionkit_core::SessionId;
use std::sync::Arc;

/// Something that happened to a session, as far as the middleware can tell.
///
/// Events are reported after the store operation succeeded, on the request's
/// task, to the callback set with
/// [`SessionConfigBuilder::on_event`](crate::SessionConfigBuilder::on_event).
/// Stores' own expiry (Redis TTLs, MongoDB's TTL monitor, pruning tasks)
/// deletes sessions without the middleware seeing it: an expiry is reported
/// only when a request comes back with the id of a session that is past its
/// absolute deadline or no longer stored.
///
/// Session ids are bearer credentials: log a hash of them, not the id
/// (`Debug` shows only a prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// A new session was stored.
    #[non_exhaustive]
    Created {
        /// The new session.
        id: SessionId,
    },
    /// [`Session::regenerate`](crate::Session::regenerate): the session got a
    /// new id (stored), and the old record is deleted.
    #[non_exhaustive]
    Regenerated {
        /// The id the request came with.
        old: SessionId,
        /// The new id.
        new: SessionId,
    },
    /// [`Session::destroy`](crate::Session::destroy), or
    /// [`Session::unset`](crate::Session::unset) with
    /// [`UnsetPolicy::Destroy`](crate::UnsetPolicy::Destroy), deleted it.
    #[non_exhaustive]
    Destroyed {
        /// The deleted session.
        id: SessionId,
    },
    /// A request came with the id of a session that has expired.
    #[non_exhaustive]
    Expired {
        /// The expired session.
        id: SessionId,
        /// How the middleware found out.
        reason: ExpiredReason,
    },
}

/// How the middleware learnt that a session expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExpiredReason {
    /// Its absolute deadline (see [`ExpiryPolicy`](crate::ExpiryPolicy))
    /// has passed; the middleware deleted it.
    AbsoluteDeadline,
    /// A correctly signed id whose record the store no longer has: expired
    /// by the store's TTL, or deleted by another process (e.g. a Node
    /// service, or a "log out everywhere").
    Missing,
}

pub(crate) type EventHook = Arc<dyn Fn(&SessionEvent) + Send + Sync>;

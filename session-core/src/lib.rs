//! The core of the session toolkit: the session model, the async [`Store`]
//! trait every backend implements, validated [`SessionId`]s and cookie
//! signing compatible with Node's `cookie-signature`.
//!
//! This crate has no HTTP code. Store authors depend on it alone; the
//! middleware (`session-tower`) re-exports what users need.
//!
//! ```
//! use sessionkit_core::{Record, SessionId};
//!
//! # fn main() -> Result<(), sessionkit_core::Error> {
//! let mut record = Record::new(SessionId::generate());
//! record.data.insert("user".into(), "bob".into());
//! let json = record.to_json()?;
//! let back = Record::from_json(record.id.clone(), &json)?;
//! assert_eq!(back.data["user"], "bob");
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "bounded")]
pub mod bounded;
pub mod driver;
pub mod encryption;
mod error;
mod hashed;
mod id;
pub mod meta;
#[cfg(feature = "pruner")]
pub mod pruner;
mod record;
pub mod signing;
mod store;
pub mod time;
pub mod url_query;

pub use error::{Error, Result};
pub use hashed::HashedIds;
pub use id::{InvalidId, SessionId};
pub use meta::{SessionMeta, META_KEY};
pub use record::{CookieMeta, Priority, Record, SameSite};
pub use signing::{Secret, Signer, Verified};
/// Not public API: what [`delegate_store!`] expands to needs these.
#[doc(hidden)]
pub mod __private {
    pub use async_trait::async_trait;
}

pub use store::{Capabilities, CasOutcome, Store, Version, WriteOutcome, DEFAULT_TTL};

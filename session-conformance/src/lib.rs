//! The store contract, written once.
//!
//! Every store crate runs every case here against its real server. A store
//! provides a [`Fixture`]: the store under test in a namespace of its own
//! (key prefix, table, schema, collection or file), plus three backdoors the
//! contract cannot be tested without — writing raw stored text (records
//! written by Node, garbage), forcing a record past its expiry without
//! waiting, and reading the raw stored text and expiry back.
//!
//! ```ignore
//! // store-foo/tests/conformance.rs
//! sessionkit_conformance::conformance_tests!(my_fixture());
//! ```
//!
//! expands to one `#[tokio::test]` per case, so each case is reported (and
//! fails) on its own and cases run in parallel.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use async_trait::async_trait;
use sessionkit_core::encryption::Codec;
use sessionkit_core::time::Timestamp;
use sessionkit_core::{SessionId, Store};
use std::sync::Arc;

pub mod cases;
pub mod net;

/// A store under test, in its own namespace, with backdoors into its backend.
#[async_trait]
pub trait Fixture: Send + Sync {
    /// The store under test. Every call returns the same store.
    fn store(&self) -> Arc<dyn Store>;

    /// Writes `raw` as the stored text of `id`, expiring at `expires`,
    /// bypassing the store's own encoding (for Node-written records and
    /// garbage).
    async fn put_raw(&self, id: &str, raw: &str, expires: Timestamp) -> anyhow::Result<()>;

    /// Makes the record of `id` expired now, leaving it in place where the
    /// backend allows (a row or document with a past expiry, as if the
    /// pruner or TTL monitor had not run yet).
    async fn force_expire(&self, id: &SessionId) -> anyhow::Result<()>;

    /// The raw stored text and the backend's expiry of `id`, read directly,
    /// ignoring expiry. `None` when the backend holds nothing under `id`.
    async fn raw(&self, id: &SessionId) -> anyhow::Result<Option<(String, Timestamp)>>;

    /// The same store, in the same namespace, reading and writing through
    /// `codec` (encryption at rest). `None` for stores with nothing at rest
    /// (the in-process memory store): the encryption cases then pass
    /// without running.
    fn with_codec(&self, codec: Codec) -> Option<Arc<dyn Store>> {
        let _ = codec;
        None
    }
}

/// Every case name, in order. The macro below expands one test per name.
pub const CASES: &[&str] = &[
    "round_trip",
    "stored_text_is_express_session_json",
    "load_missing_is_none",
    "create_then_save",
    "create_on_live_id_is_collision",
    "create_over_expired_record_succeeds",
    "save_without_create_is_gone",
    "save_after_destroy_is_gone",
    "save_after_expiry_is_gone",
    "save_replaces_all_data",
    "save_with_past_expiry_deletes",
    "create_with_past_expiry_stores_nothing",
    "expired_record_is_not_returned",
    "cookie_expiry_is_store_expiry",
    "default_ttl_without_cookie_expiry",
    "touch_extends_expiry_and_keeps_data",
    "touch_without_expiry_uses_default_ttl",
    "touch_missing_is_gone_and_creates_nothing",
    "touch_after_destroy_does_not_resurrect",
    "touch_after_expiry_is_gone",
    "destroy_removes_record",
    "destroy_missing_succeeds",
    "unicode_keys_and_values",
    "nested_json",
    "one_mib_record",
    "ten_thousand_sessions",
    "concurrent_saves_32_tasks",
    "ids_count_clear",
    "delete_expired_removes_only_expired",
    "connect_redis_json_loads_all_cookie_fields",
    "garbage_is_decode_error",
    "json_without_cookie_is_decode_error",
    "cas_save_with_loaded_version_writes",
    "cas_stale_version_conflicts",
    "cas_after_destroy_or_expiry_is_gone",
    "cas_concurrent_increments_lose_nothing",
    "encrypted_records_are_opaque_and_round_trip",
    "encrypted_tampering_is_decode_error",
    "encrypted_record_copied_under_another_id_does_not_open",
    "encryption_key_rotation",
    "encryption_refuses_plaintext_unless_migrating",
    "hashed_ids_store_only_the_digest",
    "principal_sessions_lists_only_live_ones",
    "destroy_principal_keeps_the_current_one",
    "destroy_listed_revokes_one_session",
    "principal_change_moves_the_session",
    "principal_index_forgets_dead_sessions",
];

/// Expands to one `#[tokio::test]` per conformance case. The argument is an
/// expression evaluating to a future of a [`Fixture`]; it is evaluated
/// afresh for every case, so each case gets its own namespace. The calling
/// crate needs `tokio` (with `macros` and `rt-multi-thread`) and `anyhow`
/// as dev-dependencies.
#[macro_export]
macro_rules! conformance_tests {
    ($fixture:expr) => {
        $crate::__conformance_cases!($fixture;
            round_trip,
            stored_text_is_express_session_json,
            load_missing_is_none,
            create_then_save,
            create_on_live_id_is_collision,
            create_over_expired_record_succeeds,
            save_without_create_is_gone,
            save_after_destroy_is_gone,
            save_after_expiry_is_gone,
            save_replaces_all_data,
            save_with_past_expiry_deletes,
            create_with_past_expiry_stores_nothing,
            expired_record_is_not_returned,
            cookie_expiry_is_store_expiry,
            default_ttl_without_cookie_expiry,
            touch_extends_expiry_and_keeps_data,
            touch_without_expiry_uses_default_ttl,
            touch_missing_is_gone_and_creates_nothing,
            touch_after_destroy_does_not_resurrect,
            touch_after_expiry_is_gone,
            destroy_removes_record,
            destroy_missing_succeeds,
            unicode_keys_and_values,
            nested_json,
            one_mib_record,
            ten_thousand_sessions,
            concurrent_saves_32_tasks,
            ids_count_clear,
            delete_expired_removes_only_expired,
            connect_redis_json_loads_all_cookie_fields,
            garbage_is_decode_error,
            json_without_cookie_is_decode_error,
            cas_save_with_loaded_version_writes,
            cas_stale_version_conflicts,
            cas_after_destroy_or_expiry_is_gone,
            cas_concurrent_increments_lose_nothing,
            encrypted_records_are_opaque_and_round_trip,
            encrypted_tampering_is_decode_error,
            encrypted_record_copied_under_another_id_does_not_open,
            encryption_key_rotation,
            encryption_refuses_plaintext_unless_migrating,
            hashed_ids_store_only_the_digest,
            principal_sessions_lists_only_live_ones,
            destroy_principal_keeps_the_current_one,
            destroy_listed_revokes_one_session,
            principal_change_moves_the_session,
            principal_index_forgets_dead_sessions,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($fixture:expr; $($case:ident),* $(,)?) => {
        mod conformance {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() -> ::anyhow::Result<()> {
                    let fixture = $fixture.await;
                    $crate::cases::$case(&fixture).await
                }
            )*
        }
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn case_list_matches_macro() {
        let src = include_str!("lib.rs");
        let start = src.find("__conformance_cases!($fixture;").unwrap_or(0);
        let body = &src[start..];
        for case in super::CASES {
            assert!(
                body.contains(&format!("{case},")),
                "{case} missing from macro"
            );
        }
        assert!(super::CASES.len() >= 25);
    }
}

//! A MongoDB session store with [connect-mongo]'s layout, so a Node service
//! using `express-session` + `connect-mongo` and a Rust service using this
//! crate read and write the same sessions.
//!
//! One document per session in the collection `sessions` (configurable):
//!
//! ```json
//! { "_id": "<session id>", "expires": ISODate("…"), "session": "{\"cookie\":{…},…}" }
//! ```
//!
//! `session` is the express-session JSON as a string (connect-mongo's
//! default `stringify: true`); documents written with `stringify: false`
//! (an embedded document) are read as well, and
//! [`MongoStoreBuilder::stringify`]`(false)` (`?stringify=false`) writes
//! that shape, for a Node service configured so. `expires` is the cookie's
//! expiry, or now + the default TTL (one day) for a cookie without one.
//!
//! A TTL index `{expires: 1}` with `expireAfterSeconds: 0` lets MongoDB
//! delete expired documents; [`MongoStore::create_indexes`] creates it
//! (idempotent), and [`MongoStoreBuilder::create_indexes`] does so on connect
//! (on by default, like connect-mongo's `autoRemove: "native"`). The TTL
//! monitor runs only every 60 seconds, so every read and conditional write
//! filters on `expires > now` itself: an expired document is never returned.
//!
//! | operation | MongoDB |
//! |---|---|
//! | `load` | `findOne({_id, expires: {$gt: now}})` |
//! | `create` | `insertOne`: the `_id` unique key refuses a taken id (duplicate key error 11000); then `updateOne({_id, expires: {$lte: now}}, {$set: …})` replaces the document only if it has expired, and a live one is [`Error::Collision`] |
//! | `save` | `updateOne({_id, expires: {$gt: now}}, {$set: {session, expires, principal}})`: no match is [`WriteOutcome::Gone`], never an insert |
//! | `touch` | `updateOne({_id, expires: {$gt: now}}, {$set: {expires}})` |
//! | `destroy` | `deleteOne({_id})` |
//! | `save_if` | `updateOne({_id, expires: {$gt: now}, session: <loaded value>}, {$set: …})` (compare-and-set on the stored value) |
//! | `ids` / `count` | `find` / `countDocuments` with `{expires: {$gt: now}}` |
//! | `clear` | `deleteMany({})` (the TTL index stays) |
//! | `delete_expired` | `deleteMany({expires: {$lte: now}})`, for servers without a TTL monitor |
//! | `principal_sessions` | `find({principal, expires: {$gt: now}})`, each decoded and kept only if the session's own principal matches |
//! | `destroy_principal` | `deleteMany({principal, expires: {$gt: now}, _id: {$ne: keep}})` |
//!
//! # Per-user index
//!
//! A session with a principal ([`Record::principal`]) has it also in a
//! top-level field, written with `session` in the same update: `{_id,
//! expires, session, principal}`; a write of a record without one
//! `$unset`s it. A sparse index `{principal: 1}` (`principal_1`), created by
//! [`MongoStore::create_indexes`] with the TTL index, serves the two
//! queries above. connect-mongo `$set`s only `_id`, `session` and
//! `expires`, so a Node write leaves the field as it was (the principal
//! rides along unchanged in the session's `__meta`), and Node ignores it.
//! The listing trusts the session, `destroy_principal` the field: both are
//! written together by this store.
//!
//! ```
//! use sessionkit_core::{Record, SessionId, Store};
//! use sessionkit_mongo::MongoStore;
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), sessionkit_core::Error> {
//! # let url = std::env::var("MONGODB_URL").unwrap_or_else(|_| "mongodb://127.0.0.1:27017".into());
//! let store = MongoStore::builder(url) // e.g. "mongodb://127.0.0.1:27017/myapp"
//!     .collection("doctest_sessions")
//!     .connect_timeout(Duration::from_secs(5))
//!     .connect()
//!     .await?;
//! let record = Record::new(SessionId::generate());
//! store.create(&record).await?;
//! assert!(store.load(&record.id).await?.is_some());
//! store.destroy(&record.id).await?;
//! # Ok(())
//! # }
//! ```
//!
//! [connect-mongo]: https://github.com/jdesboeufs/connect-mongo
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use async_trait::async_trait;
use futures::TryStreamExt;
use mongodb::bson::{doc, Bson, DateTime, Document};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Client, Collection, IndexModel};
use serde_json::{Map, Value};
use sessionkit_core::encryption::{Codec, Encryption};
use sessionkit_core::time::{self, Timestamp};
use sessionkit_core::{
    Capabilities, CasOutcome, Error, Record, Result, SessionId, Store, Version, WriteOutcome,
    DEFAULT_TTL,
};
use std::fmt;
use std::future::Future;
use std::time::Duration;
use tracing::{debug, warn, Instrument};

/// connect-mongo's default collection name.
pub const DEFAULT_COLLECTION: &str = "sessions";

/// The database used when neither the builder nor the URL names one (the
/// Node driver's default too).
pub const DEFAULT_DATABASE: &str = "test";

/// How long connecting (server selection) may take by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one operation may take by default.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// MongoDB's duplicate key error code.
const DUPLICATE_KEY: i32 = 11000;

/// Server error codes that mean "try again later": the node is shutting
/// down, stepping down, not primary, or the network failed.
const TRANSIENT_CODES: &[i32] = &[
    6, 7, 50, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436,
];

/// Configures a [`MongoStore`]. Start with [`MongoStore::builder`].
#[derive(Clone)]
pub struct MongoStoreBuilder {
    url: String,
    database: Option<String>,
    collection: String,
    default_ttl: Duration,
    connect_timeout: Duration,
    operation_timeout: Duration,
    max_pool_size: Option<u32>,
    create_indexes: bool,
    stringify: bool,
    codec: Codec,
}

impl fmt::Debug for MongoStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password: never print it.
        f.debug_struct("MongoStoreBuilder")
            .field("database", &self.database)
            .field("collection", &self.collection)
            .field("default_ttl", &self.default_ttl)
            .field("connect_timeout", &self.connect_timeout)
            .field("operation_timeout", &self.operation_timeout)
            .field("max_pool_size", &self.max_pool_size)
            .field("create_indexes", &self.create_indexes)
            .field("stringify", &self.stringify)
            .finish_non_exhaustive()
    }
}

impl MongoStoreBuilder {
    /// The database (connect-mongo's `dbName`). Default: the one named in
    /// the URL's path, else `"test"`.
    pub fn database(mut self, name: impl Into<String>) -> Self {
        self.database = Some(name.into());
        self
    }

    /// The collection (connect-mongo's `collectionName`, default `"sessions"`).
    pub fn collection(mut self, name: impl Into<String>) -> Self {
        self.collection = name.into();
        self
    }

    /// TTL for sessions whose cookie has no expiry (default one day, like
    /// connect-mongo's `ttl`).
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = ttl;
        self
    }

    /// Upper bound on establishing a connection and on finding a usable
    /// server (the driver's connect and server-selection timeouts; default
    /// 10 s). A server that is down gives [`Error::Unavailable`] after at
    /// most about this long.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Upper bound on one store operation (default 5 s): a server that
    /// stops answering yields [`Error::Unavailable`] instead of a hang.
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// Connections per server in the driver's pool (default: the URL's
    /// `maxPoolSize`, else the driver's default of 10).
    pub fn max_pool_size(mut self, n: u32) -> Self {
        self.max_pool_size = Some(n.max(1));
        self
    }

    /// Whether [`connect`](Self::connect) runs [`MongoStore::create_indexes`]
    /// (default `true`, like connect-mongo's `autoRemove: "native"`). Turn
    /// it off when the application's role may not create indexes.
    pub fn create_indexes(mut self, yes: bool) -> Self {
        self.create_indexes = yes;
        self
    }

    /// How the `session` field is written (connect-mongo's `stringify`):
    /// `true` (the default) the express-session JSON as a string; `false`
    /// an embedded document, as connect-mongo with `stringify: false`
    /// writes it (`cookie.expires` a BSON date), which is the only shape a
    /// Node service configured that way can read. Both shapes are always
    /// read. With encryption the field is the sealed string either way, as
    /// with connect-mongo's crypto adapters.
    pub fn stringify(mut self, yes: bool) -> Self {
        self.stringify = yes;
        self
    }

    fn check(&self) -> Result<()> {
        if self.connect_timeout.is_zero() || self.operation_timeout.is_zero() {
            return Err(Error::Config(
                "MongoDB timeouts must be greater than zero".into(),
            ));
        }
        // MongoDB's own rules for names, checked here so the error is clear.
        if self.collection.is_empty()
            || self.collection.contains('\0')
            || self.collection.starts_with("system.")
            || self.collection.contains('$')
        {
            return Err(Error::Config(
                "collection name must be non-empty, without NUL or '$', not system.*".into(),
            ));
        }
        if let Some(db) = &self.database {
            if db.is_empty() || db.len() > 63 || db.contains(['/', '\\', '.', ' ', '"', '$', '\0'])
            {
                return Err(Error::Config("invalid MongoDB database name".into()));
            }
        }
        Ok(())
    }

    /// Connects and returns the store: checks the server answers (a `ping`,
    /// bounded by the connect timeout) and creates the TTL index if asked to.
    ///
    /// A malformed URL or name is [`Error::Config`]; a server that cannot be
    /// reached is [`Error::Unavailable`].
    pub async fn connect(self) -> Result<MongoStore> {
        self.check()?;
        let mut options = ClientOptions::parse(&self.url)
            .await
            .map_err(|e| match *e.kind {
                ErrorKind::InvalidArgument { .. } => {
                    Error::Config(format!("invalid MongoDB URL: {e}").into())
                }
                _ => classify("parsing the MongoDB URL", e),
            })?;
        let tls = matches!(options.tls, Some(mongodb::options::Tls::Enabled(_)));
        if let Some(mongodb::options::Tls::Enabled(t)) = &options.tls {
            // The driver would only fail to open these mid-handshake, with
            // an error that names no option: check them here.
            for (name, path) in [
                ("tlsCAFile", &t.ca_file_path),
                ("tlsCertificateKeyFile", &t.cert_key_file_path),
            ] {
                if let Some(path) = path {
                    std::fs::File::open(path).map_err(|e| {
                        Error::Config(format!("{name}: cannot read {}: {e}", path.display()).into())
                    })?;
                }
            }
        }
        options.connect_timeout = Some(self.connect_timeout);
        options.server_selection_timeout = Some(self.connect_timeout);
        if let Some(n) = self.max_pool_size {
            options.max_pool_size = Some(n);
        }
        if options.app_name.is_none() {
            options.app_name = Some("sessionkit-mongo".to_owned());
        }
        let database = self
            .database
            .clone()
            .or_else(|| options.default_database.clone())
            .unwrap_or_else(|| DEFAULT_DATABASE.to_owned());
        let client = Client::with_options(options)
            .map_err(|e| Error::Config(format!("invalid MongoDB options: {e}").into()))?;
        let connect_timeout = self.connect_timeout;
        let create_indexes = self.create_indexes;
        let store = self.with_client(client.clone(), &database);
        // The driver connects lazily: prove the server answers now. Over
        // TLS, a refused certificate is a configuration error naming the
        // option (the driver only reports a server selection timeout).
        store
            .bounded("connecting to MongoDB", connect_timeout * 2, async {
                client
                    .database(&database)
                    .run_command(doc! { "ping": 1 })
                    .await
            })
            .await
            .map_err(|e| match e {
                Error::Unavailable { source, .. }
                    if tls && sessionkit_core::driver::is_certificate_error(&*source) =>
                {
                    Error::Config(
                        format!("connecting to MongoDB over TLS (tls=true): the server's certificate was refused: {source}")
                            .into(),
                    )
                }
                other => other,
            })?;
        if create_indexes {
            store.create_indexes().await?;
        }
        debug!(namespace = %store.collection.namespace(), "connected to MongoDB");
        Ok(store)
    }

    /// Builds the store on a client you already have (to share it with the
    /// rest of the application), in `database`. Does not connect or create
    /// indexes: call [`MongoStore::create_indexes`] if needed. The URL and
    /// connect timeout given to this builder are not used.
    pub fn with_client(self, client: Client, database: &str) -> MongoStore {
        let collection = client
            .database(database)
            .collection::<Document>(&self.collection);
        MongoStore {
            collection,
            default_ttl: self.default_ttl,
            operation_timeout: self.operation_timeout,
            stringify: self.stringify,
            codec: self.codec,
        }
    }

    /// Encrypt session data at rest (see [`sessionkit_core::encryption`]): the
    /// `session` field then holds the sealed record, bound to its id. With
    /// [`Key::connect_mongo_webcrypto`](sessionkit_core::encryption::Key::connect_mongo_webcrypto)
    /// of the same secret and
    /// [`Format::WebCrypto`](sessionkit_core::encryption::Format::WebCrypto),
    /// it is `base64(iv ‖ ciphertext ‖ tag)`, the format of connect-mongo's
    /// `createWebCryptoAdapter`, and a Node service using that adapter
    /// shares the encrypted sessions (that format is not bound to the id).
    pub fn encryption(mut self, encryption: Encryption) -> Self {
        self.codec = Codec::encrypted(encryption);
        self
    }
}

/// The MongoDB store. Cloning is cheap and shares the client.
#[derive(Clone)]
pub struct MongoStore {
    collection: Collection<Document>,
    default_ttl: Duration,
    operation_timeout: Duration,
    /// The `session` field as a JSON string (connect-mongo's default), else
    /// an embedded document.
    stringify: bool,
    codec: Codec,
}

impl fmt::Debug for MongoStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoStore")
            .field("namespace", &self.collection.namespace().to_string())
            .field("default_ttl", &self.default_ttl)
            .finish_non_exhaustive()
    }
}

/// A `createIndexes` refused because an index on the same keys exists with
/// other options (IndexOptionsConflict 85, IndexKeySpecsConflict 86).
fn index_conflict(e: &Error) -> bool {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<mongodb::error::Error>())
        .is_some_and(|m| {
            matches!(&*m.kind, mongodb::error::ErrorKind::Command(c) if c.code == 85 || c.code == 86)
        })
}

/// Maps a driver error: network, server selection, pool and "not primary /
/// shutting down" errors are transient; the rest are backend errors.
fn classify(context: &'static str, e: mongodb::error::Error) -> Error {
    let code = match &*e.kind {
        ErrorKind::Command(c) => Some(c.code),
        ErrorKind::Write(WriteFailure::WriteError(w)) => Some(w.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(w)) => Some(w.code),
        _ => None,
    };
    let transient = matches!(
        &*e.kind,
        ErrorKind::Io(_)
            | ErrorKind::ServerSelection { .. }
            | ErrorKind::ConnectionPoolCleared { .. }
            | ErrorKind::DnsResolve { .. }
            | ErrorKind::Shutdown
    ) || code.is_some_and(|c| TRANSIENT_CODES.contains(&c))
        || e.contains_label("RetryableWriteError")
        || e.contains_label("TransientTransactionError");
    if transient {
        Error::unavailable(context, e)
    } else {
        Error::backend(context, e)
    }
}

fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    match &*e.kind {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == DUPLICATE_KEY,
        ErrorKind::Command(c) => c.code == DUPLICATE_KEY,
        _ => false,
    }
}

fn bson_date(t: Timestamp) -> DateTime {
    DateTime::from_millis(t.timestamp_millis())
}

/// The update of a write: `$set` of `expires` and `session`, and of the
/// top-level `principal` (the per-user index) when the record has one, else
/// `$unset` of it. connect-mongo `$set`s only `_id`, `session` and `expires`,
/// so a Node write leaves the field as it was.
fn write_update(expires: Timestamp, session: &Bson, principal: Option<&str>) -> Document {
    let mut set = doc! { "expires": bson_date(expires), "session": session };
    match principal {
        Some(p) => {
            set.insert("principal", p);
            doc! { "$set": set }
        }
        None => doc! { "$set": set, "$unset": { "principal": "" } },
    }
}

/// The embedded document connect-mongo with `stringify: false` writes for
/// a session: its express-session JSON as BSON, with `cookie.expires` a
/// date (express-session's `Cookie#toJSON` gives a `Date`), integers that
/// fit 32 bits as Int32 and other numbers as doubles (the Node driver's
/// choice for JavaScript numbers).
fn json_to_bson(value: Value) -> Bson {
    match value {
        Value::Null => Bson::Null,
        Value::Bool(b) => Bson::Boolean(b),
        Value::Number(n) => match n.as_i64().map(i32::try_from) {
            Some(Ok(small)) => Bson::Int32(small),
            _ => Bson::Double(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Bson::String(s),
        Value::Array(a) => Bson::Array(a.into_iter().map(json_to_bson).collect()),
        Value::Object(m) => {
            Bson::Document(m.into_iter().map(|(k, v)| (k, json_to_bson(v))).collect())
        }
    }
}

/// The fields of express-session's `Cookie#toJSON`, in its order.
const COOKIE_TO_JSON: [&str; 9] = [
    "originalMaxAge",
    "partitioned",
    "priority",
    "expires",
    "secure",
    "httpOnly",
    "domain",
    "path",
    "sameSite",
];

fn session_document(record: &Record) -> Result<Bson> {
    let json = record.to_json()?;
    let Value::Object(mut session) =
        serde_json::from_str::<Value>(&json).map_err(|e| Error::Encode(e.into()))?
    else {
        return Err(Error::Encode("a record encodes as a JSON object".into()));
    };
    let mut out = Document::new();
    if let Some(Value::Object(mut cookie)) = session.shift_remove("cookie") {
        // express-session's `Cookie#toJSON` fields in its order; the Node
        // driver stores those left undefined as null.
        let mut c = Document::new();
        for k in COOKIE_TO_JSON {
            let v = cookie.shift_remove(k).unwrap_or(Value::Null);
            let v = match (k, &v) {
                ("expires", Value::String(iso)) => match time::parse_iso(iso) {
                    Some(t) => Bson::DateTime(bson_date(t)),
                    None => json_to_bson(v),
                },
                _ => json_to_bson(v),
            };
            c.insert(k, v);
        }
        // Fields of its own (kept from what was read) after those.
        for (k, v) in cookie {
            c.insert(k, json_to_bson(v));
        }
        out.insert("cookie", c);
    }
    for (k, v) in session {
        out.insert(k, json_to_bson(v));
    }
    Ok(Bson::Document(out))
}

/// Converts a stored document (connect-mongo with `stringify: false`) to the
/// JSON express-session would have written: dates become ISO strings, and
/// doubles that are whole numbers (JavaScript does not tell them apart)
/// integers.
fn bson_to_json(value: Bson) -> Value {
    match value {
        Bson::Document(d) => Value::Object(
            d.into_iter()
                .map(|(k, v)| (k, bson_to_json(v)))
                .collect::<Map<String, Value>>(),
        ),
        Bson::Array(a) => Value::Array(a.into_iter().map(bson_to_json).collect()),
        Bson::String(s) => Value::String(s),
        Bson::Boolean(b) => Value::Bool(b),
        Bson::Null | Bson::Undefined => Value::Null,
        Bson::Int32(n) => Value::from(n),
        Bson::Int64(n) => Value::from(n),
        // 2^53: every integer below is exact in a double.
        Bson::Double(f) if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => {
            Value::from(f as i64)
        }
        Bson::Double(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        Bson::DateTime(d) => Value::String(time::to_iso(&time::from_millis(d.timestamp_millis()))),
        other => other.into_relaxed_extjson(),
    }
}

/// Marks a [`Version`] that holds an embedded session document (as
/// canonical extended JSON) rather than a JSON string.
const EMBEDDED_VERSION: &str = "\u{0}bson:";

/// Reads the record out of a document's `session` field, with its version:
/// the stored string itself, or the embedded document as canonical
/// extended JSON (so a compare-and-set can match it exactly).
fn decode_versioned(
    codec: &Codec,
    id: &SessionId,
    mut document: Document,
) -> Result<(Record, Version)> {
    match document.remove("session") {
        Some(Bson::String(json)) => {
            let record = codec.decode(id.clone(), &json)?;
            Ok((record, Version::new(json)))
        }
        Some(Bson::Document(_)) if !codec.accepts_plaintext() => Err(Error::decode(
            "stored session is not encrypted (allow_plaintext_reads is off)",
        )),
        Some(embedded @ Bson::Document(_)) => {
            let version = format!(
                "{EMBEDDED_VERSION}{}",
                embedded.clone().into_canonical_extjson()
            );
            let record = Record::from_value(id.clone(), bson_to_json(embedded))?;
            Ok((record, Version::new(version)))
        }
        Some(_) => Err(Error::decode(
            "the session field is neither a string nor a document",
        )),
        None => Err(Error::decode("the document has no session field")),
    }
}

fn decode(codec: &Codec, id: &SessionId, document: Document) -> Result<Record> {
    decode_versioned(codec, id, document).map(|(record, _)| record)
}

/// The [`Version`] of a stored `session` value (what `decode_versioned`
/// gives for it).
fn version_of(value: Bson) -> Version {
    match value {
        Bson::String(json) => Version::new(json),
        other => Version::new(format!(
            "{EMBEDDED_VERSION}{}",
            other.into_canonical_extjson()
        )),
    }
}

/// The stored `session` value a [`Version`] stands for.
fn version_value(version: &Version) -> Option<Bson> {
    match version.as_str().strip_prefix(EMBEDDED_VERSION) {
        None => Some(Bson::String(version.as_str().to_owned())),
        Some(extjson) => serde_json::from_str::<Value>(extjson)
            .ok()
            .and_then(|v| Bson::try_from(v).ok()),
    }
}

impl MongoStore {
    /// The same store (same client and collection) reading and writing
    /// through `codec`: for example with encryption turned on, or off.
    pub fn with_codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// Configures a store for the deployment at `url`
    /// (`mongodb://[user:pass@]host[:port][,host…]/[database][?options]` or
    /// `mongodb+srv://…`).
    pub fn builder(url: impl Into<String>) -> MongoStoreBuilder {
        MongoStoreBuilder {
            url: url.into(),
            database: None,
            collection: DEFAULT_COLLECTION.to_owned(),
            default_ttl: DEFAULT_TTL,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            max_pool_size: None,
            create_indexes: true,
            stringify: true,
            codec: Codec::plain(),
        }
    }

    /// The collection, for queries of your own (and for tests).
    pub fn collection(&self) -> &Collection<Document> {
        &self.collection
    }

    /// The collection's indexes.
    async fn indexes(&self) -> Result<Vec<IndexModel>> {
        use futures::TryStreamExt as _;
        self.bounded("listing indexes", self.operation_timeout, async {
            self.collection.list_indexes().await?.try_collect().await
        })
        .await
    }

    /// Whether the collection has a TTL index on `expires` alone.
    async fn has_ttl_index(&self) -> Result<bool> {
        Ok(self.indexes().await?.iter().any(|ix| {
            ix.keys == doc! { "expires": 1 }
                && ix.options.as_ref().and_then(|o| o.expire_after).is_some()
        }))
    }

    /// Creates the TTL index `{expires: 1}` with `expireAfterSeconds: 0`
    /// (named `expires_1`, as connect-mongo's, with its `background: true`)
    /// and the per-user index `{principal: 1}` (sparse: sessions without a
    /// principal, like every one Node writes, take no room in it).
    /// Idempotent: creating an index that exists with the same options does
    /// nothing, so several processes may call it at once; an existing TTL
    /// index on `expires` created with other options (by another connect-mongo
    /// version), or an index on `principal` with other options, is kept.
    pub async fn create_indexes(&self) -> Result<()> {
        let span = tracing::debug_span!("mongo.create_indexes");
        async {
            // The same options as connect-mongo (`background: true`), so
            // whichever side creates the index first, the other's request is
            // identical and succeeds. (Servers ignore `background` since 4.2,
            // but some compare it when matching an existing index.)
            #[allow(deprecated)]
            let index = IndexModel::builder()
                .keys(doc! { "expires": 1 })
                .options(
                    IndexOptions::builder()
                        .expire_after(Duration::ZERO)
                        .background(true)
                        .build(),
                )
                .build();
            let created = self
                .bounded("creating the TTL index", self.operation_timeout, async {
                    self.collection.create_index(index).await
                })
                .await;
            match created {
                Ok(created) => debug!(index = %created.index_name, "TTL index ready"),
                // IndexOptionsConflict / IndexKeySpecsConflict: an `expires_1`
                // index exists with other options (e.g. created by another
                // version of connect-mongo). Keep it if it is a TTL index.
                Err(e) if index_conflict(&e) => {
                    if !self.has_ttl_index().await? {
                        return Err(e);
                    }
                    debug!("an equivalent TTL index on expires already exists");
                }
                Err(e) => return Err(e),
            }
            let index = IndexModel::builder()
                .keys(doc! { "principal": 1 })
                .options(IndexOptions::builder().sparse(true).build())
                .build();
            let created = self
                .bounded(
                    "creating the principal index",
                    self.operation_timeout,
                    async { self.collection.create_index(index).await },
                )
                .await;
            match created {
                Ok(created) => debug!(index = %created.index_name, "principal index ready"),
                // Created with other options (by hand, or not sparse): keep it.
                Err(e) if index_conflict(&e) => {
                    let exists = self
                        .indexes()
                        .await?
                        .iter()
                        .any(|ix| ix.keys == doc! { "principal": 1 });
                    if !exists {
                        return Err(e);
                    }
                    debug!("an index on principal already exists");
                }
                Err(e) => return Err(e),
            }
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// Runs one driver call, bounded by `limit`.
    async fn bounded<T>(
        &self,
        context: &'static str,
        limit: Duration,
        call: impl Future<Output = mongodb::error::Result<T>>,
    ) -> Result<T> {
        match tokio::time::timeout(limit, call).await {
            Ok(result) => result.map_err(|e| classify(context, e)),
            Err(elapsed) => Err(Error::unavailable(context, elapsed)),
        }
    }

    async fn op<T>(
        &self,
        context: &'static str,
        call: impl Future<Output = mongodb::error::Result<T>>,
    ) -> Result<T> {
        self.bounded(context, self.operation_timeout, call).await
    }

    /// The `session` field for `record`: a string (JSON, or sealed with
    /// encryption), or with `stringify(false)` an embedded document.
    fn session_value(&self, record: &Record) -> Result<Bson> {
        if self.stringify || self.codec.is_encrypted() {
            Ok(Bson::String(self.codec.encode(record)?))
        } else {
            session_document(record)
        }
    }

    fn expiry(&self, expires: Option<Timestamp>, now: Timestamp) -> Timestamp {
        time::store_expiry(expires, self.default_ttl, now)
    }

    async fn live_exists(
        &self,
        id: &SessionId,
        now: Timestamp,
        context: &'static str,
    ) -> Result<bool> {
        let found = self
            .op(context, async {
                self.collection
                    .find_one(doc! { "_id": id.as_str(), "expires": { "$gt": bson_date(now) } })
                    .projection(doc! { "_id": 1 })
                    .await
            })
            .await?;
        Ok(found.is_some())
    }

    async fn delete_live(
        &self,
        id: &SessionId,
        now: Timestamp,
        context: &'static str,
    ) -> Result<WriteOutcome> {
        let done = self
            .op(context, async {
                self.collection
                    .delete_one(doc! { "_id": id.as_str(), "expires": { "$gt": bson_date(now) } })
                    .await
            })
            .await?;
        Ok(if done.deleted_count > 0 {
            WriteOutcome::Written
        } else {
            WriteOutcome::Gone
        })
    }
}

impl MongoStore {
    /// The live document of `id` (its `session` field only): what `load`
    /// and `load_versioned` decode.
    async fn find_live(&self, id: &SessionId) -> Result<Option<Document>> {
        let now = bson_date(time::now());
        let found = self
            .op("loading a session", async {
                self.collection
                    .find_one(doc! { "_id": id.as_str(), "expires": { "$gt": now } })
                    .projection(doc! { "session": 1 })
                    .await
            })
            .await?;
        debug!(found = found.is_some());
        Ok(found)
    }
}

#[async_trait]
impl Store for MongoStore {
    async fn load(&self, id: &SessionId) -> Result<Option<Record>> {
        let span = tracing::debug_span!("mongo.load", id = ?id);
        async {
            let found = self.find_live(id).await?;
            found.map(|d| decode(&self.codec, id, d)).transpose()
        }
        .instrument(span)
        .await
    }

    async fn create(&self, record: &Record) -> Result<()> {
        let span = tracing::debug_span!("mongo.create", id = ?record.id);
        async {
            let json = self.session_value(record)?;
            let now = time::now();
            let expires = self.expiry(record.cookie.expires, now);
            if expires <= now {
                // Nothing to store, but a live record with this id is still a collision.
                let live = self
                    .live_exists(&record.id, now, "creating a session")
                    .await?;
                debug!(live, "create with past expiry stores nothing");
                return if live { Err(Error::Collision) } else { Ok(()) };
            }
            let id = record.id.as_str();
            let mut document =
                doc! { "_id": id, "expires": bson_date(expires), "session": json.clone() };
            if let Some(p) = record.principal() {
                document.insert("principal", p);
            }
            // Twice at most: the expired document we found may be deleted by
            // the TTL monitor before we replace it.
            for _ in 0..2 {
                let inserted = tokio::time::timeout(
                    self.operation_timeout,
                    self.collection.insert_one(&document),
                )
                .await
                .map_err(|elapsed| Error::unavailable("creating a session", elapsed))?;
                match inserted {
                    Ok(_) => {
                        debug!("inserted");
                        return Ok(());
                    }
                    Err(e) if is_duplicate_key(&e) => {}
                    Err(e) => return Err(classify("creating a session", e)),
                }
                // The id is taken: replace the document only if it has expired.
                let replaced = self
                    .op("creating a session", async {
                        self.collection
                            .update_one(
                                doc! { "_id": id, "expires": { "$lte": bson_date(now) } },
                                write_update(expires, &json, record.principal()),
                            )
                            .await
                    })
                    .await?;
                if replaced.matched_count > 0 {
                    debug!("replaced an expired session");
                    return Ok(());
                }
                if self
                    .live_exists(&record.id, now, "creating a session")
                    .await?
                {
                    debug!("a live session has this id");
                    return Err(Error::Collision);
                }
            }
            Err(Error::Collision)
        }
        .instrument(span)
        .await
    }

    async fn save(&self, record: &Record) -> Result<WriteOutcome> {
        let span = tracing::debug_span!("mongo.save", id = ?record.id);
        async {
            let json = self.session_value(record)?;
            let now = time::now();
            let expires = self.expiry(record.cookie.expires, now);
            let outcome = if expires <= now {
                self.delete_live(&record.id, now, "saving a session").await?
            } else {
                let done = self
                    .op("saving a session", async {
                        self.collection
                            .update_one(
                                doc! { "_id": record.id.as_str(), "expires": { "$gt": bson_date(now) } },
                                write_update(expires, &json, record.principal()),
                            )
                            .await
                    })
                    .await?;
                if done.matched_count > 0 {
                    WriteOutcome::Written
                } else {
                    WriteOutcome::Gone
                }
            };
            debug!(?outcome);
            Ok(outcome)
        }
        .instrument(span)
        .await
    }

    async fn touch(&self, id: &SessionId, expires: Option<Timestamp>) -> Result<WriteOutcome> {
        let span = tracing::debug_span!("mongo.touch", id = ?id);
        async {
            let now = time::now();
            let expires = self.expiry(expires, now);
            let outcome = if expires <= now {
                self.delete_live(id, now, "touching a session").await?
            } else {
                let done = self
                    .op("touching a session", async {
                        self.collection
                            .update_one(
                                doc! { "_id": id.as_str(), "expires": { "$gt": bson_date(now) } },
                                doc! { "$set": { "expires": bson_date(expires) } },
                            )
                            .await
                    })
                    .await?;
                if done.matched_count > 0 {
                    WriteOutcome::Written
                } else {
                    WriteOutcome::Gone
                }
            };
            debug!(?outcome);
            Ok(outcome)
        }
        .instrument(span)
        .await
    }

    async fn destroy(&self, id: &SessionId) -> Result<()> {
        let span = tracing::debug_span!("mongo.destroy", id = ?id);
        async {
            let done = self
                .op("destroying a session", async {
                    self.collection
                        .delete_one(doc! { "_id": id.as_str() })
                        .await
                })
                .await?;
            debug!(deleted = done.deleted_count);
            Ok(())
        }
        .instrument(span)
        .await
    }

    fn default_ttl(&self) -> Duration {
        self.default_ttl
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::ALL
    }

    async fn load_versioned(&self, id: &SessionId) -> Result<Option<(Record, Version)>> {
        let span = tracing::debug_span!("mongo.load_versioned", id = ?id);
        async {
            let found = self.find_live(id).await?;
            found
                .map(|d| decode_versioned(&self.codec, id, d))
                .transpose()
        }
        .instrument(span)
        .await
    }

    async fn save_if(&self, record: &Record, expected: &Version) -> Result<CasOutcome> {
        let span = tracing::debug_span!("mongo.save_if", id = ?record.id);
        async {
            let json = self.session_value(record)?;
            let now = time::now();
            let expires = self.expiry(record.cookie.expires, now);
            // One atomic conditional write: live, and still exactly what was loaded.
            let matched = match version_value(expected) {
                None => false,
                Some(current) => {
                    let filter = doc! {
                        "_id": record.id.as_str(),
                        "expires": { "$gt": bson_date(now) },
                        "session": current,
                    };
                    if expires <= now {
                        self.op("saving a session", async {
                            self.collection.delete_one(filter).await
                        })
                        .await?
                        .deleted_count
                            > 0
                    } else {
                        self.op("saving a session", async {
                            self.collection
                                .update_one(
                                    filter,
                                    write_update(expires, &json, record.principal()),
                                )
                                .await
                        })
                        .await?
                        .matched_count
                            > 0
                    }
                }
            };
            let outcome = if matched {
                CasOutcome::Written(version_of(json))
            } else if self
                .live_exists(&record.id, now, "saving a session")
                .await?
            {
                CasOutcome::Conflict
            } else {
                CasOutcome::Gone
            };
            debug!(?outcome);
            Ok(outcome)
        }
        .instrument(span)
        .await
    }

    async fn ids(&self) -> Result<Vec<SessionId>> {
        let span = tracing::debug_span!("mongo.ids");
        async {
            let now = bson_date(time::now());
            let documents: Vec<Document> = self
                .op("listing sessions", async {
                    self.collection
                        .find(doc! { "expires": { "$gt": now } })
                        .projection(doc! { "_id": 1 })
                        .await?
                        .try_collect()
                        .await
                })
                .await?;
            let total = documents.len();
            let ids: Vec<SessionId> = documents
                .iter()
                .filter_map(|d| d.get_str("_id").ok())
                .filter_map(|s| SessionId::parse(s).ok())
                .collect();
            if ids.len() < total {
                warn!(
                    skipped = total - ids.len(),
                    "documents whose _id is not a session id were skipped"
                );
            }
            debug!(count = ids.len());
            Ok(ids)
        }
        .instrument(span)
        .await
    }

    async fn count(&self) -> Result<u64> {
        let span = tracing::debug_span!("mongo.count");
        async {
            let now = bson_date(time::now());
            let n = self
                .op("counting sessions", async {
                    self.collection
                        .count_documents(doc! { "expires": { "$gt": now } })
                        .await
                })
                .await?;
            debug!(count = n);
            Ok(n)
        }
        .instrument(span)
        .await
    }

    async fn clear(&self) -> Result<()> {
        let span = tracing::debug_span!("mongo.clear");
        async {
            let done = self
                .op("clearing sessions", async {
                    self.collection.delete_many(doc! {}).await
                })
                .await?;
            debug!(deleted = done.deleted_count);
            Ok(())
        }
        .instrument(span)
        .await
    }

    async fn delete_expired(&self) -> Result<u64> {
        let span = tracing::debug_span!("mongo.delete_expired");
        async {
            let now = bson_date(time::now());
            let done = self
                .op("deleting expired sessions", async {
                    self.collection
                        .delete_many(doc! { "expires": { "$lte": now } })
                        .await
                })
                .await?;
            debug!(deleted = done.deleted_count);
            Ok(done.deleted_count)
        }
        .instrument(span)
        .await
    }

    async fn principal_sessions(&self, principal: &str) -> Result<Vec<Record>> {
        let span = tracing::debug_span!("mongo.principal_sessions");
        async {
            let now = bson_date(time::now());
            let documents: Vec<Document> = self
                .op("listing a principal's sessions", async {
                    self.collection
                        .find(doc! { "principal": principal, "expires": { "$gt": now } })
                        .projection(doc! { "_id": 1, "session": 1 })
                        .await?
                        .try_collect()
                        .await
                })
                .await?;
            let total = documents.len();
            let mut records = Vec::with_capacity(total);
            let mut skipped = 0usize;
            for document in documents {
                let id = document
                    .get_str("_id")
                    .ok()
                    .and_then(|s| SessionId::parse(s).ok());
                let Some(id) = id else {
                    skipped += 1;
                    continue;
                };
                // The field and the session are written together by this
                // store; the session's own principal is what counts.
                match decode(&self.codec, &id, document) {
                    Ok(record) if record.principal() == Some(principal) => records.push(record),
                    _ => skipped += 1,
                }
            }
            if skipped > 0 {
                warn!(
                    skipped,
                    "documents with this principal whose _id or session does not match were skipped"
                );
            }
            debug!(count = records.len());
            Ok(records)
        }
        .instrument(span)
        .await
    }

    async fn destroy_principal(&self, principal: &str, keep: Option<&SessionId>) -> Result<u64> {
        let span = tracing::debug_span!("mongo.destroy_principal", keep = ?keep);
        async {
            let now = bson_date(time::now());
            let mut filter = doc! { "principal": principal, "expires": { "$gt": now } };
            if let Some(keep) = keep {
                filter.insert("_id", doc! { "$ne": keep.as_str() });
            }
            let done = self
                .op("destroying a principal's sessions", async {
                    self.collection.delete_many(filter).await
                })
                .await?;
            debug!(deleted = done.deleted_count);
            Ok(done.deleted_count)
        }
        .instrument(span)
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_sessions_decode_with_iso_dates() -> Result<()> {
        let id = SessionId::generate();
        let expires = time::from_millis(1_795_744_481_837);
        let document = doc! {
            "_id": id.as_str(),
            "session": {
                "cookie": { "originalMaxAge": 60000_i64, "expires": bson_date(expires), "httpOnly": true, "path": "/" },
                "views": 3_i32,
                "ratio": 0.5,
            },
        };
        let r = decode(&Codec::plain(), &id, document)?;
        assert_eq!(r.cookie.expires, Some(expires));
        assert_eq!(r.data["views"], 3);
        assert_eq!(r.data["ratio"], 0.5);
        Ok(())
    }

    #[test]
    fn versions_name_the_stored_value_exactly() -> Result<()> {
        let id = SessionId::generate();
        let (_, v) =
            decode_versioned(&Codec::plain(), &id, doc! { "session": r#"{"cookie":{}}"# })?;
        assert_eq!(
            version_value(&v),
            Some(Bson::String(r#"{"cookie":{}}"#.into()))
        );
        let embedded =
            doc! { "cookie": { "expires": DateTime::from_millis(5), "n": 1_i64 }, "x": 0.5 };
        let (_, v) = decode_versioned(&Codec::plain(), &id, doc! { "session": embedded.clone() })?;
        assert_eq!(version_value(&v), Some(Bson::Document(embedded)));
        Ok(())
    }

    #[test]
    fn missing_or_odd_session_field_is_a_decode_error() {
        let id = SessionId::generate();
        assert!(matches!(
            decode(&Codec::plain(), &id, doc! { "_id": "x" }),
            Err(Error::Decode(_))
        ));
        assert!(matches!(
            decode(&Codec::plain(), &id, doc! { "session": 42 }),
            Err(Error::Decode(_))
        ));
        assert!(matches!(
            decode(&Codec::plain(), &id, doc! { "session": "not json" }),
            Err(Error::Decode(_))
        ));
    }

    #[test]
    fn names_are_checked() {
        for bad in ["", "system.sessions", "a$b"] {
            assert!(
                MongoStore::builder("mongodb://127.0.0.1")
                    .collection(bad)
                    .check()
                    .is_err(),
                "{bad}"
            );
        }
        assert!(MongoStore::builder("mongodb://127.0.0.1")
            .database("a.b")
            .check()
            .is_err());
        assert!(MongoStore::builder("mongodb://127.0.0.1").check().is_ok());
    }

    #[test]
    fn debug_never_prints_the_url() {
        let b = MongoStore::builder("mongodb://u:hunter2@127.0.0.1");
        assert!(!format!("{b:?}").contains("hunter2"));
    }

    #[tokio::test]
    async fn malformed_url_is_a_config_error() {
        let result = MongoStore::builder("http://127.0.0.1").connect().await;
        assert!(matches!(result, Err(Error::Config(_))), "{result:?}");
    }
}

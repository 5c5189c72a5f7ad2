//! The connection behind a store: one node, a Redis Cluster, or the master
//! a set of Sentinels names. One internal enum, so the store's commands are
//! written once for the three deployments.

use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::sentinel::SentinelClient;
use redis::{
    AsyncConnectionConfig, Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, Value,
};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tracing::{debug, warn};

/// A connection to the deployment a [`RedisStore`](crate::RedisStore) uses,
/// for commands of your own (and for tests). Cheap to clone; clones share
/// the underlying connection(s).
///
/// It implements [`redis::aio::ConnectionLike`], so `cmd.query_async(&mut
/// conn)`, pipelines and scripts work the same on every deployment:
///
/// - single node: a [`ConnectionManager`] (reconnects by itself);
/// - Redis Cluster: a cluster connection that routes each command by its
///   key's slot and follows `MOVED`/`ASK` redirections and failovers (a
///   pipeline or script must keep to one slot);
/// - Sentinel: a connection to the current master; after a connection
///   error, a timeout or a `READONLY`/`MASTERDOWN` reply (the node was
///   demoted), the next command asks the Sentinels for the master again.
///   The failing command itself is not retried: it returns its error.
#[derive(Clone)]
pub struct RedisConnection(pub(crate) Conn);

impl fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.0 {
            Conn::Single(_) => "single node",
            Conn::Cluster(_) => "cluster",
            Conn::Sentinel(_) => "sentinel",
        };
        f.debug_tuple("RedisConnection").field(&kind).finish()
    }
}

/// The three deployments.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(SentinelConn),
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match &mut self.0 {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
            Conn::Sentinel(c) => Box::pin(c.command(cmd)),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match &mut self.0 {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Sentinel(c) => Box::pin(c.commands(cmd, offset, count)),
        }
    }

    fn get_db(&self) -> i64 {
        match &self.0 {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
            Conn::Sentinel(c) => c.shared.db,
        }
    }
}

/// A cluster's masters as `(host, port)`, from `CLUSTER SLOTS` (the reply
/// the cluster connection builds its own slot map from, so the addresses
/// match its connections). Each slot range's first node is its master.
pub(crate) async fn cluster_masters(
    conn: &mut ClusterConnection,
) -> RedisResult<Vec<(String, u16)>> {
    let reply: Value = redis::cmd("CLUSTER").arg("SLOTS").query_async(conn).await?;
    let mut masters = parse_cluster_slots(&reply)?;
    masters.sort();
    masters.dedup();
    Ok(masters)
}

fn parse_cluster_slots(reply: &Value) -> RedisResult<Vec<(String, u16)>> {
    let bad = || RedisError::from((ErrorKind::ParseError, "unexpected CLUSTER SLOTS reply"));
    let Value::Array(ranges) = reply else {
        return Err(bad());
    };
    let mut masters = Vec::with_capacity(ranges.len());
    for range in ranges {
        // [start, end, [host, port, id, …], replicas…]
        let Value::Array(items) = range else {
            return Err(bad());
        };
        let Some(Value::Array(node)) = items.get(2) else {
            return Err(bad());
        };
        let host = match node.first() {
            Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(Value::SimpleString(s)) => s.clone(),
            _ => return Err(bad()),
        };
        let port = match node.get(1) {
            Some(Value::Int(p)) => u16::try_from(*p).map_err(|_| bad())?,
            _ => return Err(bad()),
        };
        masters.push((host, port));
    }
    Ok(masters)
}

/// Routing of a command to one node by its address.
pub(crate) fn to_node(host: &str, port: u16) -> RoutingInfo {
    RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
        host: host.to_owned(),
        port,
    })
}

/// The connection to the master a set of Sentinels names.
#[derive(Clone)]
pub(crate) struct SentinelConn {
    shared: Arc<SentinelShared>,
}

struct SentinelShared {
    /// Asks the Sentinels; a lock so one task at a time rediscovers.
    client: tokio::sync::Mutex<SentinelClient>,
    /// The master connection and how many times it was replaced.
    current: Mutex<(u64, Option<MultiplexedConnection>)>,
    config: AsyncConnectionConfig,
    connect_timeout: Duration,
    db: i64,
}

impl SentinelConn {
    /// Asks the Sentinels for the master and connects to it (bounded by
    /// `connect_timeout`).
    pub(crate) async fn connect(
        client: SentinelClient,
        connect_timeout: Duration,
        response_timeout: Duration,
        db: i64,
    ) -> RedisResult<SentinelConn> {
        let conn = SentinelConn {
            shared: Arc::new(SentinelShared {
                client: tokio::sync::Mutex::new(client),
                current: Mutex::new((0, None)),
                config: AsyncConnectionConfig::new()
                    .set_connection_timeout(connect_timeout)
                    .set_response_timeout(response_timeout),
                connect_timeout,
                db,
            }),
        };
        conn.master().await?;
        Ok(conn)
    }

    /// The current master connection; asks the Sentinels when there is none
    /// (first use, or the last one failed). One task at a time asks; the
    /// wait for that, and the asking, are bounded by the connect timeout.
    async fn master(&self) -> RedisResult<(u64, MultiplexedConnection)> {
        if let Some(found) = self.cached() {
            return Ok(found);
        }
        let config = self.shared.config.clone();
        let found = tokio::time::timeout(self.shared.connect_timeout, async {
            let mut client = self.shared.client.lock().await;
            // Another task may have asked while this one waited.
            if let Some(found) = self.cached() {
                return Ok(Found::Cached(found));
            }
            let master = client.async_get_client().await?;
            let addr = master.get_connection_info().addr.to_string();
            let conn = master
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            Ok::<_, RedisError>(Found::New(addr, conn))
        })
        .await
        .map_err(|_| {
            RedisError::from((
                ErrorKind::IoError,
                "timed out asking the Sentinels for the master",
            ))
        })?;
        let (addr, conn) = match found? {
            Found::New(addr, conn) => (addr, conn),
            Found::Cached(cached) => return Ok(cached),
        };
        let mut current = self.lock();
        current.0 += 1;
        current.1 = Some(conn.clone());
        debug!(master = %addr, generation = current.0, "connected to the master the Sentinels name");
        Ok((current.0, conn))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, Option<MultiplexedConnection>)> {
        // The lock guards two plain fields: a panic elsewhere cannot leave
        // them half-written, so a poisoned lock is still usable.
        self.shared
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn cached(&self) -> Option<(u64, MultiplexedConnection)> {
        let current = self.lock();
        current.1.clone().map(|c| (current.0, c))
    }

    /// Forgets the master connection of `generation` (unless it was
    /// replaced already), so the next command asks the Sentinels again.
    fn invalidate(&self, generation: u64, why: &dyn fmt::Display) {
        let mut current = self.lock();
        if current.0 == generation && current.1.is_some() {
            warn!(reason = %why, "Redis master connection failed; asking the Sentinels again on the next command");
            current.1 = None;
        }
    }

    async fn command(&self, cmd: &Cmd) -> RedisResult<Value> {
        let (generation, mut conn) = self.master().await?;
        let result = conn.req_packed_command(cmd).await;
        match &result {
            Err(e) if needs_new_master(e) => self.invalidate(generation, e),
            Ok(v) if demoted(v) => self.invalidate(generation, &"a READONLY/MASTERDOWN reply"),
            _ => {}
        }
        result
    }

    async fn commands(
        &self,
        cmd: &Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        let (generation, mut conn) = self.master().await?;
        let result = conn.req_packed_commands(cmd, offset, count).await;
        match &result {
            Err(e) if needs_new_master(e) => self.invalidate(generation, e),
            Ok(vs) if vs.iter().any(demoted) => {
                self.invalidate(generation, &"a READONLY/MASTERDOWN reply")
            }
            _ => {}
        }
        result
    }
}

/// What [`SentinelConn::master`] found under the lock.
enum Found {
    /// Another task connected while this one waited.
    Cached((u64, MultiplexedConnection)),
    /// Connected here: the master's address and the connection.
    New(String, MultiplexedConnection),
}

/// Errors after which the master may have moved.
fn needs_new_master(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(e.kind(), ErrorKind::ReadOnly | ErrorKind::MasterDown)
}

/// A reply saying this node is no longer a writable master.
fn demoted(v: &Value) -> bool {
    match v {
        Value::ServerError(e) => matches!(
            RedisError::from(e.clone()).kind(),
            ErrorKind::ReadOnly | ErrorKind::MasterDown
        ),
        Value::Array(items) => items.iter().any(demoted),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn cluster_slots_give_each_range_s_master() -> RedisResult<()> {
        let node = |port: i64| Value::Array(vec![bulk("127.0.0.1"), Value::Int(port), bulk("id")]);
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                node(7000),
                node(7004),
            ]),
            Value::Array(vec![
                Value::Int(5461),
                Value::Int(10922),
                node(7001),
                node(7005),
            ]),
        ]);
        assert_eq!(
            parse_cluster_slots(&reply)?,
            vec![
                ("127.0.0.1".to_owned(), 7000),
                ("127.0.0.1".to_owned(), 7001)
            ]
        );
        assert!(parse_cluster_slots(&Value::Nil).is_err());
        assert!(parse_cluster_slots(&Value::Array(vec![Value::Int(1)])).is_err());
        Ok(())
    }
}

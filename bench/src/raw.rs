//! The floors: each driver's commands for load / save / touch / create /
//! destroy, with nothing around them, on a table or prefix of their own
//! with the same layout and the same pool settings as our stores.

use crate::env::Env;
use crate::store_level::{Op, Scratch, Target};
use anyhow::{bail, Result};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mongodb::bson::doc;
use sessionkit_core::{Record, SessionId};
use sqlx::{MySqlPool, PgPool, SqlitePool};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Key-value operations on a session's JSON, as an application would write
/// them with the driver alone. Only live records are seen or written.
#[async_trait]
pub trait RawKv: Send + Sync + 'static {
    async fn get(&self, id: &str) -> Result<Option<String>>;
    /// Replaces a live record; `false` when there is none.
    async fn update(&self, id: &str, json: &str, expires: DateTime<Utc>) -> Result<bool>;
    /// Moves a live record's expiry; `false` when there is none.
    async fn touch(&self, id: &str, expires: DateTime<Utc>) -> Result<bool>;
    /// Inserts if absent; `false` on a collision.
    async fn insert(&self, id: &str, json: &str, expires: DateTime<Utc>) -> Result<bool>;
    async fn delete(&self, id: &str) -> Result<()>;
}

/// A store-level contender over any [`RawKv`], with the JSON built once.
pub struct Raw<K> {
    kv: K,
    ids: Vec<SessionId>,
    jsons: Vec<String>,
    expires: DateTime<Utc>,
}

impl<K: RawKv> Raw<K> {
    pub async fn fill(kv: K, records: &[Record]) -> Result<Self> {
        let expires = records
            .first()
            .and_then(|r| r.cookie.expires)
            .unwrap_or_else(Utc::now);
        let mut jsons = Vec::with_capacity(records.len());
        for r in records {
            let json = r.to_json()?;
            kv.insert(r.id.as_str(), &json, expires).await?;
            jsons.push(json);
        }
        Ok(Raw {
            kv,
            ids: records.iter().map(|r| r.id.clone()).collect(),
            jsons,
            expires,
        })
    }
}

#[async_trait]
impl<K: RawKv> Target for Raw<K> {
    async fn op(&self, op: Op, slot: usize, _scratch: &mut Scratch) -> Result<()> {
        let id = self.ids[slot].as_str();
        match op {
            Op::Load => {
                if self.kv.get(id).await?.is_none() {
                    bail!("get found nothing");
                }
            }
            Op::Save => {
                if !self.kv.update(id, &self.jsons[slot], self.expires).await? {
                    bail!("update found nothing");
                }
            }
            Op::Touch => {
                if !self.kv.touch(id, self.expires).await? {
                    bail!("touch found nothing");
                }
            }
            Op::CreateDestroy => {
                let new = SessionId::generate();
                if !self
                    .kv
                    .insert(new.as_str(), &self.jsons[slot], self.expires)
                    .await?
                {
                    bail!("insert collided");
                }
                self.kv.delete(new.as_str()).await?;
            }
        }
        Ok(())
    }
}

// ---- memory: a mutex around a HashMap of JSON strings ----

#[derive(Default)]
pub struct MemoryKv {
    map: Mutex<HashMap<String, (String, i64)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[async_trait]
impl RawKv for MemoryKv {
    async fn get(&self, id: &str) -> Result<Option<String>> {
        let now = Utc::now().timestamp_millis();
        Ok(lock(&self.map)
            .get(id)
            .filter(|(_, exp)| *exp > now)
            .map(|(json, _)| json.clone()))
    }
    async fn update(&self, id: &str, json: &str, expires: DateTime<Utc>) -> Result<bool> {
        let now = Utc::now().timestamp_millis();
        let json = json.to_owned();
        let mut map = lock(&self.map);
        match map.get_mut(id) {
            Some(entry) if entry.1 > now => {
                *entry = (json, expires.timestamp_millis());
                Ok(true)
            }
            _ => Ok(false),
        }
    }
    async fn touch(&self, id: &str, expires: DateTime<Utc>) -> Result<bool> {
        let now = Utc::now().timestamp_millis();
        let mut map = lock(&self.map);
        match map.get_mut(id) {
            Some(entry) if entry.1 > now => {
                entry.1 = expires.timestamp_millis();
                Ok(true)
            }
            _ => Ok(false),
        }
    }
    async fn insert(&self, id: &str, json: &str, expires: DateTime<Utc>) -> Result<bool> {
        let now = Utc::now().timestamp_millis();
        let mut map = lock(&self.map);
        if map.get(id).is_some_and(|(_, exp)| *exp > now) {
            return Ok(false);
        }
        map.insert(id.to_owned(), (json.to_owned(), expires.timestamp_millis()));
        Ok(true)
    }
    async fn delete(&self, id: &str) -> Result<()> {
        lock(&self.map).remove(id);
        Ok(())
    }
}

// ---- Redis: GET, SET XX EX, EXPIRE, SET NX EX, DEL ----

pub struct RedisKv {
    conn: redis::aio::ConnectionManager,
    prefix: String,
}

impl RedisKv {
    pub async fn new(env: &Env, prefix: &str) -> Result<Self> {
        Ok(RedisKv {
            conn: env.redis_conn().await?,
            prefix: prefix.to_owned(),
        })
    }
    fn key(&self, id: &str) -> String {
        format!("{}{id}", self.prefix)
    }
}

fn ttl(expires: DateTime<Utc>) -> i64 {
    let ms = (expires - Utc::now()).num_milliseconds();
    (ms + 999).div_euclid(1000)
}

#[async_trait]
impl RawKv for RedisKv {
    async fn get(&self, id: &str) -> Result<Option<String>> {
        let mut c = self.conn.clone();
        Ok(redis::cmd("GET")
            .arg(self.key(id))
            .query_async(&mut c)
            .await?)
    }
    async fn update(&self, id: &str, json: &str, expires: DateTime<Utc>) -> Result<bool> {
        let mut c = self.conn.clone();
        let reply: Option<String> = redis::cmd("SET")
            .arg(self.key(id))
            .arg(json)
            .arg("XX")
            .arg("EX")
            .arg(ttl(expires))
            .query_async(&mut c)
            .await?;
        Ok(reply.is_some())
    }
    async fn touch(&self, id: &str, expires: DateTime<Utc>) -> Result<bool> {
        let mut c = self.conn.clone();
        let n: i64 = redis::cmd("EXPIRE")
            .arg(self.key(id))
            .arg(ttl(expires))
            .query_async(&mut c)
            .await?;
        Ok(n == 1)
    }
    async fn insert(&self, id: &str, json: &str, expires: DateTime<Utc>) -> Result<bool> {
        let mut c = self.conn.clone();
        let reply: Option<String> = redis::cmd("SET")
            .arg(self.key(id))
            .arg(json)
            .arg("NX")
            .arg("EX")
            .arg(ttl(expires))
            .query_async(&mut c)
            .await?;
        Ok(reply.is_some())
    }
    async fn delete(&self, id: &str) -> Result<()> {
        let mut c = self.conn.clone();
        let _: i64 = redis::cmd("DEL")
            .arg(self.key(id))
            .query_async(&mut c)
            .await?;
        Ok(())
    }
}

// ---- PostgreSQL: connect-pg-simple's table, plain statements ----

pub struct PgKv {
    pool: PgPool,
    get: String,
    update: String,
    touch: String,
    insert: String,
    delete: String,
}

impl PgKv {
    pub async fn new(env: &Env, table: &str) -> Result<Self> {
        let pool = env.pg_pool()?;
        sqlx::raw_sql(&format!(
            "CREATE TABLE IF NOT EXISTS \"{table}\" (\"sid\" varchar NOT NULL COLLATE \"default\", \
             \"sess\" json NOT NULL, \"expire\" timestamp(6) NOT NULL, PRIMARY KEY (\"sid\")); \
             CREATE INDEX IF NOT EXISTS \"IDX_{table}_expire\" ON \"{table}\" (\"expire\");"
        ))
        .execute(&pool)
        .await?;
        let t = format!("\"{table}\"");
        Ok(PgKv {
            pool,
            get: format!("SELECT sess::text FROM {t} WHERE sid = $1 AND expire >= $2"),
            update: format!(
                "UPDATE {t} SET sess = $2::json, expire = $3 WHERE sid = $1 AND expire >= $4"
            ),
            touch: format!("UPDATE {t} SET expire = $2 WHERE sid = $1 AND expire >= $3"),
            insert: format!(
                "INSERT INTO {t} (sid, sess, expire) VALUES ($1, $2::json, $3) ON CONFLICT (sid) DO NOTHING"
            ),
            delete: format!("DELETE FROM {t} WHERE sid = $1"),
        })
    }
}

#[async_trait]
impl RawKv for PgKv {
    async fn get(&self, id: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(&self.get)
            .bind(id)
            .bind(Utc::now().naive_utc())
            .fetch_optional(&self.pool)
            .await?)
    }
    async fn update(&self, id: &str, json: &str, expires: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query(&self.update)
            .bind(id)
            .bind(json)
            .bind(expires.naive_utc())
            .bind(Utc::now().naive_utc())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
    async fn touch(&self, id: &str, expires: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query(&self.touch)
            .bind(id)
            .bind(expires.naive_utc())
            .bind(Utc::now().naive_utc())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
    async fn insert(&self, id: &str, json: &str, expires: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query(&self.insert)
            .bind(id)
            .bind(json)
            .bind(expires.naive_utc())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
    async fn delete(&self, id: &str) -> Result<()> {
        sqlx::query(&self.delete)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

// ---- MySQL: express-mysql-session's table, plain statements ----

pub struct MySqlKv {
    pool: MySqlPool,
    get: String,
    update: String,
    touch: String,
    insert: String,
    delete: String,
}

/// express-mysql-session's `expires`: UNIX seconds, rounded.
fn unix(t: DateTime<Utc>) -> u32 {
    u32::try_from((t.timestamp_millis() + 500).div_euclid(1000).max(0)).unwrap_or(u32::MAX)
}

impl MySqlKv {
    pub async fn new(env: &Env, table: &str) -> Result<Self> {
        let pool = env.mysql_pool()?;
        let t = format!("`{table}`");
        sqlx::query(&format!(
            "CREATE TABLE IF NOT EXISTS {t} (\
             `session_id` varchar(128) COLLATE utf8mb4_bin NOT NULL, \
             `expires` int(11) unsigned NOT NULL, \
             `data` mediumtext COLLATE utf8mb4_bin, \
             PRIMARY KEY (`session_id`), KEY `expires` (`expires`)) ENGINE=InnoDB"
        ))
        .execute(&pool)
        .await?;
        Ok(MySqlKv {
            pool,
            get: format!("SELECT `data` FROM {t} WHERE `session_id` = ? AND `expires` >= ?"),
            update: format!(
                "UPDATE {t} SET `data` = ?, `expires` = ? WHERE `session_id` = ? AND `expires` >= ?"
            ),
            touch: format!(
                "UPDATE {t} SET `expires` = ? WHERE `session_id` = ? AND `expires` >= ?"
            ),
            insert: format!(
                "INSERT IGNORE INTO {t} (`session_id`, `expires`, `data`) VALUES (?, ?, ?)"
            ),
            delete: format!("DELETE FROM {t} WHERE `session_id` = ?"),
        })
    }
}

#[async_trait]
impl RawKv for MySqlKv {
    async fn get(&self, id: &str) -> Result<Option<String>> {
        // A `_bin` collation makes the text column a BLOB to the driver.
        let bytes: Option<Vec<u8>> = sqlx::query_scalar(&self.get)
            .bind(id)
            .bind(unix(Utc::now()))
            .fetch_optional(&self.pool)
            .await?;
        Ok(bytes.map(String::from_utf8).transpose()?)
    }
    async fn update(&self, id: &str, json: &str, expires: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query(&self.update)
            .bind(json)
            .bind(unix(expires))
            .bind(id)
            .bind(unix(Utc::now()))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
    async fn touch(&self, id: &str, expires: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query(&self.touch)
            .bind(unix(expires))
            .bind(id)
            .bind(unix(Utc::now()))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
    async fn insert(&self, id: &str, json: &str, expires: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query(&self.insert)
            .bind(id)
            .bind(unix(expires))
            .bind(json)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
    async fn delete(&self, id: &str) -> Result<()> {
        sqlx::query(&self.delete)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

// ---- SQLite: connect-session-sequelize's table, plain statements ----

pub struct SqliteKv {
    pool: SqlitePool,
    get: String,
    update: String,
    touch: String,
    insert: String,
    delete: String,
}

fn date(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.3f +00:00").to_string()
}

impl SqliteKv {
    pub async fn new(env: &Env, file: &str) -> Result<Self> {
        let pool = env.sqlite_pool(file).await?;
        let t = "Sessions";
        sqlx::raw_sql(&format!(
            r#"CREATE TABLE IF NOT EXISTS "{t}" (sid VARCHAR(36) PRIMARY KEY, expires DATETIME, data TEXT, "createdAt" DATETIME NOT NULL, "updatedAt" DATETIME NOT NULL);
CREATE INDEX IF NOT EXISTS "{t}_expires" ON "{t}" (expires);"#
        ))
        .execute(&pool)
        .await?;
        Ok(SqliteKv {
            pool,
            get: format!(r#"SELECT data FROM "{t}" WHERE sid = ? AND expires > ?"#),
            update: format!(
                r#"UPDATE "{t}" SET data = ?, expires = ?, "updatedAt" = ? WHERE sid = ? AND expires > ?"#
            ),
            touch: format!(
                r#"UPDATE "{t}" SET expires = ?, "updatedAt" = ? WHERE sid = ? AND expires > ?"#
            ),
            insert: format!(
                r#"INSERT INTO "{t}" (sid, expires, data, "createdAt", "updatedAt") VALUES (?, ?, ?, ?, ?) ON CONFLICT(sid) DO NOTHING"#
            ),
            delete: format!(r#"DELETE FROM "{t}" WHERE sid = ?"#),
        })
    }
}

#[async_trait]
impl RawKv for SqliteKv {
    async fn get(&self, id: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(&self.get)
            .bind(id)
            .bind(date(Utc::now()))
            .fetch_optional(&self.pool)
            .await?)
    }
    async fn update(&self, id: &str, json: &str, expires: DateTime<Utc>) -> Result<bool> {
        let now = date(Utc::now());
        let done = sqlx::query(&self.update)
            .bind(json)
            .bind(date(expires))
            .bind(&now)
            .bind(id)
            .bind(&now)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
    async fn touch(&self, id: &str, expires: DateTime<Utc>) -> Result<bool> {
        let now = date(Utc::now());
        let done = sqlx::query(&self.touch)
            .bind(date(expires))
            .bind(&now)
            .bind(id)
            .bind(&now)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
    async fn insert(&self, id: &str, json: &str, expires: DateTime<Utc>) -> Result<bool> {
        let now = date(Utc::now());
        let done = sqlx::query(&self.insert)
            .bind(id)
            .bind(date(expires))
            .bind(json)
            .bind(&now)
            .bind(&now)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
    async fn delete(&self, id: &str) -> Result<()> {
        sqlx::query(&self.delete)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

// ---- MongoDB: connect-mongo's documents {_id, expires, session} ----

pub struct MongoKv {
    coll: mongodb::Collection<mongodb::bson::Document>,
}

impl MongoKv {
    pub async fn new(env: &Env, collection: &str) -> Result<Self> {
        let coll = env.mongo_db().await?.collection(collection);
        coll.create_index(
            mongodb::IndexModel::builder()
                .keys(doc! { "expires": 1 })
                .options(
                    mongodb::options::IndexOptions::builder()
                        .expire_after(std::time::Duration::ZERO)
                        .build(),
                )
                .build(),
        )
        .await?;
        Ok(MongoKv { coll })
    }
}

fn bson_date(t: DateTime<Utc>) -> mongodb::bson::DateTime {
    mongodb::bson::DateTime::from_millis(t.timestamp_millis())
}

#[async_trait]
impl RawKv for MongoKv {
    async fn get(&self, id: &str) -> Result<Option<String>> {
        let found = self
            .coll
            .find_one(doc! { "_id": id, "expires": { "$gt": bson_date(Utc::now()) } })
            .projection(doc! { "session": 1 })
            .await?;
        Ok(match found {
            Some(d) => Some(d.get_str("session")?.to_owned()),
            None => None,
        })
    }
    async fn update(&self, id: &str, json: &str, expires: DateTime<Utc>) -> Result<bool> {
        let r = self
            .coll
            .update_one(
                doc! { "_id": id, "expires": { "$gt": bson_date(Utc::now()) } },
                doc! { "$set": { "expires": bson_date(expires), "session": json } },
            )
            .await?;
        Ok(r.matched_count > 0)
    }
    async fn touch(&self, id: &str, expires: DateTime<Utc>) -> Result<bool> {
        let r = self
            .coll
            .update_one(
                doc! { "_id": id, "expires": { "$gt": bson_date(Utc::now()) } },
                doc! { "$set": { "expires": bson_date(expires) } },
            )
            .await?;
        Ok(r.matched_count > 0)
    }
    async fn insert(&self, id: &str, json: &str, expires: DateTime<Utc>) -> Result<bool> {
        match self
            .coll
            .insert_one(doc! { "_id": id, "expires": bson_date(expires), "session": json })
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.to_string().contains("E11000") => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
    async fn delete(&self, id: &str) -> Result<()> {
        self.coll.delete_one(doc! { "_id": id }).await?;
        Ok(())
    }
}

/// A shared raw key-value handle for the HTTP store floor.
pub type SharedKv = Arc<dyn RawKv>;

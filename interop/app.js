'use strict';
// A small Express app on express-session whose store is chosen by the
// environment. `cargo xtask interop` runs it beside the Rust app
// (interop/rust-app) against the same store to check that both read and
// write the same sessions. The routes and their JSON answers are the same
// in both apps; see interop/README.md.
//
// Environment:
//   STORE        redis | postgres | mongo | mysql | sqlite | memory (required; memory: benchmarks)
//   REDIS_URL    for redis     (redis://127.0.0.1:6379)
//   DATABASE_URL for postgres  (postgres://postgres@127.0.0.1:5432/test)
//   MONGODB_URL  for mongo     (mongodb://127.0.0.1:27017)
//   MONGODB_DB   database name for mongo (default: interop)
//   MONGO_CRYPTO_SECRET  for mongo: encrypt sessions with connect-mongo's
//                createWebCryptoAdapter({ secret }) (default: no encryption)
//   MONGO_STRINGIFY  for mongo: `false` stores sessions as documents
//                (connect-mongo's stringify: false)
//   MYSQL_URL    for mysql     (mysql://root@127.0.0.1:3306/test)
//   MYSQL_TABLE  table name for mysql (default: sessions)
//   SQLITE_PATH  for sqlite    (a file path)
//   SQLITE_CLEANUP_MS  connect-session-sequelize's checkExpirationInterval (default 15 min)
//   SECRETS      comma-separated; the first signs, all verify (required)
//   PORT         port on 127.0.0.1 (0: any; the chosen port is printed)
//   MAX_AGE_MS   cookie maxAge in ms (default 3600000; "none" for a browser-session cookie)
//   COOKIE_NAME  default connect.sid

const express = require('express');
const session = require('express-session');

function env(name, fallback) {
  const v = process.env[name];
  if (v === undefined || v === '') {
    if (fallback === undefined) {
      console.error(`interop app: ${name} is required`);
      process.exit(2);
    }
    return fallback;
  }
  return v;
}

async function makeStore(kind) {
  switch (kind) {
    case 'redis': {
      // connect-redis 11: an ES module only (named export `RedisStore`), a
      // node-redis v5+ client. It asks for Node 22; it runs on 20.
      const { RedisStore } = await import('connect-redis');
      const { createClient } = require('redis');
      const client = createClient({ url: env('REDIS_URL', 'redis://127.0.0.1:6379') });
      client.on('error', (err) => console.error('redis client error:', err.message));
      await client.connect();
      return { store: new RedisStore({ client }), close: () => client.quit() };
    }
    case 'postgres': {
      // connect-pg-simple 10: a function of express-session, `pg` Pool.
      // The pool sets no TimeZone: the connection uses the server's (or the
      // database's) default, as node-postgres apps do.
      const PgStore = require('connect-pg-simple')(session);
      const { Pool } = require('pg');
      const pool = new Pool({ connectionString: env('DATABASE_URL', 'postgres://postgres@127.0.0.1:5432/test') });
      const store = new PgStore({ pool, createTableIfMissing: true, pruneSessionInterval: false });
      return { store, close: () => pool.end() };
    }
    case 'mongo': {
      // connect-mongo 6: named export `MongoStore` (`.create`), mongodb 7.
      const { MongoStore, createWebCryptoAdapter } = require('connect-mongo');
      const secret = process.env.MONGO_CRYPTO_SECRET;
      const store = MongoStore.create({
        mongoUrl: env('MONGODB_URL', 'mongodb://127.0.0.1:27017'),
        dbName: env('MONGODB_DB', 'interop'),
        // Defaults otherwise: collection `sessions`, `session` stored as a
        // JSON string (stringify: true) unless MONGO_STRINGIFY=false, TTL
        // index on `expires`.
        ...(secret ? { cryptoAdapter: createWebCryptoAdapter({ secret }) } : {}),
        ...(process.env.MONGO_STRINGIFY === 'false' ? { stringify: false } : {}),
      });
      return { store, close: () => store.close() };
    }
    case 'mysql': {
      // express-mysql-session 3 (mysql2 pool), its own defaults otherwise:
      // createDatabaseTable, 1-day expiration, clearExpired every 15 min.
      const MySQLStore = require('express-mysql-session')(session);
      const u = new URL(env('MYSQL_URL', 'mysql://root@127.0.0.1:3306/test'));
      const store = new MySQLStore({
        host: u.hostname,
        port: Number(u.port || 3306),
        user: decodeURIComponent(u.username),
        password: decodeURIComponent(u.password),
        database: u.pathname.replace(/^\//, ''),
        schema: { tableName: env('MYSQL_TABLE', 'sessions') },
      });
      await store.onReady();
      return { store, close: () => store.close() };
    }
    case 'sqlite': {
      // connect-session-sequelize 8 on Sequelize 6 + sqlite3 (it asks for
      // Node 22; it runs on 20).
      const { Sequelize } = require('sequelize');
      const SequelizeStore = require('connect-session-sequelize')(session.Store);
      const db = new Sequelize({ dialect: 'sqlite', storage: env('SQLITE_PATH'), logging: false });
      // connect-session-sequelize's `get` does not check `expires`: expired
      // rows are only dropped by its cleanup timer (default every 15 min).
      const store = new SequelizeStore({
        db,
        checkExpirationInterval: Number(env('SQLITE_CLEANUP_MS', String(15 * 60 * 1000))),
      });
      await store.sync();
      return { store, close: () => { store.stopExpiringSessions(); return db.close(); } };
    }
    case 'memory':
      // express-session's own MemoryStore (cargo xtask bench only: not shared).
      return { store: new session.MemoryStore(), close: () => {} };
    default:
      console.error(`interop app: unknown STORE ${JSON.stringify(kind)}`);
      process.exit(2);
  }
}

// The JSON dump both apps answer with: `found` is true when the request
// carried a cookie for a stored session (a new session has no data keys).
function dump(req) {
  const data = JSON.parse(JSON.stringify(req.session));
  const found = Object.keys(data).some((k) => k !== 'cookie');
  return { found, id: req.sessionID, session: data };
}

function parseValue(raw) {
  if (raw === undefined) return null;
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

async function main() {
  const kind = env('STORE');
  const secrets = env('SECRETS').split(',').filter((s) => s.length > 0);
  const maxAgeEnv = env('MAX_AGE_MS', '3600000');
  const maxAge = maxAgeEnv === 'none' ? null : Number(maxAgeEnv);
  const { store, close } = await makeStore(kind);

  const app = express();
  app.use(
    session({
      name: env('COOKIE_NAME', 'connect.sid'),
      secret: secrets,
      store,
      resave: false,
      saveUninitialized: false,
      rolling: false,
      cookie: { httpOnly: true, sameSite: 'lax', secure: false, path: '/', maxAge },
    }),
  );

  const fail = (res, err) => res.status(500).json({ error: String((err && err.message) || err) });

  // An id from express-session's default generator (uid-safe, 24 bytes):
  // a request without a cookie gets a fresh one, never saved here.
  app.get('/id', (req, res) => res.json({ id: req.sessionID }));

  // express-session does not validate ids; this checks that an id has the
  // shape of its own (uid-safe(24): 32 base64url characters), which is what
  // Node code that inspects ids (logs, admin tools, regexes) assumes, and
  // that it needs no escaping in a cookie or a store key.
  app.get('/check-id', (req, res) => {
    const id = String(req.query.id || '');
    const valid = /^[A-Za-z0-9_-]{32}$/.test(id) && encodeURIComponent(id) === id;
    res.json(valid ? { valid } : { valid, error: 'not 32 base64url characters' });
  });

  // Log in: a new id (regenerate), then user data of several JSON types.
  // `maxAge` (ms) sets this session's cookie lifetime.
  app.post('/login', (req, res) => {
    req.session.regenerate((err) => {
      if (err) return fail(res, err);
      req.session.user = String(req.query.user || 'alice');
      req.session.roles = ['admin', 'ops'];
      req.session.profile = { name: 'Zoë Ünïcode ✓', age: 42, ratio: 0.5, active: true, nothing: null };
      req.session.visits = 1;
      if (req.query.maxAge !== undefined) req.session.cookie.maxAge = Number(req.query.maxAge);
      req.session.save((err2) => (err2 ? fail(res, err2) : res.json(dump(req))));
    });
  });

  // Read: the session as JSON, cookie included.
  app.get('/read', (req, res) => res.json(dump(req)));

  // Modify: set one key (value parsed as JSON when it parses).
  app.post('/set', (req, res) => {
    const key = String(req.query.key || '');
    if (!key || key === 'cookie') return res.status(400).json({ error: 'bad key' });
    req.session[key] = parseValue(req.query.value);
    req.session.save((err) => (err ? fail(res, err) : res.json(dump(req))));
  });

  // Regenerate: a new id with the same data (what a login does).
  app.post('/regenerate', (req, res) => {
    const data = JSON.parse(JSON.stringify(req.session));
    delete data.cookie;
    req.session.regenerate((err) => {
      if (err) return fail(res, err);
      Object.assign(req.session, data);
      req.session.save((err2) => (err2 ? fail(res, err2) : res.json(dump(req))));
    });
  });

  // Destroy: removes the session from the store.
  app.post('/destroy', (req, res) => {
    req.session.destroy((err) => (err ? fail(res, err) : res.json({ destroyed: true })));
  });

  // Counter (cargo xtask bench): one load and one save per request.
  app.get('/counter', (req, res) => {
    req.session.n = (req.session.n || 0) + 1;
    res.send(String(req.session.n));
  });

  // Touch only: reads nothing, changes nothing; express-session touches the
  // store entry (resave: false, a store with `touch`).
  app.get('/touch', (req, res) => res.json({ ok: true }));

  const server = app.listen(Number(env('PORT', '0')), '127.0.0.1', () => {
    console.log(`listening on 127.0.0.1:${server.address().port}`);
  });
  const stop = () => {
    server.close();
    Promise.resolve(close()).finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err) => {
  console.error('interop app failed to start:', err);
  process.exit(1);
});

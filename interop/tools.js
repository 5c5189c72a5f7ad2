'use strict';
// Setup helpers for `cargo xtask interop`, using the same client libraries
// as the app:
//   node tools.js pg-database URL NAME TIMEZONE
//       (re)creates database NAME with a default TimeZone, prints its URL
//   node tools.js pg-drop URL NAME
//       drops database NAME (connected through URL's database)
//   node tools.js mongo-drop URL DB
//       drops database DB
//   node tools.js mysql-drop URL TABLE
//       drops table TABLE of the database in URL
//   node tools.js pg-node-keeps URL SID SECONDS
//       prints whether connect-pg-simple's `get` at SECONDS (its
//       Math.ceil(Date.now() / 1000)) still finds session SID
//   node tools.js mongo-sealed URL DB
//       prints how many session documents DB holds, failing if any of
//       them keeps its session in clear (not an encrypted string)

async function pgDatabase(url, name, tz) {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`bad database name ${name}`);
  const { Client } = require('pg');
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await client.query(`CREATE DATABASE ${name}`);
    // A per-database default: every connection that sets no TimeZone of its
    // own (node-postgres, psql) gets this one, as with a server whose
    // timezone setting is not UTC.
    await client.query(`ALTER DATABASE ${name} SET timezone TO '${tz.replace(/'/g, "''")}'`);
  } finally {
    await client.end();
  }
  const u = new URL(url);
  u.pathname = `/${name}`;
  console.log(u.toString());
}

async function pgNodeKeeps(url, sid, seconds) {
  const { Client } = require('pg');
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    // connect-pg-simple's query, on a connection in the database's zone.
    const r = await client.query('SELECT sess FROM "session" WHERE sid = $1 AND expire >= to_timestamp($2)', [sid, Number(seconds)]);
    console.log(r.rows.length === 1 ? 'true' : 'false');
  } finally {
    await client.end();
  }
}

async function pgDrop(url, name) {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`bad database name ${name}`);
  const { Client } = require('pg');
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  } finally {
    await client.end();
  }
}

async function mongoDrop(url, db) {
  const { MongoClient } = require('mongodb');
  const client = new MongoClient(url, { serverSelectionTimeoutMS: 10000 });
  await client.connect();
  try {
    await client.db(db).dropDatabase();
  } finally {
    await client.close();
  }
}

async function mysqlDrop(url, table) {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(table)) throw new Error(`bad table name ${table}`);
  const mysql = require('mysql2/promise');
  const u = new URL(url);
  const conn = await mysql.createConnection({
    host: u.hostname,
    port: Number(u.port || 3306),
    user: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
    database: u.pathname.replace(/^\//, ''),
  });
  try {
    await conn.query(`DROP TABLE IF EXISTS \`${table}\``);
  } finally {
    await conn.end();
  }
}

async function mongoSealed(url, db) {
  const { MongoClient } = require('mongodb');
  const client = new MongoClient(url, { serverSelectionTimeoutMS: 10000 });
  await client.connect();
  try {
    const docs = await client.db(db).collection('sessions').find({}).toArray();
    const clear = docs.filter((d) => typeof d.session !== 'string' || d.session.trimStart().startsWith('{'));
    if (clear.length > 0) throw new Error(`${clear.length} of ${docs.length} sessions stored in clear`);
    console.log(docs.length);
  } finally {
    await client.close();
  }
}

const [cmd, ...args] = process.argv.slice(2);
const commands = {
  'pg-database': [pgDatabase, 3],
  'pg-drop': [pgDrop, 2],
  'pg-node-keeps': [pgNodeKeeps, 3],
  'mongo-drop': [mongoDrop, 2],
  'mongo-sealed': [mongoSealed, 2],
  'mysql-drop': [mysqlDrop, 2],
};
const entry = commands[cmd];
if (!entry || args.length !== entry[1]) {
  console.error('usage: node tools.js pg-database URL NAME TIMEZONE | pg-drop URL NAME | pg-node-keeps URL SID SECONDS | mongo-drop URL DB | mongo-sealed URL DB | mysql-drop URL TABLE');
  process.exit(2);
}
entry[0](...args).catch((err) => {
  console.error(`tools.js ${cmd}: ${err.message}`);
  process.exit(1);
});

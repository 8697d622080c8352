//! Seeded convergence harness: a random concurrent workload on a 3-node mesh with colliding
//! keys and unique values, partitions (disabled subscriptions, a stopped node) and a clock
//! skewed by minutes; then every node must hold the same rows and registers.
//!
//! `PGCONVERGE_HARNESS_SEEDS` (comma-separated) and `PGCONVERGE_HARNESS_SECONDS` choose the
//! seeds and the workload duration per seed; a failure names its seed. A seed fixes each
//! client's sequence of operations and the partition schedule; the interleaving is real
//! concurrency and differs between runs.

#[path = "common/mesh.rs"]
mod mesh;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mesh::{stable_session, table, Mesh};
use pgconverge_model::TableConfig;
use pgconverge_tests::{TestCluster, TestNode};
use tokio::sync::RwLock;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, IsolationLevel, NoTls};

const SEEDS_ENV: &str = "PGCONVERGE_HARNESS_SEEDS";
const SECONDS_ENV: &str = "PGCONVERGE_HARNESS_SECONDS";
const DEFAULT_SEEDS: [u64; 3] = [11, 23, 37];
const DEFAULT_SECONDS: u64 = 12;
const CLIENTS_PER_NODE: usize = 3;
/// n3 runs five minutes behind, n1 two seconds ahead.
const CLOCK_OFFSETS_MS: [i64; 3] = [2_000, 0, -300_000];
/// Errors a client may meet and retry: unique violation against a row already on its node,
/// serialization failure (a replicated change raced the write), deadlock.
const RETRYABLE: [&str; 3] = ["23505", "40001", "40P01"];

/// xorshift64*: small and seedable.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        rng.next();
        rng
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize].clone()
    }
}

type Value = Option<String>;
/// `(version, origin)`; origins compare bytewise, as in the generated SQL.
type Stamp = (i64, String);

/// Which write path the mesh runs: the change log (stamps, change records, registers) or the
/// forwarding path (`"write_path": "forwarding"`; docs/conflicts.md, "A write path without a
/// second row"), which resolves no UNIQUE constraint but the primary key and refuses a change
/// of primary key.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum WritePath {
    ChangeLog,
    Forwarding,
}

/// One committed write of a key: its stamp, the incarnation it wrote (the forwarding path's
/// `_pgc_birth`; 0 on the change-log path), and whether it deleted the row.
#[derive(Clone, Debug)]
struct Write {
    stamp: Stamp,
    birth: i64,
    delete: bool,
}

/// What the writes of one key must leave on every node. Change log: the greatest stamp (row or
/// tombstone). Forwarding: the newest incarnation, gone if any delete of it committed, else
/// at the greatest stamp written to it.
fn expected_register(path: WritePath, writes: &[Write]) -> Option<(i64, Stamp, bool)> {
    match path {
        WritePath::ChangeLog => writes
            .iter()
            .map(|w| w.stamp.clone())
            .max()
            .map(|s| (0, s, false)),
        WritePath::Forwarding => {
            let birth = writes.iter().map(|w| w.birth).max()?;
            let of_it: Vec<&Write> = writes.iter().filter(|w| w.birth == birth).collect();
            let deleted = of_it.iter().any(|w| w.delete);
            let stamp = of_it.iter().map(|w| w.stamp.clone()).max()?;
            Some((birth, stamp, deleted))
        }
    }
}

/// The RETURNING list of every write: the stamp, and the incarnation where there is one.
fn returning(path: WritePath) -> &'static str {
    match path {
        WritePath::ChangeLog => "_pgc_version, _pgc_origin, 0::bigint",
        WritePath::Forwarding => "_pgc_version, _pgc_origin, _pgc_birth",
    }
}

/// A column as the harness writes it: `$n::text::<cast>`.
struct Column {
    name: &'static str,
    cast: &'static str,
}

/// One replicated table of the workload.
struct Spec {
    config: TableConfig,
    /// Quoted `schema.table`, also the table's key in `_pgconverge` tables.
    qualified: &'static str,
    keys: Vec<Column>,
    values: Vec<Column>,
    /// Canonical key jsonb from the key parameters `$2…` (`$1` is the table key).
    canonical_key: &'static str,
    /// A key: its identity (the same for every spelling) and its parameter values.
    key: fn(&mut Rng, usize) -> (String, Vec<Value>),
    /// A value for value column `i`.
    value: fn(&mut Rng, usize) -> Value,
}

fn some(s: impl Into<String>) -> Value {
    Some(s.into())
}

fn texts(rng: &mut Rng) -> Value {
    rng.pick(&[
        some("plain"),
        some("it's"),
        some("say \"hi\""),
        some("back\\slash"),
        some("line\nbreak"),
        some("ünïcödé ✓"),
        some(""),
        some("$pgc$ in text"),
        None,
    ])
}

fn specs() -> Vec<Spec> {
    vec![
        Spec {
            config: table(serde_json::json!({
                "name": "orders",
                "columns": [
                    {"name": "region", "type": "text"},
                    {"name": "id", "type": "int"},
                    {"name": "ref", "type": "text"},
                    {"name": "customer", "type": "text"},
                    {"name": "slot", "type": "int"},
                    {"name": "total", "type": "numeric(12,2)"},
                    {"name": "placed", "type": "timestamptz"},
                    {"name": "tags", "type": "text[]"},
                    {"name": "doc", "type": "jsonb"},
                    {"name": "note", "type": "text"},
                    {"name": "blob", "type": "bytea"}
                ],
                "primary_key": ["region", "id"],
                "unique": [["ref"], ["customer", "slot"]]
            })),
            qualified: "public.orders",
            keys: vec![
                Column { name: "region", cast: "text" },
                Column { name: "id", cast: "int" },
            ],
            values: vec![
                Column { name: "ref", cast: "text" },
                Column { name: "customer", cast: "text" },
                Column { name: "slot", cast: "int" },
                Column { name: "total", cast: "numeric(12,2)" },
                Column { name: "placed", cast: "timestamptz" },
                Column { name: "tags", cast: "text[]" },
                Column { name: "doc", cast: "jsonb" },
                Column { name: "note", cast: "text" },
                Column { name: "blob", cast: "bytea" },
            ],
            canonical_key: "pg_catalog.jsonb_build_object('region', pg_catalog.to_jsonb($2::text), 'id', pg_catalog.to_jsonb($3::text::int))",
            key: |rng, _| {
                let region = rng.pick(&["eu", "us", "o'hare"]);
                let id = rng.below(30);
                (format!("{region}|{id}"), vec![some(region), some(id.to_string())])
            },
            value: |rng, i| match i {
                0 => rng.chance(85).then(|| format!("ref-{}", rng.below(40))),
                1 => rng.pick(&[some("acme"), some("Bob's"), some("c\\d"), some("ünï"), some("e\"f"), None]),
                2 => rng.chance(70).then(|| rng.below(4).to_string()),
                3 => some(format!("{}.{:02}", rng.below(100_000), rng.below(100))),
                4 => some(format!(
                    "2024-0{}-1{} 1{}:2{}:0{}.{:06}{}",
                    1 + rng.below(9),
                    rng.below(10),
                    rng.below(10),
                    rng.below(10),
                    rng.below(10),
                    rng.below(1_000_000),
                    rng.pick(&["+00", "+05:30", "-04", "+14"])
                )),
                5 => rng.pick(&[
                    some("{}"),
                    some("{a,b}"),
                    some(r#"{"x y","it's","q\"t",back\\slash}"#),
                    some("{NULL,z}"),
                    None,
                ]),
                6 => {
                    let n = rng.below(50);
                    rng.pick(&[
                    some(format!(r#"{{"n": {}, "s": "it's \"q\"", "a": [1, 2.50, null]}}"#, n)),
                    some(r#"{"nested": {"deep": [true, false]}}"#),
                    some("[]"),
                    some("\"scalar\""),
                    None,
                ])
                }
                7 => texts(rng),
                _ => rng.chance(80).then(|| {
                    let bytes: Vec<String> = (0..rng.below(6)).map(|_| format!("{:02x}", rng.below(256))).collect();
                    format!("\\x{}", bytes.join(""))
                }),
            },
        },
        Spec {
            config: table(serde_json::json!({
                "name": "items",
                "columns": [
                    {"name": "id", "type": "int"},
                    {"name": "sku", "type": "text"},
                    {"name": "qty", "type": "int"},
                    {"name": "price", "type": "double precision"},
                    {"name": "span", "type": "interval"},
                    {"name": "meta", "type": "jsonb"}
                ],
                "primary_key": ["id"],
                "unique": [["sku"]]
            })),
            qualified: "public.items",
            keys: vec![Column { name: "id", cast: "int" }],
            values: vec![
                Column { name: "sku", cast: "text" },
                Column { name: "qty", cast: "int" },
                Column { name: "price", cast: "double precision" },
                Column { name: "span", cast: "interval" },
                Column { name: "meta", cast: "jsonb" },
            ],
            canonical_key: "pg_catalog.jsonb_build_object('id', pg_catalog.to_jsonb($2::text::int))",
            key: |rng, _| {
                let id = rng.below(40);
                (id.to_string(), vec![some(id.to_string())])
            },
            value: |rng, i| match i {
                0 => rng.chance(75).then(|| format!("sku-{}", rng.below(50))),
                1 => some((rng.below(200) as i64 - 100).to_string()),
                2 => rng.pick(&[some("0.1"), some("1e-7"), some("-2.5"), some("3.141592653589793"), some("1e300"), None]),
                3 => rng.pick(&[some("1 day 02:00:00"), some("P1M2DT3H"), some("-3 hours"), some("00:00:00.000001"), None]),
                _ => {
                    let v = rng.below(9);
                    rng.pick(&[some(format!(r#"{{"v": {v}}}"#)), some("{}"), None])
                }
            },
        },
        Spec {
            config: table(serde_json::json!({
                "schema": "audit",
                "name": "Events",
                "columns": [
                    {"name": "ts", "type": "timestamptz"},
                    {"name": "seq", "type": "int"},
                    {"name": "code", "type": "bytea"},
                    {"name": "amount", "type": "numeric"},
                    {"name": "body", "type": "text"}
                ],
                "primary_key": ["ts", "seq"],
                "unique": [["code"], ["amount"]]
            })),
            qualified: "audit.\"Events\"",
            keys: vec![
                Column { name: "ts", cast: "timestamptz" },
                Column { name: "seq", cast: "int" },
            ],
            values: vec![
                Column { name: "code", cast: "bytea" },
                Column { name: "amount", cast: "numeric" },
                Column { name: "body", cast: "text" },
            ],
            canonical_key: "pg_catalog.jsonb_build_object('ts', pg_catalog.to_jsonb($2::text::timestamptz AT TIME ZONE 'UTC'), 'seq', pg_catalog.to_jsonb($3::text::int))",
            // The same instant spelled in the writing node's own offset.
            key: |rng, node| {
                let hour = rng.below(8);
                let seq = rng.below(5);
                let (h, m, zone) = [(0, 0, "+00"), (5, 30, "+05:30"), (-4, 0, "-04")][node % 3];
                let ts = format!("2024-03-10 {:02}:{m:02}:00.123456{zone}", 8 + hour as i64 + h);
                (format!("{hour}|{seq}"), vec![some(ts), some(seq.to_string())])
            },
            value: |rng, i| match i {
                0 => rng.chance(70).then(|| format!("\\x{:02x}{:02x}", rng.below(4), rng.below(5))),
                // Equal numerics spelled differently collide.
                1 => rng.pick(&[some("1.5"), some("1.50"), some("2"), some("2.00"), some("3.25"), some("7"), some("7.0"), None]),
                _ => texts(rng),
            },
        },
    ]
}

/// Node-level settings: different time zones, output formats and clocks per node.
fn node_settings(node: usize) -> String {
    let zone = ["UTC", "Asia/Kolkata", "America/New_York"][node % 3];
    let mut s = format!(
        "ALTER DATABASE app SET TimeZone = '{zone}'; \
         ALTER DATABASE app SET pgconverge.clock_offset_ms = '{}';",
        CLOCK_OFFSETS_MS[node % 3]
    );
    if node == 1 {
        s.push_str(" ALTER DATABASE app SET bytea_output = 'escape';");
    }
    if node == 2 {
        s.push_str(" ALTER DATABASE app SET IntervalStyle = 'iso_8601';");
    }
    s
}

fn params(values: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    values.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

fn key_clause(spec: &Spec, first: usize) -> String {
    spec.keys
        .iter()
        .enumerate()
        .map(|(i, c)| format!("\"{}\" = ${}::text::{}", c.name, first + i, c.cast))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// What the clients did, shared with the final checks.
#[derive(Default)]
struct Record {
    /// Every committed write's stamp, per (table, key identity).
    writes: HashMap<(usize, String), Vec<Write>>,
    /// One spelling of each key's parameters.
    keys: HashMap<(usize, String), Vec<Value>>,
    committed: BTreeMap<&'static str, u64>,
    /// Changes of primary key the forwarding path refused, as it must.
    refused_moves: u64,
    retried: BTreeMap<String, u64>,
    /// Broken promises: an UPDATE that did not report the locked row, or a stamp that did
    /// not rise above the version it overwrote.
    violations: Vec<String>,
}

struct Shared {
    specs: Vec<Spec>,
    nodes: Vec<TestNode>,
    /// Clients hold a read guard per transaction; the controller takes the write guard to
    /// stop a node with no transaction in flight.
    gates: Vec<RwLock<()>>,
    /// Bumped each time a node is restarted: its clients then reconnect.
    restarts: Vec<AtomicU64>,
    /// The controller stops one node once, after this instant.
    stop_after: Instant,
    deadline: Instant,
    record: Mutex<Record>,
    path: WritePath,
}

impl Shared {
    fn record(&self) -> std::sync::MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(|p| p.into_inner())
    }
}

async fn connect(node: &TestNode) -> Client {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match tokio_postgres::connect(&node.connection_string(), NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                return client;
            }
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("connecting to {}: {e:?}", node.name),
        }
    }
}

enum Outcome {
    Wrote(&'static str, Vec<(usize, String, Vec<Value>, Write)>),
    Nothing,
}

/// One random transaction. Errors are returned to the caller, which decides if they are
/// retryable.
async fn one_transaction(
    shared: &Shared,
    client: &mut Client,
    rng: &mut Rng,
    node: usize,
    isolation: IsolationLevel,
) -> Result<Outcome, tokio_postgres::Error> {
    let t = rng.below(shared.specs.len() as u64) as usize;
    let spec = &shared.specs[t];
    let roll = rng.below(100);
    if roll < 35 {
        let (id, mut values) = (spec.key)(rng, node);
        let key_values = values.clone();
        for i in 0..spec.values.len() {
            values.push((spec.value)(rng, i));
        }
        let columns: Vec<&Column> = spec.keys.iter().chain(spec.values.iter()).collect();
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({}) RETURNING {}",
            spec.qualified,
            columns
                .iter()
                .map(|c| format!("\"{}\"", c.name))
                .collect::<Vec<_>>()
                .join(", "),
            columns
                .iter()
                .enumerate()
                .map(|(i, c)| format!("${}::text::{}", i + 1, c.cast))
                .collect::<Vec<_>>()
                .join(", "),
            returning(shared.path)
        );
        let tx = client
            .build_transaction()
            .isolation_level(isolation)
            .start()
            .await?;
        let row = tx.query_one(&sql, &params(&values)).await?;
        tx.commit().await?;
        let write = Write {
            stamp: (row.get(0), row.get(1)),
            birth: row.get(2),
            delete: false,
        };
        return Ok(Outcome::Wrote("insert", vec![(t, id, key_values, write)]));
    }
    if (92..96).contains(&roll) {
        // A new primary key: the old key is deleted and the new one created at one stamp.
        let (id, key_values) = (spec.key)(rng, node);
        let (new_id, new_key_values) = (spec.key)(rng, node);
        if new_id == id {
            return Ok(Outcome::Nothing);
        }
        let tx = client
            .build_transaction()
            .isolation_level(isolation)
            .start()
            .await?;
        let lock = format!(
            "SELECT _pgc_version, _pgc_origin FROM {} WHERE {} FOR UPDATE",
            spec.qualified,
            key_clause(spec, 1)
        );
        let Some(old) = tx.query_opt(&lock, &params(&key_values)).await? else {
            tx.commit().await?;
            return Ok(Outcome::Nothing);
        };
        let old: Stamp = (old.get(0), old.get(1));
        let first = key_values.len() + 1;
        let sets: Vec<String> = spec
            .keys
            .iter()
            .enumerate()
            .map(|(i, c)| format!("\"{}\" = ${}::text::{}", c.name, first + i, c.cast))
            .collect();
        let sql = format!(
            "UPDATE {} SET {} WHERE {} RETURNING {}",
            spec.qualified,
            sets.join(", "),
            key_clause(spec, 1),
            returning(shared.path)
        );
        let mut values = key_values.clone();
        values.extend(new_key_values.iter().cloned());
        if shared.path == WritePath::Forwarding {
            // A new key is a new incarnation, which only an INSERT may create.
            match tx.query(&sql, &params(&values)).await {
                Err(e) if e.code().map(|c| c.code()) == Some("0A000") => {
                    shared.record().refused_moves += 1;
                }
                Err(e) => return Err(e),
                Ok(_) => shared.record().violations.push(format!(
                    "n{}: the forwarding path let {} {id} change its primary key",
                    node + 1,
                    spec.qualified
                )),
            }
            return Ok(Outcome::Nothing);
        }
        let rows = tx.query(&sql, &params(&values)).await?;
        if rows.len() != 1 {
            shared.record().violations.push(format!(
                "n{}: key change of locked row {} {id} reported {} rows",
                node + 1,
                spec.qualified,
                rows.len()
            ));
            return Ok(Outcome::Nothing);
        }
        let new: Stamp = (rows[0].get(0), rows[0].get(1));
        if new <= old {
            shared.record().violations.push(format!(
                "n{}: key change of {} {id} stamped {new:?}, not above {old:?}",
                node + 1,
                spec.qualified
            ));
        }
        let birth = rows[0].get(2);
        tx.commit().await?;
        let write = |stamp: Stamp| Write {
            stamp,
            birth,
            delete: false,
        };
        return Ok(Outcome::Wrote(
            "move",
            vec![
                (t, id, key_values, write(new.clone())),
                (t, new_id, new_key_values, write(new)),
            ],
        ));
    }
    if !(75..92).contains(&roll) {
        // One UPDATE, or two in one transaction (which may deadlock).
        let count = if roll >= 96 { 2 } else { 1 };
        let tx = client
            .build_transaction()
            .isolation_level(isolation)
            .start()
            .await?;
        let mut wrote = Vec::new();
        for _ in 0..count {
            let (id, key_values) = (spec.key)(rng, node);
            let lock = format!(
                "SELECT _pgc_version, _pgc_origin FROM {} WHERE {} FOR UPDATE",
                spec.qualified,
                key_clause(spec, 1)
            );
            let Some(old) = tx.query_opt(&lock, &params(&key_values)).await? else {
                continue;
            };
            let old: Stamp = (old.get(0), old.get(1));
            let mut chosen: Vec<usize> =
                (0..spec.values.len()).filter(|_| rng.chance(40)).collect();
            if chosen.is_empty() {
                chosen.push(rng.below(spec.values.len() as u64) as usize);
            }
            let mut values = key_values.clone();
            let sets: Vec<String> = chosen
                .iter()
                .map(|&i| {
                    values.push((spec.value)(rng, i));
                    format!(
                        "\"{}\" = ${}::text::{}",
                        spec.values[i].name,
                        values.len(),
                        spec.values[i].cast
                    )
                })
                .collect();
            let sql = format!(
                "UPDATE {} SET {} WHERE {} RETURNING {}",
                spec.qualified,
                sets.join(", "),
                key_clause(spec, 1),
                returning(shared.path)
            );
            let rows = tx.query(&sql, &params(&values)).await?;
            if rows.len() != 1 {
                shared.record().violations.push(format!(
                    "n{}: UPDATE of locked row {} {id} reported {} rows",
                    node + 1,
                    spec.qualified,
                    rows.len()
                ));
                continue;
            }
            let new: Stamp = (rows[0].get(0), rows[0].get(1));
            if new <= old {
                shared.record().violations.push(format!(
                    "n{}: UPDATE of {} {id} stamped {new:?}, not above {old:?}",
                    node + 1,
                    spec.qualified
                ));
            }
            let write = Write {
                stamp: new,
                birth: rows[0].get(2),
                delete: false,
            };
            wrote.push((t, id, key_values, write));
        }
        tx.commit().await?;
        return Ok(if wrote.is_empty() {
            Outcome::Nothing
        } else {
            Outcome::Wrote("update", wrote)
        });
    }
    let (id, key_values) = (spec.key)(rng, node);
    let tx = client
        .build_transaction()
        .isolation_level(isolation)
        .start()
        .await?;
    let sql = format!(
        "DELETE FROM {} WHERE {} RETURNING {}",
        spec.qualified,
        key_clause(spec, 1),
        returning(shared.path)
    );
    let Some(old) = tx.query_opt(&sql, &params(&key_values)).await? else {
        tx.commit().await?;
        return Ok(Outcome::Nothing);
    };
    let old_birth: i64 = old.get(2);
    let old: Stamp = (old.get(0), old.get(1));
    if shared.path == WritePath::Forwarding {
        // The deleted incarnation is what every node must end without; the final checks
        // read the tombstones.
        tx.commit().await?;
        let write = Write {
            stamp: old,
            birth: old_birth,
            delete: true,
        };
        return Ok(Outcome::Wrote("delete", vec![(t, id, key_values, write)]));
    }
    let mut tomb_params: Vec<Value> = vec![some(spec.qualified)];
    tomb_params.extend(key_values.iter().cloned());
    let tomb = tx
        .query_one(
            &format!(
                "SELECT version, origin FROM _pgconverge.tombstones WHERE tbl = $1::text AND pk = {}",
                spec.canonical_key
            ),
            &params(&tomb_params),
        )
        .await?;
    let tomb: Stamp = (tomb.get(0), tomb.get(1));
    if tomb <= old {
        shared.record().violations.push(format!(
            "n{}: DELETE of {} {id} left tombstone {tomb:?}, not above {old:?}",
            node + 1,
            spec.qualified
        ));
    }
    tx.commit().await?;
    let write = Write {
        stamp: tomb,
        birth: 0,
        delete: true,
    };
    Ok(Outcome::Wrote("delete", vec![(t, id, key_values, write)]))
}

/// One client of `node`. The last client of each node runs REPEATABLE READ transactions,
/// the others READ COMMITTED.
async fn client_loop(shared: Arc<Shared>, node: usize, seed: u64, isolation: IsolationLevel) {
    let mut rng = Rng::new(seed);
    let mut client = connect(&shared.nodes[node]).await;
    stable_session(&client).await;
    let mut generation = shared.restarts[node].load(Ordering::SeqCst);
    while Instant::now() < shared.deadline {
        let _gate = shared.gates[node].read().await;
        let now = shared.restarts[node].load(Ordering::SeqCst);
        if now != generation {
            generation = now;
            client = connect(&shared.nodes[node]).await;
            stable_session(&client).await;
        }
        match one_transaction(&shared, &mut client, &mut rng, node, isolation).await {
            Ok(Outcome::Wrote(kind, writes)) => {
                let mut record = shared.record();
                *record.committed.entry(kind).or_default() += 1;
                for (t, id, key_values, write) in writes {
                    record.keys.entry((t, id.clone())).or_insert(key_values);
                    record.writes.entry((t, id)).or_default().push(write);
                }
            }
            Ok(Outcome::Nothing) => {}
            Err(e) => {
                let code = e.code().map(|c| c.code().to_string()).unwrap_or_default();
                if !RETRYABLE.contains(&code.as_str()) {
                    panic!("n{}: unexpected error: {e:?}", node + 1);
                }
                *shared.record().retried.entry(code).or_default() += 1;
            }
        }
    }
}

/// Partitions while the clients run: subscriptions disabled for a while, a node stopped.
async fn partitions(mesh: &Mesh<'_>, shared: &Shared, rng: &mut Rng, log: &mut Vec<String>) {
    let pause = |rng: &mut Rng| Duration::from_millis(800 + rng.below(1700));
    let mut stopped_once = false;
    loop {
        tokio::time::sleep(pause(rng)).await;
        if Instant::now() + Duration::from_secs(4) > shared.deadline {
            break;
        }
        let node = rng.below(3) as usize;
        if !stopped_once && Instant::now() >= shared.stop_after {
            stopped_once = true;
            let span = pause(rng);
            log.push(format!("stop n{} for {span:?}", node + 1));
            let gate = shared.gates[node].write().await;
            for peer in (0..3).filter(|&p| p != node) {
                mesh.set_subscription(peer, node, false).await;
            }
            tokio::task::block_in_place(|| mesh.cluster.stop_node(node));
            tokio::time::sleep(span).await;
            tokio::task::block_in_place(|| mesh.cluster.start_node(node));
            shared.restarts[node].fetch_add(1, Ordering::SeqCst);
            for peer in (0..3).filter(|&p| p != node) {
                mesh.set_subscription(peer, node, true).await;
            }
            drop(gate);
        } else if rng.chance(50) {
            let span = pause(rng);
            log.push(format!("isolate n{} inbound for {span:?}", node + 1));
            mesh.set_subscriptions_of(node, false).await;
            tokio::time::sleep(span).await;
            mesh.set_subscriptions_of(node, true).await;
        } else {
            let publisher = (node + 1 + rng.below(2) as usize) % 3;
            let span = pause(rng);
            log.push(format!(
                "cut n{} -> n{} for {span:?}",
                publisher + 1,
                node + 1
            ));
            mesh.set_subscription(node, publisher, false).await;
            tokio::time::sleep(span).await;
            mesh.set_subscription(node, publisher, true).await;
        }
    }
}

/// md5 of the tombstone or claim register (without timestamps) on `node`.
async fn register_digest(mesh: &Mesh<'_>, node: usize, table: &str) -> String {
    let client = mesh.cluster.client(node).await;
    let sql = match table {
        "tombstones" => "SELECT md5(coalesce(string_agg(concat_ws('|', tbl, pk::text, version, origin), E'\\n' ORDER BY tbl, pk), '')) FROM _pgconverge.tombstones",
        _ => "SELECT md5(coalesce(string_agg(concat_ws('|', tbl, unique_columns, value::text, version, origin, owner_pk::text), E'\\n' ORDER BY tbl, unique_columns, value), '')) FROM _pgconverge.claims",
    };
    client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .get(0)
}

/// The key register on a node as [`expected_register`] states it: the live row's incarnation
/// and stamp; else, on the change-log path, the tombstone's stamp; on the forwarding path, the
/// deleted incarnation `want` names if the node's tombstones hold it.
async fn register(
    client: &Client,
    spec: &Spec,
    key_values: &[Value],
    path: WritePath,
    want: Option<&(i64, Stamp, bool)>,
) -> Option<(i64, Stamp, bool)> {
    let row_sql = format!(
        "SELECT {} FROM {} WHERE {}",
        returning(path),
        spec.qualified,
        key_clause(spec, 1)
    );
    if let Some(r) = client
        .query_opt(&row_sql, &params(key_values))
        .await
        .unwrap_or_else(|e| panic!("{row_sql}: {e:?}"))
    {
        return Some((r.get(2), (r.get(0), r.get(1)), false));
    }
    match path {
        WritePath::ChangeLog => {
            let mut tomb_params: Vec<Value> = vec![some(spec.qualified)];
            tomb_params.extend(key_values.iter().cloned());
            let sql = format!(
                "SELECT version, origin FROM _pgconverge.tombstones WHERE tbl = $1::text AND pk = {}",
                spec.canonical_key
            );
            client
                .query_opt(&sql, &params(&tomb_params))
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
                .map(|r| (0, (r.get(0), r.get(1)), false))
        }
        WritePath::Forwarding => {
            let (birth, stamp, _) = want?.clone();
            let tombstoned: bool = client
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM _pgconverge.incarnation_tombstones WHERE tbl = $1 AND birth = $2)",
                    &[&spec.qualified, &birth],
                )
                .await
                .unwrap_or_else(|e| panic!("reading _pgconverge.incarnation_tombstones: {e:?}"))
                .get(0);
            tombstoned.then_some((birth, stamp, true))
        }
    }
}

async fn run_seed(seed: u64, seconds: u64, path: WritePath) {
    eprintln!(
        "convergence harness ({path:?}): seed {seed}, {seconds} s (rerun with {SEEDS_ENV}={seed})"
    );
    let cluster = TestCluster::start(3);
    let mut specs = specs();
    let configs: Vec<TableConfig> = specs.iter().map(|s| s.config.clone()).collect();
    let mesh = match path {
        WritePath::ChangeLog => Mesh::install(&cluster, configs).await,
        WritePath::Forwarding => {
            // Only the primary key is resolved on this path; see expected_register.
            for spec in &mut specs {
                spec.config.unique.clear();
            }
            let configs = specs.iter().map(|s| s.config.clone()).collect();
            Mesh::install_forwarding(&cluster, configs).await
        }
    };
    for node in 0..3 {
        let client = cluster.client(node).await;
        client
            .batch_execute(&node_settings(node))
            .await
            .unwrap_or_else(|e| panic!("node settings: {e:?}"));
    }

    let shared = Arc::new(Shared {
        specs,
        nodes: cluster.nodes.clone(),
        gates: (0..3).map(|_| RwLock::new(())).collect(),
        restarts: (0..3).map(|_| AtomicU64::new(0)).collect(),
        stop_after: Instant::now() + Duration::from_secs(seconds) / 3,
        deadline: Instant::now() + Duration::from_secs(seconds),
        record: Mutex::new(Record::default()),
        path,
    });
    let mut clients = Vec::new();
    for node in 0..3 {
        for c in 0..CLIENTS_PER_NODE {
            let client_seed = seed.wrapping_mul(1000).wrapping_add((node * 10 + c) as u64);
            let isolation = if c + 1 == CLIENTS_PER_NODE {
                IsolationLevel::RepeatableRead
            } else {
                IsolationLevel::ReadCommitted
            };
            clients.push(tokio::spawn(client_loop(
                Arc::clone(&shared),
                node,
                client_seed,
                isolation,
            )));
        }
    }
    let mut schedule = Vec::new();
    let mut rng = Rng::new(seed ^ 0x5EED);
    partitions(&mesh, &shared, &mut rng, &mut schedule).await;
    for c in clients {
        if let Err(e) = c.await {
            panic!("seed {seed}: a client failed: {e:?}");
        }
    }

    mesh.wait_for_catch_up(Duration::from_secs(120)).await;
    let record = std::mem::take(&mut *shared.record());
    let ledger = match path {
        WritePath::ChangeLog => ledger_summary(&cluster).await,
        WritePath::Forwarding => vec![format!("refused key changes {}", record.refused_moves)],
    };
    eprintln!(
        "seed {seed}: committed {:?}, retried {:?}, partitions {schedule:?}\n  ledger {ledger:?}",
        record.committed, record.retried
    );

    if path == WritePath::Forwarding {
        // A divergence is the graver finding; report it before any apply error.
        mesh.assert_converged().await;
    }
    mesh.assert_no_apply_errors().await;
    mesh.assert_converged().await;
    assert!(
        record.violations.is_empty(),
        "seed {seed}: {:#?}",
        record.violations
    );
    if path == WritePath::ChangeLog {
        assert_eq!(
            mesh.change_log_rows().await,
            0,
            "seed {seed}: change log not empty"
        );
        for register_table in ["tombstones", "claims"] {
            let digests = [
                register_digest(&mesh, 0, register_table).await,
                register_digest(&mesh, 1, register_table).await,
                register_digest(&mesh, 2, register_table).await,
            ];
            assert!(
                digests.iter().all(|d| *d == digests[0]),
                "seed {seed}: {register_table} differ between nodes: {digests:?}"
            );
        }
    }
    // Each key's register is what its committed writes decide (expected_register): the last
    // writer won, and no causally later write lost.
    for node in 0..3 {
        let client = cluster.client(node).await;
        for ((t, id), writes) in &record.writes {
            let spec = &shared.specs[*t];
            let want = expected_register(path, writes);
            let key_values = &record.keys[&(*t, id.clone())];
            let got = register(&client, spec, key_values, path, want.as_ref()).await;
            assert_eq!(
                got, want,
                "seed {seed}: n{} {} key {id}: register is not what the writes decide (writes {writes:?})",
                node + 1,
                spec.qualified
            );
        }
    }
    let total: u64 = record.committed.values().sum();
    assert!(
        total > 100,
        "seed {seed}: only {total} transactions committed"
    );
    if path == WritePath::Forwarding {
        assert!(
            record.refused_moves > 0,
            "seed {seed}: no change of primary key was tried"
        );
    }
}

/// Conflict ledger kinds and counts per node (change-log path).
async fn ledger_summary(cluster: &TestCluster) -> Vec<String> {
    let mut ledger = Vec::new();
    for node in 0..3 {
        let client = cluster.client(node).await;
        let rows = client
            .query(
                "SELECT kind, count(*) FROM _pgconverge.conflicts GROUP BY 1 ORDER BY 1",
                &[],
            )
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        let kinds: Vec<String> = rows
            .iter()
            .map(|r| format!("{}={}", r.get::<_, String>(0), r.get::<_, i64>(1)))
            .collect();
        ledger.push(format!("n{}: {}", node + 1, kinds.join(" ")));
    }
    ledger
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seeded_workloads_converge() {
    run_seeds(WritePath::ChangeLog).await;
}

/// The harness on the forwarding write path, without UNIQUE constraints other than the
/// primary key and with changes of primary key refused (docs/conflicts.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seeded_workloads_converge_on_forwarding_path() {
    run_seeds(WritePath::Forwarding).await;
}

async fn run_seeds(path: WritePath) {
    let seeds: Vec<u64> = match std::env::var(SEEDS_ENV) {
        Ok(list) if !list.trim().is_empty() => list
            .split(',')
            .map(|s| {
                s.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{SEEDS_ENV}: {s:?} is not a number"))
            })
            .collect(),
        _ => DEFAULT_SEEDS.to_vec(),
    };
    let seconds: u64 = match std::env::var(SECONDS_ENV) {
        Ok(s) if !s.trim().is_empty() => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{SECONDS_ENV}: {s:?} is not a number")),
        _ => DEFAULT_SECONDS,
    };
    for seed in seeds {
        // A panic anywhere in the run is reported with its seed.
        if let Err(e) = tokio::spawn(run_seed(seed, seconds, path)).await {
            let message = e
                .try_into_panic()
                .ok()
                .and_then(|p| {
                    p.downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                })
                .unwrap_or_else(|| "cancelled".to_string());
            panic!("convergence harness failed for seed {seed} (rerun: {SEEDS_ENV}={seed}):\n{message}");
        }
    }
}

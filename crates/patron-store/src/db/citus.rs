//! Citus: distributing patron's PostgreSQL schema over a coordinator and workers, and what the
//! cluster looks like (`patron db distribute`, `patron db status`).
//!
//! The layout: `customers` is distributed by `id`, and every table with a `customer_id` column
//! by `customer_id`, co-located with it, so that everything about one customer lives in one
//! shard and a customer's reads and writes are routed to one node (the audit log too: its entries
//! carry the customer they are about). The key tables that keep external ids unique
//! (`customer_keys`, `order_keys`, …) are distributed by the key itself, and the small shared
//! tables (users, tokens, sessions, the catalogue, runs, segments, imports) are reference
//! tables, copied to every node. `_sqlx_migrations` stays on the coordinator.
//!
//! Only one order of operations works. Making `users` a reference table while `customers`
//! refers to it turns `customers` (and every table tied to it by a foreign key) into a "Citus
//! local table", which can then never be distributed: undoing that conversion fails on identity
//! columns. So the foreign keys between the tables to convert are dropped first, the tables
//! converted, and the keys added back — in one transaction, in sequential mode (one connection
//! per node), which Citus needs to create shards of related tables together and to copy the
//! rows of a loaded database. The migration runner does the same for the tables later
//! migrations add (see `migrate_postgres`).

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::{ConnectOptions, PgPool};

use super::{Db, Layout};
use crate::{Result, StoreError};

/// The table every customer-scoped table is co-located with.
const ROOT: &str = "customers";

/// Where a table goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Reference,
    /// Hash-distributed by this column, co-located with the group named (or a new group).
    Distributed {
        column: String,
        group: Group,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    /// `customers` and the tables co-located with it.
    Customers,
    /// Tables found by a text key of their own (the key tables, public links), distributed by it.
    Keys,
}

/// What `distribute` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DistributeReport {
    /// One line per table converted (`customers: distributed by id`); empty when the database
    /// was distributed already.
    pub converted: Vec<String>,
    /// Whether rows were copied from the coordinator into shards (a loaded database).
    pub copied_rows: bool,
}

/// A node of the cluster, with its share of the data.
#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    /// `host:port`.
    pub node: String,
    /// `coordinator` or `worker`.
    pub role: String,
    /// Whether the node is active.
    pub active: bool,
    /// Shard placements on the node (a reference table counts one).
    pub shards: i64,
    /// Rows of the distributed tables in those shards (reference tables left out).
    pub rows: i64,
}

/// A table and how it is laid out.
#[derive(Debug, Clone, Serialize)]
pub struct TableStatus {
    /// Name.
    pub name: String,
    /// `distributed`, `reference`, `local` (a Citus local table) or `postgres` (not known to Citus).
    pub kind: String,
    /// Distribution column, for distributed tables.
    pub column: Option<String>,
    /// Co-location group.
    pub colocation: Option<i64>,
    /// Number of shards.
    pub shards: i64,
    /// Rows per node (`host:port` → rows), for distributed tables.
    pub rows: BTreeMap<String, i64>,
}

/// The engine, and for Citus the nodes and tables.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterStatus {
    /// `sqlite`, `postgres` or `citus`.
    pub engine: String,
    /// The server's version string.
    pub version: String,
    /// `Citus 13.0.5 …` when the extension is installed.
    pub citus_version: Option<String>,
    /// Whether patron's tables are distributed.
    pub distributed: bool,
    /// The nodes (Citus).
    pub nodes: Vec<NodeStatus>,
    /// patron's tables (Citus).
    pub tables: Vec<TableStatus>,
}

/// Whether the `citus` extension is installed in this database.
pub(crate) async fn installed(pool: &PgPool) -> Result<bool> {
    let (yes,): (bool,) = sqlx::query_as("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')").fetch_one(pool).await?;
    Ok(yes)
}

/// Whether `customers` is a distributed table (call only when Citus is installed).
pub(crate) async fn is_distributed(pool: &PgPool) -> Result<bool> {
    let (yes,): (bool,) =
        sqlx::query_as("SELECT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = to_regclass($1) AND partmethod = 'h')")
            .bind(ROOT)
            .fetch_one(pool)
            .await?;
    Ok(yes)
}

/// Applies `migrator`'s pending migrations on a server with Citus, one statement at a time.
///
/// sqlx sends a migration's file as one multi-statement query, and Citus forwards some DDL on a
/// distributed table (adding a key, dropping an index) to the workers as the *whole* query
/// string through the extended protocol, which refuses more than one command ("cannot insert
/// multiple commands into a prepared statement"; citusdata/citus#6608). So on an already
/// distributed database an upgrade whose file holds two such statements failed. Here each
/// statement is its own query, in one transaction per migration, and the migration is recorded in
/// `_sqlx_migrations` exactly as sqlx records it (so sqlx's own migrator agrees afterwards): same
/// checks of dirty, missing and modified migrations, same lock.
pub(crate) async fn migrate(conn: &mut sqlx::PgConnection, migrator: &sqlx::migrate::Migrator) -> Result<()> {
    use sqlx::migrate::{Migrate, MigrateError};
    use sqlx::Connection;
    conn.ensure_migrations_table().await?;
    conn.lock().await?;
    let applied = async {
        if let Some(version) = conn.dirty_version().await? {
            return Err(MigrateError::Dirty(version).into());
        }
        let applied: BTreeMap<i64, Vec<u8>> =
            conn.list_applied_migrations().await?.into_iter().map(|m| (m.version, m.checksum.into_owned())).collect();
        let known = |v: i64| migrator.iter().any(|m| m.migration_type.is_up_migration() && m.version == v);
        if let Some(v) = applied.keys().find(|v| !known(**v)) {
            return Err(MigrateError::VersionMissing(*v).into());
        }
        for m in migrator.iter().filter(|m| m.migration_type.is_up_migration()) {
            match applied.get(&m.version) {
                Some(sum) if sum.as_slice() != &*m.checksum => return Err(MigrateError::VersionMismatch(m.version).into()),
                Some(_) => {}
                None => {
                    let started = std::time::Instant::now();
                    let mut tx = conn.begin().await?;
                    for statement in split_statements(&m.sql) {
                        sqlx::raw_sql(statement).execute(&mut *tx).await.map_err(|e| MigrateError::ExecuteMigration(e, m.version))?;
                    }
                    let nanos = i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX);
                    sqlx::query(
                        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES ($1, $2, TRUE, $3, $4)",
                    )
                    .bind(m.version)
                    .bind(&*m.description)
                    .bind(&*m.checksum)
                    .bind(nanos)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                }
            }
        }
        Ok::<(), StoreError>(())
    }
    .await;
    let unlocked = conn.unlock().await;
    applied?;
    unlocked?;
    Ok(())
}

/// The statements of a migration file, each without its `;`: split at semicolons outside
/// quotes (`'…'`, `"…"`, `$tag$…$tag$`) and comments (`--`, nested `/* */`); pieces holding
/// nothing but comments and blanks are left out.
pub(crate) fn split_statements(sql: &str) -> Vec<&str> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let (mut start, mut i, mut content) = (0, 0, false);
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = bytes[i..].iter().position(|&c| c == b'\n').map_or(bytes.len(), |p| i + p + 1);
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let mut depth = 0;
                while i < bytes.len() {
                    if bytes[i..].starts_with(b"/*") {
                        depth += 1;
                        i += 2;
                    } else if bytes[i..].starts_with(b"*/") {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                continue;
            }
            b'\'' | b'"' => {
                content = true;
                i = bytes[i + 1..].iter().position(|&c| c == b).map_or(bytes.len(), |p| i + 1 + p + 1);
                continue;
            }
            b'$' if i == 0 || !ident(bytes[i - 1]) => {
                // A dollar quote's tag: letters, digits and `_`, not starting with a digit
                // (`$1` is a parameter).
                let tag_len = bytes[i + 1..].iter().position(|&c| !ident(c)).unwrap_or(bytes.len() - i - 1);
                let quoted = bytes.get(i + 1 + tag_len) == Some(&b'$') && !bytes.get(i + 1).is_some_and(u8::is_ascii_digit);
                if quoted {
                    content = true;
                    let tag = &sql[i..i + tag_len + 2];
                    let body = i + tag.len();
                    i = sql[body..].find(tag).map_or(bytes.len(), |p| body + p + tag.len());
                    continue;
                }
                content = true;
            }
            b';' => {
                if content {
                    out.push(sql[start..i].trim());
                }
                start = i + 1;
                content = false;
            }
            c if !c.is_ascii_whitespace() => content = true,
            _ => {}
        }
        i += 1;
    }
    if content {
        out.push(sql[start..].trim());
    }
    out
}

/// Applies the migrations, then distributes the schema over the Citus cluster the database is
/// on (see the module docs): on an empty or a loaded database, in one transaction. Idempotent:
/// a distributed database is left as it is (the report then lists nothing). `shards`: shards
/// per distributed table (default: the server's `citus.shard_count`, 32); used only when a
/// co-location group is created. Plain PostgreSQL or SQLite: an error saying what is missing,
/// and nothing changed.
pub async fn distribute(url: &str, shards: Option<u32>) -> Result<DistributeReport> {
    // Checked before connecting through the store, which would apply migrations first.
    if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let opts: sqlx::postgres::PgConnectOptions = url.parse().map_err(|e| StoreError::Config(format!("bad PostgreSQL URL: {e}")))?;
        let pool = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect_with(opts.disable_statement_logging()).await?;
        let has = installed(&pool).await;
        pool.close().await;
        if !has? {
            return Err(missing_extension());
        }
    }
    let db = Db::connect(url).await?;
    let result = match &db {
        Db::Postgres(pool, _) => distribute_pool(pool, shards).await,
        Db::Sqlite(..) => Err(StoreError::Config("Citus distributes PostgreSQL databases; this is SQLite".into())),
    };
    db.close().await;
    result
}

fn missing_extension() -> StoreError {
    StoreError::Config(
        "the citus extension is missing in this database (CREATE EXTENSION citus on the coordinator and every worker, \
         and add the workers with citus_add_node); nothing was changed"
            .into(),
    )
}

/// A column of a table, as the layout rules look at it.
#[derive(Debug, sqlx::FromRow)]
struct Column {
    table: String,
    name: String,
    /// The type's name (`int8`, `text` …).
    ty: String,
    not_null: bool,
    /// Part of the primary key.
    in_pk: bool,
}

/// The table's target in the layout, by rules that hold for the tables later migrations add:
///
/// - `customers`: distributed by `id`;
/// - a table with a `customer_id` that is a non-null bigint and part of the primary key (or
///   there is none): distributed by it, co-located with `customers`;
/// - a table with a `customer_id` whose primary key is one text column of its own (the key
///   tables by `external_id`, public links by their token's digest): distributed by that key,
///   co-located with the other such tables;
/// - anything else (users, tokens, sessions, the catalogue, runs, segments, imports, settings,
///   policies, notifications …): a reference table.
fn target(name: &str, columns: &[&Column]) -> Target {
    let pk: Vec<&&Column> = columns.iter().filter(|c| c.in_pk).collect();
    let customer = columns.iter().find(|c| c.name == "customer_id");
    if name == ROOT {
        return Target::Distributed { column: "id".into(), group: Group::Customers };
    }
    match customer {
        Some(c) if c.not_null && c.ty == "int8" && (pk.is_empty() || c.in_pk) => {
            Target::Distributed { column: "customer_id".into(), group: Group::Customers }
        }
        Some(_) if pk.len() == 1 && pk[0].ty == "text" => Target::Distributed { column: pk[0].name.clone(), group: Group::Keys },
        _ => Target::Reference,
    }
}

/// One table as Citus sees it now.
#[derive(Debug, sqlx::FromRow)]
struct Current {
    name: String,
    /// `distributed`, `reference`, `local` or NULL (a plain table).
    kind: Option<String>,
    column: Option<String>,
}

/// See [`distribute`]; on a pool already connected (and migrated).
pub(crate) async fn distribute_pool(pool: &PgPool, shards: Option<u32>) -> Result<DistributeReport> {
    if !installed(pool).await? {
        return Err(missing_extension());
    }
    let (workers,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM pg_dist_node WHERE noderole = 'primary' AND shouldhaveshards AND isactive")
            .fetch_one(pool)
            .await?;
    if workers == 0 {
        return Err(StoreError::Config(
            "the Citus cluster has no worker that takes shards (add one with SELECT citus_add_node('host', port)); nothing was changed"
                .into(),
        ));
    }
    // One distribution at a time (two servers starting after a migration would both convert
    // its new tables); the state is read under the lock.
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(CAST(x'70617472' AS BIGINT))").execute(&mut *tx).await?;
    sqlx::query("SET LOCAL citus.multi_shard_modify_mode TO 'sequential'").execute(&mut *tx).await?;
    // Every ordinary table of the schema but the migrator's own, with its columns and what
    // Citus knows of it. Shards of reference tables placed on the coordinator are hidden from
    // the catalogue by Citus (citus.override_table_visibility).
    let tables: Vec<Current> = sqlx::query_as(
        "SELECT c.relname AS name, t.citus_table_type AS kind, t.distribution_column AS column \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN citus_tables t ON t.table_name = c.oid \
         WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relname <> '_sqlx_migrations' \
         ORDER BY c.relname",
    )
    .fetch_all(&mut *tx)
    .await?;
    let columns: Vec<Column> = sqlx::query_as(
        "SELECT c.relname AS table, a.attname AS name, CAST(t.typname AS TEXT) AS ty, a.attnotnull AS not_null, \
         EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary AND a.attnum = ANY (i.indkey)) AS in_pk \
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_type t ON t.oid = a.atttypid \
         WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped",
    )
    .fetch_all(&mut *tx)
    .await?;
    let columns_of = |t: &str| columns.iter().filter(|c| c.table == t).collect::<Vec<&Column>>();

    let mut plan: Vec<(String, Target)> = Vec::new();
    for t in &tables {
        let want = target(&t.name, &columns_of(&t.name));
        match (t.kind.as_deref(), &want) {
            (None, _) => plan.push((t.name.clone(), want)),
            (Some("reference"), Target::Reference) => {}
            (Some("distributed"), Target::Distributed { column, .. }) if t.column.as_deref() == Some(column.as_str()) => {}
            (Some(kind), _) => {
                return Err(StoreError::Config(format!(
                    "table {} is already a Citus {kind} table{}, not what patron's layout needs ({}); nothing was changed",
                    t.name,
                    t.column.as_deref().map(|c| format!(" by {c}")).unwrap_or_default(),
                    describe(&want)
                )))
            }
        }
    }
    if plan.is_empty() {
        return Ok(DistributeReport::default());
    }
    // Reference tables first, then `customers` and its group, then the others.
    let rank = |t: &(String, Target)| match &t.1 {
        Target::Reference => 0,
        Target::Distributed { group: Group::Customers, .. } if t.0 == ROOT => 1,
        Target::Distributed { group: Group::Customers, .. } => 2,
        Target::Distributed { group: Group::Keys, .. } => 3,
    };
    plan.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.0.cmp(&b.0)));
    let converting: Vec<&str> = plan.iter().map(|(n, _)| n.as_str()).collect();

    // The foreign keys from or to a table being converted: dropped, then added back.
    let keys: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c \
         WHERE c.contype = 'f' AND (c.conrelid::regclass::text = ANY($1) OR c.confrelid::regclass::text = ANY($1)) \
         ORDER BY 1, 2",
    )
    .bind(&converting)
    .fetch_all(&mut *tx)
    .await?;
    for (table, name, _) in &keys {
        sqlx::query(&format!("ALTER TABLE {} DROP CONSTRAINT {}", ident(table), ident(name))).execute(&mut *tx).await?;
    }
    let mut report = DistributeReport::default();
    let mut loaded: Vec<&str> = Vec::new();
    // New key tables join the key tables' group, when there is one already.
    let mut keys_group: Option<String> = tables
        .iter()
        .find(|t| {
            t.kind.as_deref() == Some("distributed")
                && matches!(target(&t.name, &columns_of(&t.name)), Target::Distributed { group: Group::Keys, .. })
        })
        .map(|t| t.name.clone());
    for (name, want) in &plan {
        let (has_rows,): (bool,) = sqlx::query_as(&format!("SELECT EXISTS (SELECT 1 FROM {})", ident(name))).fetch_one(&mut *tx).await?;
        if has_rows {
            loaded.push(name);
        }
        match want {
            Target::Reference => {
                sqlx::query("SELECT create_reference_table($1)").bind(name).execute(&mut *tx).await?;
            }
            Target::Distributed { column, group } => {
                let colocate = match group {
                    Group::Customers if name != ROOT => Some(ROOT.to_owned()),
                    Group::Keys => keys_group.clone(),
                    _ => None,
                };
                match colocate {
                    Some(with) => {
                        sqlx::query("SELECT create_distributed_table($1, $2, colocate_with => $3)")
                            .bind(name)
                            .bind(column)
                            .bind(with)
                            .execute(&mut *tx)
                            .await?;
                    }
                    None => {
                        let count = match shards {
                            Some(n) => i32::try_from(n).map_err(|_| StoreError::invalid("shards", "too many shards"))?,
                            None => {
                                let (n,): (String,) =
                                    sqlx::query_as("SELECT current_setting('citus.shard_count')").fetch_one(&mut *tx).await?;
                                n.parse().map_err(|_| StoreError::Internal(format!("citus.shard_count is {n:?}")))?
                            }
                        };
                        sqlx::query("SELECT create_distributed_table($1, $2, shard_count => $3, colocate_with => 'none')")
                            .bind(name)
                            .bind(column)
                            .bind(count)
                            .execute(&mut *tx)
                            .await?;
                        if *group == Group::Keys {
                            keys_group = Some(name.clone());
                        }
                    }
                }
            }
        }
        report.converted.push(format!("{name}: {}", describe(want)));
    }
    for (table, name, def) in &keys {
        sqlx::query(&format!("ALTER TABLE {} ADD CONSTRAINT {} {def}", ident(table), ident(name))).execute(&mut *tx).await?;
    }
    // The rows copied into shards are still in the coordinator's own tables, unseen.
    for name in &loaded {
        sqlx::query("SELECT truncate_local_data_after_distributing_table($1)").bind(*name).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    report.copied_rows = !loaded.is_empty();
    Ok(report)
}

fn describe(t: &Target) -> String {
    match t {
        Target::Reference => "reference table (a copy on every node)".into(),
        Target::Distributed { column, group: Group::Customers } if column == "id" => "distributed by id".into(),
        Target::Distributed { column, group: Group::Customers } => format!("distributed by {column}, co-located with customers"),
        Target::Distributed { column, .. } => format!("distributed by {column}"),
    }
}

/// A catalogue name as an SQL identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// What the database runs on: the engine and version; on Citus also the nodes, with shards
/// and rows per node, and every table's layout.
pub async fn status(db: &Db) -> Result<ClusterStatus> {
    let pool = match db {
        Db::Sqlite(p, ..) => {
            let (version,): (String,) = sqlx::query_as("SELECT sqlite_version()").fetch_one(p).await?;
            return Ok(ClusterStatus {
                engine: "sqlite".into(),
                version: format!("SQLite {version}"),
                citus_version: None,
                distributed: false,
                nodes: Vec::new(),
                tables: Vec::new(),
            });
        }
        Db::Postgres(p, _) => p,
    };
    let (version,): (String,) = sqlx::query_as("SELECT version()").fetch_one(pool).await?;
    let mut out = ClusterStatus {
        engine: "postgres".into(),
        version,
        citus_version: None,
        distributed: false,
        nodes: Vec::new(),
        tables: Vec::new(),
    };
    if !installed(pool).await? {
        return Ok(out);
    }
    let (citus_version,): (String,) = sqlx::query_as("SELECT citus_version()").fetch_one(pool).await?;
    out.engine = "citus".into();
    out.citus_version = Some(citus_version);
    out.distributed = is_distributed(pool).await?;
    let nodes: Vec<(String, i32, i32, bool)> =
        sqlx::query_as("SELECT nodename, nodeport, groupid, isactive FROM pg_dist_node WHERE noderole = 'primary' ORDER BY groupid")
            .fetch_all(pool)
            .await?;
    let placements: Vec<(String, i32, i64)> =
        sqlx::query_as("SELECT nodename, nodeport, COUNT(*) FROM citus_shards GROUP BY 1, 2").fetch_all(pool).await?;
    /// Name, kind, distribution column, co-location group, shards.
    type TableRow = (String, String, Option<String>, Option<i64>, i64);
    let tables: Vec<TableRow> = sqlx::query_as(
        "SELECT c.relname, COALESCE(t.citus_table_type, 'postgres'), NULLIF(t.distribution_column, '<none>'), \
         CAST(t.colocation_id AS BIGINT), COALESCE(t.shard_count, 0) \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN citus_tables t ON t.table_name = c.oid \
         WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY c.relname",
    )
    .fetch_all(pool)
    .await?;
    let mut rows_per_node: BTreeMap<String, i64> = BTreeMap::new();
    for (name, kind, column, colocation, shards) in tables {
        let mut rows = BTreeMap::new();
        if kind == "distributed" {
            // Each shard counted where it lives.
            let counts: Vec<(String, i32, String)> = sqlx::query_as(
                "SELECT s.nodename, s.nodeport, r.result FROM run_command_on_shards($1, 'SELECT COUNT(*) FROM %s') r \
                 JOIN citus_shards s ON s.shardid = r.shardid WHERE r.success",
            )
            .bind(&name)
            .fetch_all(pool)
            .await?;
            for (host, port, n) in counts {
                let n: i64 = n.parse().unwrap_or(0);
                *rows.entry(format!("{host}:{port}")).or_insert(0) += n;
                *rows_per_node.entry(format!("{host}:{port}")).or_insert(0) += n;
            }
        }
        out.tables.push(TableStatus { name, kind, column, colocation, shards, rows });
    }
    for (host, port, group, active) in nodes {
        let key = format!("{host}:{port}");
        let shards = placements.iter().filter(|(h, p, _)| *h == host && *p == port).map(|x| x.2).sum();
        out.nodes.push(NodeStatus {
            role: if group == 0 { "coordinator".into() } else { "worker".into() },
            active,
            shards,
            rows: rows_per_node.get(&key).copied().unwrap_or(0),
            node: key,
        });
    }
    Ok(out)
}

impl Db {
    /// Whether this is a distributed (Citus) database; for administration and tests. Queries
    /// must not branch on it: the differences are handled in [`crate::db`].
    pub fn is_distributed(&self) -> bool {
        self.layout() == Layout::Citus
    }
}

#[cfg(test)]
mod tests {
    use super::split_statements;

    #[test]
    fn statements_split_at_semicolons_outside_quotes_and_comments() {
        let sql = "-- a comment; with a semicolon\n\
                   CREATE TABLE t (a TEXT DEFAULT ';', \"b;c\" INT); /* block; /* nested; */ still; */\n\
                   DO $body$ BEGIN EXECUTE 'SELECT 1; SELECT 2'; END $body$;\n\
                   SELECT $1, $$ a; b $$ ,x$y;\n\
                   -- only a comment at the end;\n";
        assert_eq!(
            split_statements(sql),
            [
                "-- a comment; with a semicolon\nCREATE TABLE t (a TEXT DEFAULT ';', \"b;c\" INT)",
                "/* block; /* nested; */ still; */\nDO $body$ BEGIN EXECUTE 'SELECT 1; SELECT 2'; END $body$",
                "SELECT $1, $$ a; b $$ ,x$y",
            ]
        );
        assert!(split_statements("  -- nothing\n/* at all */ ;\n").is_empty());
        assert_eq!(split_statements("SELECT 'it''s; fine'"), ["SELECT 'it''s; fine'"]);
        // An unterminated quote runs to the end instead of past it.
        assert_eq!(split_statements("SELECT 'open; "), ["SELECT 'open;"]);
    }

    #[test]
    fn every_postgres_migration_splits_into_whole_statements() {
        let migrator = sqlx::migrate!("./migrations/postgres");
        for m in migrator.iter() {
            let statements = split_statements(&m.sql);
            assert!(!statements.is_empty(), "{}", m.version);
            let semicolons = m.sql.lines().map(|l| l.split("--").next().unwrap_or("")).filter(|l| l.trim_end().ends_with(';')).count();
            assert_eq!(statements.len(), semicolons, "migration {}: one statement per line ending in ;", m.version);
        }
    }
}

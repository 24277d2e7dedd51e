//! The two migration folders build the same schema: the same tables, columns
//! (of the same type family and nullability), primary keys, indexes (by
//! columns and uniqueness) and foreign keys. Each backend is asked what it
//! built, after every migration ran, so the backends cannot drift apart.

use std::collections::{BTreeMap, BTreeSet};

use promoter::store::Db;
use sqlx::Row;

use crate::helpers::{Backend, TestApp};

/// Tables one backend has for what the other does otherwise: SQLite cannot
/// notify other processes of a change, so its triggers count one up
/// (`catalog_version`) where PostgreSQL's call `pg_notify`.
const SQLITE_ONLY_TABLES: &[&str] = &["catalog_version"];

/// What a schema holds, as both backends can say it.
#[derive(Debug, Default, PartialEq, Eq)]
struct Schema {
    /// Table → column → (type family, NOT NULL).
    columns: BTreeMap<String, BTreeMap<String, (&'static str, bool)>>,
    /// (table, primary key columns).
    primary_keys: BTreeSet<(String, Vec<String>)>,
    /// (table, columns, unique), primary keys aside.
    indexes: BTreeSet<(String, Vec<String>, bool)>,
    /// (table, column, referenced table, referenced column).
    foreign_keys: BTreeSet<(String, String, String, String)>,
}

/// The family of a PostgreSQL type, as SQLite stores the same values: times
/// and UUIDs are text there (sqlx writes them so), booleans integers.
fn postgres_family(data_type: &str) -> &'static str {
    match data_type {
        "bigint" | "integer" | "smallint" => "integer",
        "boolean" => "boolean",
        "text" | "character varying" | "timestamp with time zone" | "uuid" => "text",
        "bytea" => "bytes",
        other => panic!("no family for PostgreSQL type {other}: add it here"),
    }
}

fn sqlite_family(declared: &str) -> &'static str {
    match declared.to_ascii_uppercase().as_str() {
        "INTEGER" | "BIGINT" => "integer",
        "BOOLEAN" => "boolean",
        "TEXT" | "UUID" | "TIMESTAMP" | "DATETIME" | "TIMESTAMPTZ" => "text",
        "BLOB" => "bytes",
        other => panic!("no family for SQLite type {other}: add it here"),
    }
}

async fn postgres_schema(pool: &sqlx::PgPool) -> Schema {
    let mut schema = Schema::default();
    let rows = sqlx::query(
        "SELECT c.table_name, c.column_name, c.data_type, c.is_nullable \
         FROM information_schema.columns c JOIN information_schema.tables t \
           ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
         WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' \
           AND c.table_name <> '_sqlx_migrations'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for row in rows {
        let table: String = row.get(0);
        let column: String = row.get(1);
        let data_type: String = row.get(2);
        let nullable: String = row.get(3);
        schema
            .columns
            .entry(table)
            .or_default()
            .insert(column, (postgres_family(&data_type), nullable == "NO"));
    }
    // Every index with its columns in order; expressions as written.
    let rows = sqlx::query(
        "SELECT t.relname, ix.indisprimary, ix.indisunique, \
                array_agg(pg_get_indexdef(ix.indexrelid, k.n::int, true) ORDER BY k.n) \
         FROM pg_index ix \
         JOIN pg_class t ON t.oid = ix.indrelid \
         JOIN pg_namespace ns ON ns.oid = t.relnamespace \
         CROSS JOIN LATERAL generate_series(1, ix.indnkeyatts) AS k(n) \
         WHERE ns.nspname = current_schema() AND t.relname <> '_sqlx_migrations' \
         GROUP BY t.relname, ix.indexrelid, ix.indisprimary, ix.indisunique",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for row in rows {
        let table: String = row.get(0);
        let primary: bool = row.get(1);
        let unique: bool = row.get(2);
        let columns: Vec<String> = row.get(3);
        if primary {
            schema.primary_keys.insert((table, columns));
        } else {
            schema.indexes.insert((table, columns, unique));
        }
    }
    let rows = sqlx::query(
        "SELECT kcu.table_name::text, kcu.column_name::text, \
                ccu.table_name::text, ccu.column_name::text \
         FROM information_schema.table_constraints tc \
         JOIN information_schema.key_column_usage kcu \
           ON kcu.constraint_name = tc.constraint_name AND kcu.table_schema = tc.table_schema \
         JOIN information_schema.constraint_column_usage ccu \
           ON ccu.constraint_name = tc.constraint_name AND ccu.table_schema = tc.table_schema \
         WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_schema = current_schema()",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for row in rows {
        schema
            .foreign_keys
            .insert((row.get(0), row.get(1), row.get(2), row.get(3)));
    }
    schema
}

async fn sqlite_schema(pool: &sqlx::SqlitePool) -> Schema {
    let mut schema = Schema::default();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for table in tables {
        let rows = sqlx::query(
            "SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1) ORDER BY pk",
        )
        .bind(&table)
        .fetch_all(pool)
        .await
        .unwrap();
        let mut key = Vec::new();
        for row in rows {
            let column: String = row.get(0);
            let declared: String = row.get(1);
            let not_null: i64 = row.get(2);
            let pk: i64 = row.get(3);
            if pk > 0 {
                key.push(column.clone());
            }
            // A primary key's columns are never null, whatever SQLite says.
            schema
                .columns
                .entry(table.clone())
                .or_default()
                .insert(column, (sqlite_family(&declared), not_null == 1 || pk > 0));
        }
        if !key.is_empty() {
            schema.primary_keys.insert((table.clone(), key));
        }
        let indexes = sqlx::query("SELECT name, \"unique\", origin FROM pragma_index_list(?1)")
            .bind(&table)
            .fetch_all(pool)
            .await
            .unwrap();
        for index in indexes {
            let name: String = index.get(0);
            let unique: i64 = index.get(1);
            let origin: String = index.get(2);
            if origin == "pk" {
                continue;
            }
            let columns: Vec<Option<String>> = sqlx::query_scalar(
                "SELECT name FROM pragma_index_xinfo(?1) WHERE key = 1 ORDER BY seqno",
            )
            .bind(&name)
            .fetch_all(pool)
            .await
            .unwrap();
            let sql: Option<String> =
                sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE name = ?1")
                    .bind(&name)
                    .fetch_one(pool)
                    .await
                    .unwrap();
            let columns = columns
                .into_iter()
                .map(|column| column.unwrap_or_else(|| format!("(expression in {sql:?})")))
                .collect();
            schema.indexes.insert((table.clone(), columns, unique == 1));
        }
        let keys =
            sqlx::query("SELECT \"table\", \"from\", \"to\" FROM pragma_foreign_key_list(?1)")
                .bind(&table)
                .fetch_all(pool)
                .await
                .unwrap();
        for key in keys {
            let to: Option<String> = key.get(2);
            schema.foreign_keys.insert((
                table.clone(),
                key.get(1),
                key.get(0),
                // Without a column, the referenced table's primary key.
                to.unwrap_or_else(|| "id".to_owned()),
            ));
        }
    }
    schema
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_migration_folders_build_the_same_schema() {
    let postgres = TestApp::spawn(Backend::Postgres).await;
    let sqlite = TestApp::spawn(Backend::Sqlite).await;
    let Db::Postgres(pg) = postgres.store.db() else {
        unreachable!()
    };
    let Db::Sqlite(lite, _) = sqlite.store.db() else {
        unreachable!()
    };
    let (pg, mut lite) = (postgres_schema(pg).await, sqlite_schema(lite).await);
    for table in SQLITE_ONLY_TABLES {
        assert!(
            lite.columns.remove(*table).is_some(),
            "{table} is gone: drop it here"
        );
        lite.primary_keys.retain(|(t, _)| t != table);
    }
    // Something to compare: every table has a key, and there are indexes and
    // foreign keys (a query that found none would make them agree vacuously).
    assert!(pg.columns.len() >= 10, "{:?}", pg.columns.keys());
    assert_eq!(
        pg.primary_keys.len(),
        pg.columns.len(),
        "{:?}",
        pg.primary_keys
    );
    assert!(pg.indexes.len() >= 5, "{:?}", pg.indexes);
    assert!(pg.foreign_keys.len() >= 5, "{:?}", pg.foreign_keys);
    assert_eq!(
        pg.columns.keys().collect::<Vec<_>>(),
        lite.columns.keys().collect::<Vec<_>>(),
        "tables"
    );
    for (table, columns) in &pg.columns {
        assert_eq!(columns, &lite.columns[table], "columns of {table}");
    }
    assert_eq!(pg.primary_keys, lite.primary_keys, "primary keys");
    assert_eq!(pg.foreign_keys, lite.foreign_keys, "foreign keys");
    assert_eq!(pg.indexes, lite.indexes, "indexes");
}

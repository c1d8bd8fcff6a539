//! A schema of its own on the PostgreSQL server the tests are given
//! (`FEEDWIRE_TEST_POSTGRES`), dropped when the test ends; its URL points the connection's
//! `search_path` at it, so a store (or a daemon) connected with it sees only this test's tables.
#![allow(dead_code)]

/// The variable naming the server; `.ci/run` sets it.
pub const VAR: &str = "FEEDWIRE_TEST_POSTGRES";

pub struct Db {
    /// The connection string of the schema (for `[store] url_env`, or `PgSettings`).
    pub url: String,
    pub admin: tokio_postgres::Client,
    pub schema: String,
}

impl Db {
    /// A fresh schema; `None` (saying why) when the variable is unset. Panics when it is set
    /// and the server does not answer: CI must not skip.
    pub async fn new() -> Option<Db> {
        let Ok(base) = std::env::var(VAR) else {
            println!("skipped: {VAR} is not set (it names the PostgreSQL server this test needs)");
            return None;
        };
        let (admin, connection) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("{VAR}={base} does not answer: {e}"));
        tokio::spawn(connection);
        let schema = format!("fwtest_{}", ulid::Ulid::new().to_string().to_lowercase());
        admin
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .expect("create the test schema");
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
        Some(Db { url, admin, schema })
    }

    /// One number from a query on this schema's tables (`{s}` names the schema).
    pub async fn count(&self, sql: &str) -> i64 {
        let sql = sql.replace("{s}", &self.schema);
        self.admin
            .query_one(&sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .get(0)
    }

    pub async fn drop_schema(self) {
        let _ = self
            .admin
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.schema))
            .await;
    }
}

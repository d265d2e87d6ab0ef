//! Query plans, for the tests that pin hot statements to their indexes (issue 22): SQLite's
//! `EXPLAIN QUERY PLAN`, and PostgreSQL's `EXPLAIN EXECUTE` of the prepared statement as a
//! custom and as a generic plan (what a prepared statement comes to use), with sequential
//! scans disabled so that the planner's choice for a small table is not mistaken for a good
//! one. Seed the tables with rows shaped as in use, then [`Planner::analyze`].

use std::str::FromStr;

use sqlx::{Connection, Row};

use crate::{Backend, TestDb};

/// A connection to the test's database to read plans with.
pub enum Planner {
    /// SQLite: the test's file.
    Sqlite(sqlx::SqliteConnection),
    /// PostgreSQL: the server, in the test's schema.
    Postgres(sqlx::PgConnection),
}

impl Planner {
    /// Connects to `db`.
    pub async fn connect(db: &TestDb) -> Planner {
        match db.backend {
            Backend::Sqlite => Planner::Sqlite(sqlx::SqliteConnection::connect(&db.url).await.expect("sqlite")),
            Backend::Postgres => {
                let server = db.server_url().expect("a server");
                let options = sqlx::postgres::PgConnectOptions::from_str(server).expect("server url");
                let mut conn = sqlx::PgConnection::connect_with(&options).await.expect("postgres");
                let schema = db.schema.as_deref().expect("a schema");
                let setup = format!("SET search_path TO {schema}; SET enable_seqscan = off");
                sqlx::raw_sql(sqlx::AssertSqlSafe(setup)).execute(&mut conn).await.expect("search path");
                Planner::Postgres(conn)
            }
        }
    }

    /// Runs `sql` as it is (seeding rows).
    pub async fn execute(&mut self, sql: &str) {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self {
            Planner::Sqlite(c) => sqlx::raw_sql(sql).execute(c).await.map(|_| ()),
            Planner::Postgres(c) => sqlx::raw_sql(sql).execute(c).await.map(|_| ()),
        }
        .expect("statement");
    }

    /// Lets PostgreSQL's planner choose sequential scans again (they are off from
    /// [`Planner::connect`] on), to see the plan a server would really use.
    pub async fn allow_sequential_scans(&mut self) {
        if let Planner::Postgres(_) = self {
            self.execute("SET enable_seqscan = on").await;
        }
    }

    /// Gathers the statistics the planner estimates from.
    pub async fn analyze(&mut self) {
        self.execute("ANALYZE").await;
    }

    /// The plans of `sql`, each labelled: on SQLite one (parameters bound to NULL); on
    /// PostgreSQL the custom and the generic plan of the statement prepared and executed
    /// with `pg_args` (SQL literals in parentheses, or "" for none).
    pub async fn plans(&mut self, sql: &str, pg_args: &str) -> Vec<(String, Vec<String>)> {
        match self {
            Planner::Sqlite(conn) => {
                let params = (1..=20).filter(|n| sql.contains(&format!("${n}"))).count();
                let mut q = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")));
                for _ in 0..params {
                    q = q.bind(None::<String>);
                }
                let rows = q.fetch_all(conn).await.expect("explain");
                vec![("sqlite".into(), rows.iter().map(|r| r.get::<String, _>("detail")).collect())]
            }
            Planner::Postgres(conn) => {
                let mut out = Vec::new();
                for mode in ["force_custom_plan", "force_generic_plan"] {
                    let setup = format!("SET plan_cache_mode = {mode}; PREPARE planned AS {sql}");
                    sqlx::raw_sql(sqlx::AssertSqlSafe(setup)).execute(&mut *conn).await.expect("prepare");
                    let explain = format!("EXPLAIN EXECUTE planned{pg_args}");
                    let rows = sqlx::query(sqlx::AssertSqlSafe(explain)).fetch_all(&mut *conn).await.expect("explain");
                    sqlx::raw_sql("DEALLOCATE planned").execute(&mut *conn).await.expect("deallocate");
                    out.push((mode.to_owned(), rows.iter().map(|r| r.get::<String, _>(0)).collect()));
                }
                out
            }
        }
    }

    /// The lines of `plan` that read more than their condition bounds: [`full_scans`], and
    /// on PostgreSQL the index scans whose condition does not name the index's leading
    /// column (the planner then walks the whole index, checking a later column).
    pub async fn unbounded(&mut self, plan: &[String]) -> Vec<String> {
        let mut found = Vec::new();
        for walk in index_walks(plan) {
            if !walk.bounded {
                found.push(walk.line);
                continue;
            }
            let (Planner::Postgres(conn), Some(index), Some(condition)) = (&mut *self, &walk.index, &walk.condition)
            else {
                continue;
            };
            let leading: Option<String> = sqlx::query_scalar(
                "SELECT a.attname::text FROM pg_index i \
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
                 WHERE i.indexrelid = to_regclass($1)",
            )
            .bind(index)
            .fetch_optional(&mut *conn)
            .await
            .expect("index columns");
            let leading = leading.unwrap_or_else(|| panic!("no index {index}"));
            let named = condition.split(|c: char| !(c.is_alphanumeric() || c == '_')).any(|word| word == leading);
            if !named {
                found.push(format!("{} (its condition leaves out {leading})", walk.line));
            }
        }
        found
    }

    /// The plan of a statement without parameters (`EXPLAIN QUERY PLAN` / `EXPLAIN`).
    pub async fn plan(&mut self, sql: &str) -> Vec<String> {
        self.plans(sql, "").await.remove(0).1
    }
}

/// The steps of a plan, without PostgreSQL's arrows and indentation.
fn steps(plan: &[String]) -> impl Iterator<Item = (&String, &str)> {
    plan.iter().map(|line| (line, line.trim_start().trim_start_matches("->").trim_start()))
}

/// Lines that read a whole table or walk a whole index, from the plan's text alone:
/// PostgreSQL's `Seq Scan`, and its index scans without an `Index Cond` (with sequential
/// scans off, a full walk of some index is what the planner falls back to) unless a `Limit`
/// right above stops them at once; SQLite's `SCAN`, and its skip-scans (`ANY(column)`: a
/// walk of every value of an index's leading column). [`Planner::unbounded`] adds the
/// index scans whose condition leaves out the index's leading column.
pub fn full_scans(plan: &[String]) -> Vec<String> {
    index_walks(plan).into_iter().filter(|w| !w.bounded).map(|w| w.line).collect()
}

/// An index or table read of a plan, with the index's name and its condition (PostgreSQL).
struct Walk {
    line: String,
    index: Option<String>,
    condition: Option<String>,
    bounded: bool,
}

fn index_walks(plan: &[String]) -> Vec<Walk> {
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut found = Vec::new();
    for (i, (line, step)) in steps(plan).enumerate() {
        // SQLite's scans of a subquery's rows (a co-routine of its own, planned above) and of
        // a constant row read no table.
        let own_rows = step.starts_with("SCAN (subquery-") || step == "SCAN CONSTANT ROW";
        if step.starts_with("Seq Scan") || (step.starts_with("SCAN ") && !own_rows) {
            found.push(Walk { line: line.clone(), index: None, condition: None, bounded: false });
            continue;
        }
        if step.starts_with("SEARCH ") {
            let bounded = !step.contains("ANY(");
            found.push(Walk { line: line.clone(), index: None, condition: None, bounded });
            continue;
        }
        if !["Index Scan", "Index Only Scan", "Bitmap Index Scan"].iter().any(|k| step.starts_with(k)) {
            continue;
        }
        // The node's own detail lines are indented below it, up to the next node.
        let details: Vec<&str> = plan[i + 1..]
            .iter()
            .take_while(|l| indent(l) > indent(line) && !l.trim_start().starts_with("->"))
            .map(|l| l.trim_start())
            .collect();
        // A walk from one end of an index right under a `Limit`, filtering nothing, reads
        // only the rows the limit takes (the newest event, say).
        let parent = plan[..i].iter().rev().find(|l| indent(l) < indent(line));
        let limited = parent.is_some_and(|p| p.trim_start().trim_start_matches("->").trim_start().starts_with("Limit"))
            && !details.iter().any(|d| d.starts_with("Filter:"));
        let condition = details.iter().find_map(|d| d.strip_prefix("Index Cond:")).map(str::to_owned);
        // "Index Scan using <index> on <table>", "Bitmap Index Scan on <index>".
        let index = step
            .split_once(" using ")
            .or_else(|| step.split_once("Bitmap Index Scan on "))
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .map(str::to_owned);
        let bounded = limited || condition.is_some();
        found.push(Walk { line: line.clone(), index, condition, bounded });
    }
    found
}

/// Lines that sort rows: PostgreSQL's `Sort` and `Incremental Sort`, SQLite's temporary
/// B-trees.
pub fn sorts(plan: &[String]) -> Vec<String> {
    steps(plan)
        .filter(|(_, s)| s.starts_with("Sort") || s.starts_with("Incremental Sort") || s.contains("TEMP B-TREE"))
        .map(|(l, _)| l.clone())
        .collect()
}

/// Whether the plan reads some index (SQLite `SEARCH`, PostgreSQL an index scan).
pub fn uses_an_index(plan: &[String]) -> bool {
    steps(plan).any(|(_, s)| s.starts_with("SEARCH") || s.contains("Index"))
}

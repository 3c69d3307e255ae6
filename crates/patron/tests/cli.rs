//! The `patron` binary end to end: imports killed with SIGKILL leave nothing behind, CLI errors
//! name file, row and column, users, tokens and exports work. Run on SQLite and PostgreSQL.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use patron_store::db::query;
use patron_store::testing::TestDb;
use patron_store::{test_both, Store};

mod common;

use common::patron;

fn run_ok(args: &[&str], db: &str) -> String {
    let out = patron().args(args).args(["--db", db]).output().expect("run patron");
    assert!(out.status.success(), "patron {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn count(store: &Store, table: &str) -> i64 {
    let (n,): (i64,) = store.db.reader().fetch_one(query(format!("SELECT COUNT(*) FROM {table}"))).await.expect("count");
    n
}

fn generate(dir: &Path, customers: u64) {
    let out =
        patron().args(["generate", "--customers", &customers.to_string(), "--seed", "7", "--out"]).arg(dir).output().expect("generate");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

test_both!(sigkill_mid_import_leaves_no_rows, |db: TestDb| async move {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 3000);
    let customers = dir.path().join("customers.csv");
    let orders = dir.path().join("orders.csv");
    run_ok(&["import", "customers", customers.to_str().unwrap()], &db.url);
    let n_customers = count(&db.store, "customers").await;
    assert_eq!(n_customers, 3000);
    let order_rows = std::fs::read_to_string(&orders).unwrap().lines().count() as i64 - 1;
    assert!(order_rows > 15_000, "the file must span several batches ({order_rows} rows)");

    let mut child = patron()
        .args(["import", "orders"])
        .arg(&orders)
        .args(["--db", &db.url])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the first progress line: at least one batch is in the open transaction.
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.starts_with("orders: ") {
            seen = line;
            break;
        }
    }
    child.kill().expect("SIGKILL");
    let status = child.wait().unwrap();
    assert!(!status.success(), "the import must have been killed, not finished ({seen})");
    let rows_at_kill: i64 = seen.trim_start_matches("orders: ").trim_end_matches(" rows").parse().unwrap();
    assert!(rows_at_kill > 0 && rows_at_kill < order_rows, "killed mid-file: {seen} of {order_rows}");

    // Reopen from scratch: none of that file's rows, everything before intact, database healthy.
    let reopened = Store::connect(&db.url).await.expect("the database opens cleanly");
    assert_eq!(count(&reopened, "orders").await, 0);
    assert_eq!(count(&reopened, "order_lines").await, 0);
    assert_eq!(count(&reopened, "customers").await, n_customers);
    if db.url.starts_with("sqlite") {
        let (check,): (String,) = reopened.db.reader().fetch_one(query("PRAGMA integrity_check")).await.unwrap();
        assert_eq!(check, "ok");
    }
    // And the same import then runs to the end.
    let out = run_ok(&["import", "orders", orders.to_str().unwrap()], &db.url);
    assert!(out.contains(&format!("{order_rows} created")), "{out}");
    assert_eq!(count(&reopened, "orders").await, order_rows);
    reopened.db.close().await;
});

test_both!(cli_errors_name_file_row_and_column, |db: TestDb| async move {
    let dir = tempfile::tempdir().unwrap();
    let customers = dir.path().join("客户.csv");
    std::fs::write(&customers, "客户编号,姓名,手机\nA,甲,13800138000\nB,乙,1234\nC,,13900139000\n").unwrap();
    let out = patron().args(["import", "customers"]).arg(&customers).args(["--db", &db.url]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "rejected rows exit 2");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("客户.csv: row 3, column \"手机\": not a mainland China mobile"), "{err}");
    assert!(err.contains("客户.csv: row 4, column \"姓名\": required"), "{err}");
    let rejected = std::fs::read_to_string(dir.path().join("客户.csv.rejected.csv")).unwrap();
    assert!(rejected.starts_with("row,column,value,reason\n3,手机,1234,"), "{rejected}");
    assert_eq!(count(&db.store, "customers").await, 0, "all or nothing");
    // --skip-invalid loads the good row and exits 3 to flag the rejections.
    let out = patron().args(["import", "customers"]).arg(&customers).args(["--db", &db.url, "--skip-invalid"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(count(&db.store, "customers").await, 1);
    // File-level errors name the file.
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "会员号,姓名,鞋码\n1,x,42\n").unwrap();
    let out = patron().args(["import", "customers"]).arg(&bad).args(["--db", &db.url]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.csv") && err.contains("unknown column \"会员号\""), "{err}");
    // --map fixes it (and attr. keeps the rest).
    std::fs::write(&bad, "会员号,姓名,attr.鞋码\nM1,x,42\n").unwrap();
    run_ok(&["import", "customers", bad.to_str().unwrap(), "--map", "会员号=customer_id"], &db.url);
    assert_eq!(count(&db.store, "customers").await, 2);
    // A target may be any alias a header may be (`external_id`, as the API calls it); the same
    // row again is reported as unchanged, not updated.
    let out = run_ok(&["import", "customers", bad.to_str().unwrap(), "--map", "会员号=external_id"], &db.url);
    assert!(out.contains("0 created, 0 updated, 1 unchanged, 0 rejected"), "{out}");
    let out = patron().args(["import", "customers", "/nonexistent.csv", "--db", &db.url]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.csv"));
    let out = patron().args(["import", "customers"]).arg(&bad).args(["--db", &db.url, "--map", "oops"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--map \"oops\": expected KEY=VALUE"));
});

test_both!(one_bad_byte_rejects_its_row_not_the_files_encoding, |db: TestDb| async move {
    // A UTF-8 file with one byte that is not UTF-8 (the committed fixture): it used to be read as
    // GB18030 as a whole, every Chinese value stored garbled (王小明 → 鐜嬪皬鏄), exit 0.
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/utf8-one-bad-byte.csv");
    let out = patron().args(["import", "customers"]).arg(&fixture).args(["--db", &db.url]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "the rejected row stops the all-or-nothing import");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("utf8-one-bad-byte.csv: row 3, column \"name\": not valid UTF-8"), "{err}");
    assert!(err.contains("byte 0xFF at position 4"), "{err}");
    assert_eq!(count(&db.store, "customers").await, 0);
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("f.csv");
    std::fs::copy(&fixture, &copy).unwrap();
    let out = patron().args(["import", "customers"]).arg(&copy).args(["--db", &db.url, "--skip-invalid"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<(String, String, String)> =
        db.store.db.reader().fetch_all(query("SELECT external_id, name, city FROM customers ORDER BY external_id")).await.unwrap();
    let want = |e: &str, n: &str, c: &str| (e.to_owned(), n.to_owned(), c.to_owned());
    assert_eq!(rows, vec![want("GB1", "王小明", "上海"), want("GB4", "李四", "北京")], "the other rows load as written");
    // Where the encoding cannot be told, the import stops and asks for --encoding.
    let mixed = dir.path().join("mixed.csv");
    let mut bytes = b"customer_id,name\nX1,\xcd\xf5\xd0\xa1\nX2,".to_vec();
    bytes.extend_from_slice("王".as_bytes());
    bytes.extend_from_slice(b"\xff\nX3,ok\n");
    std::fs::write(&mixed, bytes).unwrap();
    let out = patron().args(["import", "customers"]).arg(&mixed).args(["--db", &db.url]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mixed.csv") && err.contains("cannot tell the file's encoding") && err.contains("--encoding"), "{err}");
    let out = patron()
        .args(["import", "customers"])
        .arg(&mixed)
        .args(["--db", &db.url, "--encoding", "utf-8", "--skip-invalid"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("row 2, column \"name\": not valid UTF-8") && err.contains("row 3, column \"name\""), "{err}");
});

test_both!(an_unterminated_quote_rejects_the_whole_file, |db: TestDb| async move {
    // The committed fixture opens a quote on row 3 and never closes it: the `csv` crate read the
    // rest of the file as one value (1 row loaded, the others lost, 0 rejected). Now the file is
    // refused as a whole, naming the row and line where the quote opened; nothing is written.
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/unterminated-quote.csv");
    for extra in [&[][..], &["--skip-invalid"][..]] {
        let out = patron().args(["import", "customers"]).arg(&fixture).args(["--db", &db.url]).args(extra).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "a file-level error exits 1");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("unterminated-quote.csv") && err.contains("row 3 (line 3)") && err.contains("never closed"), "{err}");
        assert_eq!(count(&db.store, "customers").await, 0);
    }
    assert!(!fixture.with_extension("csv.rejected.csv").exists(), "no rejected-rows file for a file-level error");
});

test_both!(jobs_run_once_escalates_a_breach_once, |db: TestDb| async move {
    use patron_store::tickets::NewTicket;
    let s = &db.store;
    let boss = s.create_user("boss@example.com", "店长", patron_store::users::Role::Manager, None).await.unwrap();
    let c = s
        .create_customer(
            &patron_store::users::Actor::cli(),
            patron_store::customers::NewCustomer { name: "甲".into(), ..Default::default() },
        )
        .await
        .unwrap();
    // Opened at the test clock's now (June 2026); the CLI runs at the real time, months later,
    // when both clocks are long past.
    let t = NewTicket {
        customer_id: c.id,
        kind: "complaint".into(),
        channel: "phone".into(),
        subject: "投诉".into(),
        body: String::new(),
        category: None,
        assignee_id: None,
        department: None,
        store: None,
        opened_at: None,
        order_id: None,
    };
    let t = s.create_ticket(&patron_store::users::Actor::cli(), t).await.unwrap();
    let first = run_ok(&["jobs", "run-once"], &db.url);
    assert!(first.contains("2 breaches escalated"), "{first}");
    let second = run_ok(&["jobs", "run-once"], &db.url);
    assert!(second.contains("0 breaches escalated"), "{second}");
    let (n,): (i64,) = s.db.reader().fetch_one(query("SELECT COUNT(*) FROM events WHERE type = 'ticket.breached'")).await.unwrap();
    assert_eq!(n, 2, "first response and resolution, once each");
    let notes = s.notifications(&patron_store::users::Actor::user(&s.user(boss.id).await.unwrap()), false, 10).await.unwrap();
    assert_eq!(notes.iter().filter(|n| n.ticket_id == Some(t.id)).count(), 2);
    let out = patron().args(["user", "set-manager", "--email", "nobody@example.com", "--db", &db.url]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("no user"));
});

test_both!(users_tokens_and_export, |db: TestDb| async move {
    let dir = tempfile::tempdir().unwrap();
    let mut child = patron()
        .args(["user", "add", "--email", "boss@example.com", "--role", "manager", "--password-stdin", "--db", &db.url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"a long enough password\n").unwrap();
    assert!(child.wait().unwrap().success());
    assert!(db.store.authenticate("boss@example.com", "a long enough password").await.unwrap().is_some());
    let out = patron().args(["user", "add", "--email", "x@example.com", "--role", "agent", "--db", &db.url]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("password: "), "a generated password is printed");
    // `user list` (review item 8: untested): id, email, role, name, one line each.
    let users = run_ok(&["user", "list"], &db.url);
    assert!(users.lines().any(|l| l.contains("\tboss@example.com\tmanager\t")), "{users}");
    assert!(users.lines().any(|l| l.contains("\tx@example.com\tagent\t")), "{users}");
    let token = run_ok(&["token", "create", "--name", "ci", "--role", "manager"], &db.url);
    assert!(token.trim().starts_with("pat_"));
    assert!(db.store.actor_for_token(token.trim()).await.unwrap().is_some());
    let out = patron().args(["token", "create", "--name", "a", "--role", "agent", "--db", &db.url]).output().unwrap();
    assert!(!out.status.success(), "agent tokens need --user");
    // A read-only token that expires in 30 days (issue 14 §3); list shows scope and expiry,
    // revoke stops it (review item 8: token list and revoke were untested).
    let reader = run_ok(&["token", "create", "--name", "reader", "--role", "admin", "--expires-in", "30", "--read-only"], &db.url);
    let t = db.store.token_actor(reader.trim()).await.unwrap().expect("a live token");
    assert!(t.read_only);
    let list = run_ok(&["token", "list"], &db.url);
    let line = list.lines().find(|l| l.contains("\treader\t")).unwrap_or_default().to_owned();
    assert!(line.contains("\tread_only\t") && line.contains("expires 20"), "{list}");
    assert!(list.lines().any(|l| l.contains("\tci\t") && l.contains("\tread_write\t") && l.ends_with("expires never")), "{list}");
    let id = line.split('\t').next().unwrap().to_owned();
    let out = run_ok(&["token", "revoke", &id], &db.url);
    assert!(out.contains(&format!("token {id} revoked")), "{out}");
    assert!(db.store.token_actor(reader.trim()).await.unwrap().is_none());
    assert!(!run_ok(&["token", "list"], &db.url).contains("\treader\t"));
    let out = patron().args(["token", "revoke", &id, "--db", &db.url]).output().unwrap();
    assert!(!out.status.success(), "revoking twice fails");
    for days in ["0", "-1", "x"] {
        let out =
            patron().args(["token", "create", "--name", "z", "--role", "admin", "--expires-in", days, "--db", &db.url]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "--expires-in {days}: clap refuses it");
    }

    let csv = dir.path().join("c.csv");
    std::fs::write(&csv, "customer_id,name,city,owner\nE1,甲,上海,boss@example.com\nE2,乙,北京,\n").unwrap();
    run_ok(&["import", "customers", csv.to_str().unwrap()], &db.url);
    let out_file = dir.path().join("out.csv");
    let out = run_ok(&["export", "customers", "--filter", "city=上海", "--out", out_file.to_str().unwrap()], &db.url);
    assert!(out.starts_with("1 customers"), "{out}");
    let text = std::fs::read_to_string(&out_file).unwrap();
    assert!(text.contains("E1,person,甲") && text.contains("boss@example.com") && !text.contains("E2"), "{text}");
    let out =
        patron().args(["export", "customers", "--filter", "colour=red", "--out"]).arg(&out_file).args(["--db", &db.url]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown key"));
});

/// Customers with their tags, by id (the contents a backup must hold).
async fn customers_with_tags(store: &Store) -> Vec<(i64, String, String)> {
    store
        .db
        .reader()
        .fetch_all(query(
            "SELECT c.id, c.name, COALESCE((SELECT GROUP_CONCAT(t.tag, ';') FROM (SELECT tag FROM customer_tags WHERE customer_id = c.id ORDER BY tag) t), '') \
             FROM customers c ORDER BY c.id",
        ))
        .await
        .expect("customers")
}

// Issue 14 §3: `patron backup` copies a SQLite database online while it is written to, and
// `patron restore` brings the copy back: one consistent snapshot (every customer with both of
// the tags written in its transaction), a prefix of the writes, the same contents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_backup_under_write_load_and_restore() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let db = patron_store::testing::test_db(patron_store::Engine::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let new_customer = |i: u64| patron_store::customers::NewCustomer {
        name: format!("客户{i}"),
        tags: vec![format!("a{i}"), format!("b{i}")],
        ..Default::default()
    };
    for i in 0..200 {
        db.store.create_customer(&patron_store::users::Actor::cli(), new_customer(i)).await.unwrap();
    }
    // A writer adds customers (a row and two tags per transaction) until the backup is done.
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(200));
    let writer = {
        let (store, stop, written) = (db.store.clone(), stop.clone(), written.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let i = written.load(Ordering::Relaxed);
                store.create_customer(&patron_store::users::Actor::cli(), new_customer(i)).await.expect("write during the backup");
                written.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    // The writer has written before the backup starts.
    while written.load(Ordering::Relaxed) < 210 {
        tokio::task::yield_now().await;
    }
    let before = written.load(Ordering::Relaxed);
    let backup = dir.path().join("backup.db");
    let (url, file) = (db.url.clone(), backup.clone());
    let out =
        tokio::task::spawn_blocking(move || patron().args(["backup", "--db", &url, "--out"]).arg(&file).output().unwrap()).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("backed up "), "{}", String::from_utf8_lossy(&out.stdout));
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    let after = written.load(Ordering::Relaxed);

    // Restore into a new file: the CLI checks the copy, places it and migrates it.
    let target = dir.path().join("restored.db");
    let target_url = format!("sqlite://{}", target.display());
    let out = patron().args(["restore", "--from"]).arg(&backup).args(["--db", &target_url]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("restored "));
    let restored = Store::connect(&target_url).await.unwrap();
    let copy = customers_with_tags(&restored).await;
    let source = customers_with_tags(&db.store).await;
    let n = copy.len() as u64;
    assert!(n >= before && n <= after, "a snapshot taken during the writes: {before} ≤ {n} ≤ {after}");
    assert!(copy.iter().all(|(_, _, tags)| tags.split(';').count() == 2), "no half-written customer");
    assert_eq!(copy[..], source[..copy.len()], "the copy is the source as it was: the same rows, in order");
    let (check,): (String,) = restored.db.reader().fetch_one(query("PRAGMA integrity_check")).await.unwrap();
    assert_eq!(check, "ok");
    restored.db.close().await;

    // An existing target is replaced only with --force; a file that is not a patron database is
    // refused before anything is touched; a second backup to the same file is refused.
    let out = patron().args(["restore", "--from"]).arg(&backup).args(["--db", &target_url]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pass --force"), "{}", String::from_utf8_lossy(&out.stderr));
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, "not a database").unwrap();
    let out = patron().args(["restore", "--force", "--from"]).arg(&junk).args(["--db", &target_url]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("junk.db"), "{}", String::from_utf8_lossy(&out.stderr));
    let still = Store::connect(&target_url).await.unwrap();
    assert_eq!(count(&still, "customers").await, n as i64, "the target is untouched");
    still.db.close().await;
    let out = patron().args(["restore", "--force", "--from"]).arg(&backup).args(["--db", &target_url]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = patron().args(["backup", "--db", &db.url, "--out"]).arg(&backup).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists already"));
}

// PostgreSQL is backed up with pg_dump (custom format) when it is on the PATH, else the command
// is named and the exit is non-zero; `patron restore` names pg_restore for PostgreSQL targets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_backup_uses_pg_dump() {
    let db = patron_store::testing::test_db(patron_store::Engine::Postgres).await;
    db.store
        .create_customer(
            &patron_store::users::Actor::cli(),
            patron_store::customers::NewCustomer { name: "甲".into(), ..Default::default() },
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("pg.dump");
    let out = patron().args(["backup", "--db", &db.url, "--out"]).arg(&out_file).output().unwrap();
    let has_pg_dump = Command::new("pg_dump").arg("--version").output().is_ok_and(|o| o.status.success());
    if has_pg_dump {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let head = std::fs::read(&out_file).unwrap();
        assert!(head.starts_with(b"PGDMP"), "a pg_dump custom-format archive");
        let list = Command::new("pg_restore").arg("--list").arg(&out_file).output().unwrap();
        assert!(String::from_utf8_lossy(&list.stdout).contains("TABLE DATA public customers"));
    } else {
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("pg_dump --format=custom"));
    }
    // No PATH at all: the command is named, and the exit is non-zero.
    let other = dir.path().join("other.dump");
    let out = patron().env("PATH", "").args(["backup", "--db", &db.url, "--out"]).arg(&other).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pg_dump --format=custom --no-owner --file"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = patron().args(["restore", "--from"]).arg(&out_file).args(["--db", &db.url]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pg_restore --no-owner --dbname"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `PATRON_LOG_FORMAT=json`: every log line is a JSON object (for log shippers), with the
/// message and fields apart; the metrics listener answers without a login.
#[test]
fn json_logs_and_the_metrics_listener() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("logs.db").display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_patron"))
        .env("PATRON_LOG", "info")
        .env("PATRON_LOG_FORMAT", "json")
        .args(["serve", "--db", &db, "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--jobs-every", "0"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("start patron serve");
    let stderr = child.stderr.take().unwrap();
    let mut serving = None;
    let mut metrics = None;
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        let addr = v["fields"]["address"].as_str().map(str::to_owned);
        match v["fields"]["message"].as_str() {
            Some("patron is serving") => serving = addr,
            Some("metrics are served") => metrics = addr,
            _ => {}
        }
        if serving.is_some() && metrics.is_some() {
            break;
        }
    }
    let metrics = metrics.expect("the metrics listener's address is logged");
    assert!(serving.is_some());
    // A plain HTTP/1.0 request over a socket: no client library needed for one GET.
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(&metrics).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(body.starts_with("HTTP/1.0 200") || body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("patron_up 1"), "{body}");
}
// kill -9 of `patron jobs run-once` in the middle of sending e-mail to a real SMTP server
// (aiosmtpd, from .ci/run's target/smtp-venv; the relay holds each recipient 0.3 s and says so),
// then a restart once the lease of the message in flight has run out: every customer gets their
// e-mail exactly once, counted at the SMTP server.
test_both!(a_killed_sender_neither_doubles_nor_loses_a_message, |db: TestDb| async move {
    use patron_store::engagement::outbox::NewMessage;
    use patron_store::engagement::templates::NewTemplate;
    use patron_store::engagement::{Channel, EngagementSettings, Purpose};
    use patron_store::users::Actor;
    let s = &db.store;
    s.set_engagement_settings(
        &Actor::cli(),
        &EngagementSettings {
            global_control_percent: 0.0,
            cap_7_days: 100,
            cap_30_days: 100,
            rate_per_second: 1000.0,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let t = NewTemplate {
        name: "t".into(),
        channel: Channel::Email,
        purpose: Purpose::Marketing,
        subject: Some("{{ salutation }}，新菜".into()),
        body_text: "{{ salutation }}，新菜上市 {{ unsubscribe_url }}".into(),
        body_html: None,
    };
    let template = s.create_template(&Actor::cli(), t).await.unwrap().unwrap().template.id;
    const N: usize = 8;
    for i in 0..N {
        let c = s
            .create_customer(
                &Actor::cli(),
                patron_store::customers::NewCustomer {
                    name: format!("王{i}"),
                    email: Some(format!("k{i}@example.com")),
                    consents: [("email".to_owned(), true)].into_iter().collect(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let m = NewMessage {
            customer_id: c.id,
            message_key: "kill:1".into(),
            channel: Channel::Email,
            purpose: Purpose::Marketing,
            template_id: Some(template),
            campaign_id: None,
            content: None,
            skipped: None,
            not_before: s.now(),
        };
        assert!(s.enqueue_message(m).await.unwrap());
    }

    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/smtp-venv/bin/python");
    assert!(python.exists(), "{} missing: run `bash .ci/run` (it installs aiosmtpd)", python.display());
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap();
    let mail = tempfile::tempdir().unwrap();
    let mut sink = Command::new(python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../patron-server/tests/support/smtp_sink.py"))
        .arg(port.to_string())
        .arg(mail.path())
        .arg("0.3")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = BufReader::new(sink.stdout.take().unwrap()).lines();
    assert_eq!(said.next().unwrap().unwrap(), "READY");
    let files = tempfile::tempdir().unwrap();
    let smtp_url = format!("smtp://127.0.0.1:{port}");
    let args = |cmd: &mut Command| {
        cmd.args([
            "jobs",
            "run-once",
            "--db",
            &db.url,
            "--smtp-url",
            &smtp_url,
            "--mail-from",
            "crm@example.com",
            "--public-url",
            "http://127.0.0.1:9",
        ])
        .arg("--outbox-dir")
        .arg(files.path());
    };
    let mut sender = patron();
    args(&mut sender);
    let mut sender = sender.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    // Killed while the relay holds the 4th recipient: three are sent and recorded, the 4th is in
    // flight, and the rest of the batch is claimed (leased) but not yet tried.
    loop {
        let line = said.next().expect("the sink stopped talking").unwrap();
        if line == "RCPT 4" {
            break;
        }
    }
    sender.kill().unwrap(); // SIGKILL
    sender.wait().unwrap();
    let status = |st: &'static str| async move {
        let (n,): (i64,) = s.db.reader().fetch_one(query("SELECT COUNT(*) FROM outbox WHERE status = $1").bind(st)).await.unwrap();
        n
    };
    assert_eq!((status("sent").await, status("sending").await, status("queued").await), (3, N as i64 - 3, 0));
    let delivered =
        |dir: &Path| std::fs::read_dir(dir).unwrap().filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "eml")).count();
    assert_eq!(delivered(mail.path()), 3);
    // A restart before the leases run out leaves the claimed messages alone …
    let mut again = patron();
    args(&mut again);
    let out = again.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(status("sending").await, N as i64 - 3);
    assert_eq!(delivered(mail.path()), 3);
    // … and after them, takes them over, the one in flight with the same Message-ID.
    let mut tx = s.db.begin().await.unwrap();
    tx.execute(
        query("UPDATE outbox SET lease_until = $1 WHERE status = 'sending'").bind(chrono::Utc::now() - chrono::Duration::seconds(1)),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let mut last = patron();
    args(&mut last);
    let out = last.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!((status("sent").await, status("sending").await, status("queued").await), (N as i64, 0, 0));
    // Counted at the SMTP server: N messages, N different Message-IDs, each recipient once.
    let mut ids = std::collections::BTreeSet::new();
    let mut to = std::collections::BTreeSet::new();
    for e in std::fs::read_dir(mail.path()).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "eml") {
            let raw = std::fs::read_to_string(&p).unwrap();
            let h = |name: &str| raw.lines().find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned())).unwrap();
            ids.insert(h("Message-ID:"));
            to.insert(h("To:"));
        }
    }
    assert_eq!((delivered(mail.path()), ids.len(), to.len()), (N, N, N));
    drop(sink.stdin.take());
    let _ = sink.kill();
    let _ = sink.wait();
});

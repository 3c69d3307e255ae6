//! `patron`: serve the CRM, load demo data, import and export files, manage users and tokens.

/// mimalloc instead of glibc's malloc: a request allocates and frees many small values (rows,
/// JSON) on two threads, where glibc spent ~12% of the server's CPU in `malloc`, `free` and
/// `malloc_consolidate`. At 1 M customers and 16 connections, interleaved runs of both builds
/// (bench/api's load): the 360 from ~3,450 to ~4,550 requests/s (p99 7.8 → 6.0 ms), and on a
/// slower hour 2,950 → 3,400; the timeline +10%.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod analyze;
mod demo_access;
mod demo_accounts;
mod demo_campaigns;
mod demo_events;
mod demo_journeys;
mod demo_loyalty;
mod demo_service;
mod demo_surveys;
mod demo_web;
mod validate;

use std::io::{IsTerminal, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use patron_server::{AppState, ServerConfig};
use patron_store::customers::CustomerFilter;
use patron_store::import::{write_rejections, Encoding, ImportKind, ImportOptions, ImportReport};
use patron_store::users::{Actor, Role};
use patron_store::{Store, StoreConfig};

#[derive(Parser)]
#[command(name = "patron", version, about = "patron — the loyalty-first CRM", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the data lives.
#[derive(Args, Clone)]
struct DbArgs {
    /// Database URL: sqlite://FILE (created if missing) or postgres://USER@HOST/DB.
    #[arg(long = "db", env = "PATRON_DATABASE_URL", default_value = "sqlite://patron.db", hide_env_values = true)]
    url: String,
    /// Business time zone: calendar days and imported times without an offset use it.
    #[arg(long, env = "PATRON_TIME_ZONE", default_value = "Asia/Shanghai")]
    time_zone: String,
}

#[derive(Subcommand)]
enum Command {
    /// Back up the database to a new file: SQLite online (VACUUM INTO; writers go on), PostgreSQL
    /// with pg_dump (custom format).
    Backup {
        #[command(flatten)]
        db: DbArgs,
        /// The backup file (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Restore a SQLite backup as the database of --db (stop `patron serve` on it first).
    Restore {
        #[command(flatten)]
        db: DbArgs,
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
        /// Replace an existing database file.
        #[arg(long)]
        force: bool,
    },
    /// Run the web UI and the REST API.
    Serve {
        #[command(flatten)]
        db: DbArgs,
        /// Address to listen on.
        #[arg(long, env = "PATRON_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Mark cookies Secure (when served over HTTPS behind a proxy).
        #[arg(long, env = "PATRON_SECURE_COOKIES")]
        secure_cookies: bool,
        /// The address customers reach the server at, for the links they are sent
        /// (https://crm.example.com); default: the address each request came to.
        #[arg(long, env = "PATRON_PUBLIC_URL")]
        public_url: Option<String>,
        /// Seconds between the scheduler's rounds (SLA warnings and breaches, confirmations by
        /// timeout, survey invitations); 0 runs no scheduler here (run `patron jobs run-once`
        /// from cron instead).
        #[arg(long, env = "PATRON_JOBS_EVERY", default_value_t = 5)]
        jobs_every: u64,
        /// Folder the scheduler writes messages to customers into (one file each) while no
        /// messaging provider is set.
        #[arg(long, visible_alias = "outbox-dir", env = "PATRON_OUTBOX", default_value = "outbox")]
        outbox: std::path::PathBuf,
        /// Also serve `/metrics` (Prometheus text, no login) on this address, for a scraper on a
        /// private network; without it `/metrics` on the main address needs an admin's API token.
        #[arg(long, env = "PATRON_METRICS_LISTEN")]
        metrics_listen: Option<SocketAddr>,
        /// Web analytics events (`POST /collect`) one client address may send per minute
        /// (and at once); raise it when a proxy sends every visitor's events from one address.
        #[arg(long, env = "PATRON_COLLECT_PER_MINUTE", default_value_t = 600)]
        collect_per_minute: u32,
        #[command(flatten)]
        providers: ProviderArgs,
    },
    /// Run the work that is due now (SLA warnings and breaches, confirmations by timeout) once,
    /// and exit: for cron, tests and operators. Safe beside running servers: each piece of work
    /// is done once.
    Jobs {
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// Create a database with realistic demo data, then serve it.
    Demo {
        /// Database URL (default: a demo SQLite file next to you).
        #[arg(long = "db", env = "PATRON_DEMO_DATABASE_URL", default_value = "sqlite://patron-demo.db")]
        url: String,
        /// Number of customers.
        #[arg(long, default_value_t = 5000)]
        customers: u64,
        /// Random seed (the same seed and day give the same data).
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Load the data and exit without serving.
        #[arg(long)]
        no_serve: bool,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
    /// Write synthetic customers, contacts, orders and interactions CSV files in the import format.
    Generate {
        /// Number of customers.
        #[arg(long)]
        customers: u64,
        /// Random seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Output directory (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// First day of the period (YYYY-MM-DD).
        #[arg(long)]
        start: Option<String>,
        /// Last day of the period (YYYY-MM-DD).
        #[arg(long)]
        end: Option<String>,
        /// Assign owners from the demo account managers (create them with `patron user add` first).
        #[arg(long)]
        with_owners: bool,
    },
    /// Import a CSV or JSON-lines file.
    Import {
        /// What the file holds.
        #[arg(value_parser = ["customers", "contacts", "orders", "interactions", "tickets", "fulfilment"])]
        kind: String,
        /// The file.
        file: PathBuf,
        #[command(flatten)]
        db: DbArgs,
        /// Map a source column to a field: --map 会员号=customer_id (repeatable).
        #[arg(long = "map", value_name = "SOURCE=FIELD")]
        map: Vec<String>,
        /// Force the encoding instead of detecting it.
        #[arg(long, value_parser = ["utf-8", "gb18030"])]
        encoding: Option<String>,
        /// Load the valid rows even if some are rejected (default: all or nothing).
        #[arg(long)]
        skip_invalid: bool,
        /// Validate and report, write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Compute every customer's scores: summaries, RFM, ABCD, lifecycle, churn, BG/NBD,
    /// Gamma-Gamma, CLV, loyalty. With --orders FILE it reads a file and writes scores.csv and
    /// params.json (no database); otherwise it scores the database and stores the results.
    Analyze {
        #[command(flatten)]
        db: DbArgs,
        /// The date the analysis is as of (YYYY-MM-DD; default today in the business time zone;
        /// required with --orders).
        #[arg(long)]
        as_of: Option<String>,
        /// Rebuild every customer's summary with one aggregation first (database mode).
        #[arg(long)]
        rebuild: bool,
        #[command(flatten)]
        model: analyze::ModelArgs,
        #[command(flatten)]
        file: analyze::OrdersFileArgs,
        /// File mode: where to write the per-customer scores.
        #[arg(long, value_name = "FILE", requires = "orders", default_value = "scores.csv")]
        out: PathBuf,
        /// File mode: where to write the fitted parameters and fit report.
        #[arg(long, value_name = "FILE", requires = "orders", default_value = "params.json")]
        params: PathBuf,
    },
    /// Check the models on held-out data (Fader, Hardie & Lee 2005): fit BG/NBD and Gamma-Gamma on
    /// the orders up to --calibration-end and compare their forecasts with the purchase days after
    /// it up to --holdout-end. With --orders FILE it writes validation.json (no database);
    /// otherwise it validates on the database and stores the result (the dashboard shows it).
    Validate {
        #[command(flatten)]
        db: DbArgs,
        /// Last day of the calibration period (YYYY-MM-DD, inclusive).
        #[arg(long)]
        calibration_end: String,
        /// Last day of the holdout period (YYYY-MM-DD, inclusive; default today in the business
        /// time zone; required with --orders).
        #[arg(long)]
        holdout_end: Option<String>,
        /// Time unit of the fit and of the holdout length (weeks for comparison with the literature).
        #[arg(long, value_parser = ["days", "weeks"], default_value = "days")]
        time_unit: String,
        #[command(flatten)]
        file: analyze::OrdersFileArgs,
        /// File mode: where to write the validation document.
        #[arg(long, value_name = "FILE", requires = "orders", default_value = "validation.json")]
        out: PathBuf,
    },
    /// Export a list to CSV.
    Export {
        /// What to export.
        #[arg(value_parser = ["customers"])]
        what: String,
        #[command(flatten)]
        db: DbArgs,
        /// Filter: q=TEXT, tag=TAG, city=CITY, kind=person|organisation, owner=EMAIL (repeatable).
        #[arg(long = "filter", value_name = "KEY=VALUE")]
        filter: Vec<String>,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// Values as stored, for machines: without it, a value that starts with =, +, -, @, a tab
        /// or a carriage return gets a leading apostrophe so a spreadsheet does not run it as a
        /// formula (patron's importer takes it off again).
        #[arg(long)]
        raw: bool,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// The database: distribute it over a Citus cluster, or show how it is laid out.
    #[command(name = "db")]
    Database {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Campaigns (the API and the UI have the rest).
    Campaigns {
        #[command(subcommand)]
        command: CampaignsCommand,
    },
}

#[derive(Subcommand)]
enum CampaignsCommand {
    /// Create a campaign and launch it now (as the CLI actor); prints the campaign with its counts as JSON.
    Launch {
        #[command(flatten)]
        db: DbArgs,
        /// Name.
        #[arg(long)]
        name: String,
        /// A saved segment's key or a segment rule.
        #[arg(long)]
        segment: String,
        /// email, sms, wechat, mail or preferred.
        #[arg(long, default_value = "preferred")]
        channel: String,
        /// The marketing template's id.
        #[arg(long)]
        template_id: i64,
        /// Holdout, percent of the eligible audience.
        #[arg(long, default_value_t = 10.0)]
        holdout: f64,
        /// Conversion window, days.
        #[arg(long, default_value_t = 7)]
        window_days: i64,
    },
}

#[derive(Subcommand)]
enum JobsCommand {
    /// Run everything due now, print what was done, exit.
    RunOnce {
        #[command(flatten)]
        db: DbArgs,
        /// Folder messages to customers are written into (survey invitations).
        #[arg(long, visible_alias = "outbox-dir", env = "PATRON_OUTBOX", default_value = "outbox")]
        outbox: std::path::PathBuf,
        /// The address customers reach the server at, for the links in the messages.
        #[arg(long, env = "PATRON_PUBLIC_URL", default_value = "http://127.0.0.1:8080")]
        public_url: String,
        #[command(flatten)]
        providers: ProviderArgs,
    },
}

/// Where messages to customers go (without any: JSON lines in the outbox folder).
#[derive(clap::Args, Clone, Default)]
struct ProviderArgs {
    /// SMTP relay for e-mail: smtp://user:pass@host:port (plain, a local relay).
    #[arg(long, env = "PATRON_SMTP_URL")]
    smtp_url: Option<String>,
    /// The sender of e-mail ("patron <crm@example.com>").
    #[arg(long, env = "PATRON_MAIL_FROM")]
    mail_from: Option<String>,
    /// Webhook SMS are posted to (signed with --outbound-secret).
    #[arg(long, env = "PATRON_SMS_WEBHOOK")]
    sms_webhook: Option<String>,
    /// Webhook WeChat messages are posted to (signed with --outbound-secret).
    #[arg(long, env = "PATRON_WECHAT_WEBHOOK")]
    wechat_webhook: Option<String>,
    /// Shared secret of the webhooks' HMAC-SHA256 signatures (outbound and inbound SMS).
    #[arg(long, env = "PATRON_OUTBOUND_SECRET", hide_env_values = true)]
    outbound_secret: Option<String>,
}

impl ProviderArgs {
    fn delivery(&self, dir: &std::path::Path, public_url: &str) -> Result<patron_server::delivery::Delivery> {
        patron_server::delivery::Delivery::new(patron_server::delivery::DeliveryConfig {
            smtp_url: self.smtp_url.clone(),
            mail_from: self.mail_from.clone(),
            sms_webhook: self.sms_webhook.clone(),
            wechat_webhook: self.wechat_webhook.clone(),
            outbound_secret: self.outbound_secret.clone(),
            public_url: public_url.to_owned(),
            outbox_dir: dir.to_owned(),
            timeout: std::time::Duration::from_secs(10),
        })
        .map_err(|e| anyhow!("{e}"))
    }
}

#[derive(Subcommand)]
enum DbCommand {
    /// Apply the migrations, then distribute the tables over the Citus cluster the database is
    /// on: customers and everything about them sharded by customer, the small shared tables
    /// copied to every node. Works on an empty or a loaded database; a second run changes nothing.
    Distribute {
        #[command(flatten)]
        db: DbArgs,
        /// Shards per distributed table (default: the cluster's citus.shard_count, 32).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64_000))]
        shards: Option<u32>,
    },
    /// Show the engine and version; on Citus the nodes, and shards and rows per node.
    Status {
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user.
    Add {
        #[command(flatten)]
        db: DbArgs,
        /// Login email.
        #[arg(long)]
        email: String,
        /// Role.
        #[arg(long, value_parser = ["admin", "manager", "agent"])]
        role: String,
        /// Display name (default: the part of the email before @).
        #[arg(long)]
        name: Option<String>,
        /// Read the password from standard input (otherwise one is generated and printed).
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Set a user's manager: SLA breaches of the user's tickets escalate to them.
    SetManager {
        #[command(flatten)]
        db: DbArgs,
        /// The user's email.
        #[arg(long)]
        email: String,
        /// The manager's email (leave out to clear).
        #[arg(long)]
        manager: Option<String>,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create an API token; it is printed once and stored only as a hash.
    Create {
        #[command(flatten)]
        db: DbArgs,
        /// A name to recognise it by.
        #[arg(long)]
        name: String,
        /// Role it acts with: admin, manager, agent or a custom role's name.
        #[arg(long)]
        role: String,
        /// Act for this user (required for agent tokens, whose portfolio is the user's).
        #[arg(long)]
        user: Option<String>,
        /// Stop working after this many days (default: never).
        #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..=3650))]
        expires_in: Option<u32>,
        /// Reads only: any request but GET is refused with 403.
        #[arg(long)]
        read_only: bool,
    },
    /// List tokens (never their secrets).
    List {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Revoke a token.
    Revoke {
        #[command(flatten)]
        db: DbArgs,
        /// Token id.
        id: i64,
    },
}

fn main() -> std::process::ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PATRON_LOG").unwrap_or_else(|_| "info,sqlx=error".into());
    // PATRON_LOG_FORMAT=json: one JSON object a line, for log shippers.
    if std::env::var("PATRON_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        tracing_subscriber::fmt().json().with_env_filter(filter).with_writer(std::io::stderr).init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    }
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `patron db status` in words.
fn print_status(s: &patron_store::db::citus::ClusterStatus) {
    println!("engine: {}", s.engine);
    println!("version: {}", s.version);
    let Some(citus) = &s.citus_version else {
        if s.engine == "postgres" {
            println!("citus: the citus extension is missing (not distributed)");
        }
        return;
    };
    println!("citus: {citus}");
    println!("distributed: {}", if s.distributed { "yes" } else { "no (run patron db distribute)" });
    println!("nodes:");
    for n in &s.nodes {
        let state = if n.active { "" } else { " (inactive)" };
        println!("  {:<22} {:<11} {:>5} shards {:>12} rows{state}", n.node, n.role, n.shards, n.rows);
    }
    println!("tables:");
    for t in &s.tables {
        let layout = match (t.kind.as_str(), &t.column) {
            ("distributed", Some(c)) => format!("distributed by {c} (co-location {})", t.colocation.unwrap_or_default()),
            (kind, _) => kind.to_owned(),
        };
        let rows: Vec<String> = t.rows.iter().map(|(node, n)| format!("{node}: {n}")).collect();
        let rows = if rows.is_empty() { String::new() } else { format!("  rows {}", rows.join(", ")) };
        println!("  {:<20} {:<45} {:>4} shards{rows}", t.name, layout, t.shards);
    }
}

/// `patron backup`: SQLite by `VACUUM INTO` (online), PostgreSQL by pg_dump when it is on the
/// PATH (otherwise the command to run, and an error).
async fn backup(db: &DbArgs, out: &Path) -> Result<()> {
    if out.exists() {
        bail!("{} exists already; back up to a new file", out.display());
    }
    if patron_store::backup::sqlite_file(&db.url)?.is_some() {
        let store = open(db).await?;
        let started = std::time::Instant::now();
        let bytes = store.backup_sqlite(out).await.map_err(|e| anyhow!("{}: {e}", out.display()))?;
        store.db.close().await;
        println!(
            "backed up {} to {} ({bytes} bytes, {:.1} s)",
            patron_store::db::redact_url(&db.url),
            out.display(),
            started.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    let command = format!("pg_dump --format=custom --no-owner --file {} --dbname {}", out.display(), patron_store::db::redact_url(&db.url));
    let status = match tokio::process::Command::new("pg_dump")
        .args(["--format=custom", "--no-owner", "--file"])
        .arg(out)
        .arg("--dbname")
        .arg(&db.url)
        .status()
        .await
    {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("PostgreSQL is backed up with pg_dump, which is not on the PATH; install the PostgreSQL client (the server's major version or newer) and run: {command}")
        }
        Err(e) => bail!("cannot run pg_dump: {e} (the command: {command})"),
    };
    if !status.success() {
        let _ = std::fs::remove_file(out);
        bail!("pg_dump failed ({status}); the command was: {command}");
    }
    let bytes = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    println!(
        "backed up {} to {} with pg_dump ({bytes} bytes; restore: pg_restore --no-owner --dbname URL {})",
        patron_store::db::redact_url(&db.url),
        out.display(),
        out.display()
    );
    Ok(())
}

async fn open(db: &DbArgs) -> Result<Store> {
    let tz: patron_store::BusinessTz =
        db.time_zone.parse().map_err(|_| anyhow!("unknown time zone {:?} (use an IANA name like Asia/Shanghai)", db.time_zone))?;
    let store = Store::connect(&db.url).await.with_context(|| format!("opening {}", patron_store::db::redact_url(&db.url)))?;
    Ok(store.with_config(StoreConfig { business_tz: tz }))
}

async fn run(cli: Cli) -> Result<std::process::ExitCode> {
    use std::process::ExitCode;
    match cli.command {
        Command::Backup { db, out } => backup(&db, &out).await?,
        Command::Restore { db, from, force } => {
            if patron_store::backup::sqlite_file(&db.url)?.is_none() {
                bail!(
                    "patron restore writes SQLite databases; restore a PostgreSQL backup with pg_restore into an empty database: \
                     pg_restore --no-owner --dbname {} {}",
                    patron_store::db::redact_url(&db.url),
                    from.display()
                );
            }
            let store =
                patron_store::backup::restore_sqlite(&from, &db.url, force).await.map_err(|e| anyhow!("{}: {e}", from.display()))?;
            let (customers,): (i64,) = store.db.reader().fetch_one(patron_store::db::query("SELECT COUNT(*) FROM customers")).await?;
            let (orders,): (i64,) = store.db.reader().fetch_one(patron_store::db::query("SELECT COUNT(*) FROM orders")).await?;
            store.db.close().await;
            println!("restored {} into {} ({customers} customers, {orders} orders)", from.display(), patron_store::db::redact_url(&db.url));
        }
        Command::Serve { db, listen, secure_cookies, public_url, jobs_every, outbox, metrics_listen, collect_per_minute, providers } => {
            let store = open(&db).await?;
            // The built-in journeys exist (disabled) from the first start on.
            store.ensure_builtin_journeys().await?;
            if let Some(u) = &public_url {
                if !(u.starts_with("http://") || u.starts_with("https://")) {
                    bail!("--public-url {u:?}: expected http://… or https://…");
                }
            }
            let base_url = public_url.clone().unwrap_or_else(|| format!("{}://{listen}", if secure_cookies { "https" } else { "http" }));
            let delivery = std::sync::Arc::new(providers.delivery(&outbox, &base_url)?);
            let scheduler = (jobs_every > 0)
                .then(|| patron_server::jobs::spawn_scheduler_with(store.clone(), std::time::Duration::from_secs(jobs_every), delivery));
            let outbound_secret = providers.outbound_secret.clone();
            serve(
                store,
                listen,
                metrics_listen,
                ServerConfig {
                    secure_cookies,
                    public_url,
                    outbound_secret,
                    collect_burst: collect_per_minute.max(1) / 5 + 1,
                    collect_per_minute,
                    ..Default::default()
                },
            )
            .await?;
            if let Some(s) = scheduler {
                s.abort();
            }
        }
        Command::Campaigns { command: CampaignsCommand::Launch { db, name, segment, channel, template_id, holdout, window_days } } => {
            let store = open(&db).await?;
            let channel: patron_store::engagement::campaigns::CampaignChannel =
                serde_json::from_value(serde_json::Value::String(channel.clone()))
                    .map_err(|_| anyhow::anyhow!("--channel {channel:?}: email, sms, wechat, mail or preferred"))?;
            let new = patron_store::engagement::campaigns::NewCampaign {
                name,
                segment,
                channel,
                template_id,
                holdout_percent: holdout,
                conversion_window_days: window_days,
                send_at: None,
            };
            let created = store.create_campaign(&Actor::cli(), new).await?;
            let started = std::time::Instant::now();
            let launched = store.launch_campaign(&Actor::cli(), created.id).await?;
            let seconds = started.elapsed().as_secs_f64();
            println!("{}", serde_json::json!({"campaign": launched, "launch_seconds": seconds}));
        }
        Command::Jobs { command: JobsCommand::RunOnce { db, outbox, public_url, providers } } => {
            if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
                bail!("--public-url {public_url:?}: expected http://… or https://…");
            }
            let store = open(&db).await?;
            let delivery = providers.delivery(&outbox, &public_url)?;
            let (r, sent) = patron_server::jobs::run_round_with(&store, &delivery)
                .await
                .with_context(|| format!("sending the outbox (files in {})", outbox.display()))?;
            println!(
                "sla: {} warnings, {} breaches escalated, {} resolutions confirmed by timeout",
                r.sla.warnings, r.sla.breaches, r.sla.auto_confirmed
            );
            println!("surveys: {} invited, {} invitations put in the outbox", r.surveys.invited, r.surveys.delivered);
            println!("loyalty: {} lots expired ({} points)", r.loyalty.expired_lots, r.loyalty.expired_points);
            println!(
                "messages: {} sent, {} to retry, {} failed, {} skipped, {} waiting for the end of quiet hours",
                sent.sent, sent.retrying, sent.failed, sent.skipped, sent.deferred
            );
        }
        Command::Demo { url, customers, seed, no_serve, listen } => {
            let db = DbArgs { url, time_zone: "Asia/Shanghai".into() };
            let store = open(&db).await?;
            // The demo shop (a site that loads the web analytics snippet) on the next port.
            let host = if listen.ip().is_unspecified() { "127.0.0.1".to_owned() } else { listen.ip().to_string() };
            let shop_listen = SocketAddr::new(listen.ip(), listen.port().wrapping_add(1));
            let shop_origin = format!("http://{host}:{}", shop_listen.port());
            let (password, site_id) = demo(&store, customers, seed, &shop_origin).await?;
            if no_serve {
                println!("demo data loaded into {}", patron_store::db::redact_url(&db.url));
                println!("login: admin@demo.patron.local  password: {password}");
            } else {
                let shop = tokio::net::TcpListener::bind(shop_listen).await.with_context(|| format!("listening on {shop_listen}"))?;
                let shop_app = demo_web::shop_router(store.clone(), &format!("http://{host}:{}", listen.port()), site_id);
                let shop_server = tokio::spawn(async move { axum::serve(shop, shop_app).await });
                println!("\npatron demo is running on http://{listen}/");
                println!("the demo shop (web analytics) is on {shop_origin}/");
                println!("login: admin@demo.patron.local  password: {password}\n");
                let outbox = patron_server::outbox::Outbox { dir: "outbox".into(), base_url: format!("http://{listen}") };
                println!("messages to customers (survey invitations) go to the folder {}\n", outbox.dir.display());
                let scheduler = patron_server::jobs::spawn_scheduler(store.clone(), std::time::Duration::from_secs(5), outbox);
                serve(store, listen, None, ServerConfig::default()).await?;
                scheduler.abort();
                shop_server.abort();
            }
        }
        Command::Database { command: DbCommand::Distribute { db, shards } } => {
            let started = std::time::Instant::now();
            let report = patron_store::db::citus::distribute(&db.url, shards)
                .await
                .with_context(|| format!("distributing {}", patron_store::db::redact_url(&db.url)))?;
            if report.converted.is_empty() {
                println!("already distributed: nothing changed");
            } else {
                for line in &report.converted {
                    println!("{line}");
                }
                let rows = if report.copied_rows { ", rows copied into the shards" } else { "" };
                println!("distributed {} tables in {:.1} s{rows}", report.converted.len(), started.elapsed().as_secs_f64());
            }
        }
        Command::Database { command: DbCommand::Status { db } } => {
            let store = open(&db).await?;
            let status = patron_store::db::citus::status(&store.db).await?;
            print_status(&status);
        }
        Command::Generate { customers, seed, out, start, end, with_owners } => {
            generate(customers, seed, &out, start, end, with_owners)?;
        }
        Command::Import { kind, file, db, map, encoding, skip_invalid, dry_run } => {
            let store = open(&db).await?;
            let kind: ImportKind = kind.parse()?;
            let mut opts = ImportOptions::new(kind, file.display().to_string());
            opts.mappings = parse_pairs(&map, "--map")?;
            opts.encoding = encoding.map(|e| e.parse::<Encoding>()).transpose()?;
            opts.skip_invalid = skip_invalid;
            opts.dry_run = dry_run;
            let report = import_file(&store, &file, &opts).await?;
            print_report(&report, &file)?;
            if report.rejected > 0 && !skip_invalid {
                return Ok(ExitCode::from(2));
            }
            if report.rejected > 0 {
                return Ok(ExitCode::from(3));
            }
        }
        Command::Analyze { db, as_of, rebuild, model, file: orders_file, out, params } => {
            let config = model.config()?;
            let tz: patron_store::BusinessTz =
                db.time_zone.parse().map_err(|_| anyhow!("unknown time zone {:?} (use an IANA name like Asia/Shanghai)", db.time_zone))?;
            let as_of = parse_day(as_of, "--as-of")?;
            match orders_file.orders.clone() {
                Some(file) => {
                    let as_of = as_of.ok_or_else(|| anyhow!("--as-of DATE is required with --orders (the day the analysis is as of)"))?;
                    let (mappings, encoding) = orders_file.mappings_and_encoding()?;
                    let mode = analyze::FileMode {
                        orders: file,
                        as_of,
                        mappings,
                        encoding,
                        tz,
                        skip_invalid: orders_file.skip_invalid,
                        out,
                        params,
                    };
                    let code = analyze::analyze_file(&mode, &config)?;
                    return Ok(ExitCode::from(code));
                }
                None => {
                    let store = open(&db).await?;
                    let as_of = as_of.unwrap_or_else(|| chrono::Utc::now().with_timezone(&tz).date_naive());
                    analyze::analyze_db(&store, as_of, rebuild, &config).await?;
                }
            }
        }
        Command::Validate { db, calibration_end, holdout_end, time_unit, file: orders_file, out } => {
            let tz: patron_store::BusinessTz =
                db.time_zone.parse().map_err(|_| anyhow!("unknown time zone {:?} (use an IANA name like Asia/Shanghai)", db.time_zone))?;
            let calibration_end =
                parse_day(Some(calibration_end), "--calibration-end")?.ok_or_else(|| anyhow!("--calibration-end DATE is required"))?;
            let holdout_end = parse_day(holdout_end, "--holdout-end")?;
            let unit = if time_unit == "weeks" { patron_analytics::TimeUnit::Weeks } else { patron_analytics::TimeUnit::Days };
            match orders_file.orders.clone() {
                Some(file) => {
                    let holdout_end = holdout_end.ok_or_else(|| anyhow!("--holdout-end DATE is required with --orders"))?;
                    let (mappings, encoding) = orders_file.mappings_and_encoding()?;
                    let mode = validate::FileMode {
                        orders: file,
                        calibration_end,
                        holdout_end,
                        time_unit: unit,
                        mappings,
                        encoding,
                        tz,
                        skip_invalid: orders_file.skip_invalid,
                        out,
                    };
                    return Ok(ExitCode::from(validate::validate_file(&mode)?));
                }
                None => {
                    let holdout_end = holdout_end.unwrap_or_else(|| chrono::Utc::now().with_timezone(&tz).date_naive());
                    validate::check_split(calibration_end, holdout_end)?;
                    let store = open(&db).await?;
                    validate::validate_db(&store, calibration_end, holdout_end, unit).await?;
                }
            }
        }
        Command::Export { what: _, db, filter, out, raw } => {
            let store = open(&db).await?;
            let mut f = CustomerFilter::default();
            for (k, v) in parse_pairs(&filter, "--filter")? {
                match k.as_str() {
                    "q" => f.q = Some(v),
                    "tag" => f.tag = Some(v),
                    "city" => f.city = Some(v),
                    "kind" => f.kind = Some(v),
                    "owner" => {
                        let u = store.user_by_email(&v).await?.ok_or_else(|| anyhow!("--filter owner: no user {v:?}"))?;
                        f.owner_id = Some(u.id);
                    }
                    other => bail!("--filter {other}: unknown key (q, tag, city, kind, owner)"),
                }
            }
            let file = std::fs::File::create(&out).with_context(|| format!("creating {}", out.display()))?;
            let n = store.export_customers(&Actor::cli(), &f, std::io::BufWriter::new(file), raw).await?;
            println!("{n} customers written to {}", out.display());
        }
        Command::User { command } => match command {
            UserCommand::Add { db, email, role, name, password_stdin } => {
                let store = open(&db).await?;
                let role: Role = role.parse()?;
                let (password, generated) = if password_stdin {
                    let mut p = String::new();
                    std::io::stdin().read_to_string(&mut p).context("reading the password from standard input")?;
                    (p.trim_end_matches(['\r', '\n']).to_owned(), false)
                } else {
                    (random_password(), true)
                };
                let name = name.unwrap_or_else(|| email.split('@').next().unwrap_or("user").to_owned());
                let user = store.create_user(&email, &name, role, Some(&password)).await?;
                println!("user {} ({}) created with id {}", user.email, user.role, user.id);
                if generated {
                    println!("password: {password}");
                }
            }
            UserCommand::List { db } => {
                let store = open(&db).await?;
                for u in store.users().await? {
                    println!("{}\t{}\t{}\t{}", u.id, u.email, u.role, u.name);
                }
            }
            UserCommand::SetManager { db, email, manager } => {
                let store = open(&db).await?;
                let find = |e: String| {
                    let store = store.clone();
                    async move { store.user_by_email(&e).await?.ok_or_else(|| anyhow!("no user {e:?}")) }
                };
                let user = find(email).await?;
                let manager = match manager {
                    Some(m) => Some(find(m).await?),
                    None => None,
                };
                store.set_user_manager(&Actor::cli(), user.id, manager.as_ref().map(|m| m.id)).await?;
                match manager {
                    Some(m) => println!("{} now reports to {}", user.email, m.email),
                    None => println!("{} reports to nobody", user.email),
                }
            }
        },
        Command::Token { command } => match command {
            TokenCommand::Create { db, name, role, user, expires_in, read_only } => {
                let store = open(&db).await?;
                // A custom role's token is stored at the agent level; the custom role decides.
                let (role, custom_role) = match role.parse::<Role>() {
                    Ok(r) => (r, None),
                    Err(_) => (Role::Agent, Some(store.role(&role).await.map_err(|_| anyhow!("--role: no role named {role:?}"))?.name)),
                };
                let user_id = match user {
                    Some(email) => Some(store.user_by_email(&email).await?.ok_or_else(|| anyhow!("--user: no user {email:?}"))?.id),
                    None if role == Role::Agent => bail!("an agent token needs --user (an agent's portfolio is a user's)"),
                    None => None,
                };
                let expires_at = expires_in.map(|d| store.now() + chrono::Duration::days(i64::from(d)));
                let opts = patron_store::users::TokenOptions { expires_at, read_only, custom_role };
                let (info, secret) = store.create_token_with(&name, role, user_id, opts).await?;
                let until = info.expires_at.map(|t| format!(", expires {}", t.to_rfc3339())).unwrap_or_default();
                eprintln!("token {} ({}, {}, {}{until}) created; it is shown once:", info.id, info.name, info.role, info.scope);
                println!("{secret}");
            }
            TokenCommand::List { db } => {
                let store = open(&db).await?;
                for t in store.tokens().await? {
                    let expires = t.expires_at.map(|e| e.to_rfc3339()).unwrap_or_else(|| "never".into());
                    println!(
                        "{}\t{}\t{}\t{}\t{}…\t{}\texpires {expires}",
                        t.id,
                        t.name,
                        t.role,
                        t.scope,
                        t.prefix,
                        t.created_at.to_rfc3339()
                    );
                }
            }
            TokenCommand::Revoke { db, id } => {
                let store = open(&db).await?;
                store.revoke_token(id).await?;
                println!("token {id} revoked");
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn parse_pairs(pairs: &[String], flag: &str) -> Result<Vec<(String, String)>> {
    pairs
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(a, b)| (a.trim().to_owned(), b.trim().to_owned()))
                .filter(|(a, b)| !a.is_empty() && !b.is_empty())
                .ok_or_else(|| anyhow!("{flag} {p:?}: expected KEY=VALUE"))
        })
        .collect()
}

fn random_password() -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rngs::OsRng;
    (0..16).map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char).collect()
}

async fn serve(store: Store, listen: SocketAddr, metrics_listen: Option<SocketAddr>, config: ServerConfig) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("listening on {listen}"))?;
    tracing::info!(address = %listener.local_addr()?, database = ?store.db.engine(), "patron is serving");
    let state = AppState::new(store.clone(), config);
    let metrics = match metrics_listen {
        Some(addr) => {
            let l = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("--metrics-listen {addr}"))?;
            tracing::info!(address = %l.local_addr()?, "metrics are served");
            Some(tokio::spawn(patron_server::metrics::serve_metrics(l, state.clone())))
        }
        None => None,
    };
    patron_server::serve(listener, state).await?;
    if let Some(m) = metrics {
        m.abort();
    }
    store.db.close().await;
    Ok(())
}

/// A progress display on stderr: a bar on a terminal, plain lines otherwise (CI logs, tests).
struct Progress {
    bar: ProgressBar,
    plain: bool,
    label: String,
    unit: String,
    /// When the last plain line was printed, and the count it showed.
    last_line: std::sync::Mutex<(std::time::Instant, Option<u64>)>,
}

impl Progress {
    fn new(label: &str, total: Option<u64>, unit: &str) -> Progress {
        let plain = !std::io::stderr().is_terminal();
        let bar = match total {
            Some(n) => ProgressBar::new(n),
            None => ProgressBar::new_spinner(),
        };
        if plain {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        let template = match total {
            Some(_) => format!("{{msg:>14}} [{{bar:40.cyan/blue}}] {{human_pos}}/{{human_len}} {unit} ({{per_sec}}, {{eta}} left)"),
            None => format!("{{spinner}} {{msg:>14}} {{human_pos}} {unit} ({{per_sec}})"),
        };
        if let Ok(style) = ProgressStyle::with_template(&template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(label.to_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        // The first plain line is printed at the first update, then at most twice a second.
        let long_ago = std::time::Instant::now().checked_sub(Duration::from_secs(3600)).unwrap_or_else(std::time::Instant::now);
        Progress { bar, plain, label: label.to_owned(), unit: unit.to_owned(), last_line: std::sync::Mutex::new((long_ago, None)) }
    }
    fn set(&self, n: u64) {
        self.bar.set_position(n);
        if self.plain {
            let mut last = self.last_line.lock().unwrap_or_else(|p| p.into_inner());
            if last.0.elapsed() >= Duration::from_millis(500) {
                *last = (std::time::Instant::now(), Some(n));
                eprintln!("{}: {n} {}", self.label, self.unit);
            }
        }
    }
    /// Ends the progress. Plain output ends on the final count, so the lines read in order: a
    /// step's last progress line, then its result (the demo printed "orders: 8192 rows", the
    /// first chunk, and then "16928 created").
    fn finish(&self) {
        self.bar.finish_and_clear();
        if self.plain {
            let n = self.bar.position();
            let last = self.last_line.lock().unwrap_or_else(|p| p.into_inner());
            if last.1 != Some(n) {
                eprintln!("{}: {n} {}", self.label, self.unit);
            }
        }
    }
}

async fn import_file(store: &Store, file: &Path, opts: &ImportOptions) -> Result<ImportReport> {
    let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let progress = Progress::new(opts.kind.as_str(), None, "rows");
    let p = &progress;
    let report =
        store.import(&Actor::cli(), Box::new(f), opts, &move |n| p.set(n)).await.map_err(|e| anyhow!("{}: {e}", file.display()))?;
    progress.finish();
    Ok(report)
}

fn print_report(r: &ImportReport, file: &Path) -> Result<()> {
    println!(
        "{}: {} rows read ({}), {} created, {} updated, {} unchanged, {} rejected{}",
        file.display(),
        r.rows_read,
        r.encoding,
        r.created,
        r.updated,
        r.unchanged,
        r.rejected,
        if r.committed { "" } else { " — nothing written" }
    );
    if r.rejected > 0 {
        let rej_path = PathBuf::from(format!("{}.rejected.csv", file.display()));
        let out = std::fs::File::create(&rej_path).with_context(|| format!("creating {}", rej_path.display()))?;
        write_rejections(out, &r.rejections)?;
        for x in r.rejections.iter().take(10) {
            eprintln!("{}: row {}, column {:?}: {} (value {:?})", file.display(), x.row, x.column, x.reason, x.value);
        }
        if r.rejections.len() > 10 {
            eprintln!("… {} more", r.rejections.len() - 10);
        }
        eprintln!("rejected rows written to {}", rej_path.display());
    }
    Ok(())
}

fn parse_day(s: Option<String>, flag: &str) -> Result<Option<chrono::NaiveDate>> {
    s.map(|v| patron_store::values::parse_date(&v).map_err(|m| anyhow!("{flag}: {m}"))).transpose()
}

fn generate(
    customers: u64,
    seed: u64,
    out: &Path,
    start: Option<String>,
    end: Option<String>,
    with_owners: bool,
) -> Result<patron_datagen::GenerateReport> {
    let mut cfg = patron_datagen::GeneratorConfig::new(customers, seed);
    if let Some(s) = parse_day(start, "--start")? {
        cfg.start = s;
    }
    if let Some(e) = parse_day(end, "--end")? {
        cfg.end = e;
    }
    if with_owners {
        cfg.owners = patron_datagen::default_account_managers(DEMO_MANAGERS).into_iter().map(|m| m.email).collect();
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let progress = Progress::new("generating", Some(customers), "customers");
    let p = &progress;
    let report = patron_datagen::write_csv_files(&cfg, out, &move |n| p.set(n))?;
    progress.finish();
    println!(
        "{}: {} customers, {} contacts, {} orders, {} interactions",
        out.display(),
        report.customers,
        report.contacts,
        report.orders,
        report.interactions
    );
    Ok(report)
}

const DEMO_MANAGERS: usize = 6;
const DEMO_ADMIN: &str = "admin@demo.patron.local";

/// Loads the demo data set; returns the admin password (new on every run) and the demo shop's
/// web analytics site.
async fn demo(store: &Store, customers: u64, seed: u64, shop_origin: &str) -> Result<(String, i64)> {
    for m in patron_datagen::default_account_managers(DEMO_MANAGERS) {
        if store.user_by_email(&m.email).await?.is_none() {
            store.create_user(&m.email, &m.display_name, Role::Agent, Some(&random_password())).await?;
        }
    }
    let password = random_password();
    match store.user_by_email(DEMO_ADMIN).await? {
        Some(u) => store.set_password(u.id, &password).await?,
        None => {
            store.create_user(DEMO_ADMIN, "Demo Admin", Role::Admin, Some(&password)).await?;
        }
    }
    // Units and users at each level before the orders, so customers get their home store.
    let logins = demo_access::seed(store, random_password).await?;
    let dir = tempfile::tempdir().context("creating a temporary directory for the demo files")?;
    let mut cfg = patron_datagen::GeneratorConfig::new(customers, seed);
    cfg.end = chrono::Utc::now().with_timezone(&store.config.business_tz).date_naive();
    cfg.start = cfg.end - chrono::Duration::days(3 * 365);
    cfg.owners = patron_datagen::default_account_managers(DEMO_MANAGERS).into_iter().map(|m| m.email).collect();
    let progress = Progress::new("generating", Some(customers), "customers");
    let p = &progress;
    patron_datagen::write_csv_files(&cfg, dir.path(), &move |n| p.set(n))?;
    progress.finish();
    // The loyalty programme runs before the orders arrive: the import earns their points.
    demo_loyalty::programme(store).await?;
    for kind in [ImportKind::Customers, ImportKind::Contacts, ImportKind::Orders, ImportKind::Interactions] {
        let file = dir.path().join(format!("{}.csv", kind.as_str()));
        let report = import_file(store, &file, &ImportOptions::new(kind, format!("demo-{}.csv", kind.as_str()))).await?;
        if !report.committed {
            let first = report.rejections.first().map(|r| format!("row {} {}: {}", r.row, r.column, r.reason)).unwrap_or_default();
            bail!("demo {} were rejected ({} rows; first: {first})", kind.as_str(), report.rejected);
        }
        println!("{:>13}: {} created, {} updated, {} unchanged", kind.as_str(), report.created, report.updated, report.unchanged);
    }
    // Score the base so the dashboards, segments and 360 pages have something to show.
    let today = chrono::Utc::now().with_timezone(&store.config.business_tz).date_naive();
    let mut config = patron_analytics::AnalyticsConfig::default();
    config.model.horizon_days = 90;
    let (run_id, out) = store.run_analysis(&Actor::cli(), today, &config).await?;
    println!("{:>13}: {} customers scored as of {today} (run {run_id})", "analysis", out.summaries.len());
    let tickets = (customers as usize / 12).max(20);
    let now = store.now();
    demo_surveys::csat_survey(store, now - chrono::Duration::days(366)).await?;
    let service = demo_service::seed(store, tickets, seed, now).await?;
    println!("{:>13}: {} over the past year, {} SLA breaches escalated", "tickets", service.tickets, service.breaches);
    let surveys = demo_surveys::seed(store, seed, now).await?;
    println!(
        "{:>13}: {} NPS and {} CSAT answers, {} complaints from unhappy answers, {} churn reasons",
        "surveys", surveys.nps_answers, surveys.csat_answers, surveys.complaints, surveys.churn_reasons
    );
    let loyalty = demo_loyalty::seed(store, seed, now).await?;
    println!(
        "{:>13}: {} members, {} redemptions, {} lots expired, {} tier changes over the past year",
        "loyalty", loyalty.members, loyalty.redemptions, loyalty.expired_lots, loyalty.tier_changes
    );
    let campaigns = demo_campaigns::seed(store, seed, now).await?;
    println!(
        "{:>13}: an SMS campaign three weeks ago: {} sent, {} held out, {} orders in the window; a draft waiting for review",
        "campaigns", campaigns.sent, campaigns.holdout, campaigns.orders
    );
    let events = demo_events::seed(store, seed, now).await?;
    println!(
        "{:>13}: two past events: {} invited, {} registered, {} checked in",
        "events", events.invited, events.registered, events.attended
    );
    // Again, now with the survey answers (attitude and competitor immunity of the loyalty matrix).
    let (run_id, _) = store.run_analysis(&Actor::cli(), today, &config).await?;
    println!("{:>13}: re-scored with the survey answers (run {run_id})", "analysis");
    let journeys = demo_journeys::seed(store, seed, store.now()).await?;
    println!(
        "{:>13}: 3 built-in journeys enabled; {} entries, {} messages queued, {} tasks",
        "journeys", journeys.entered, journeys.messages, journeys.tasks
    );
    let accounts = demo_accounts::seed(store, seed, store.now()).await?;
    println!(
        "{:>13}: {} B2B accounts with teams, {} calls and visits over a year, {} reviews, {} fulfilment steps",
        "accounts", accounts.accounts, accounts.contacts, accounts.reviews, accounts.steps
    );
    let web = demo_web::seed(store, seed, store.now(), shop_origin).await?;
    println!(
        "{:>13}: the demo shop's last 30 days: {} page views, {} visitors identified after a login",
        "web", web.pageviews, web.identified
    );
    for (email, what, pw) in logins {
        println!("{:>13}: {email}  password: {pw}  ({what})", "login");
    }
    Ok((password, web.site_id))
}

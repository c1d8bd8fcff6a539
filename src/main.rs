//! The `feedwire` command: parse the command line, load the config, run, and turn errors
//! into one readable message and an exit code (0 ok, 1 runtime failure, 2 usage or config).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use feedwire::app::{self, Mode};
use feedwire::config::{self, Config, ConfigError, SinkKind};
use feedwire::store::{PollStatus, Reader, Store, Timestamp};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "feedwire",
    version,
    about = "Turns web feeds into a clean, de-duplicated, reliable stream"
)]
struct Cli {
    /// Config file (default: $FEEDWIRE_CONFIG, ./config/feedwire.toml, /etc/feedwire/feedwire.toml)
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: poll, process and deliver until SIGTERM/SIGINT
    Run,
    /// Validate the config and print every problem
    Check,
    /// Poll every feed (or one) once, deliver, and exit
    Once(OnceArgs),
    /// Fetch (for a URL) and clean one page, or clean every page of a folder
    Extract(ExtractArgs),
    /// Parse one feed (a file or URL) and print what the daemon would emit for each entry
    Preview(PreviewArgs),
    /// Show each feed's polling state
    Feeds(FeedsArgs),
    /// Show recent items
    Items(ItemsArgs),
    /// Show the outbox per sink, or its dead letters
    Deliveries(DeliveriesArgs),
    /// Queue deliveries again for a sink
    Redeliver(RedeliverArgs),
    /// Import feeds from an OPML file, or export the config's feeds as OPML
    #[command(subcommand)]
    Opml(OpmlCommand),
}

#[derive(Args)]
struct OnceArgs {
    /// Only this feed (its name in the config)
    #[arg(long)]
    feed: Option<String>,
    /// How long to wait for deliveries before giving up (they stay queued)
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["target", "dir"])))]
struct ExtractArgs {
    /// An HTML file or an http(s) URL
    target: Option<String>,
    /// The page's address, to make its links absolute (for a file)
    #[arg(long, value_name = "URL")]
    base_url: Option<String>,
    /// What to print
    #[arg(long, value_enum, default_value_t = ExtractFormat::Text)]
    format: ExtractFormat,
    /// Clean every *.html file of this folder …
    #[arg(long, value_name = "IN", requires = "out", conflicts_with_all = ["target", "base_url"])]
    dir: Option<PathBuf>,
    /// … into OUT/<stem>.txt and OUT/<stem>.json
    #[arg(long, value_name = "OUT", requires = "dir")]
    out: Option<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ExtractFormat {
    Text,
    Json,
    Html,
}

#[derive(Args)]
struct PreviewArgs {
    /// A feed file or an http(s) URL
    target: String,
    /// What to print
    #[arg(long, value_enum, default_value_t = PreviewFormat::Text)]
    format: PreviewFormat,
    /// Also fetch and clean each entry's article (through the address policy)
    #[arg(long)]
    extract: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum PreviewFormat {
    Text,
    Json,
}

#[derive(Args)]
struct FeedsArgs {
    /// Print JSON instead of a table
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ItemsArgs {
    /// Only items of this feed
    #[arg(long)]
    feed: Option<String>,
    /// How many items
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Print JSON instead of a table
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct DeliveriesArgs {
    /// Only this sink
    #[arg(long)]
    sink: Option<String>,
    /// List dead letters with their last error
    #[arg(long)]
    dead: bool,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["dead", "since"])))]
struct RedeliverArgs {
    /// The sink to deliver to again
    #[arg(long)]
    sink: String,
    /// Queue its dead letters again
    #[arg(long)]
    dead: bool,
    /// Queue everything created within this long (e.g. "24h")
    #[arg(long, value_parser = humantime::parse_duration)]
    since: Option<Duration>,
}

#[derive(Subcommand)]
enum OpmlCommand {
    /// Print [[feeds]] entries for the feeds of FILE that are not in the config yet
    Import {
        /// The OPML file (OPML 1.0 or 2.0, UTF-8)
        file: PathBuf,
        /// Append the entries to the config file, after copying it to <config>.bak
        #[arg(long)]
        write: bool,
    },
    /// Print the config's feeds as OPML 2.0, in folders named after their first tag
    Export {
        /// No folders: every tag becomes a category
        #[arg(long)]
        flat: bool,
    },
}

/// Threads for blocking work, per core, and at least.
const BLOCKING_THREADS_PER_CORE: usize = 2;
const MIN_BLOCKING_THREADS: usize = 4;

/// An error with the exit code it maps to.
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: 2,
            message: message.into(),
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Failure {
        let code = if e.downcast_ref::<ConfigError>().is_some() {
            2
        } else {
            1
        };
        // "outer: cause: cause", each part once.
        let mut parts: Vec<String> = Vec::new();
        for cause in e.chain() {
            let text = cause.to_string();
            if !parts.iter().any(|p| p.contains(&text)) {
                parts.push(text);
            }
        }
        Failure {
            code,
            message: parts.join(": "),
        }
    }
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Failure {
        Failure {
            code: 2,
            message: e.to_string(),
        }
    }
}

impl From<feedwire::store::StoreError> for Failure {
    fn from(e: feedwire::store::StoreError) -> Failure {
        Failure::from(anyhow::Error::from(e))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Blocking work is CPU work here (parsing feeds, cleaning pages): more threads than
    // cores only add memory (stacks, allocator arenas), not speed.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads((cores * BLOCKING_THREADS_PER_CORE).max(MIN_BLOCKING_THREADS))
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("feedwire: error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("feedwire: error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn load(explicit: Option<&Path>) -> Result<(PathBuf, Config), Failure> {
    let path = config::locate(explicit)?;
    let config = config::load(&path)?;
    Ok((path, config))
}

async fn dispatch(cli: Cli) -> Result<u8, Failure> {
    match cli.command {
        Command::Check => check(cli.config.as_deref()),
        Command::Run => run_daemon(cli.config.as_deref()).await,
        Command::Once(args) => {
            let (_, config) = load(cli.config.as_deref())?;
            if let Some(name) = &args.feed
                && config.feed(name).is_none()
            {
                return Err(Failure::usage(format!(
                    "no feed named {name:?} in the config"
                )));
            }
            feedwire::telemetry::init(config.daemon.log_format);
            let shutdown = on_signals();
            let outcome = app::run(
                config,
                Mode::Once {
                    feed: args.feed,
                    timeout: args.timeout,
                },
                std::sync::Arc::new(feedwire::telemetry::Metrics::new()),
                shutdown,
            )
            .await?;
            if outcome.pending > 0 {
                eprintln!(
                    "feedwire: {} deliveries are still pending after {}; they stay queued for the next run",
                    outcome.pending,
                    humantime::format_duration(args.timeout)
                );
                return Ok(1);
            }
            Ok(0)
        }
        Command::Extract(args) => extract(cli.config.as_deref(), args).await,
        Command::Preview(args) => preview(cli.config.as_deref(), args).await,
        Command::Feeds(args) => {
            let store = open_store(cli.config.as_deref())?;
            print_feeds(&store, args.json).await
        }
        Command::Items(args) => {
            let store = open_store(cli.config.as_deref())?;
            print_items(&store, args).await
        }
        Command::Deliveries(args) => {
            let store = open_store(cli.config.as_deref())?;
            print_deliveries(&store, args).await
        }
        Command::Redeliver(args) => {
            let (_, config) = load(cli.config.as_deref())?;
            if !config.sinks.contains_key(&args.sink) {
                return Err(Failure::usage(format!(
                    "no sink named {:?} in the config",
                    args.sink
                )));
            }
            let store = Store::open(&config.database_path())?;
            let since = args.since.map(|d| Timestamp::now().before(d));
            let n = store.redeliver(&args.sink, args.dead, since).await?;
            println!(
                "queued {n} deliveries for sink {} again; a running daemon sends them within 30s",
                args.sink
            );
            Ok(0)
        }
        Command::Opml(command) => opml(cli.config.as_deref(), command),
    }
}

fn check(explicit: Option<&Path>) -> Result<u8, Failure> {
    let (path, config) = load(explicit)?;
    // Secrets are read now too, so a missing variable is found before the service starts.
    let mut problems = Vec::new();
    for (name, sink) in &config.sinks {
        if let SinkKind::Webhook(w) = &sink.kind
            && let Err(e) = feedwire::sinks::webhook::WebhookSink::new(w, &config.daemon.user_agent)
        {
            problems.push(format!("sinks.{name}: {e}"));
        }
    }
    if let Err(e) = feedwire::server::status::token(&config) {
        problems.push(e.to_string());
    }
    if let Some(warning) = feedwire::server::status::exposure_warning(&config) {
        eprintln!("warning: {warning}");
    }
    if !problems.is_empty() {
        return Err(Failure::usage(format!(
            "config file {} has {} problem{}\n  {}",
            path.display(),
            problems.len(),
            if problems.len() == 1 { "" } else { "s" },
            problems.join("\n  ")
        )));
    }
    println!(
        "{}: ok ({} feeds, {} sinks)",
        path.display(),
        config.feeds.len(),
        config.sinks.len()
    );
    Ok(0)
}

fn opml(explicit: Option<&Path>, command: OpmlCommand) -> Result<u8, Failure> {
    use feedwire::opml;
    let (path, config) = load(explicit)?;
    let (file, write) = match command {
        OpmlCommand::Export { flat } => {
            print!("{}", opml::write(&config.feeds, flat));
            return Ok(0);
        }
        OpmlCommand::Import { file, write } => (file, write),
    };
    let bytes = std::fs::read(&file)
        .map_err(|e| Failure::usage(format!("cannot read OPML file {}: {e}", file.display())))?;
    let document = opml::parse_bytes(&bytes)
        .map_err(|e| Failure::usage(format!("cannot import {}: {e}", file.display())))?;
    let plan = opml::plan_import(&document, &config.feeds);
    for (feed, why) in &plan.invalid {
        eprintln!("feedwire: skipped {:?}: {why}", feed.title);
    }
    let summary = format!(
        "{} new, {} already configured, {} with an unusable URL, {} outlines without a feed URL",
        plan.new.len(),
        plan.already.len(),
        plan.invalid.len(),
        document.not_feeds
    );
    if !write {
        eprintln!("feedwire: {}: {summary}", file.display());
        print!("{}", opml::to_toml(&plan.new));
        return Ok(0);
    }
    if plan.new.is_empty() {
        println!("nothing to add to {} ({summary})", path.display());
        return Ok(0);
    }
    let write_error =
        |e: std::io::Error| Failure::from(anyhow::anyhow!("cannot write {}: {e}", path.display()));
    let text = std::fs::read_to_string(&path).map_err(write_error)?;
    let newline = if text.is_empty() || text.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    let addition = format!(
        "{newline}\n# Imported from {}\n{}",
        file.display().to_string().replace(char::is_control, " "),
        opml::to_toml(&plan.new)
    );
    // Never leave a config that does not load: check the result before touching the file.
    let env: std::collections::BTreeMap<String, String> = std::env::vars().collect();
    config::parse(&format!("{text}{addition}"), &path, &env).map_err(|e| {
        Failure::usage(format!(
            "not writing {}: with the imported feeds it would not load: {e}",
            path.display()
        ))
    })?;
    let mut backup = path.clone().into_os_string();
    backup.push(".bak");
    std::fs::copy(&path, &backup).map_err(write_error)?;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, addition.as_bytes()))
        .map_err(write_error)?;
    println!(
        "added {} feeds to {} ({summary}); the previous version is {}",
        plan.new.len(),
        path.display(),
        PathBuf::from(backup).display()
    );
    Ok(0)
}

/// `feedwire extract`: one file or URL to standard output, or a folder to files.
async fn extract(explicit: Option<&Path>, args: ExtractArgs) -> Result<u8, Failure> {
    use feedwire::extract;
    if let (Some(input), Some(output)) = (&args.dir, &args.out) {
        let (input, output) = (input.clone(), output.clone());
        let report = tokio::task::spawn_blocking(move || extract::extract_dir(&input, &output))
            .await
            .map_err(|e| Failure {
                code: 1,
                message: format!("extraction stopped: {e}"),
            })?
            .map_err(|e| Failure {
                code: 1,
                message: e.to_string(),
            })?;
        let secs = report.elapsed.as_secs_f64();
        eprintln!(
            "extracted {} pages in {secs:.2}s ({:.0} pages/s), {} failed",
            report.done,
            report.done as f64 / secs.max(1e-9),
            report.failed.len()
        );
        for f in &report.failed {
            eprintln!("  {}: {}", f.path.display(), f.reason);
        }
        return Ok(if report.failed.is_empty() { 0 } else { 1 });
    }
    let Some(target) = args.target else {
        return Err(Failure::usage("give a file or URL, or --dir IN --out OUT"));
    };
    let base = match &args.base_url {
        Some(b) => Some(
            url::Url::parse(b)
                .map_err(|e| Failure::usage(format!("invalid --base-url {b:?}: {e}")))?,
        ),
        None => None,
    };
    let (bytes, content_type, base) =
        if target.starts_with("http://") || target.starts_with("https://") {
            let url = url::Url::parse(&target)
                .map_err(|e| Failure::usage(format!("invalid URL {target:?}: {e}")))?;
            // The config's user agent, limits and address policy, when there is a config.
            let config = config::locate(explicit)
                .ok()
                .and_then(|p| config::load(&p).ok());
            let settings = match &config {
                Some(c) => feedwire::fetch::ClientSettings {
                    user_agent: c.daemon.user_agent.clone(),
                    allowed_networks: c.article.allowed_networks.clone(),
                    hosts: c.hosts.clone(),
                    max_connections: 1,
                    per_host_connections: 1,
                },
                None => feedwire::fetch::ClientSettings {
                    user_agent: concat!("feedwire/", env!("CARGO_PKG_VERSION")).to_string(),
                    allowed_networks: Vec::new(),
                    hosts: Default::default(),
                    max_connections: 1,
                    per_host_connections: 1,
                },
            };
            let (timeout, max) = config
                .as_ref()
                .map(|c| (c.article.timeout, c.article.max_page_size))
                .unwrap_or((Duration::from_secs(30), 5 * 1024 * 1024));
            let http = feedwire::fetch::HttpClient::new(&settings).map_err(|e| Failure {
                code: 1,
                message: e.to_string(),
            })?;
            let body = http
                .get_article(&url, timeout, max)
                .await
                .map_err(|e| Failure {
                    code: 1,
                    message: format!("cannot fetch {url}: {e}"),
                })?;
            (body.bytes, body.content_type, base.or(Some(body.url)))
        } else {
            let bytes = std::fs::read(&target).map_err(|e| Failure {
                code: 1,
                message: format!("cannot read {target}: {e}"),
            })?;
            (bytes, None, base)
        };
    let (html, encoding, rule) = extract::decode(&bytes, content_type.as_deref());
    let article = tokio::task::spawn_blocking(move || extract::extract(&html, base.as_ref()))
        .await
        .map_err(|e| Failure {
            code: 1,
            message: format!("extraction stopped: {e}"),
        })?;
    match args.format {
        ExtractFormat::Text => println!("{}", article.text),
        ExtractFormat::Html => println!("{}", article.html),
        ExtractFormat::Json => println!(
            "{}",
            extract::article_json(&article, Some((encoding.name(), rule)))
        ),
    }
    Ok(0)
}

/// `feedwire preview`: the config (when there is one) only for the client's settings; the
/// state directory is not opened.
async fn preview(explicit: Option<&Path>, args: PreviewArgs) -> Result<u8, Failure> {
    use feedwire::preview;
    let config = config::locate(explicit)
        .ok()
        .and_then(|p| config::load(&p).ok());
    let settings = preview::Settings::from_config(config.as_ref());
    let shown = preview::preview(&args.target, &settings, args.extract)
        .await
        .map_err(|e| Failure {
            code: 1,
            message: e.to_string(),
        })?;
    match args.format {
        PreviewFormat::Text => print!("{}", preview::to_text(&shown)),
        PreviewFormat::Json => println!("{}", preview::to_json(&shown)),
    }
    Ok(0)
}

/// The reports' side of the store (opening it creates and migrates the file when needed).
fn open_store(explicit: Option<&Path>) -> Result<Reader, Failure> {
    let (_, config) = load(explicit)?;
    Ok(Store::open(&config.database_path())?.reader())
}

/// `feedwire run`: the pipeline until SIGTERM/SIGINT. SIGHUP re-reads the config: when it is
/// valid the pipeline drains and starts again on it in this process (feeds and sinks added,
/// removed or changed; log files reopened); when it is not, every problem is logged and the
/// daemon goes on with the old one.
async fn run_daemon(explicit: Option<&Path>) -> Result<u8, Failure> {
    use feedwire::service::notify;
    let (path, mut config) = load(explicit)?;
    feedwire::telemetry::init(config.daemon.log_format);
    let shutdown = on_signals();
    let mut reloads = on_hangup();
    // Counters outlive reloads.
    let metrics = std::sync::Arc::new(feedwire::telemetry::Metrics::new());
    loop {
        let generation = shutdown.child_token();
        let mut running = tokio::spawn(app::run(
            config.clone(),
            Mode::Forever,
            metrics.clone(),
            generation.clone(),
        ));
        let next = loop {
            tokio::select! {
                ended = &mut running => {
                    notify("STOPPING=1");
                    return match ended {
                        Ok(Ok(_)) => {
                            tracing::info!("stopped");
                            Ok(0)
                        }
                        Ok(Err(e)) => Err(Failure::from(e)),
                        Err(e) => Err(Failure { code: 1, message: format!("the daemon stopped unexpectedly: {e}") }),
                    };
                }
                Some(()) = reloads.recv() => {
                    notify("RELOADING=1");
                    match config::load(&path) {
                        Ok(new) => {
                            tracing::info!(config = %path.display(), "reloading");
                            break new;
                        }
                        Err(e) => {
                            tracing::error!(config = %path.display(), error = %e, "reload refused; still running on the previous config");
                            notify("READY=1");
                        }
                    }
                }
            }
        };
        generation.cancel();
        match running.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(Failure::from(e)),
            Err(e) => {
                return Err(Failure {
                    code: 1,
                    message: format!("the daemon stopped unexpectedly: {e}"),
                });
            }
        }
        if shutdown.is_cancelled() {
            notify("STOPPING=1");
            return Ok(0);
        }
        config = next;
    }
}

/// Yields once per SIGHUP.
fn on_hangup() -> tokio::sync::mpsc::Receiver<()> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            if tx.send(()).await.is_err() {
                return;
            }
        }
    });
    #[cfg(not(unix))]
    drop(tx);
    rx
}

/// Cancels the returned token on SIGINT or SIGTERM.
fn on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        feedwire::service::notify("STOPPING=1");
        cancel.cancel();
    });
    token
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

fn when(t: Option<Timestamp>) -> String {
    let Some(t) = t else { return "-".to_string() };
    let now = Timestamp::now();
    let d = Duration::from_secs(now.since(t).max(now.until(t)).as_secs());
    let d = humantime::format_duration(d).to_string();
    let d = d.split(' ').next().unwrap_or("0s").to_string();
    if t >= now {
        format!("in {d}")
    } else {
        format!("{d} ago")
    }
}

fn rfc3339(t: Option<Timestamp>) -> Option<String> {
    t.and_then(Timestamp::to_rfc3339)
}

async fn print_feeds(store: &Reader, json: bool) -> Result<u8, Failure> {
    let feeds = store.feeds_report().await?;
    if json {
        let rows: Vec<serde_json::Value> = feeds
            .iter()
            .map(|f| {
                serde_json::json!({
                    "name": f.name, "url": f.url, "title": f.title, "active": f.active,
                    "last_poll": rfc3339(f.last_poll_at), "status": f.last_status.map(PollStatus::as_str),
                    "http_status": f.last_http_status, "error": f.last_error,
                    "errors_in_row": f.errors_in_row, "next_poll": rfc3339(f.next_poll_at),
                    "next_poll_reason": f.schedule_reason, "items": f.items,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(rows));
        return Ok(0);
    }
    println!(
        "{:<24} {:<13} {:>4} {:>6} {:<12} {:<12} {:>6}",
        "FEED", "STATUS", "HTTP", "ERRORS", "LAST POLL", "NEXT POLL", "ITEMS"
    );
    for f in &feeds {
        let status = if f.active {
            f.last_status
                .map_or("never polled", PollStatus::as_str)
                .to_string()
        } else {
            "removed".into()
        };
        println!(
            "{:<24} {:<13} {:>4} {:>6} {:<12} {:<12} {:>6}",
            f.name,
            status,
            f.last_http_status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into()),
            f.errors_in_row,
            when(f.last_poll_at),
            if f.active && f.last_status != Some(PollStatus::Gone) {
                when(f.next_poll_at)
            } else {
                "never".into()
            },
            f.items
        );
        if let Some(e) = &f.last_error {
            println!("    error: {e}");
        }
        if let Some(r) = f.schedule_reason.as_ref().filter(|_| f.active) {
            println!("    next poll: {r}");
        }
    }
    Ok(0)
}

async fn print_items(store: &Reader, args: ItemsArgs) -> Result<u8, Failure> {
    let items = store.items_report(args.feed, args.limit).await?;
    if args.json {
        let rows: Vec<serde_json::Value> = items
            .iter()
            .map(|i| {
                serde_json::json!({
                    "id": i.id, "feed": i.feed, "title": i.title, "url": i.url,
                    "published": rfc3339(i.published_at), "seen": rfc3339(Some(i.created_at)),
                    "emitted": i.emitted, "duplicate_of": i.duplicate_of, "duplicate_reason": i.duplicate_reason,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(rows));
        return Ok(0);
    }
    for i in &items {
        println!(
            "{}  {:<20} {}",
            i.id,
            i.feed,
            i.title.as_deref().unwrap_or("(untitled)")
        );
        if let Some(u) = &i.url {
            println!("    {u}");
        }
        if let Some(d) = &i.duplicate_of {
            println!(
                "    duplicate of {d} ({})",
                i.duplicate_reason.as_deref().unwrap_or("?")
            );
        } else if !i.emitted {
            println!("    not emitted (backfill limit)");
        }
    }
    Ok(0)
}

async fn print_deliveries(store: &Reader, args: DeliveriesArgs) -> Result<u8, Failure> {
    let backlog = store.backlog().await?;
    println!(
        "{:<20} {:>9} {:>10} {:>6} {:<14}",
        "SINK", "PENDING", "DELIVERED", "DEAD", "OLDEST PENDING"
    );
    for b in backlog
        .iter()
        .filter(|b| args.sink.as_ref().is_none_or(|s| s == &b.sink))
    {
        println!(
            "{:<20} {:>9} {:>10} {:>6} {:<14}",
            b.sink,
            b.pending,
            b.delivered,
            b.dead,
            when(b.oldest_pending_at)
        );
    }
    let rows = store.deliveries_report(args.sink, args.dead, 100).await?;
    if !rows.is_empty() {
        println!();
        println!("{}:", if args.dead { "dead letters" } else { "pending" });
    }
    for r in &rows {
        println!(
            "{}  {:<12} attempts {:<3} {}  {}",
            r.webhook_id,
            r.sink,
            r.attempts,
            if args.dead {
                format!("created {}", when(Some(r.created_at)))
            } else {
                format!("next {}", when(Some(r.next_attempt_at)))
            },
            r.item_title.as_deref().unwrap_or("(untitled)")
        );
        if let Some(e) = &r.last_error {
            println!("    last error: {e}");
        }
    }
    Ok(0)
}

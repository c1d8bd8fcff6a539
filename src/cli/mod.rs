//! The command line: arguments (clap), the commands that are not the daemon (reports,
//! OPML, extract), and the mapping of errors to one message and an exit code.

/// `println!` for command output: when the reader has gone (`feedwire items | head`), the
/// command ends quietly with 0, as a Unix filter does, instead of panicking.
macro_rules! outln {
    () => { $crate::cli::write_out(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::cli::write_out(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `print!` for command output, with [`outln!`]'s handling of a closed pipe.
macro_rules! out {
    ($($arg:tt)*) => { $crate::cli::write_out(format_args!($($arg)*)) };
}

pub mod daemon;
pub mod extract;
pub mod opml;
pub mod preview;
pub mod reports;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use feedwire::config::{self, Config, ConfigError, SinkKind};
use feedwire::store::{Reader, Store, Timestamp};

#[derive(Parser)]
#[command(
    name = "feedwire",
    version,
    about = "Turns web feeds into a clean, de-duplicated, reliable stream"
)]
pub struct Cli {
    /// Config file (default: $FEEDWIRE_CONFIG, ./config/feedwire.toml, /etc/feedwire/feedwire.toml)
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
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
    /// Show what a sink would receive for a sample item; send it with --send
    TestSink(TestSinkArgs),
    /// Import feeds from an OPML file, or export the config's feeds as OPML
    #[command(subcommand)]
    Opml(OpmlCommand),
}

#[derive(Args)]
pub struct OnceArgs {
    /// Only this feed (its name in the config)
    #[arg(long)]
    pub feed: Option<String>,
    /// How long to wait for deliveries before giving up (they stay queued)
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["target", "dir"])))]
pub struct ExtractArgs {
    /// An HTML file or an http(s) URL
    pub target: Option<String>,
    /// The page's address, to make its links absolute (for a file)
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// What to print
    #[arg(long, value_enum, default_value_t = ExtractFormat::Text)]
    pub format: ExtractFormat,
    /// Clean every *.html file of this folder …
    #[arg(long, value_name = "IN", requires = "out", conflicts_with_all = ["target", "base_url"])]
    pub dir: Option<PathBuf>,
    /// … into OUT/<stem>.txt and OUT/<stem>.json
    #[arg(long, value_name = "OUT", requires = "dir")]
    pub out: Option<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ExtractFormat {
    Text,
    Json,
    Html,
}

#[derive(Args)]
pub struct PreviewArgs {
    /// A feed file or an http(s) URL
    pub target: String,
    /// What to print
    #[arg(long, value_enum, default_value_t = PreviewFormat::Text)]
    pub format: PreviewFormat,
    /// Also fetch and clean each entry's article (through the address policy)
    #[arg(long)]
    pub extract: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum PreviewFormat {
    Text,
    Json,
}

#[derive(Args)]
pub struct FeedsArgs {
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ItemsArgs {
    /// Only items of this feed
    #[arg(long)]
    pub feed: Option<String>,
    /// How many items
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct DeliveriesArgs {
    /// Only this sink
    #[arg(long)]
    pub sink: Option<String>,
    /// List dead letters with their last error
    #[arg(long)]
    pub dead: bool,
}

#[derive(Args)]
pub struct TestSinkArgs {
    /// The sink (its name in the config)
    pub name: String,
    /// Send the sample for real (else only show it)
    #[arg(long)]
    pub send: bool,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["dead", "since"])))]
pub struct RedeliverArgs {
    /// The sink to deliver to again
    #[arg(long)]
    pub sink: String,
    /// Queue its dead letters again
    #[arg(long)]
    pub dead: bool,
    /// Queue everything created within this long (e.g. "24h")
    #[arg(long, value_parser = humantime::parse_duration)]
    pub since: Option<Duration>,
}

#[derive(Subcommand)]
pub enum OpmlCommand {
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

/// An error with the exit code it maps to.
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Failure {
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
        // "outer: cause: cause": each error's message is only its own part (or carries its
        // cause without also exposing it as a source), so the chain is printed as it is.
        let parts: Vec<String> = e.chain().map(|cause| cause.to_string()).collect();
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

impl Failure {
    /// A runtime failure (exit code 1).
    pub fn runtime(message: impl Into<String>) -> Failure {
        Failure {
            code: 1,
            message: message.into(),
        }
    }
}

impl From<feedwire::store::StoreError> for Failure {
    fn from(e: feedwire::store::StoreError) -> Failure {
        Failure::from(anyhow::Error::from(e))
    }
}

pub fn load(explicit: Option<&Path>) -> Result<(PathBuf, Config), Failure> {
    let path = config::locate(explicit)?;
    let config = config::load(&path)?;
    Ok((path, config))
}

pub async fn open_store(explicit: Option<&Path>) -> Result<Reader, Failure> {
    let (_, config) = load(explicit)?;
    Ok(Store::connect(&config).await?.reader())
}

pub async fn dispatch(cli: Cli) -> Result<u8, Failure> {
    match cli.command {
        Command::Check => check(cli.config.as_deref()),
        Command::Run => daemon::run(cli.config.as_deref()).await,
        Command::Once(args) => daemon::once(cli.config.as_deref(), args).await,
        Command::Extract(args) => extract::run(cli.config.as_deref(), args).await,
        Command::Preview(args) => preview::run(cli.config.as_deref(), args).await,
        Command::Feeds(args) => {
            let (_, config) = load(cli.config.as_deref())?;
            let store = Store::connect(&config).await?.reader();
            reports::feeds(&store, &config, args.json).await
        }
        Command::Items(args) => {
            let store = open_store(cli.config.as_deref()).await?;
            reports::items(&store, args).await
        }
        Command::Deliveries(args) => {
            let store = open_store(cli.config.as_deref()).await?;
            reports::deliveries(&store, args).await
        }
        Command::Redeliver(args) => {
            let (_, config) = load(cli.config.as_deref())?;
            if !config.sinks.contains_key(&args.sink) {
                return Err(Failure::usage(format!(
                    "no sink named {:?} in the config",
                    args.sink
                )));
            }
            let store = Store::connect(&config).await?;
            let since = args.since.map(|d| Timestamp::now().before(d));
            let n = store.redeliver(&args.sink, args.dead, since).await?;
            outln!(
                "queued {n} deliveries for sink {} again; a running daemon sends them within 30s",
                args.sink
            );
            Ok(0)
        }
        Command::Opml(command) => opml::run(cli.config.as_deref(), command),
        Command::TestSink(args) => test_sink(cli.config.as_deref(), args).await,
    }
}

async fn test_sink(explicit: Option<&Path>, args: TestSinkArgs) -> Result<u8, Failure> {
    use feedwire::sinks::sample;
    let (_, config) = load(explicit)?;
    let Some(sink) = config.sinks.get(&args.name) else {
        return Err(Failure::usage(format!(
            "no sink named {:?} in the config",
            args.name
        )));
    };
    let body = sample::sample_body(&sample::sample_feed(&config, &args.name));
    let shown =
        sample::show(&config, &args.name, &body).map_err(|e| Failure::usage(e.to_string()))?;
    outln!("{shown}");
    if !args.send {
        eprintln!("feedwire: not sent; add --send to deliver it for real");
        return Ok(0);
    }
    let (built, _) = feedwire::sinks::build(sink, &config.daemon.user_agent)
        .map_err(|e| Failure::usage(format!("sink {}: {e}", args.name)))?;
    match sample::send(built, &body).await {
        Ok(()) => {
            eprintln!("feedwire: sink {} accepted the sample", args.name);
            Ok(0)
        }
        Err(e) => {
            eprintln!(
                "feedwire: sink {} did not accept the sample: {e}",
                args.name
            );
            Ok(1)
        }
    }
}

fn check(explicit: Option<&Path>) -> Result<u8, Failure> {
    let (path, config) = load(explicit)?;
    // Secrets are read now too, so a missing variable is found before the service starts.
    let mut problems = Vec::new();
    for (name, sink) in &config.sinks {
        let result = match &sink.kind {
            SinkKind::Webhook(w) => {
                feedwire::sinks::webhook::WebhookSink::new(w, &config.daemon.user_agent)
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
            SinkKind::Preset(p) => feedwire::sinks::presets::PresetSink::new(
                &p.preset,
                &config.daemon.user_agent,
                p.timeout,
                p.concurrency,
            )
            .map(drop)
            .map_err(|e| e.to_string()),
            SinkKind::Nats(n) => feedwire::sinks::nats::NatsSink::new(n)
                .map(drop)
                .map_err(|e| e.to_string()),
            SinkKind::Amqp(a) => feedwire::sinks::amqp::AmqpSink::new(a)
                .map(drop)
                .map_err(|e| e.to_string()),
            SinkKind::Log { .. } => Ok(()),
        };
        if let Err(e) = result {
            problems.push(format!("sinks.{name}: {e}"));
        }
    }
    // A feed's secrets too, each named by the key that names it.
    for feed in &config.feeds {
        if let Some(c) = &feed.access.in_url {
            eprintln!(
                "warning: {}: the URL carries a user name and password; they are taken out of it and \
                 sent as basic auth, but belong in username and password_env (or password_file)",
                c.key
            );
        }
        // A default under [poll] is named once, not once per feed.
        if let Err(e) = feedwire::fetch::Access::resolve(feed)
            && !problems.contains(&e.to_string())
        {
            problems.push(e.to_string());
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
    let rules = match config.rules.rules().count() {
        0 => String::new(),
        n => format!(", {}", counted(n, "rule")),
    };
    outln!(
        "{}: ok ({}, {}{rules})",
        path.display(),
        counted(config.feeds.len(), "feed"),
        counted(config.sinks.len(), "sink")
    );
    Ok(0)
}

/// "1 feed", "3 feeds".
fn counted(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

/// Writes command output to stdout. A closed pipe ends the process with 0 (the reader took
/// what it wanted); any other write error ends it with 1 and a message.
pub fn write_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("feedwire: error: cannot write the output: {e}");
        std::process::exit(1);
    }
}

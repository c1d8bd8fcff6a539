use super::*;

fn parse_str(text: &str) -> Result<Config, ConfigError> {
    parse(text, Path::new("test.toml"), &BTreeMap::new())
}

#[test]
fn example_config_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/feedwire.toml");
    let config = load_with_env(&path, &BTreeMap::new()).expect("the example config is valid");
    assert!(!config.feeds.is_empty());
    assert!(config.sinks.contains_key("stdout"));
}

#[test]
fn defaults_fill_an_empty_file() {
    let c = parse_str("").expect("empty config is valid");
    assert_eq!(c.poll.interval, Duration::from_secs(15 * 60));
    assert_eq!(c.poll.max_feed_size, 10 * 1024 * 1024);
    assert_eq!(c.daemon.per_host_connections, 2);
    assert!(c.dedup.near_duplicates);
    assert_eq!(c.poll.backfill, Backfill::All);
}

#[test]
fn reports_every_problem_with_path_and_line() {
    let text = "[poll]\ninterval = \"soon\"\nmax_feed_size = \"lots\"\n\n[[feeds]]\nurl = \"ftp://x\"\nintervall = \"5m\"\n";
    let Err(ConfigError::Invalid { problems, .. }) = parse_str(text) else {
        panic!("config with mistakes must be rejected");
    };
    let paths: Vec<(&str, Option<usize>)> =
        problems.iter().map(|p| (p.path.as_str(), p.line)).collect();
    assert_eq!(
        paths,
        vec![
            ("poll.interval", Some(2)),
            ("poll.max_feed_size", Some(3)),
            ("feeds[0].url", Some(6)),
            ("feeds[0].intervall", Some(7)),
        ]
    );
}

#[test]
fn environment_overrides_use_double_underscores() {
    let mut env = BTreeMap::new();
    env.insert("FEEDWIRE__POLL__INTERVAL".to_string(), "5m".to_string());
    env.insert(
        "FEEDWIRE__DAEMON__MAX_CONNECTIONS".to_string(),
        "8".to_string(),
    );
    env.insert("FEEDWIRE_CONFIG".to_string(), "ignored.toml".to_string());
    let c = parse("[poll]\ninterval = \"1h\"\n", Path::new("t.toml"), &env).expect("valid");
    assert_eq!(c.poll.interval, Duration::from_secs(300));
    assert_eq!(c.daemon.max_connections, 8);
}

#[test]
fn feed_names_default_to_host_and_stay_unique() {
    let c = parse_str(
        "[[feeds]]\nurl = \"https://www.example.com/a.xml\"\n[[feeds]]\nurl = \"https://example.com/b.xml\"\n",
    )
    .expect("valid");
    let names: Vec<&str> = c.feeds.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, vec!["example.com", "example.com-2"]);
}

#[test]
fn host_overrides_are_read_and_checked() {
    let c = parse_str(
        "[hosts.\"Example.com\"]\nmin_delay = \"2s\"\nuser_agent = \"me\"\nconnections = 1\n",
    )
    .expect("valid");
    let h = &c.hosts["example.com"];
    assert_eq!(
        (h.min_delay, h.user_agent.as_deref(), h.connections),
        (Duration::from_secs(2), Some("me"), Some(1))
    );
    let Err(ConfigError::Invalid { problems, .. }) =
        parse_str("[hosts.\"a.com\"]\nmin_delay = \"soon\"\ndelay = 1\n")
    else {
        panic!("must be rejected");
    };
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        vec!["hosts.\"a.com\".min_delay", "hosts.\"a.com\".delay"]
    );
}

#[test]
fn sinks_are_checked_by_type() {
    let text = "[sinks.a]\ntype = \"log\"\nurl = \"http://x\"\n[sinks.b]\ntype = \"webhook\"\n[[feeds]]\nurl = \"http://e.com/f\"\nsinks = [\"c\"]\n";
    let Err(ConfigError::Invalid { problems, .. }) = parse_str(text) else {
        panic!("must be rejected");
    };
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, vec!["sinks.a.url", "sinks.b.url", "feeds[0].sinks"]);
}

fn problems_of(text: &str) -> Vec<Problem> {
    match parse_str(text) {
        Err(ConfigError::Invalid { problems, .. }) => problems,
        other => panic!("config must be rejected, got {other:?}"),
    }
}

#[test]
fn every_kind_of_mistake_is_reported_at_once() {
    let text = "[daemon]\nmax_connections = 0\nlisten = \"nowhere\"\nlog_format = \"xml\"\n\
                [poll]\nmin_interval = \"7h\"\nbackfill = \"some\"\n\
                [article]\nallowed_networks = [\"10.0.0.0/8\", \"lan\"]\n\
                [dedup]\nnear_duplicates = \"yes\"\n\
                [sinks.s]\ntype = \"log\"\nevents = [\"item.gone\"]\n\
                [nope]\n";
    let paths: Vec<(String, Option<usize>)> = problems_of(text)
        .into_iter()
        .map(|p| (p.path, p.line))
        .collect();
    let expected = [
        ("daemon.max_connections", 2),
        ("daemon.listen", 3),
        ("daemon.log_format", 4),
        ("poll.min_interval", 6),
        ("poll.backfill", 7),
        ("article.allowed_networks[1]", 9),
        ("dedup.near_duplicates", 11),
        ("sinks.s.events", 14),
        ("nope", 15),
    ];
    let expected: Vec<(String, Option<usize>)> = expected
        .iter()
        .map(|(p, l)| (p.to_string(), Some(*l)))
        .collect();
    assert_eq!(paths, expected);
}

#[test]
fn a_key_of_the_wrong_sink_type_is_named_as_such() {
    let problems = problems_of("[sinks.a]\ntype = \"log\"\nconcurrency = 2\n");
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].path, "sinks.a.concurrency");
    assert_eq!(problems[0].message, "not a setting of a log sink");
    assert_eq!(problems[0].line, Some(3));
}

#[test]
fn a_section_that_is_not_a_table_is_one_problem() {
    let problems = problems_of("poll = 3\n");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].path, "poll");
    assert_eq!(problems[0].message, "expected a table, found a number");
}

#[test]
fn environment_values_are_read_like_the_file() {
    let mut env = BTreeMap::new();
    env.insert(
        "FEEDWIRE__ARTICLE__ALLOWED_NETWORKS".to_string(),
        "127.0.0.1/32, ::1".to_string(),
    );
    env.insert("FEEDWIRE__ARTICLE__FETCH".to_string(), "false".to_string());
    env.insert("FEEDWIRE__POLL__TIMEOUT".to_string(), "soon".to_string());
    let Err(ConfigError::Invalid { problems, .. }) = parse("", Path::new("t.toml"), &env) else {
        panic!("a timeout of \"soon\" must be rejected");
    };
    // From the environment there is no line to show.
    assert_eq!(
        problems
            .iter()
            .map(|p| (p.path.as_str(), p.line))
            .collect::<Vec<_>>(),
        vec![("poll.timeout", None)]
    );
    env.remove("FEEDWIRE__POLL__TIMEOUT");
    let c = parse("", Path::new("t.toml"), &env).expect("valid");
    assert_eq!(c.article.allowed_networks.len(), 2);
    assert!(!c.article.fetch);
}

#[test]
fn an_empty_file_resolves_to_the_named_defaults() {
    let c = parse_str("").expect("valid");
    assert_eq!(c.daemon.shutdown_grace, defaults::SHUTDOWN_GRACE);
    assert_eq!(c.daemon.user_agent, defaults::USER_AGENT);
    assert_eq!(c.poll.max_interval, defaults::POLL_MAX_INTERVAL);
    assert_eq!(c.article.max_page_size, defaults::MAX_PAGE_SIZE);
    assert_eq!(c.dedup.retention, defaults::RETENTION);
}

#[test]
fn websub_needs_listen_and_names_its_keys() {
    let Err(ConfigError::Invalid { problems, .. }) = parse_str(
        "[websub]\ncallback = \"https://fw.example.com/websub\"\nlease = \"soon\"\n\n[[feeds]]\nurl = \"https://a.example/feed\"\nwebsub = \"yes\"\n",
    ) else {
        panic!("[websub] without listen must be rejected");
    };
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        vec!["websub.callback", "websub.lease", "feeds[0].websub"]
    );
    assert!(
        problems[0].message.contains("daemon.listen"),
        "{problems:?}"
    );

    let Err(ConfigError::Invalid { problems, .. }) =
        parse_str("[[feeds]]\nurl = \"https://a.example/feed\"\nwebsub = true\n")
    else {
        panic!("websub = true without [websub] must be rejected");
    };
    assert_eq!(problems[0].path, "feeds[0].websub");

    let c = parse_str(
        "[daemon]\nlisten = \"127.0.0.1:9464\"\n[websub]\ncallback = \"https://fw.example.com/websub\"\nlease = \"10d\"\n\n[[feeds]]\nurl = \"https://a.example/feed\"\nwebsub = false\n",
    )
    .expect("valid");
    let w = c.websub.expect("websub");
    assert_eq!(w.callback.path(), "/websub");
    assert_eq!(w.lease, Some(Duration::from_secs(10 * 24 * 3600)));
    assert_eq!(c.feeds[0].websub, Some(false));
    assert!(parse_str("").expect("valid").websub.is_none());
}

#[test]
fn the_store_is_sqlite_unless_postgres_is_asked_for_with_a_secret_url() {
    assert_eq!(parse_str("").expect("valid").store, StoreConfig::Sqlite);
    let pg = parse_str(
        "[store]\nbackend = \"postgres\"\nurl_env = \"FEEDWIRE_DATABASE_URL\"\nnode = \"host-a\"\nlease = \"30s\"\n",
    )
    .expect("valid");
    assert_eq!(
        pg.store,
        StoreConfig::Postgres(PostgresStore {
            url: SecretSource::Env("FEEDWIRE_DATABASE_URL".into()),
            url_key: "store.url_env".into(),
            pool_size: defaults::STORE_POOL_SIZE,
            node: Some("host-a".into()),
            lease: Duration::from_secs(30),
        })
    );

    let text = "[daemon]\nlisten = \"127.0.0.1:9\"\n\n[websub]\ncallback = \"https://x.example/websub\"\n\n\
                [store]\nbackend = \"postgres\"\nurl = \"postgres://u:secret@db/x\"\nlease = \"1s\"\n";
    let Err(ConfigError::Invalid { problems, .. }) = parse_str(text) else {
        panic!("an inline connection string must be rejected");
    };
    let messages: Vec<String> = problems
        .iter()
        .map(|p| format!("{}: {}", p.path, p.message))
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("store.url: a connection string is a secret")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("store.lease: must be at least 2s")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("store.backend: [websub] is not available")),
        "{messages:?}"
    );
    assert!(
        !messages.iter().any(|m| m.contains("secret@")),
        "the password is never repeated: {messages:?}"
    );

    let Err(ConfigError::Invalid { problems, .. }) = parse_str("[store]\nbackend = \"mysql\"\n")
    else {
        panic!("an unknown backend must be rejected");
    };
    assert_eq!(problems[0].path, "store.backend");
    let Err(ConfigError::Invalid { problems, .. }) = parse_str("[store]\nnode = \"a\"\n") else {
        panic!("postgres keys on the sqlite store must be rejected");
    };
    assert_eq!(problems[0].path, "store.node");
}

//! `tether`: the chat server on its embedded store, and tools to look inside
//! a store.

mod admin;
mod api;
mod auth;
mod chat;
mod forward;
mod settings;
mod trim;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use tether::cluster::ClusterOptions;
use tether::engine::Body;
use tether::store::{
    Durability, Health, MemoryStore, PostgresStore, RedisStore, SessionInfo, SqliteStore, Store,
    StoreError, StreamInfo,
};
use tether::SocketIo;

use settings::{Given, ServeArgs, Settings, StoreKind};

/// The chat page.
const PAGE: &str = include_str!("../web/index.html");
/// The official socket.io-client browser bundle, from web/node_modules (npm ci).
const CLIENT_JS: &str = include_str!(concat!(env!("OUT_DIR"), "/socket.io.min.js"));

#[derive(Debug, Parser)]
#[command(
    name = "tether",
    version,
    about = "A Socket.IO server that never loses a message"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the chat app (page at `/`, Socket.IO at `/socket.io/`; with
    /// `--api-key`, the HTTP API for backends at `/api/v1`; with
    /// `--jwt-secret` or `--jwt-public-key`, clients must bring a token; with
    /// `--forward-url`, the events it does not handle go to a backend) until
    /// SIGTERM or SIGINT.
    Serve(Box<ServeArgs>),
    /// Print a page of stored messages (newest last), a line each:
    /// position, time (RFC 3339, UTC), event, arguments (JSON), tab-separated.
    History {
        /// The store: a SQLite file, a postgres:// or a redis:// URL.
        #[arg(long, default_value = "tether.db")]
        store: String,
        /// Prefix of Tether's keys, for a redis:// store.
        #[arg(long, env = "TETHER_REDIS_PREFIX", default_value = "tether")]
        redis_prefix: String,
        /// Namespace.
        #[arg(long, default_value = "/")]
        nsp: String,
        /// A room (default: the whole-namespace stream).
        #[arg(long)]
        room: Option<String>,
        /// Only messages before this position.
        #[arg(long)]
        before: Option<u64>,
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print each time as milliseconds since the Unix epoch instead.
        #[arg(long)]
        epoch_ms: bool,
    },
    /// Print the store's positions: the latest and the oldest kept.
    Bounds {
        /// The store: a SQLite file, a postgres:// or a redis:// URL.
        #[arg(long, default_value = "tether.db")]
        store: String,
        /// Prefix of Tether's keys, for a redis:// store.
        #[arg(long, env = "TETHER_REDIS_PREFIX", default_value = "tether")]
        redis_prefix: String,
    },
    /// Print every stream: namespace, room (empty: the whole namespace),
    /// entries kept, oldest and latest position.
    Streams {
        /// The store: a SQLite file, a postgres:// or a redis:// URL.
        #[arg(long, default_value = "tether.db")]
        store: String,
        /// Prefix of Tether's keys, for a redis:// store.
        #[arg(long, env = "TETHER_REDIS_PREFIX", default_value = "tether")]
        redis_prefix: String,
    },
    /// Print the sessions kept for recovery (public ids only), with whether
    /// they are connected and since when they changed.
    Sessions {
        /// The store: a SQLite file, a postgres:// or a redis:// URL.
        #[arg(long, default_value = "tether.db")]
        store: String,
        /// Prefix of Tether's keys, for a redis:// store.
        #[arg(long, env = "TETHER_REDIS_PREFIX", default_value = "tether")]
        redis_prefix: String,
    },
    /// Print a user's unacknowledged inbox entries.
    Inbox {
        /// The store: a SQLite file, a postgres:// or a redis:// URL.
        #[arg(long, default_value = "tether.db")]
        store: String,
        /// Prefix of Tether's keys, for a redis:// store.
        #[arg(long, env = "TETHER_REDIS_PREFIX", default_value = "tether")]
        redis_prefix: String,
        /// The user.
        user: String,
    },
}

/// The command line parser, with each setting's default in `serve --help`
/// (the defaults are `Settings::default()`, merged after the TOML file, so
/// they are not clap defaults).
fn command() -> clap::Command {
    let defaults = serde_json::to_value(Settings::default()).unwrap_or_default();
    Cli::command().mut_subcommand("serve", |mut serve| {
        let Some(defaults) = defaults.as_object() else {
            return serve;
        };
        for (name, value) in defaults {
            if !serve.get_arguments().any(|a| a.get_id() == name.as_str()) {
                continue;
            }
            let shown = match value {
                serde_json::Value::String(s) if s.is_empty() => "none".to_owned(),
                serde_json::Value::Array(a) if a.is_empty() => "none".to_owned(),
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            serve = serve.mut_arg(name, |arg| {
                let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                let long = arg.get_long_help().map(ToString::to_string);
                let arg = arg.help(format!("{help} [default: {shown}]"));
                match long {
                    Some(long) => arg.long_help(format!("{long}\n\n[default: {shown}]")),
                    None => arg,
                }
            });
        }
        serve
    })
}

/// A bad value from an environment variable, said with the variable's
/// name (clap names the flag, `--port`, whichever gave the value).
fn env_error(err: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(
        err.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        return None;
    }
    let Some(ContextValue::String(arg)) = err.get(ContextKind::InvalidArg) else {
        return None;
    };
    let long = arg.strip_prefix("--")?.split([' ', '=']).next()?;
    let cli = command();
    let serve = cli.find_subcommand("serve")?;
    let found = serve.get_arguments().find(|a| a.get_long() == Some(long))?;
    let var = found.get_env()?.to_str()?.to_owned();
    let value = std::env::var_os(&var)?;
    // The value was the variable's if the same error does not come back
    // without it (a flag on the command line wins over the variable).
    let id = found.get_id().as_str().to_owned();
    let again = command()
        .mut_subcommand("serve", |s| s.mut_arg(&id, |a| a.env(None::<&str>)))
        .try_get_matches();
    if let Err(again) = again {
        if again.kind() == err.kind()
            && again.get(ContextKind::InvalidArg) == err.get(ContextKind::InvalidArg)
        {
            return None;
        }
    }
    let why = std::error::Error::source(err)
        .map(ToString::to_string)
        .unwrap_or_else(|| "not a valid value".to_owned());
    Some(format!(
        "bad value for `{id}` (environment variable {var}): {value:?}: {why}"
    ))
}

/// Where each setting of `serve` was given.
fn given(matches: &clap::ArgMatches, name: &str) -> Given {
    match matches
        .try_get_raw(name)
        .ok()
        .flatten()
        .and(matches.value_source(name))
    {
        Some(ValueSource::CommandLine) => Given::Flag,
        Some(ValueSource::EnvVariable) => Given::Env,
        _ => Given::Neither,
    }
}

fn main() -> std::process::ExitCode {
    let matches = match command().try_get_matches() {
        Ok(matches) => matches,
        Err(err) => match env_error(&err) {
            Some(message) => {
                eprintln!("tether: {message}");
                return std::process::ExitCode::from(2);
            }
            None => err.exit(),
        },
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(err) => err.exit(),
    };
    let serve_matches = matches.subcommand_matches("serve").cloned();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tether: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => {
                let matches = serve_matches.unwrap_or_default();
                serve(*args, |name| given(&matches, name)).await
            }
            Command::History {
                store,
                redis_prefix,
                nsp,
                room,
                before,
                limit,
                epoch_ms,
            } => {
                let store = open_existing(&store, &redis_prefix).await?.store();
                let page = store
                    .history(&nsp, room.as_deref(), before.unwrap_or(u64::MAX), limit)
                    .await?;
                for entry in page {
                    let args =
                        tether::proto::socketio::event_array(None, &tether::delivered_args(&entry));
                    let time = if epoch_ms {
                        entry.ts_ms.to_string()
                    } else {
                        rfc3339(entry.ts_ms)
                    };
                    println!(
                        "{}\t{time}\t{}\t{}",
                        entry.seq,
                        entry.entry.event,
                        args.get()
                    );
                }
                Ok(())
            }
            Command::Bounds {
                store,
                redis_prefix,
            } => {
                let store = open_existing(&store, &redis_prefix).await?.store();
                let (last, first) = store.bounds().await?;
                println!(
                    "epoch {}\nlatest {last}\noldest kept {first}",
                    store.epoch()
                );
                Ok(())
            }
            Command::Streams {
                store,
                redis_prefix,
            } => {
                let store = open_existing(&store, &redis_prefix).await?;
                println!("nsp\troom\tentries\toldest\tlatest");
                for s in store.streams().await? {
                    println!(
                        "{}\t{}\t{}\t{}\t{}",
                        s.nsp, s.room, s.count, s.first, s.last
                    );
                }
                Ok(())
            }
            Command::Sessions {
                store,
                redis_prefix,
            } => {
                let store = open_existing(&store, &redis_prefix).await?;
                println!("sid\tnsp\trooms\tconnected\tupdated_ms");
                for s in store.sessions().await? {
                    println!(
                        "{}\t{}\t{}\t{}\t{}",
                        s.sid, s.nsp, s.rooms, s.connected, s.updated_ms
                    );
                }
                Ok(())
            }
            Command::Inbox {
                store,
                redis_prefix,
                user,
            } => {
                let store = open_existing(&store, &redis_prefix).await?.store();
                for entry in store.inbox_pending(&user, 0, 10_000).await? {
                    println!(
                        "{}\t{}\t{}\t{}",
                        entry.seq, entry.ts_ms, entry.event, entry.args
                    );
                }
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tether: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

type AnyError = Box<dyn std::error::Error + Send + Sync>;

/// A store the tools read: a SQLite file, a PostgreSQL schema or a Redis
/// key prefix that holds a store (the tools never create one).
enum Existing {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
    Redis(Box<RedisStore>),
}

impl Existing {
    fn store(self) -> Arc<dyn Store> {
        match self {
            Existing::Sqlite(store) => Arc::new(store),
            Existing::Postgres(store) => Arc::new(store),
            Existing::Redis(store) => Arc::new(*store),
        }
    }

    async fn streams(&self) -> Result<Vec<StreamInfo>, StoreError> {
        match self {
            Existing::Sqlite(store) => store.streams().await,
            Existing::Postgres(store) => store.streams().await,
            Existing::Redis(store) => store.streams().await,
        }
    }

    async fn sessions(&self) -> Result<Vec<SessionInfo>, StoreError> {
        match self {
            Existing::Sqlite(store) => store.sessions().await,
            Existing::Postgres(store) => store.sessions().await,
            Existing::Redis(store) => store.sessions().await,
        }
    }
}

async fn open_existing(store: &str, redis_prefix: &str) -> Result<Existing, AnyError> {
    match StoreKind::of(store)? {
        StoreKind::Sqlite => Ok(Existing::Sqlite(open_sqlite(store)?)),
        StoreKind::Postgres => PostgresStore::connect_existing(store)
            .await
            .map(Existing::Postgres)
            .map_err(|e| format!("store {store}: {e}").into()),
        StoreKind::Redis => {
            let (url, prefix) = (store.to_owned(), redis_prefix.to_owned());
            // Connecting blocks for a round trip.
            tokio::task::spawn_blocking(move || RedisStore::connect_existing(&url, &prefix))
                .await?
                .map(|store| Existing::Redis(Box::new(store)))
                .map_err(|e| format!("store {store} (prefix {redis_prefix}): {e}").into())
        }
        StoreKind::Memory => Err(format!(
            "store {store}: the store tools read a SQLite file, a postgres:// or a redis:// store"
        )
        .into()),
    }
}

/// A time in milliseconds since the Unix epoch as RFC 3339, UTC, to the
/// millisecond (`2026-12-03T17:30:09.123Z`).
fn rfc3339(ms: impl TryInto<u64>) -> String {
    match ms.try_into() {
        Ok(ms) => humantime::format_rfc3339_millis(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms),
        )
        .to_string(),
        Err(_) => "before 1970".to_owned(),
    }
}

fn open_sqlite(path: &str) -> Result<SqliteStore, AnyError> {
    open_sqlite_with(path, Durability::Fsync, true)
}

/// Opens the SQLite store at `path`, with an error that names the path and
/// says what is wrong (no such directory, a directory, a read-only file, a
/// file that is not a SQLite database). `must_exist`: the tools read a store,
/// they do not create one.
fn open_sqlite_with(
    path: &str,
    durability: Durability,
    must_exist: bool,
) -> Result<SqliteStore, AnyError> {
    check_store_file(path, must_exist)?;
    SqliteStore::open(path, durability).map_err(|e| format!("store {path}: {e}").into())
}

fn check_store_file(path: &str, must_exist: bool) -> Result<(), String> {
    let file = Path::new(path);
    match std::fs::metadata(file) {
        Ok(meta) if meta.is_dir() => Err(format!(
            "store {path}: is a directory: give the path of a SQLite file"
        )),
        Ok(meta) => {
            if meta.permissions().readonly() {
                return Err(format!(
                    "store {path}: the file is read-only: Tether writes to its store \
                     (give it write permission, or another file)"
                ));
            }
            let mut header = [0u8; 16];
            let read = std::fs::File::open(file).and_then(|mut f| {
                use std::io::Read;
                let mut n = 0;
                while n < header.len() {
                    match f.read(&mut header[n..])? {
                        0 => break,
                        k => n += k,
                    }
                }
                Ok(n)
            });
            match read {
                // An empty file is a new database to SQLite.
                Ok(0) => Ok(()),
                Ok(n) if n == header.len() && &header == b"SQLite format 3\0" => Ok(()),
                Ok(_) => Err(format!(
                    "store {path}: not a SQLite database (the file exists but holds something \
                     else: give another path, or move it away)"
                )),
                Err(e) => Err(format!("store {path}: cannot read it: {e}")),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if must_exist {
                return Err(format!("no store at {path}"));
            }
            let dir = match file.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir,
                _ => Path::new("."),
            };
            if dir.is_dir() {
                Ok(())
            } else {
                Err(format!(
                    "store {path}: the directory {} does not exist (create it first)",
                    dir.display()
                ))
            }
        }
        Err(e) => Err(format!("store {path}: {e}")),
    }
}

fn init_logs(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn serve(args: ServeArgs, given: impl Fn(&str) -> Given) -> Result<(), AnyError> {
    let mut signals = Signals::new()?;
    let settings = Settings::load(&args, given)?;
    if args.check {
        settings.config()?;
        settings.serve_options()?;
        println!("settings ok");
        if let Some(values) = serde_json::to_value(&settings)?.as_object() {
            for (name, value) in values {
                match value {
                    // The API keys are secrets: how many, not what.
                    serde_json::Value::Array(keys) if name == "api_key" => {
                        let hidden = vec!["(hidden)"; keys.len()];
                        println!("{name} = {}", serde_json::json!(hidden));
                    }
                    // So is the token secret: whether it is set, not what.
                    serde_json::Value::String(s)
                        if (name == "jwt_secret" || name == "admin_password") && !s.is_empty() =>
                    {
                        println!("{name} = \"(hidden)\"");
                    }
                    value => println!("{name} = {value}"),
                }
            }
        }
        return Ok(());
    }
    init_logs(&settings.log_format);
    let config = settings.config()?;
    let (max_payload, body_read_timeout) = (config.max_payload, config.body_read_timeout);
    let serve_options = settings.serve_options()?;
    match tether::server::raise_fd_limit() {
        Ok(limit) => tracing::debug!(limit, "open files limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open files limit"),
    }
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| format!("metrics: {e}"))?;
    // On Redis the node joins the cluster of every node sharing the prefix:
    // fetch_sockets, broadcast acks and the like reach all of them.
    let kind = StoreKind::of(&settings.store)?;
    let (io, store): (SocketIo, Arc<dyn Store>) = if kind == StoreKind::Redis {
        let redis = Arc::new(
            RedisStore::connect(&settings.store, &settings.redis_prefix)
                .map_err(|e| format!("store {}: {e}", settings.store))?,
        );
        let io = SocketIo::with_cluster(config, redis.clone(), ClusterOptions::default())?;
        (io, redis)
    } else if kind == StoreKind::Postgres {
        // Every node on the database (and schema) is one cluster: stored
        // events reach every node through the store's feed, in one order;
        // fetch_sockets, broadcast acks and the like go over LISTEN/NOTIFY.
        // Sessions left connected by a node that died are released by the
        // trims of the others, once its lease runs out.
        let postgres = Arc::new(
            PostgresStore::connect(&settings.store)
                .await
                .map_err(|e| format!("store {}: {e}", settings.store))?,
        );
        let io = SocketIo::with_cluster(config, postgres.clone(), ClusterOptions::default())?;
        (io, postgres)
    } else {
        let store: Arc<dyn Store> = if settings.store == "memory" {
            Arc::new(MemoryStore::new())
        } else {
            let durability = match settings.durability.as_str() {
                "relaxed" => Durability::Relaxed,
                _ => Durability::Fsync,
            };
            let store = open_sqlite_with(&settings.store, durability, false)?;
            // This process owns the file: sessions left connected by one that
            // died are disconnected as of now, so the recovery window applies.
            let orphans = store.disconnect_sessions().await?;
            if orphans > 0 {
                tracing::info!(
                    sessions = orphans,
                    "sessions left connected by a previous run are disconnected as of now"
                );
            }
            Arc::new(store)
        };
        (SocketIo::with_store(config, store.clone()), store)
    };
    let forwarder = settings.forward()?.map(|(url, timeout, concurrency)| {
        tracing::info!(%url, ?timeout, concurrency, "client events the server does not handle go to the backend");
        forward::Forwarder::new(url, timeout, concurrency, max_payload)
    });
    let chat = chat::install(&io, forwarder);
    if let Some(verifier) = settings.verifier()? {
        tracing::info!(algorithm = ?verifier.algorithm(), "clients must bring a token (auth.token)");
        auth::guard(chat, Arc::new(verifier));
    }
    if let Some(login) = settings.admin()? {
        tracing::info!(user = %settings.admin_user, read_only = settings.admin_read_only, "Admin UI at /admin/ (namespace /admin)");
        admin::install(
            &io,
            admin::Options {
                login,
                read_only: settings.admin_read_only,
                metrics: metrics.clone(),
                store: store.clone(),
                secure: serve_options.tls.is_some(),
            },
        );
    }
    let admin_on = settings.admin()?.is_some();
    trim::spawn();
    let api = api::ApiKeys::new(&settings.api_key).map(|keys| {
        tracing::info!(keys = keys.len(), "HTTP API on /api/v1");
        Arc::new(api::Api::new(
            io.clone(),
            keys,
            max_payload,
            body_read_timeout,
        ))
    });

    let addr: SocketAddr = format!("{}:{}", settings.host, settings.port)
        .parse()
        .map_err(|e| format!("bad value for `host`/`port`: {e}"))?;
    let listener = tether::server::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr()?;
    let scheme = if serve_options.tls.is_some() {
        "https"
    } else {
        "http"
    };
    println!(
        "Tether chat on {scheme}://{local}/ (store: {})",
        settings.store
    );
    tracing::info!(%local, store = %settings.store, "serving");

    let service = io.service();
    let io_handle = io.clone();
    let handler = move |req: Request<hyper::body::Incoming>| {
        let service = service.clone();
        let store = store.clone();
        let metrics = metrics.clone();
        let io = io_handle.clone();
        let api = api.clone();
        async move {
            if let Some(api) = api.filter(|_| api::serves(req.uri().path())) {
                return api.handle(req).await;
            }
            // HEAD is answered like GET; hyper leaves the body out.
            let method = match *req.method() {
                Method::HEAD => Method::GET,
                ref m => m.clone(),
            };
            match (&method, req.uri().path()) {
                (&Method::GET, "/") | (&Method::GET, "/index.html") => {
                    static_response(PAGE, "text/html; charset=utf-8")
                }
                (&Method::GET, "/socket.io/socket.io.js") => {
                    static_response(CLIENT_JS, "application/javascript; charset=utf-8")
                }
                (&Method::GET, path) if admin_on && admin::file(path).is_some() => {
                    match admin::file(path) {
                        Some((bytes, kind)) => bytes_response(bytes, kind),
                        None => service.handle(req).await,
                    }
                }
                (&Method::GET, "/healthz") if io.is_shutting_down() => shutting_down_response(),
                (&Method::GET, "/healthz") => health_response(store.check_health().await),
                (&Method::GET, "/metrics") => {
                    let mut res = Response::new(Body::from(Bytes::from(metrics.render())));
                    res.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; version=0.0.4"),
                    );
                    res
                }
                _ => service.handle(req).await,
            }
        }
    };

    let shutdown = async {
        signals.next().await;
        // At once, before anything else: no new session and no new emit,
        // on new and kept-alive HTTP connections alike.
        io.stop_accepting();
        tracing::info!("shutting down: closing transports so clients recover on the next server");
    };
    tether::server::serve_with_options(listener, handler, shutdown, serve_options).await?;
    // Stop taking new work, let committed work reach clients, keep sessions
    // (clients recover on the next server), close transports. A second
    // signal exits at once.
    let graceful = async {
        io.shutdown().await;
        // Let the transports write their close packets.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    tokio::select! {
        () = signals.next() => tracing::warn!("second signal: exiting now"),
        () = graceful => {}
    }
    Ok(())
}

/// `/healthz`: 200 `ok`, or 503 with the reason.
fn health_response(health: Health) -> Response<Body> {
    match health.reason() {
        None => {
            metrics::gauge!(tether::metrics::STORE_HEALTHY).set(1.0);
            static_response("ok\n", "text/plain")
        }
        Some(reason) => {
            metrics::gauge!(tether::metrics::STORE_HEALTHY).set(0.0);
            tracing::warn!(%reason, "health check failed");
            let mut res = Response::new(Body::from(Bytes::from(format!(
                "store unavailable: {reason}\n"
            ))));
            res.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            res
        }
    }
}

/// `/healthz` after the first signal: 503, so that a load balancer sends
/// nobody here any more.
fn shutting_down_response() -> Response<Body> {
    let mut res = static_response("shutting down\n", "text/plain");
    *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    res
}

fn bytes_response(body: &'static [u8], content_type: &'static str) -> Response<Body> {
    let mut res = Response::new(Body::from(Bytes::from_static(body)));
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

fn static_response(body: &'static str, content_type: &'static str) -> Response<Body> {
    let mut res = Response::new(Body::from(Bytes::from_static(body.as_bytes())));
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

/// SIGTERM and SIGINT, listened to from the start of `serve` so that an early
/// signal is a graceful shutdown too.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Self {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

//! `tether serve` settings: flags, then `TETHER_*` environment variables, then
//! an optional TOML file, then defaults.

use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// Flags of `tether serve`. Each has an environment variable; both win over
/// the TOML file.
#[derive(Debug, Clone, Default, clap::Args, Serialize)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "TETHER_HOST")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Port to listen on.
    #[arg(long, env = "TETHER_PORT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Store: a SQLite file path (created if missing), `memory`, a
    /// `redis://host:port` URL (several nodes sharing one Redis), or a
    /// `postgres://user@host:port/db` URL (or `postgresql://`; `?schema=NAME`,
    /// default `tether`: several nodes sharing one database).
    #[arg(long, env = "TETHER_STORE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// Prefix of Tether's keys in Redis (several apps can share one Redis).
    #[arg(long, env = "TETHER_REDIS_PREFIX")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_prefix: Option<String>,
    /// `fsync` (every commit reaches the disk) or `relaxed` (survives a crash
    /// of the process, not of the machine).
    #[arg(long, env = "TETHER_DURABILITY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub durability: Option<String>,
    /// How long a disconnected client's session stays recoverable: `90s`,
    /// `10m`, `2h`, `7d`, or `forever`.
    #[arg(long, env = "TETHER_RECOVERY_WINDOW")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_window: Option<String>,
    /// How long messages are kept: a duration, or `forever`.
    #[arg(long, env = "TETHER_RETENTION_AGE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_age: Option<String>,
    /// Most messages kept per namespace (0: no limit).
    #[arg(long, env = "TETHER_RETENTION_COUNT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_count: Option<u64>,
    /// Rooms of `/` kept by their own retention: `ROOM=LIMIT[/LIMIT],...`,
    /// a limit being a count (`100`) or an age (`7d`); `=LIMIT` (no room) is
    /// the stream of messages sent to everyone. Example: `typing=100,news=365d/5000`.
    #[arg(long, env = "TETHER_STREAM_RETENTION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_retention: Option<String>,
    /// Largest message accepted from a client, in bytes.
    #[arg(long, env = "TETHER_MAX_PAYLOAD")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_payload: Option<usize>,
    /// Most simultaneous connections.
    #[arg(long, env = "TETHER_MAX_CONNECTIONS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// Most bytes queued for one client before it is caught up from the store.
    #[arg(long, env = "TETHER_MAX_BUFFER")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_buffer: Option<usize>,
    /// Most bytes queued for all clients together (send queues, catch-up
    /// buffers and pages): over it, clients behind are paused and caught up
    /// from the store later.
    #[arg(long, env = "TETHER_MAX_BUFFER_TOTAL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_buffer_total: Option<usize>,
    /// How long a connection may take to send a request's headers, counted
    /// from its accept and again while a keep-alive connection waits for its
    /// next request (idle and slowloris connections are closed): a duration,
    /// or `forever`.
    #[arg(long, env = "TETHER_HEADER_READ_TIMEOUT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_read_timeout: Option<String>,
    /// How long a long-polling POST may take to send its body (then 408).
    #[arg(long, env = "TETHER_BODY_READ_TIMEOUT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_read_timeout: Option<String>,
    /// How long a write may stay blocked by a client that does not read
    /// (then the connection closes): a duration, or `forever`.
    #[arg(long, env = "TETHER_WRITE_TIMEOUT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_timeout: Option<String>,
    /// Most TCP connections open at once from one IP address (0: no limit).
    #[arg(long, env = "TETHER_MAX_CONNECTIONS_PER_IP")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections_per_ip: Option<usize>,
    /// Reverse proxies whose X-Forwarded-For gives the client's address,
    /// comma-separated addresses or networks: `127.0.0.1,10.0.0.0/8`
    /// (empty: none; the client's address is then the TCP peer's).
    #[arg(long, env = "TETHER_TRUSTED_PROXIES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusted_proxies: Option<String>,
    /// Other origins allowed to connect, comma-separated, each
    /// `scheme://host[:port]` as browsers send it (lowercase, no path, no
    /// default port): `https://chat.example.com,http://localhost:8080`;
    /// `*` for any.
    #[arg(long, env = "TETHER_CORS_ORIGINS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cors_origins: Option<String>,
    /// TLS certificate chain, a PEM file (leaf first, as certbot's
    /// fullchain.pem): serve https:// and wss:// with `--tls-key`.
    #[arg(long, env = "TETHER_TLS_CERT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<String>,
    /// TLS private key of `--tls-cert`, a PEM file (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "TETHER_TLS_KEY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<String>,
    /// Log format: `pretty` or `json` (levels from RUST_LOG, default info).
    #[arg(long, env = "TETHER_LOG_FORMAT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<String>,
    /// A key of the HTTP API for backends (`/api/v1`, served only when a key
    /// is set; requests send `Authorization: Bearer KEY`). Repeat the flag,
    /// or separate keys with commas, to accept several while one is rotated.
    /// At least 16 characters, no spaces or commas.
    #[arg(
        long,
        env = "TETHER_API_KEY",
        value_name = "KEY",
        value_delimiter = ',',
        hide_env_values = true
    )]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub api_key: Vec<String>,
    /// Authenticated users: the HS256 secret their tokens are signed with.
    /// Clients must then connect with a JWT in `auth.token`; its `sub` is
    /// the user (inbox, chat name from claim `name`). At least 16 bytes.
    #[arg(
        long,
        env = "TETHER_JWT_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_secret: Option<String>,
    /// Authenticated users: a PEM file with the public key their tokens are
    /// signed with (RSA: RS256, EC P-256: ES256); instead of `--jwt-secret`.
    #[arg(long, env = "TETHER_JWT_PUBLIC_KEY", value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_public_key: Option<String>,
    /// A backend's `http://` URL: every client event the server does not
    /// handle itself is POSTed there as JSON (namespace, event, args, user,
    /// socket, id), and the client's ack answered from its `{"ack": [..]}`
    /// (an error ack `{"error", "retry"}` on a timeout or an error status).
    #[arg(long, env = "TETHER_FORWARD_URL", value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forward_url: Option<String>,
    /// How long one forwarded event may wait for the backend's answer
    /// (room in the concurrency bound included); then an error ack.
    #[arg(long, env = "TETHER_FORWARD_TIMEOUT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forward_timeout: Option<String>,
    /// Most events in flight to `--forward-url` at once (more wait, in order).
    #[arg(long, env = "TETHER_FORWARD_CONCURRENCY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forward_concurrency: Option<usize>,
    /// The Socket.IO Admin UI (`/admin/`, namespace `/admin`): the user it
    /// logs in with. Needs `--admin-password`; without both there is no Admin UI.
    #[arg(long, env = "TETHER_ADMIN_USER", value_name = "USER")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_user: Option<String>,
    /// The Admin UI's password: the password itself (compared in constant
    /// time), or its bcrypt hash (a value starting with `$2`, as
    /// `htpasswd -nbBC 10 "" PASSWORD` prints after the colon).
    #[arg(
        long,
        env = "TETHER_ADMIN_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_password: Option<String>,
    /// The Admin UI only shows: its actions (join, leave, disconnect, emit)
    /// are refused.
    #[arg(long, env = "TETHER_ADMIN_READ_ONLY")]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub admin_read_only: bool,
    /// A TOML file with any of these settings (same names, snake_case).
    #[arg(long, env = "TETHER_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Check the settings (flags, TETHER_* variables, the TOML file), print
    /// them and exit without serving (the store is not opened).
    #[arg(long)]
    #[serde(skip)]
    pub check: bool,
}

/// Where a setting of `ServeArgs` was given (flags and environment variables
/// are told apart by clap).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Given {
    Flag,
    Env,
    /// Neither: the TOML file or the default.
    Neither,
}

/// The environment variable of setting `name`: `TETHER_PORT` for `port`.
pub fn env_var(name: &str) -> String {
    format!("TETHER_{}", name.to_ascii_uppercase())
}

/// The merged settings, as read.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub host: String,
    pub port: u16,
    pub store: String,
    pub redis_prefix: String,
    pub durability: String,
    pub recovery_window: String,
    pub retention_age: String,
    pub retention_count: u64,
    pub stream_retention: String,
    pub max_payload: usize,
    pub max_connections: usize,
    pub max_buffer: usize,
    pub max_buffer_total: usize,
    pub header_read_timeout: String,
    pub body_read_timeout: String,
    pub write_timeout: String,
    pub max_connections_per_ip: usize,
    pub trusted_proxies: String,
    pub cors_origins: String,
    pub tls_cert: String,
    pub tls_key: String,
    pub log_format: String,
    /// The keys of the HTTP API (`/api/v1`); empty: the API is off.
    pub api_key: Vec<String>,
    /// The HS256 secret of users' tokens; empty: no HS256.
    pub jwt_secret: String,
    /// The PEM file of the public key of users' tokens; empty: none.
    pub jwt_public_key: String,
    /// The backend client events are forwarded to; empty: none.
    pub forward_url: String,
    /// Bound of one forwarded event's exchange.
    pub forward_timeout: String,
    /// Most forwarded events in flight.
    pub forward_concurrency: usize,
    /// The Admin UI's user; empty: no Admin UI.
    pub admin_user: String,
    /// The Admin UI's password or its bcrypt hash; empty: no Admin UI.
    pub admin_password: String,
    /// The Admin UI's actions are refused.
    pub admin_read_only: bool,
}

impl Default for Settings {
    fn default() -> Self {
        let config = tether::Config::default();
        Self {
            host: "127.0.0.1".into(),
            port: 3000,
            store: "tether.db".into(),
            redis_prefix: "tether".into(),
            durability: "fsync".into(),
            recovery_window: "10m".into(),
            retention_age: "30d".into(),
            retention_count: 0,
            stream_retention: String::new(),
            max_payload: config.max_payload,
            max_connections: config.max_connections,
            max_buffer: config.max_buffer,
            max_buffer_total: config.max_buffer_total,
            header_read_timeout: "10s".into(),
            body_read_timeout: "20s".into(),
            write_timeout: "60s".into(),
            max_connections_per_ip: 0,
            trusted_proxies: String::new(),
            cors_origins: String::new(),
            tls_cert: String::new(),
            tls_key: String::new(),
            log_format: "pretty".into(),
            api_key: Vec::new(),
            jwt_secret: String::new(),
            jwt_public_key: String::new(),
            forward_url: String::new(),
            forward_timeout: "5s".into(),
            forward_concurrency: 64,
            admin_user: String::new(),
            admin_password: String::new(),
            admin_read_only: false,
        }
    }
}

/// A setting with a bad value.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The TOML file or a value in it could not be read (the message names
    /// the file and the key as written there).
    #[error("{0}")]
    Read(String),
    /// A value is out of its range or format.
    #[error("bad value for `{name}`: {why}")]
    Invalid { name: &'static str, why: String },
    /// The same, saying where the value was given (`--flag`, an environment
    /// variable, the TOML file).
    #[error("bad value for `{name}`{place}: {why}")]
    Given {
        name: &'static str,
        place: String,
        why: String,
    },
}

/// A figment error in plain words: the key as the user wrote it and the file
/// it is in (figment's own says `for key "default.port"`).
fn read_error(err: figment::Error) -> SettingsError {
    use figment::error::Kind;
    let mut lines = Vec::new();
    for e in err {
        let file = e
            .metadata
            .as_ref()
            .and_then(|m| m.source.as_ref())
            .map(|s| s.to_string());
        let place = file
            .as_ref()
            .map(|f| format!(" in {f}"))
            .unwrap_or_default();
        let key = e.path.join(".");
        lines.push(match &e.kind {
            Kind::UnknownField(field, known) => {
                let wanted = field.replace('-', "_").to_ascii_lowercase();
                let hint = match known.iter().find(|k| **k == wanted) {
                    Some(k) => format!(": did you mean `{k}`?"),
                    None => format!(" (the keys are {})", known.join(", ")),
                };
                let key = if key.is_empty() || key == *field {
                    field.clone()
                } else {
                    key
                };
                format!("unknown key `{key}`{place}{hint}")
            }
            kind if !key.is_empty() => format!("bad value for `{key}`{place}: {kind}"),
            kind => match file {
                Some(file) => format!("cannot read {file}: {kind}"),
                None => format!("bad settings: {kind}"),
            },
        });
    }
    SettingsError::Read(lines.join("\n"))
}

/// What a `--store` value names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// `memory`: lost with the process.
    Memory,
    /// A SQLite file path.
    Sqlite,
    /// `redis://HOST:PORT[/DB]`.
    Redis,
    /// `postgres://USER@HOST:PORT/DB` or `postgresql://...`.
    Postgres,
}

/// The stores `--store` takes, for errors.
pub const STORE_SCHEMES: &str = "a SQLite file path, `memory`, redis://HOST:PORT[/DB], \
     postgres://USER@HOST:PORT/DB or postgresql://USER@HOST:PORT/DB (with ?schema=NAME)";

impl StoreKind {
    /// What `store` names; a URL of another scheme is refused, with the URL
    /// and the schemes that work.
    pub fn of(store: &str) -> Result<StoreKind, String> {
        if store == "memory" {
            return Ok(StoreKind::Memory);
        }
        let Some((scheme, _)) = store.split_once("://") else {
            return Ok(StoreKind::Sqlite);
        };
        match scheme.to_ascii_lowercase().as_str() {
            "redis" => Ok(StoreKind::Redis),
            "postgres" | "postgresql" => Ok(StoreKind::Postgres),
            "rediss" | "redis+unix" => Err(format!(
                "{store}: only plain redis://host:port URLs are supported (no TLS, no unix socket)"
            )),
            _ => Err(format!(
                "{store}: unknown scheme `{scheme}://`: use {STORE_SCHEMES}"
            )),
        }
    }
}

fn invalid(name: &'static str, why: impl Into<String>) -> SettingsError {
    SettingsError::Invalid {
        name,
        why: why.into(),
    }
}

/// A duration like `90s`, `10m`, `2h`, `7d`, `250ms`; `forever` is `None`.
pub fn parse_duration(name: &'static str, text: &str) -> Result<Option<Duration>, SettingsError> {
    let text = text.trim();
    if text == "forever" {
        return Ok(None);
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().map_err(|_| {
        invalid(
            name,
            format!("{text:?} is not a duration like 90s, 10m, 2h, 7d or forever"),
        )
    })?;
    let secs = match unit {
        "" => {
            return Err(invalid(
                name,
                format!(
                    "{text:?} has no unit: write {n}s for seconds (or {n}ms, {n}m, {n}h, {n}d)"
                ),
            ))
        }
        "ms" => return Ok(Some(Duration::from_millis(n))),
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => {
            return Err(invalid(
                name,
                format!("unknown unit {unit:?} (use ms, s, m, h or d)"),
            ))
        }
    };
    Ok(Some(Duration::from_secs(secs)))
}

/// Per-stream retention of namespace `/` (see `ServeArgs::stream_retention`).
pub fn parse_stream_retention(
    text: &str,
) -> Result<Vec<tether::store::StreamRetention>, SettingsError> {
    const NAME: &str = "stream_retention";
    let mut streams = Vec::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let Some((room, limits)) = item.split_once('=') else {
            return Err(invalid(NAME, format!("{item:?}: expected ROOM=LIMIT")));
        };
        let mut stream = tether::store::StreamRetention::new("/", room.trim());
        for limit in limits.split('/').map(str::trim) {
            if let Ok(count) = limit.parse::<u64>() {
                stream = stream.max_count(count);
            } else if let Some(age) = parse_duration(NAME, limit)? {
                stream = stream.max_age(age);
            }
        }
        if streams
            .iter()
            .any(|s: &tether::store::StreamRetention| s.room == stream.room)
        {
            return Err(invalid(NAME, format!("room {:?} given twice", stream.room)));
        }
        streams.push(stream);
    }
    Ok(streams)
}

/// Comma-separated addresses (`127.0.0.1`, `::1`) or networks
/// (`10.0.0.0/8`).
pub fn parse_networks(name: &'static str, text: &str) -> Result<Vec<ipnet::IpNet>, SettingsError> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            item.parse::<ipnet::IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    invalid(
                        name,
                        format!("{item:?} is not an address or a network like 10.0.0.0/8"),
                    )
                })
        })
        .collect()
}

/// `cors_origins`: `*`, or origins as browsers send them in `Origin`
/// (`scheme://host[:port]`, compared as they are).
pub fn parse_origins(text: &str) -> Result<Vec<String>, SettingsError> {
    let mut origins = Vec::new();
    for origin in text.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        if origin != "*" {
            check_origin(origin).map_err(|why| {
                invalid(
                    "cors_origins",
                    format!(
                        "{origin:?} is not an origin ({why}): write scheme://host[:port], \
                         like https://chat.example.com or http://localhost:8080, or *"
                    ),
                )
            })?;
        }
        origins.push(origin.to_owned());
    }
    Ok(origins)
}

fn check_origin(origin: &str) -> Result<(), &'static str> {
    let Some((scheme, rest)) = origin.split_once("://") else {
        return Err("no scheme://");
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !scheme_ok {
        return Err("bad scheme");
    }
    if let Some(at) = rest.find(['/', '?', '#']) {
        return Err(if &rest[at..] == "/" {
            "no trailing slash: browsers send none"
        } else {
            "an origin has no path, query or fragment"
        });
    }
    if rest.contains('@') {
        return Err("an origin has no user name");
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else {
            return Err("unclosed [ in the host");
        };
        if addr.is_empty()
            || !addr
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err("bad IPv6 address");
        }
        match after {
            "" => (addr, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (addr, Some(port)),
                None => return Err("junk after the IPv6 address"),
            },
        }
    } else {
        match rest.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        }
    };
    if host.is_empty() {
        return Err("no host");
    }
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == ':')
    {
        return Err("bad character in the host");
    }
    if origin.chars().any(|c| c.is_ascii_uppercase()) {
        return Err("browsers send it in lowercase");
    }
    if let Some(port) = port {
        let Ok(port) = port.parse::<u16>() else {
            return Err("the port is not a number from 1 to 65535");
        };
        if port == 0 {
            return Err("the port is not a number from 1 to 65535");
        }
        if (scheme == "http" && port == 80) || (scheme == "https" && port == 443) {
            return Err("leave out the default port: browsers do");
        }
    }
    Ok(())
}

/// Shortest API key accepted, in characters.
pub const MIN_API_KEY_CHARS: usize = 16;

/// An API key is at least [`MIN_API_KEY_CHARS`] visible ASCII characters
/// without commas (it travels in a header, and commas separate keys in
/// `TETHER_API_KEY`). The reason names no part of the key.
fn check_api_key(key: &str) -> Result<(), String> {
    if key.len() < MIN_API_KEY_CHARS {
        return Err(format!(
            "{} characters: give at least {MIN_API_KEY_CHARS} (for example `openssl rand -hex 32`)",
            key.chars().count()
        ));
    }
    if !key.bytes().all(|b| b.is_ascii_graphic() && b != b',') {
        return Err("only visible ASCII characters, no spaces or commas".into());
    }
    Ok(())
}

impl Settings {
    /// Merges defaults < TOML file < environment/flags. `given` tells where
    /// a setting of `args` came from, so that an error names it as the user
    /// gave it.
    pub fn load(args: &ServeArgs, given: impl Fn(&str) -> Given) -> Result<Self, SettingsError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = &args.config {
            if !path.exists() {
                return Err(invalid(
                    "config",
                    format!("{} does not exist", path.display()),
                ));
            }
            figment = figment.merge(Toml::file(path));
        }
        let settings: Settings = figment
            .merge(Serialized::defaults(args))
            .extract()
            .map_err(read_error)?;
        settings.validate().map_err(|e| match e {
            SettingsError::Invalid { name, why } => {
                let in_file = args
                    .config
                    .as_ref()
                    .filter(|path| Figment::from(Toml::file(path)).contains(name));
                let place = match (given(name), in_file) {
                    (Given::Flag, _) => format!(" (--{})", name.replace('_', "-")),
                    (Given::Env, _) => format!(" (environment variable {})", env_var(name)),
                    (Given::Neither, Some(path)) => format!(" in {}", path.display()),
                    (Given::Neither, None) => String::new(),
                };
                SettingsError::Given { name, place, why }
            }
            other => other,
        })?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), SettingsError> {
        parse_duration("recovery_window", &self.recovery_window)?;
        parse_duration("retention_age", &self.retention_age)?;
        parse_origins(&self.cors_origins)?;
        self.serve_options()?;
        if parse_duration("body_read_timeout", &self.body_read_timeout)?.is_none_or(|d| d.is_zero())
        {
            return Err(invalid("body_read_timeout", "must be a duration above 0"));
        }
        if !matches!(self.durability.as_str(), "fsync" | "relaxed") {
            return Err(invalid(
                "durability",
                format!("{:?}: use fsync or relaxed", self.durability),
            ));
        }
        if !matches!(self.log_format.as_str(), "pretty" | "json") {
            return Err(invalid(
                "log_format",
                format!("{:?}: use pretty or json", self.log_format),
            ));
        }
        if self.max_payload < 1024 {
            return Err(invalid("max_payload", "must be at least 1024 bytes"));
        }
        if self.max_buffer < self.max_payload {
            return Err(invalid("max_buffer", "must be at least max_payload"));
        }
        if self.max_buffer_total < self.max_payload {
            return Err(invalid("max_buffer_total", "must be at least max_payload"));
        }
        if self.max_connections == 0 {
            return Err(invalid("max_connections", "must be at least 1"));
        }
        if self.store.is_empty() {
            return Err(invalid("store", "empty: give a file path or `memory`"));
        }
        let kind = StoreKind::of(&self.store).map_err(|why| invalid("store", why))?;
        if !parse_stream_retention(&self.stream_retention)?.is_empty() && kind == StoreKind::Redis {
            return Err(invalid(
                "stream_retention",
                "the Redis store trims every stream alike: per-stream retention needs SQLite, PostgreSQL or memory",
            ));
        }
        if self.redis_prefix.is_empty() || self.redis_prefix.contains(char::is_whitespace) {
            return Err(invalid("redis_prefix", "must be a non-empty word"));
        }
        for (i, key) in self.api_key.iter().enumerate() {
            check_api_key(key)
                .map_err(|why| invalid("api_key", format!("key {}: {why}", i + 1)))?;
        }
        self.verifier()?;
        self.forward()?;
        self.admin()?;
        Ok(())
    }

    /// The Admin UI's login (none when neither user nor password is set).
    pub fn admin(&self) -> Result<Option<crate::admin::Login>, SettingsError> {
        match (self.admin_user.is_empty(), self.admin_password.is_empty()) {
            (true, true) => {
                if self.admin_read_only {
                    return Err(invalid(
                        "admin_read_only",
                        "there is no Admin UI: give admin_user and admin_password",
                    ));
                }
                Ok(None)
            }
            (false, true) => Err(invalid(
                "admin_password",
                "empty: the Admin UI needs admin_user and admin_password",
            )),
            (true, false) => Err(invalid(
                "admin_user",
                "empty: the Admin UI needs admin_user and admin_password",
            )),
            (false, false) => crate::admin::Login::new(&self.admin_user, &self.admin_password)
                .map(Some)
                .map_err(|why| invalid("admin_password", why)),
        }
    }

    /// The forwarding of `forward_url` (none when it is empty): the URL,
    /// the timeout and the concurrency bound.
    pub fn forward(&self) -> Result<Option<(http::Uri, Duration, usize)>, SettingsError> {
        let timeout = match parse_duration("forward_timeout", &self.forward_timeout)? {
            Some(d) if !d.is_zero() => d,
            _ => return Err(invalid("forward_timeout", "must be a duration above 0")),
        };
        if self.forward_concurrency == 0 {
            return Err(invalid("forward_concurrency", "must be at least 1"));
        }
        if self.forward_url.is_empty() {
            return Ok(None);
        }
        let url: http::Uri = self.forward_url.parse().map_err(|e| {
            invalid(
                "forward_url",
                format!("{:?} is not a URL: {e}", self.forward_url),
            )
        })?;
        if url.authority().is_some_and(|a| a.as_str().contains('@')) {
            // Not sent by the client, and printed by --check and the logs.
            return Err(invalid(
                "forward_url",
                "no user or password in the URL: the backend is reached without them",
            ));
        }
        match (url.scheme_str(), url.host()) {
            (Some("http"), Some(host)) if !host.is_empty() => {}
            (Some("https"), _) => {
                return Err(invalid(
                    "forward_url",
                    "https:// is not supported yet: give an http:// URL (the backend on \
                     loopback or a private network, or a local proxy in front of it)",
                ))
            }
            _ => {
                return Err(invalid(
                    "forward_url",
                    format!(
                        "{:?}: give an http://host[:port]/path URL",
                        self.forward_url
                    ),
                ))
            }
        }
        Ok(Some((url, timeout, self.forward_concurrency)))
    }

    /// True when clients must bring a token (`jwt_secret` or `jwt_public_key`).
    pub fn authenticated(&self) -> bool {
        !self.jwt_secret.is_empty() || !self.jwt_public_key.is_empty()
    }

    /// The token check of `jwt_secret` or `jwt_public_key` (one of them, or
    /// neither: the chat is anonymous).
    pub fn verifier(&self) -> Result<Option<crate::auth::Verifier>, SettingsError> {
        use crate::auth::Verifier;
        match (self.jwt_secret.is_empty(), self.jwt_public_key.is_empty()) {
            (true, true) => Ok(None),
            (false, false) => Err(invalid(
                "jwt_public_key",
                "give jwt_secret (HS256) or jwt_public_key (RS256/ES256), not both",
            )),
            (false, true) => Verifier::from_secret(&self.jwt_secret)
                .map(Some)
                .map_err(|e| invalid("jwt_secret", e.to_string())),
            (true, false) => Verifier::from_public_key_file(Path::new(&self.jwt_public_key))
                .map(Some)
                .map_err(|e| invalid("jwt_public_key", e.to_string())),
        }
    }

    /// The HTTP server settings these settings give.
    pub fn serve_options(&self) -> Result<tether::server::ServeOptions, SettingsError> {
        let header_read_timeout = parse_duration("header_read_timeout", &self.header_read_timeout)?;
        if header_read_timeout.is_some_and(|d| d.is_zero()) {
            return Err(invalid(
                "header_read_timeout",
                "must be above 0 (or `forever`)",
            ));
        }
        let write_timeout = parse_duration("write_timeout", &self.write_timeout)?;
        if write_timeout.is_some_and(|d| d.is_zero()) {
            return Err(invalid("write_timeout", "must be above 0 (or `forever`)"));
        }
        let opts = tether::server::ServeOptions::default()
            .header_read_timeout(header_read_timeout)
            .write_timeout(write_timeout)
            .max_connections_per_ip(
                (self.max_connections_per_ip > 0).then_some(self.max_connections_per_ip),
            )
            .trusted_proxies(parse_networks("trusted_proxies", &self.trusted_proxies)?);
        Ok(match self.tls()? {
            Some(tls) => opts.tls(tls),
            None => opts,
        })
    }

    /// The TLS configuration of `tls_cert` and `tls_key` (both or neither),
    /// read from their files.
    pub fn tls(&self) -> Result<Option<tether::tls::Tls>, SettingsError> {
        use tether::tls::{Tls, TlsError};
        match (self.tls_cert.is_empty(), self.tls_key.is_empty()) {
            (true, true) => return Ok(None),
            (false, true) => return Err(invalid("tls_key", "missing: tls_cert needs its key")),
            (true, false) => {
                return Err(invalid(
                    "tls_cert",
                    "missing: tls_key needs its certificate",
                ))
            }
            (false, false) => {}
        }
        let (cert, key) = (
            std::path::Path::new(&self.tls_cert),
            std::path::Path::new(&self.tls_key),
        );
        Tls::from_pem_files(cert, key).map(Some).map_err(|e| {
            let name = match &e {
                TlsError::Pem { path, .. } if path == key => "tls_key",
                _ => "tls_cert",
            };
            invalid(name, e.to_string())
        })
    }

    /// The server configuration these settings give.
    pub fn config(&self) -> Result<tether::Config, SettingsError> {
        let origins = parse_origins(&self.cors_origins)?;
        let defaults = tether::Config::default();
        let body_read_timeout = defaults.body_read_timeout;
        Ok(defaults
            .max_payload(self.max_payload)
            .max_connections(self.max_connections)
            .max_buffer(self.max_buffer)
            .max_buffer_total(self.max_buffer_total)
            .cors(tether::Cors {
                origins,
                credentials: false,
            })
            .recovery(
                tether::Recovery::default()
                    .max_disconnection(parse_duration("recovery_window", &self.recovery_window)?)
                    // With users, a recovered session shows its token again:
                    // an expired or revoked one recovers nothing.
                    .skip_middlewares(!self.authenticated()),
            )
            .retention(tether::store::Retention {
                max_age: parse_duration("retention_age", &self.retention_age)?,
                max_count: (self.retention_count > 0).then_some(self.retention_count),
            })
            .stream_retention(parse_stream_retention(&self.stream_retention)?)
            .body_read_timeout(
                parse_duration("body_read_timeout", &self.body_read_timeout)?
                    .unwrap_or(body_read_timeout),
            ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("x", "90s").unwrap(),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse_duration("x", "2h").unwrap(),
            Some(Duration::from_secs(7200))
        );
        assert_eq!(
            parse_duration("x", "250ms").unwrap(),
            Some(Duration::from_millis(250))
        );
        assert_eq!(parse_duration("x", "forever").unwrap(), None);
        assert!(parse_duration("x", "soon").is_err());
        assert!(parse_duration("x", "5y").is_err());
        let err = parse_duration("x", "10").unwrap_err().to_string();
        assert!(err.contains("no unit") && err.contains("10s"), "{err}");
    }

    #[test]
    fn origins() {
        for good in [
            "*",
            "https://chat.example.com",
            "http://localhost:8080",
            "http://127.0.0.1:3000",
            "http://[::1]:3000",
            "capacitor://localhost",
            "https://a.example, http://b.example:81",
        ] {
            assert!(parse_origins(good).is_ok(), "{good}");
        }
        assert_eq!(
            parse_origins(" http://a.example ,*,").unwrap(),
            ["http://a.example", "*"]
        );
        for bad in [
            "chat.example.com",
            "https://chat.example.com/",
            "https://chat.example.com/app",
            "https://chat.example.com?x",
            "https://",
            "https://:80",
            "https://user@a.example",
            "https://A.example",
            "https://a.example:443",
            "http://a.example:80",
            "http://a.example:0",
            "http://a.example:99999",
            "http://a.example:x",
            "http://a b",
            "1http://a.example",
            "http://[::1",
            "null",
        ] {
            let err = parse_origins(bad).unwrap_err().to_string();
            assert!(
                err.contains("cors_origins") && err.contains("not an origin"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn max_buffer_total() {
        let defaults = Settings::default();
        assert_eq!(defaults.max_buffer_total, 256 * 1024 * 1024);
        assert_eq!(
            defaults.config().unwrap().max_buffer_total,
            256 * 1024 * 1024
        );
        let small = Settings {
            max_buffer_total: 1000,
            ..Settings::default()
        };
        let err = small.validate().unwrap_err().to_string();
        assert!(err.contains("max_buffer_total"), "{err}");
        let set = Settings {
            max_buffer_total: 8 << 20,
            ..Settings::default()
        };
        assert_eq!(set.config().unwrap().max_buffer_total, 8 << 20);
    }

    #[test]
    fn stream_retention() {
        let streams = parse_stream_retention("typing=100, news=365d/5000,=1h").unwrap();
        assert_eq!(streams.len(), 3);
        assert_eq!(streams[0].room, "typing");
        assert_eq!(streams[0].max_count, Some(100));
        assert_eq!(streams[0].max_age, None);
        assert_eq!(streams[1].max_age, Some(Duration::from_secs(365 * 86_400)));
        assert_eq!(streams[1].max_count, Some(5000));
        assert_eq!(streams[2].room, "");
        assert_eq!(streams[2].max_age, Some(Duration::from_secs(3600)));
        assert!(parse_stream_retention("").unwrap().is_empty());
        assert!(parse_stream_retention("typing").is_err());
        assert!(parse_stream_retention("a=1,a=2").is_err());
        assert!(parse_stream_retention("a=soon").is_err());
    }
}

//! The schema (tables and indexes, created on first use), its version, and
//! the URL: where the store is and in which schema.

use super::*;

/// Version of [`SCHEMA`] recorded in `meta`; a store of another version is
/// refused (a later version migrates from this one).
pub(super) const SCHEMA_VERSION: i64 = 1;

/// The schema used when the URL names none.
pub(super) const DEFAULT_SCHEMA: &str = "tether";

/// The tables and indexes, in the store's schema (the connection's
/// `search_path`). Idempotent: run at every connect, under the schema's
/// advisory lock so that nodes starting together do not race on it.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta(
    key text PRIMARY KEY,
    value text NOT NULL
);
CREATE TABLE IF NOT EXISTS state(
    id integer PRIMARY KEY CHECK (id = 1),
    epoch text NOT NULL,
    last_seq bigint NOT NULL,
    last_ts bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS trimmed(
    id integer PRIMARY KEY CHECK (id = 1),
    upto bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS entries(
    seq bigint PRIMARY KEY,
    nsp text NOT NULL,
    rooms text NOT NULL,
    except_rooms text NOT NULL,
    event text NOT NULL,
    args text NOT NULL,
    attachments bytea NOT NULL,
    ts_ms bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_by_nsp ON entries(nsp, seq);
CREATE TABLE IF NOT EXISTS entry_targets(
    nsp text NOT NULL,
    room text NOT NULL,
    seq bigint NOT NULL,
    PRIMARY KEY (nsp, room, seq)
);
CREATE TABLE IF NOT EXISTS stream_trims(
    nsp text NOT NULL,
    room text NOT NULL,
    upto bigint NOT NULL,
    PRIMARY KEY (nsp, room)
);
CREATE TABLE IF NOT EXISTS idempotency(
    nsp text NOT NULL,
    key text NOT NULL,
    seq bigint NOT NULL,
    ts_ms bigint NOT NULL,
    PRIMARY KEY (nsp, key)
);
CREATE INDEX IF NOT EXISTS idempotency_by_seq ON idempotency(seq);
CREATE TABLE IF NOT EXISTS sessions(
    pid text PRIMARY KEY,
    sid text NOT NULL,
    nsp text NOT NULL,
    rooms text NOT NULL,
    data text,
    user_id text,
    start_seq bigint NOT NULL,
    connected boolean NOT NULL,
    updated_ms bigint NOT NULL,
    owner text
);
CREATE INDEX IF NOT EXISTS sessions_disconnected ON sessions(updated_ms) WHERE NOT connected;
CREATE INDEX IF NOT EXISTS sessions_by_owner ON sessions(owner) WHERE connected;
CREATE TABLE IF NOT EXISTS owners(
    owner text PRIMARY KEY,
    renewed_ms bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS inbox(
    user_id text NOT NULL,
    seq bigint NOT NULL,
    ts_ms bigint NOT NULL,
    event text NOT NULL,
    args text NOT NULL,
    attachments bytea NOT NULL,
    PRIMARY KEY (user_id, seq)
);
CREATE TABLE IF NOT EXISTS cluster_nodes(
    node text PRIMARY KEY,
    seen_ms bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS cluster_messages(
    id bigserial PRIMARY KEY,
    payload bytea NOT NULL,
    created_ms bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS inbox_acks(
    user_id text PRIMARY KEY,
    upto bigint NOT NULL,
    last bigint NOT NULL
);
";

/// Where a store is: the connection settings (the URL without `schema`) and
/// the schema.
#[derive(Debug, Clone)]
pub(super) struct Location {
    pub(super) config: tokio_postgres::Config,
    pub(super) schema: String,
}

/// Reads `postgres://USER@HOST:PORT/DB[?schema=NAME&...]` (or
/// `postgresql://`): `schema` is Tether's, every other parameter goes to the
/// driver. The schema is a lowercase SQL identifier (`[a-z_][a-z0-9_]*`, at
/// most 48 characters: the feed's channel name is made from it).
pub(super) fn parse_url(url: &str) -> Result<Location, StoreError> {
    let refuse = |why: String| StoreError::Unavailable(format!("postgres URL {url}: {why}"));
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(refuse("not a postgres:// or postgresql:// URL".to_owned()));
    }
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, query),
        None => (url, ""),
    };
    let mut schema = None;
    let mut rest = form_urlencoded::Serializer::new(String::new());
    let mut has_rest = false;
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if name == "schema" {
            schema = Some(value.into_owned());
        } else {
            rest.append_pair(&name, &value);
            has_rest = true;
        }
    }
    let schema = schema.unwrap_or_else(|| DEFAULT_SCHEMA.to_owned());
    if !valid_schema(&schema) {
        return Err(refuse(format!(
            "schema {schema:?} is not a lowercase identifier ([a-z_][a-z0-9_]*, at most 48 characters)"
        )));
    }
    let driver_url = if has_rest {
        format!("{base}?{}", rest.finish())
    } else {
        base.to_owned()
    };
    let mut config: tokio_postgres::Config = driver_url
        .parse()
        .map_err(|e: tokio_postgres::Error| refuse(e.to_string()))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("tether");
    }
    Ok(Location { config, schema })
}

/// What every pooled connection runs once opened: every table is found in
/// the store's schema, and a session left idle inside a transaction (a node
/// frozen while it holds the counter row) is ended by the server, so the
/// other nodes do not wait on it forever. Set on the session rather than as
/// startup options, so that a session-mode pooler (PgBouncer) passes it.
pub(super) fn session_setup(schema: &str) -> String {
    format!(
        "SET search_path TO {schema}; SET idle_in_transaction_session_timeout = {}",
        IDLE_IN_TRANSACTION.as_millis()
    )
}

fn valid_schema(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    first_ok
        && name.len() <= 48
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Creates the schema, its tables and the epoch if missing (with `create`;
/// without, a schema that holds no store is refused), checks the schema
/// version; returns the epoch. One transaction, under an advisory lock of
/// the schema (nodes starting together create it once).
pub(super) async fn setup(
    client: &mut PgClient,
    schema: &str,
    create: bool,
) -> Result<String, PgError> {
    if !create {
        let found = client
            .query_one(
                "SELECT to_regclass($1) IS NOT NULL",
                &[&format!("{schema}.state")],
            )
            .await?;
        if !get::<bool>(&found, 0)? {
            return Err(PgError::Refused(format!(
                "no store in schema {schema} of this database"
            )));
        }
    }
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        &[&format!("tether schema {schema}")],
    )
    .await?;
    // The name was checked to be a plain lowercase identifier.
    tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
        .await?;
    tx.batch_execute(SCHEMA).await?;
    tx.execute(
        "INSERT INTO meta(key, value) VALUES ('schema_version', $1) ON CONFLICT (key) DO NOTHING",
        &[&SCHEMA_VERSION.to_string()],
    )
    .await?;
    let version: String = get(
        &tx.query_one("SELECT value FROM meta WHERE key = 'schema_version'", &[])
            .await?,
        0,
    )?;
    if version != SCHEMA_VERSION.to_string() {
        return Err(PgError::Refused(format!(
            "store schema {schema} has version {version}, this build knows {SCHEMA_VERSION}"
        )));
    }
    tx.execute(
        "INSERT INTO state(id, epoch, last_seq, last_ts) VALUES (1, $1, 0, 0)
         ON CONFLICT (id) DO NOTHING",
        &[&crate::id::random_id()],
    )
    .await?;
    tx.execute(
        "INSERT INTO trimmed(id, upto) VALUES (1, 0) ON CONFLICT (id) DO NOTHING",
        &[],
    )
    .await?;
    let epoch: String = get(
        &tx.query_one("SELECT epoch FROM state WHERE id = 1", &[])
            .await?,
        0,
    )?;
    tx.commit().await?;
    Ok(epoch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_take_a_schema_and_keep_the_driver_options() {
        let at = parse_url("postgres://postgres@127.0.0.1:5432/test").unwrap();
        assert_eq!(at.schema, "tether");
        assert_eq!(at.config.get_dbname(), Some("test"));
        assert_eq!(at.config.get_user(), Some("postgres"));
        assert_eq!(at.config.get_options(), None, "no startup options of ours");
        assert_eq!(
            session_setup(&at.schema),
            "SET search_path TO tether; SET idle_in_transaction_session_timeout = 15000"
        );

        let at = parse_url("postgresql://u@h:5/db?schema=chat_2&application_name=app").unwrap();
        assert_eq!(at.schema, "chat_2");
        assert_eq!(at.config.get_application_name(), Some("app"));
        assert!(session_setup(&at.schema).starts_with("SET search_path TO chat_2;"));
    }

    #[test]
    fn bad_urls_and_schemas_are_refused_naming_the_url() {
        for url in [
            "redis://127.0.0.1/",
            "postgres://u@h/db?schema=",
            "postgres://u@h/db?schema=Upper",
            "postgres://u@h/db?schema=a-b",
            "postgres://u@h/db?schema=a;drop",
            "postgres://u@h/db?schema=1abc",
            "postgres://u@h/db?nonsense_option=1",
        ] {
            let err = parse_url(url).unwrap_err().to_string();
            assert!(err.contains(url), "{err}");
        }
        let long = "a".repeat(49);
        assert!(parse_url(&format!("postgres://u@h/db?schema={long}")).is_err());
    }
}

//! The metrics Tether records, through the [`metrics`] facade: names, help
//! texts, and their registration at zero.
//!
//! A series that appears only with its first event leaves dashboards and
//! alerts blind on a fresh server, so [`describe`] registers every one (each
//! label value included) with its help text. [`crate::SocketIo`] calls it when
//! it is built; an app that installs its recorder later calls it again.
//! [`ALL`] lists them.
//!
//! ```
//! // With a recorder installed (metrics-exporter-prometheus, say), every
//! // `tether_*` series shows at 0 from here on.
//! tether::metrics::describe();
//! assert!(tether::metrics::ALL.iter().any(|m| m.name == tether::metrics::CONNECTIONS));
//! ```

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

/// Open Engine.IO sessions (gauge).
pub const CONNECTIONS: &str = "tether_connections";
/// Events received from clients (counter).
pub const EVENTS_IN: &str = "tether_events_in_total";
/// Events sent to clients (counter).
pub const EVENTS_OUT: &str = "tether_events_out_total";
/// Acknowledgements sent to clients (counter).
pub const ACKS: &str = "tether_acks_total";
/// Retries recognised by their idempotency key: acknowledged, not stored
/// again (counter).
pub const DUPLICATES: &str = "tether_duplicates_total";
/// Appends the store refused (counter).
pub const STORE_ERRORS: &str = "tether_store_errors_total";
/// Time of one store commit (histogram, seconds).
pub const STORE_COMMIT_SECONDS: &str = "tether_store_commit_seconds";
/// Connection state recoveries, by `result` (counter).
pub const RECOVERIES: &str = "tether_recoveries_total";
/// Stored events sent by a catch-up from the store (counter).
pub const REPLAYED_EVENTS: &str = "tether_replayed_events_total";
/// Sockets paused because their send queue was full, caught up from the
/// store later (counter).
pub const SEND_QUEUE_PAUSES: &str = "tether_send_queue_pauses_total";
/// Bytes queued for clients, every connection together (gauge).
pub const SEND_BUFFER_BYTES: &str = "tether_send_buffer_bytes";
/// The limit of [`SEND_BUFFER_BYTES`] (`max_buffer_total`, gauge).
pub const SEND_BUFFER_LIMIT_BYTES: &str = "tether_send_buffer_limit_bytes";
/// Sends refused because the shared send budget was spent (counter).
pub const SEND_BUDGET_REFUSALS: &str = "tether_send_budget_refusals_total";
/// New sessions whose catch-up position came from another life of the store
/// (another epoch, or beyond its end), so they start from 0 (counter).
pub const CATCH_UP_RESTARTS: &str = "tether_catch_up_restarts_total";
/// Batches the SQLite store failed to commit and rolled back (counter).
pub const STORE_COMMIT_FAILURES: &str = "tether_store_commit_failures_total";
/// Resets of the Redis store seen by this node: a new epoch adopted
/// (counter).
pub const STORE_RESETS: &str = "tether_store_resets_total";
/// Failed `accept` calls: out of file descriptors and the like (counter).
pub const ACCEPT_ERRORS: &str = "tether_accept_errors_total";
/// TCP connections closed at once because their address had
/// `max_connections_per_ip` open (counter).
pub const CONNECTIONS_REFUSED_PER_IP: &str = "tether_connections_refused_per_ip_total";
/// 1 when the last health check found the store healthy, 0 otherwise
/// (gauge). Set by whoever runs the health check (the `tether` binary's
/// `/healthz`), so [`describe`] describes it without a value: a 0 before the
/// first check would read as "unhealthy".
pub const STORE_HEALTHY: &str = "tether_store_healthy";
/// CONNECT and EVENT packets not taken because the server is shutting down
/// (counter): not answered, so clients retry on the next server.
pub const PACKETS_REFUSED_SHUTTING_DOWN: &str = "tether_packets_refused_shutting_down_total";

/// What a metric measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// A distribution of samples.
    Histogram,
}

/// A metric Tether records: its name, kind, unit and help text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metric {
    /// Its name (`tether_...`).
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// What its values count.
    pub unit: Unit,
    /// The help text (`# HELP` in Prometheus).
    pub help: &'static str,
}

const fn metric(name: &'static str, kind: Kind, unit: Unit, help: &'static str) -> Metric {
    Metric {
        name,
        kind,
        unit,
        help,
    }
}

/// Every metric Tether records, as [`describe`] describes them.
pub const ALL: &[Metric] = &[
    metric(
        CONNECTIONS,
        Kind::Gauge,
        Unit::Count,
        "Open Engine.IO sessions.",
    ),
    metric(
        EVENTS_IN,
        Kind::Counter,
        Unit::Count,
        "Events received from clients.",
    ),
    metric(
        EVENTS_OUT,
        Kind::Counter,
        Unit::Count,
        "Events sent to clients.",
    ),
    metric(
        ACKS,
        Kind::Counter,
        Unit::Count,
        "Acknowledgements sent to clients.",
    ),
    metric(
        DUPLICATES,
        Kind::Counter,
        Unit::Count,
        "Retries recognised by their idempotency key: acknowledged, not stored again.",
    ),
    metric(
        STORE_ERRORS,
        Kind::Counter,
        Unit::Count,
        "Appends the store refused.",
    ),
    metric(
        STORE_COMMIT_SECONDS,
        Kind::Histogram,
        Unit::Seconds,
        "Time of one store commit (a batch of appends).",
    ),
    metric(
        RECOVERIES,
        Kind::Counter,
        Unit::Count,
        "Connection state recoveries, by result (recovered, or why not).",
    ),
    metric(
        REPLAYED_EVENTS,
        Kind::Counter,
        Unit::Count,
        "Stored events sent by a catch-up from the store.",
    ),
    metric(
        SEND_QUEUE_PAUSES,
        Kind::Counter,
        Unit::Count,
        "Sockets paused because their send queue was full (caught up from the store later).",
    ),
    metric(
        SEND_BUFFER_BYTES,
        Kind::Gauge,
        Unit::Bytes,
        "Bytes queued for clients, every connection together.",
    ),
    metric(
        SEND_BUFFER_LIMIT_BYTES,
        Kind::Gauge,
        Unit::Bytes,
        "The limit of the bytes queued for clients (max_buffer_total).",
    ),
    metric(
        SEND_BUDGET_REFUSALS,
        Kind::Counter,
        Unit::Count,
        "Sends refused because the shared send budget was spent.",
    ),
    metric(
        CATCH_UP_RESTARTS,
        Kind::Counter,
        Unit::Count,
        "New sessions whose catch-up position was of another life of the store (from 0).",
    ),
    metric(
        STORE_COMMIT_FAILURES,
        Kind::Counter,
        Unit::Count,
        "Batches the SQLite store failed to commit (rolled back).",
    ),
    metric(
        STORE_RESETS,
        Kind::Counter,
        Unit::Count,
        "Resets of the Redis store seen by this node (a new epoch adopted).",
    ),
    metric(
        ACCEPT_ERRORS,
        Kind::Counter,
        Unit::Count,
        "Failed accept calls (out of file descriptors and the like).",
    ),
    metric(
        CONNECTIONS_REFUSED_PER_IP,
        Kind::Counter,
        Unit::Count,
        "TCP connections closed at once: their address had max_connections_per_ip open.",
    ),
    metric(
        STORE_HEALTHY,
        Kind::Gauge,
        Unit::Count,
        "1 when the last health check found the store healthy, 0 otherwise.",
    ),
    metric(
        PACKETS_REFUSED_SHUTTING_DOWN,
        Kind::Counter,
        Unit::Count,
        "CONNECT and EVENT packets not taken while shutting down.",
    ),
];

/// Describes every Tether metric ([`ALL`]) to the installed recorder and
/// registers it at zero (every `result` of [`RECOVERIES`] included; not
/// [`STORE_HEALTHY`], which only a health check sets). Idempotent: values
/// already recorded stay; a no-op without a recorder.
pub fn describe() {
    for m in ALL {
        match m.kind {
            Kind::Counter => {
                describe_counter!(m.name, m.unit, m.help);
                if m.name == RECOVERIES {
                    metrics::counter!(RECOVERIES, "result" => "recovered").increment(0);
                    for refusal in tether_proto::tether::Refusal::ALL {
                        metrics::counter!(RECOVERIES, "result" => refusal.as_str()).increment(0);
                    }
                } else {
                    metrics::counter!(m.name).increment(0);
                }
            }
            Kind::Gauge => {
                describe_gauge!(m.name, m.unit, m.help);
                if m.name != STORE_HEALTHY {
                    // Adds nothing: a value already set (the budget's limit) stays.
                    metrics::gauge!(m.name).increment(0.0);
                }
            }
            Kind::Histogram => {
                describe_histogram!(m.name, m.unit, m.help);
                // Registered without a sample: an empty histogram renders
                // with count 0.
                let _ = metrics::histogram!(m.name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `tether_` name handed to a `metrics` macro anywhere in the
    /// crate's sources, as a constant of this module or as a literal.
    fn recorded_names() -> Vec<String> {
        let constants: Vec<(String, String)> = include_str!("metrics.rs")
            .lines()
            .filter_map(|line| {
                let rest = line.strip_prefix("pub const ")?;
                let (ident, value) = rest.split_once(": &str = \"")?;
                Some((ident.to_owned(), value.strip_suffix("\";")?.to_owned()))
            })
            .collect();
        let mut names = Vec::new();
        let mut dirs = vec![std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                if path.extension().is_none_or(|e| e != "rs") || path.ends_with("metrics.rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                for kind in ["counter!(", "gauge!(", "histogram!("] {
                    for (at, _) in text.match_indices(kind) {
                        let arg = text[at + kind.len()..].trim_start();
                        let end = arg.find([')', ',']).unwrap_or(arg.len());
                        let arg = arg[..end].trim();
                        if let Some(literal) = arg.strip_prefix('"') {
                            let name = literal.trim_end_matches('"');
                            if name.starts_with("tether_") {
                                names.push(name.to_owned());
                            }
                        } else {
                            let ident = arg.rsplit("::").next().unwrap_or(arg);
                            match constants.iter().find(|(c, _)| c == ident) {
                                Some((_, value)) => names.push(value.clone()),
                                None => names.push(format!("{arg} (in {})", path.display())),
                            }
                        }
                    }
                }
            }
        }
        names
    }

    #[test]
    fn every_recorded_metric_is_described() {
        let names = recorded_names();
        assert!(names.len() > 10, "the scan found the metrics: {names:?}");
        for name in names {
            assert!(
                ALL.iter().any(|m| m.name == name),
                "{name} is recorded but not in metrics::ALL"
            );
        }
    }

    #[test]
    fn names_are_unique_and_prefixed() {
        for (i, m) in ALL.iter().enumerate() {
            assert!(m.name.starts_with("tether_"), "{}", m.name);
            assert!(
                ALL[..i].iter().all(|other| other.name != m.name),
                "{} twice",
                m.name
            );
        }
    }
}

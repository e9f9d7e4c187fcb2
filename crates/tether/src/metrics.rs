//! The metrics Tether records, through the [`metrics`] facade: names, help
//! texts, and their registration at zero.
//!
//! A series that appears only with its first event leaves dashboards and
//! alerts blind on a fresh server, so [`describe`] registers every one (each
//! label value included) with its help text. [`crate::SocketIo`] calls it when
//! it is built; an app that installs its recorder later calls it again.
//!
//! ```
//! // With a recorder installed (metrics-exporter-prometheus, say), every
//! // `tether_*` series shows at 0 from here on.
//! tether::metrics::describe();
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

/// Describes every Tether metric to the installed recorder and registers it
/// at zero. Idempotent; a no-op without a recorder.
pub fn describe() {
    describe_gauge!(CONNECTIONS, Unit::Count, "Open Engine.IO sessions.");
    metrics::gauge!(CONNECTIONS).increment(0.0);
    for (name, help) in [
        (EVENTS_IN, "Events received from clients."),
        (EVENTS_OUT, "Events sent to clients."),
        (ACKS, "Acknowledgements sent to clients."),
        (
            DUPLICATES,
            "Retries recognised by their idempotency key: acknowledged, not stored again.",
        ),
        (STORE_ERRORS, "Appends the store refused."),
        (
            REPLAYED_EVENTS,
            "Stored events sent by a catch-up from the store.",
        ),
        (
            SEND_QUEUE_PAUSES,
            "Sockets paused because their send queue was full (caught up from the store later).",
        ),
    ] {
        describe_counter!(name, Unit::Count, help);
        metrics::counter!(name).increment(0);
    }
    describe_counter!(
        RECOVERIES,
        Unit::Count,
        "Connection state recoveries, by result (recovered, or why not)."
    );
    metrics::counter!(RECOVERIES, "result" => "recovered").increment(0);
    for refusal in tether_proto::tether::Refusal::ALL {
        metrics::counter!(RECOVERIES, "result" => refusal.as_str()).increment(0);
    }
    describe_histogram!(
        STORE_COMMIT_SECONDS,
        Unit::Seconds,
        "Time of one store commit (a batch of appends)."
    );
    // Registered without a sample: an empty histogram renders with count 0.
    let _ = metrics::histogram!(STORE_COMMIT_SECONDS);
}

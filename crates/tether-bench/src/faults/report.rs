//! The report of a run: a table for people, a JSON object for programs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::check::Verdict;
use super::clients::Lib;
use super::FaultsArgs;

/// Reconnections of the clients and how long they took.
#[derive(Debug)]
pub struct Recoveries {
    disconnects: BTreeMap<&'static str, u64>,
    attempted: BTreeMap<&'static str, u64>,
    succeeded: BTreeMap<&'static str, u64>,
    /// Milliseconds from a disconnection to the next connection.
    times: Histogram<u64>,
}

impl Default for Recoveries {
    fn default() -> Self {
        Self {
            disconnects: BTreeMap::new(),
            attempted: BTreeMap::new(),
            succeeded: BTreeMap::new(),
            times: Histogram::new_with_bounds(1, 3_600_000, 3)
                .expect("1 ms to 1 hour with 3 significant digits are valid bounds"),
        }
    }
}

impl Recoveries {
    /// A client of `lib` lost its connection.
    pub fn disconnected(&mut self, lib: Lib) {
        *self.disconnects.entry(lib.name()).or_default() += 1;
    }

    /// A client of `lib` connected again `after` its disconnection, with its
    /// session restored (`recovered`) or not.
    pub fn record(&mut self, lib: Lib, recovered: bool, after: Duration) {
        *self.attempted.entry(lib.name()).or_default() += 1;
        if recovered {
            *self.succeeded.entry(lib.name()).or_default() += 1;
        }
        let ms = (after.as_millis() as u64).clamp(1, 3_600_000);
        let _ = self.times.record(ms);
    }
}

/// The recoveries, as reported.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RecoveryReport {
    /// Disconnections seen by clients, per library.
    pub disconnects: BTreeMap<&'static str, u64>,
    /// Reconnections (each one presents the previous session), per library.
    pub attempted: BTreeMap<&'static str, u64>,
    /// Reconnections with the session restored (`socket.recovered`), per library.
    pub succeeded: BTreeMap<&'static str, u64>,
    /// All libraries.
    pub attempted_total: u64,
    /// All libraries.
    pub succeeded_total: u64,
    /// Time from disconnection to connection, in ms: median.
    pub time_p50_ms: u64,
    /// 99th percentile.
    pub time_p99_ms: u64,
    /// Longest.
    pub time_max_ms: u64,
}

/// What the fault injector did.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FaultCounts {
    /// `kill -9` of the server.
    pub kills: u32,
    /// Restarts of the server (on the same store and port).
    pub restarts: u32,
    /// How long each restart took to listen, in ms.
    pub restart_ms: Vec<u64>,
    /// Connections cut.
    pub cuts: u32,
    /// Cuts scheduled when no connection was open.
    pub cuts_missed: u32,
    /// Connections stalled.
    pub stalls: u32,
    /// Stalls scheduled when no connection was open.
    pub stalls_missed: u32,
    /// Redis outages (every server's Redis connection cut, new ones refused).
    pub redis_outages: u32,
    /// Connections through the proxy.
    pub proxy_connections: u64,
    /// Connections the proxy closed because the server was down.
    pub proxy_refused: u64,
}

/// The settings of the run that matter to read its figures.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Settings {
    /// The seed.
    pub seed: u64,
    /// Messages per publisher.
    pub messages: u64,
    /// Publishers per library.
    pub publishers: BTreeMap<&'static str, usize>,
    /// Subscribers per kind.
    pub subscribers: BTreeMap<&'static str, usize>,
    /// Fault window, seconds.
    pub window_secs: u64,
    /// Ack timeout per try, ms.
    pub ack_timeout_ms: u64,
}

/// Where a subscriber stood when the run stopped.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Standing {
    /// The subscriber.
    pub name: String,
    /// Connected at the end.
    pub connected: bool,
    /// The greatest serverOffset it received.
    pub last_offset: Option<u64>,
}

/// The report of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// No acknowledged message lost, duplicated or reordered, anywhere.
    pub ok: bool,
    /// Every message was sent and acknowledged and every subscriber caught
    /// up before the deadlines.
    pub complete: bool,
    /// The settings.
    pub settings: Settings,
    /// Wall-clock time of the whole run, seconds.
    pub duration_secs: f64,
    /// Time from the first publish to the last publisher done, seconds.
    pub publish_secs: f64,
    /// Messages sent.
    pub sent: u64,
    /// Messages acknowledged with a position.
    pub acked: u64,
    /// Entries in the store.
    pub stored: u64,
    /// Acknowledged messages lost (store or any subscriber).
    pub lost: u64,
    /// Duplicates (store or any subscriber).
    pub duplicated: u64,
    /// Out-of-order deliveries (and publisher order violations in the store).
    pub out_of_order: u64,
    /// Wrong offsets, unknown or undelivered stored messages.
    pub inconsistencies: u64,
    /// Acks that said `duplicate: true` (a retry of a stored message).
    pub duplicate_acks: u64,
    /// Messages emitted again after a try ran out of retries or got an error.
    pub republished: u64,
    /// The checker's details, per subscriber.
    pub check: Verdict,
    /// The faults injected.
    pub faults: FaultCounts,
    /// Reconnections and recoveries.
    pub recoveries: RecoveryReport,
    /// The server's `tether_*_total` counters (`/metrics`), summed over its
    /// lives: send-queue pauses (the slow consumer), duplicates, recoveries.
    pub server_counters: BTreeMap<String, f64>,
    /// Where each subscriber stood at the end.
    pub standing: Vec<Standing>,
    /// Disconnections seen by clients, by library and reason.
    pub disconnect_reasons: BTreeMap<String, u64>,
    /// Connections refused (CONNECT_ERROR, failed opens), by library and
    /// message; "gave up": the client does not try again by itself.
    pub connect_errors: BTreeMap<String, u64>,
    /// Events that could not be read (first 20).
    pub malformed: Vec<String>,
    /// Client errors.
    pub client_errors: Vec<String>,
}

impl Report {
    /// Builds the report.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        args: &FaultsArgs,
        check: Verdict,
        complete: bool,
        duration: Duration,
        publish_secs: f64,
        duplicate_acks: u64,
        republished: u64,
        faults: FaultCounts,
        recoveries: Recoveries,
        server_counters: BTreeMap<String, f64>,
        standing: Vec<Standing>,
        disconnect_reasons: BTreeMap<String, u64>,
        connect_errors: BTreeMap<String, u64>,
        malformed: Vec<String>,
        client_errors: Vec<String>,
    ) -> Report {
        let times = &recoveries.times;
        let quantile = |q: f64| {
            if times.is_empty() {
                0
            } else {
                times.value_at_quantile(q)
            }
        };
        let recoveries = RecoveryReport {
            attempted_total: recoveries.attempted.values().sum(),
            succeeded_total: recoveries.succeeded.values().sum(),
            time_p50_ms: quantile(0.5),
            time_p99_ms: quantile(0.99),
            time_max_ms: if times.is_empty() { 0 } else { times.max() },
            disconnects: recoveries.disconnects,
            attempted: recoveries.attempted,
            succeeded: recoveries.succeeded,
        };
        let settings = Settings {
            seed: args.seed,
            messages: args.messages,
            publishers: BTreeMap::from([
                ("rust", args.rust_publishers),
                ("node", args.node_publishers),
            ]),
            subscribers: BTreeMap::from([
                ("rust", args.rust_subscribers),
                ("node", args.node_subscribers),
                ("node (slow)", args.slow_subscribers),
            ]),
            window_secs: args.window_secs,
            ack_timeout_ms: args.ack_timeout_ms,
        };
        let ok = check.ok() && malformed.is_empty();
        Report {
            ok,
            complete,
            settings,
            duration_secs: round2(duration.as_secs_f64()),
            publish_secs: round2(publish_secs),
            sent: check.sent,
            acked: check.acked,
            stored: check.stored,
            lost: check.lost(),
            duplicated: check.duplicated(),
            out_of_order: check.out_of_order(),
            inconsistencies: check.inconsistencies(),
            duplicate_acks,
            republished,
            check,
            faults,
            recoveries,
            server_counters,
            standing,
            disconnect_reasons,
            connect_errors,
            malformed,
            client_errors,
        }
    }

    /// The report as a table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let verdict = match (self.ok, self.complete) {
            (true, true) => "PASS",
            (true, false) => "INCOMPLETE",
            (false, _) => "FAIL",
        };
        let set = &self.settings;
        let _ = writeln!(
            s,
            "tether-bench faults: {verdict} (seed {}, {} s, publishing {} s)",
            set.seed, self.duration_secs, self.publish_secs
        );
        let _ = writeln!(
            s,
            "  publishers {:?} x {} messages, subscribers {:?}",
            set.publishers, set.messages, set.subscribers
        );
        let f = &self.faults;
        let _ = writeln!(
            s,
            "  faults: {} kill -9 ({} restarts, {:?} ms to listen), {} cuts, {} stalls ({} + {} missed: no connection open), {} Redis outages; {} proxied connections, {} refused while down",
            f.kills, f.restarts, f.restart_ms, f.cuts, f.stalls, f.cuts_missed, f.stalls_missed, f.redis_outages, f.proxy_connections, f.proxy_refused
        );
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "  {:<21} {:>9} {:>8} {:>8} {:>6} {:>6} {:>6} {:>6}",
            "", "sent", "acked", "stored", "lost", "dup", "order", "other"
        );
        let c = &self.check;
        let _ = writeln!(
            s,
            "  {:<21} {:>9} {:>8} {:>8} {:>6} {:>6} {:>6} {:>6}",
            "publish/store",
            self.sent,
            self.acked,
            self.stored,
            c.lost_from_store,
            c.stored_duplicates,
            c.publisher_order_violations,
            c.ack_offset_mismatch + c.stored_unknown
        );
        let _ = writeln!(
            s,
            "  {:<30} {:>9} {:>8} {:>6} {:>6} {:>6} {:>6}",
            "subscriber", "delivered", "unique", "lost", "dup", "order", "other"
        );
        for sub in &c.subscribers {
            let _ = writeln!(
                s,
                "  {:<30} {:>9} {:>8} {:>6} {:>6} {:>6} {:>6}",
                format!("{} [{}]", sub.name, sub.kind),
                sub.delivered,
                sub.unique,
                sub.lost,
                sub.duplicated,
                sub.out_of_order,
                sub.offset_mismatch + sub.unknown + sub.missing_stored
            );
        }
        let r = &self.recoveries;
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "  totals: lost {}, duplicated {}, out of order {}, other {}; {} duplicate acks (retries of stored messages), {} republished",
            self.lost, self.duplicated, self.out_of_order, self.inconsistencies, self.duplicate_acks, self.republished
        );
        let _ = writeln!(
            s,
            "  recoveries: {} attempted, {} succeeded (by library: attempted {:?}, succeeded {:?}; disconnects {:?}); reconnection time p50 {} ms, p99 {} ms, max {} ms",
            r.attempted_total, r.succeeded_total, r.attempted, r.succeeded, r.disconnects, r.time_p50_ms, r.time_p99_ms, r.time_max_ms
        );
        let counters: Vec<String> = self
            .server_counters
            .iter()
            .map(|(k, v)| format!("{} {v}", k.trim_start_matches("tether_")))
            .collect();
        let _ = writeln!(s, "  server counters: {}", counters.join(", "));
        let _ = writeln!(
            s,
            "  disconnections by reason: {:?}",
            self.disconnect_reasons
        );
        if !self.connect_errors.is_empty() {
            let _ = writeln!(s, "  connections refused: {:?}", self.connect_errors);
        }
        for sub in c.subscribers.iter().filter(|s| s.lost_at_tail > 0) {
            let standing = self.standing.iter().find(|st| st.name == sub.name);
            let _ = writeln!(
                s,
                "  note: {} had not received its last {} messages when the run stopped (behind, or stuck: see --drain-secs); connected at the end: {}, last offset received: {:?}",
                sub.name,
                sub.lost_at_tail,
                standing.is_some_and(|st| st.connected),
                standing.and_then(|st| st.last_offset)
            );
        }
        for m in &self.malformed {
            let _ = writeln!(s, "  malformed: {m}");
        }
        for e in &self.client_errors {
            let _ = writeln!(s, "  client error: {e}");
        }
        s
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

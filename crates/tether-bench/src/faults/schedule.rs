//! The fault schedule: which fault at which time, drawn from a seed.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// One fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Fault {
    /// `kill -9` of the server; it is started again after `down`.
    Kill {
        /// How long the server stays down.
        #[serde(rename = "down_ms", serialize_with = "as_ms")]
        down: Duration,
    },
    /// Closes both sides of one client connection (`pick` chooses which,
    /// modulo the connections open then).
    Cut {
        /// Which connection.
        pick: usize,
    },
    /// Every connection of the servers to Redis cut, and new ones refused,
    /// for `pause` (a Redis outage, seen from the servers).
    RedisOutage {
        /// For how long.
        #[serde(rename = "pause_ms", serialize_with = "as_ms")]
        pause: Duration,
    },
    /// Stops forwarding one connection for `pause`.
    Stall {
        /// Which connection.
        pick: usize,
        /// For how long.
        #[serde(rename = "pause_ms", serialize_with = "as_ms")]
        pause: Duration,
    },
}

fn as_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

/// What to draw.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// The seed.
    pub seed: u64,
    /// Faults happen between 10 % and 90 % of this window.
    pub window: Duration,
    /// Server kills.
    pub kills: u32,
    /// Connection cuts.
    pub cuts: u32,
    /// Connection stalls.
    pub stalls: u32,
    /// Longest time the server stays down.
    pub max_down: Duration,
    /// Longest stall.
    pub max_stall: Duration,
    /// Redis outages.
    pub redis_outages: u32,
    /// Longest Redis outage.
    pub max_outage: Duration,
}

/// The faults of `plan`, by time from the start of the window. The same
/// plan gives the same schedule. Kills are spread: one in each of `kills`
/// equal slices of the window.
pub fn draw(plan: &Plan) -> Vec<(Duration, Fault)> {
    let mut rng = StdRng::seed_from_u64(plan.seed);
    let lo = plan.window.as_millis() as u64 / 10;
    let hi = (plan.window.as_millis() as u64 * 9 / 10).max(lo + 1);
    let ms = |v: u64| Duration::from_millis(v);
    let mut out = Vec::new();
    let slice = (hi - lo) / u64::from(plan.kills.max(1));
    for k in 0..u64::from(plan.kills) {
        let at = lo + k * slice + rng.random_range(0..slice.max(1));
        let down = rng.random_range(50..=(plan.max_down.as_millis() as u64).max(50));
        out.push((ms(at), Fault::Kill { down: ms(down) }));
    }
    for _ in 0..plan.cuts {
        let at = rng.random_range(lo..hi);
        let pick = rng.random_range(0..1024);
        out.push((ms(at), Fault::Cut { pick }));
    }
    for _ in 0..plan.stalls {
        let at = rng.random_range(lo..hi);
        let pick = rng.random_range(0..1024);
        let pause = rng.random_range(100..=(plan.max_stall.as_millis() as u64).max(100));
        out.push((
            ms(at),
            Fault::Stall {
                pick,
                pause: ms(pause),
            },
        ));
    }
    for _ in 0..plan.redis_outages {
        let at = rng.random_range(lo..hi);
        let pause = rng.random_range(100..=(plan.max_outage.as_millis() as u64).max(100));
        out.push((ms(at), Fault::RedisOutage { pause: ms(pause) }));
    }
    out.sort_by_key(|(at, _)| *at);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(seed: u64) -> Plan {
        Plan {
            seed,
            window: Duration::from_secs(10),
            kills: 3,
            cuts: 5,
            stalls: 2,
            max_down: Duration::from_millis(800),
            max_stall: Duration::from_millis(1500),
            redis_outages: 1,
            max_outage: Duration::from_millis(2000),
        }
    }

    #[test]
    fn the_seed_decides() {
        assert_eq!(draw(&plan(7)), draw(&plan(7)));
        assert_ne!(draw(&plan(7)), draw(&plan(8)));
    }

    #[test]
    fn counts_bounds_and_order() {
        let faults = draw(&plan(42));
        assert_eq!(faults.len(), 11);
        let kills = faults
            .iter()
            .filter(|(_, f)| matches!(f, Fault::Kill { .. }))
            .count();
        assert_eq!(kills, 3);
        assert!(faults.windows(2).all(|w| w[0].0 <= w[1].0));
        for (at, fault) in &faults {
            assert!(*at >= Duration::from_secs(1) && *at < Duration::from_secs(9));
            match fault {
                Fault::Kill { down } => assert!(*down <= Duration::from_millis(800)),
                Fault::Stall { pause, .. } => assert!(*pause <= Duration::from_millis(1500)),
                Fault::RedisOutage { pause } => assert!(*pause <= Duration::from_millis(2000)),
                Fault::Cut { .. } => {}
            }
        }
    }
}

//! Exponential backoff with jitter, as the official client computes it.

use std::time::Duration;

/// Reconnection settings.
///
/// The n-th attempt (from 0) waits `delay * 2^n`, moved up or down by a
/// random part of at most `randomization_factor` of it, capped at `max_delay`.
///
/// ```
/// use std::time::Duration;
/// let r = tether_client::Reconnection {
///     delay: Duration::from_millis(100),
///     max_attempts: Some(5),
///     ..Default::default()
/// };
/// assert!(r.enabled);
/// assert_eq!(r.max_delay, Duration::from_secs(5));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Reconnection {
    /// Reconnect automatically after the connection is lost.
    pub enabled: bool,
    /// First delay.
    pub delay: Duration,
    /// Longest delay.
    pub max_delay: Duration,
    /// Jitter, from 0 (none) to 1.
    pub randomization_factor: f64,
    /// Attempts before giving up (`reconnect_failed`); `None`: never give up.
    pub max_attempts: Option<u32>,
}

impl Default for Reconnection {
    fn default() -> Self {
        Self {
            enabled: true,
            delay: Duration::from_millis(1000),
            max_delay: Duration::from_millis(5000),
            randomization_factor: 0.5,
            max_attempts: None,
        }
    }
}

impl Reconnection {
    /// No automatic reconnection.
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }
}

/// The attempt counter and the delays it gives.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    pub(crate) attempts: u32,
}

impl Backoff {
    pub(crate) fn new() -> Self {
        Self { attempts: 0 }
    }

    /// The delay before the next attempt (and counts it).
    pub(crate) fn next_delay(&mut self, r: &Reconnection) -> Duration {
        let ms = r.delay.as_secs_f64() * 1000.0 * 2f64.powi(self.attempts.min(60) as i32);
        self.attempts += 1;
        let jitter = if r.randomization_factor > 0.0 && r.randomization_factor <= 1.0 {
            r.randomization_factor
        } else {
            0.0
        };
        let ms = if jitter > 0.0 {
            let rand: f64 = rand::random();
            let deviation = (rand * jitter * ms).floor();
            if ((rand * 10.0).floor() as u64) & 1 == 0 {
                ms - deviation
            } else {
                ms + deviation
            }
        } else {
            ms
        };
        let max = r.max_delay.as_secs_f64() * 1000.0;
        Duration::from_millis(ms.min(max).max(0.0) as u64)
    }

    pub(crate) fn reset(&mut self) {
        self.attempts = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_caps() {
        let r = Reconnection {
            delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            randomization_factor: 0.0,
            ..Reconnection::default()
        };
        let mut b = Backoff::new();
        let delays: Vec<u64> = (0..6)
            .map(|_| b.next_delay(&r).as_millis() as u64)
            .collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        b.reset();
        assert_eq!(b.attempts, 0);
    }

    #[test]
    fn jitter_stays_in_range() {
        let r = Reconnection {
            delay: Duration::from_millis(1000),
            max_delay: Duration::from_millis(100_000),
            randomization_factor: 0.5,
            ..Reconnection::default()
        };
        for _ in 0..1000 {
            let mut b = Backoff::new();
            let d = b.next_delay(&r).as_millis();
            assert!((500..=1500).contains(&d), "{d}");
        }
    }
}

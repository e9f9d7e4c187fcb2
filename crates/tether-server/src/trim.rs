//! Gives freed heap memory back to the OS now and then (glibc only).
//!
//! glibc's malloc keeps what was freed in the middle of its heaps resident:
//! after 300 clients had caught up from a large history and left, `tether
//! serve` stayed at the RSS it had with them (bench/slow-readers.mjs).
//! `malloc_trim` returns those pages. The library leaves the allocator to the
//! app; only the binary does this.

/// How often the heap is trimmed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Starts trimming in the background (a no-op off glibc).
pub fn spawn() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    tokio::spawn(async {
        extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // SAFETY: malloc_trim only takes the allocator's own locks and
            // returns free pages; it has no preconditions.
            unsafe {
                malloc_trim(0);
            }
        }
    });
}

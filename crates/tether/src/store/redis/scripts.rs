//! The Lua scripts, kept as `.lua` files next to this one (`lua/`). Each is
//! sent by SHA, loaded again after a Redis restart; each begins with
//! `common.lua` (the key layout and the epoch check), and the trim scripts
//! with `trim_common.lua` too.

use redis::Script;

/// Shared by every script: `ARGV[1]` is always the key prefix.
const COMMON: &str = include_str!("lua/common.lua");
/// Removing entries, shared by the trim scripts.
const TRIM_COMMON: &str = include_str!("lua/trim_common.lua");

/// The Lua scripts (sent once by SHA, loaded again after a Redis restart).
pub(super) struct Scripts {
    /// `append_batch`: plain and keyed entries in one run.
    pub(super) append: Script,
    /// Age retention, one chunk.
    pub(super) trim_age: Script,
    /// Count retention of one namespace, one chunk.
    pub(super) trim_count: Script,
    /// Old disconnected sessions, one chunk.
    pub(super) trim_sessions: Script,
    /// The connected sessions of a node whose lease lapsed, one chunk.
    pub(super) release_owner: Script,
    /// `inbox_push`.
    pub(super) inbox_push: Script,
    /// `inbox_ack`.
    pub(super) inbox_ack: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        let with_common = |body: &str| Script::new(&format!("{COMMON}{body}"));
        let with_trim = |body: &str| Script::new(&format!("{COMMON}{TRIM_COMMON}{body}"));
        Scripts {
            append: with_common(include_str!("lua/append.lua")),
            trim_age: with_trim(include_str!("lua/trim_age.lua")),
            trim_count: with_trim(include_str!("lua/trim_count.lua")),
            trim_sessions: with_common(include_str!("lua/trim_sessions.lua")),
            release_owner: with_common(include_str!("lua/release_owner.lua")),
            inbox_push: with_common(include_str!("lua/inbox_push.lua")),
            inbox_ack: with_common(include_str!("lua/inbox_ack.lua")),
        }
    }
}

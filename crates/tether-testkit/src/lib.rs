//! Test support for Tether's own test suites (not published).
//!
//! - [`delivery`]: the handlers of the delivery contract server, run by
//!   `examples/delivery_server.rs` and in-process by the multi-node tests;
//! - [`interop`]: the handlers of the interop contract (`tests/node`);
//! - [`faulty_store`]: a store that fails on command, around a real one;
//! - [`store_suite`]: the behaviour every store must have, run against each;
//! - [`redis`]: the shared and private Redis servers the Redis tests use.
//!
//! The test servers other programs drive (`conformance`, `bench_server`,
//! `delivery_server`, `interop_server`, `store_bench`) are this crate's
//! examples: `cargo run --example conformance -- 3000`.
#![allow(missing_docs)]

use std::path::{Path, PathBuf};

pub mod delivery;
pub mod faulty_store;
pub mod interop;
pub mod redis;
pub mod store_bench;
pub mod store_suite;

/// A fresh directory under the temp dir named `tether-<tag>-…`, removed with
/// everything in it on drop.
pub fn temp_dir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("tether-{tag}-"))
        .tempdir()
        .expect("create a temp dir")
}

/// A SQLite file path in a directory of its own, removed on drop with its
/// `-wal`, `-shm` and `-journal` files.
pub struct TempDb {
    dir: tempfile::TempDir,
    path: PathBuf,
}

impl TempDb {
    /// A path nothing exists at yet (`<fresh dir>/store.db`).
    pub fn new() -> Self {
        let dir = temp_dir("db");
        let path = dir.path().join("store.db");
        TempDb { dir, path }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory holding it.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Default for TempDb {
    fn default() -> Self {
        Self::new()
    }
}

//! Retention: trim scripts run in chunks, session leases of dead nodes.

use super::*;

impl RedisStore {
    /// Renews this node's lease, then releases the sessions of every node
    /// whose lease lapsed.
    pub(super) async fn release_dead_owners(&self) -> Result<(), StoreError> {
        let now = crate::store::now_ms();
        let owners_key = self.key("owners");
        let lease = i64::try_from(self.session_lease.as_millis()).unwrap_or(i64::MAX);
        let dead: Vec<String> = self
            .retried(|mut conn| {
                let mut pipe = redis::pipe();
                // Renewed only if held (XX): a node without connected
                // sessions leaves no key behind.
                pipe.cmd("ZADD")
                    .arg(&owners_key)
                    .arg("XX")
                    .arg(now)
                    .arg(&self.owner)
                    .ignore()
                    .cmd("ZRANGEBYSCORE")
                    .arg(&owners_key)
                    .arg("-inf")
                    .arg(format!("({}", now.saturating_sub(lease)));
                async move {
                    let (dead,): (Vec<String>,) = pipe.query_async(&mut conn).await?;
                    Ok(dead)
                }
            })
            .await?;
        for owner in dead.iter().filter(|o| **o != self.owner) {
            tracing::info!(owner = %owner, "a node's session lease lapsed: its sessions are disconnected as of now");
            loop {
                let mut invocation = self.scripts.release_owner.prepare_invoke();
                invocation
                    .arg(&self.prefix)
                    .arg(owner)
                    .arg(now)
                    .arg(TRIM_CHUNK);
                let more: u8 = self
                    .retried(|mut conn| {
                        let invocation = &invocation;
                        async move { invocation.invoke_async(&mut conn).await }
                    })
                    .await?;
                if more == 0 {
                    break;
                }
            }
        }
        Ok(())
    }

    pub(super) async fn trim_all(
        &self,
        retention: Retention,
        sessions_before_ms: i64,
    ) -> Result<u64, StoreError> {
        let mut removed = 0u64;
        let ttl_key = self.key("idem_ttl");
        match retention.max_age {
            Some(max_age) => {
                let ttl = max_age.saturating_add(IDEMPOTENCY_TTL_MARGIN);
                let ttl_ms = u64::try_from(ttl.as_millis())
                    .unwrap_or(u64::MAX)
                    .min(MAX_SEQ);
                self.retried(|mut conn| {
                    let mut cmd = redis::cmd("SET");
                    cmd.arg(&ttl_key).arg(ttl_ms);
                    async move { cmd.query_async::<()>(&mut conn).await }
                })
                .await?;
                let age_ms = u64::try_from(max_age.as_millis())
                    .unwrap_or(u64::MAX)
                    .min(MAX_SEQ);
                loop {
                    let (n, more) = self
                        .trim_chunk(&self.scripts.trim_age, &[&age_ms.to_string()])
                        .await?;
                    removed += n;
                    if !more {
                        break;
                    }
                }
            }
            None => {
                self.retried(|mut conn| {
                    let mut cmd = redis::cmd("DEL");
                    cmd.arg(&ttl_key);
                    async move { cmd.query_async::<()>(&mut conn).await }
                })
                .await?;
            }
        }
        if let Some(max_count) = retention.max_count {
            let keep = max_count.min(MAX_SEQ).to_string();
            let nss_key = self.key("nss");
            let namespaces: Vec<String> = self
                .retried(|mut conn| {
                    let mut cmd = redis::cmd("SMEMBERS");
                    cmd.arg(&nss_key);
                    async move { cmd.query_async(&mut conn).await }
                })
                .await?;
            for nsp in &namespaces {
                loop {
                    let (n, more) = self
                        .trim_chunk(&self.scripts.trim_count, &[nsp, &keep])
                        .await?;
                    removed += n;
                    if !more {
                        break;
                    }
                }
            }
        }
        self.release_dead_owners().await?;
        let before = sessions_before_ms.to_string();
        loop {
            let mut invocation = self.scripts.trim_sessions.prepare_invoke();
            invocation.arg(&self.prefix).arg(&before).arg(TRIM_CHUNK);
            let gone: usize = self
                .retried(|mut conn| {
                    let invocation = &invocation;
                    async move { invocation.invoke_async(&mut conn).await }
                })
                .await?;
            if gone < TRIM_CHUNK {
                break;
            }
        }
        Ok(removed)
    }

    /// One chunk of an entry trim script: (removed, more to do).
    pub(super) async fn trim_chunk(
        &self,
        script: &Script,
        args: &[&str],
    ) -> Result<(u64, bool), StoreError> {
        let mut invocation = script.prepare_invoke();
        invocation.arg(&self.prefix);
        for arg in args {
            invocation.arg(*arg);
        }
        invocation.arg(TRIM_CHUNK);
        // Trimming twice is harmless: safe to retry.
        let (removed, more): (u64, u8) = self
            .retried(|mut conn| {
                let invocation = &invocation;
                async move { invocation.invoke_async(&mut conn).await }
            })
            .await?;
        Ok((removed, more == 1))
    }
}

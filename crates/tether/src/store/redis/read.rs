//! Reads: the positions of streams, merged, then the entries from the log.

use super::*;

impl RedisStore {
    /// Fetches the entries at `seqs` from the log, in the order given; those
    /// trimmed meanwhile are left out.
    pub(super) async fn fetch(&self, seqs: &[Seq]) -> Result<Vec<Entry>, StoreError> {
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        let log = self.key("log");
        let replies: Vec<StreamRangeReply> = self
            .retried(|mut conn| {
                let mut pipe = redis::pipe();
                for seq in seqs {
                    let id = format!("{seq}-0");
                    pipe.cmd("XRANGE").arg(&log).arg(&id).arg(&id);
                }
                async move { pipe.query_async(&mut conn).await }
            })
            .await?;
        replies
            .iter()
            .flat_map(|reply| reply.ids.first())
            .map(decode_entry)
            .collect()
    }

    /// Positions of `streams` after `after`, merged: at most `want`, and
    /// whether more may follow.
    pub(super) async fn positions_after(
        &self,
        streams: &[String],
        after: Seq,
        want: usize,
    ) -> Result<(Vec<Seq>, bool), StoreError> {
        let min = format!("({after}");
        let lists: Vec<Vec<Seq>> = self
            .retried(|mut conn| {
                let mut pipe = redis::pipe();
                for key in streams {
                    pipe.cmd("ZRANGEBYSCORE")
                        .arg(key)
                        .arg(&min)
                        .arg("+inf")
                        .arg("LIMIT")
                        .arg(0)
                        .arg(want);
                }
                async move { pipe.query_async(&mut conn).await }
            })
            .await?;
        Ok(merge(lists, want, false))
    }

    /// Positions of `stream` before `before`, newest first: at most `want`,
    /// and whether more may follow.
    pub(super) async fn positions_before(
        &self,
        stream: &str,
        before: Seq,
        want: usize,
    ) -> Result<(Vec<Seq>, bool), StoreError> {
        let max = format!("({before}");
        let list: Vec<Seq> = self
            .retried(|mut conn| {
                let mut cmd = redis::cmd("ZREVRANGEBYSCORE");
                cmd.arg(stream)
                    .arg(&max)
                    .arg("-inf")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(want);
                async move { cmd.query_async(&mut conn).await }
            })
            .await?;
        Ok(merge(vec![list], want, true))
    }

    pub(super) async fn read_entries(
        &self,
        nsp: &str,
        rooms: &[String],
        after: Seq,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let mut streams = vec![self.room_key(nsp, "")];
        for room in rooms {
            let key = self.room_key(nsp, room);
            if !streams.contains(&key) {
                streams.push(key);
            }
        }
        let mut cursor = after;
        loop {
            let want = (limit - out.len()).min(READ_CHUNK);
            let (seqs, more) = self.positions_after(&streams, cursor, want).await?;
            let Some(&last) = seqs.last() else {
                return Ok(out);
            };
            for entry in self.fetch(&seqs).await? {
                if reaches(&entry.entry.target, rooms) {
                    out.push(entry);
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
            if !more {
                return Ok(out);
            }
            cursor = last;
        }
    }

    pub(super) async fn read_history(
        &self,
        nsp: &str,
        room: Option<&str>,
        before: Seq,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let rooms: Vec<String> = room.map(str::to_owned).into_iter().collect();
        let stream = self.room_key(nsp, room.unwrap_or(""));
        let mut cursor = before;
        'pages: loop {
            let want = (limit - out.len()).min(READ_CHUNK);
            let (seqs, more) = self.positions_before(&stream, cursor, want).await?;
            let Some(&oldest) = seqs.last() else {
                break;
            };
            for entry in self.fetch(&seqs).await? {
                if reaches(&entry.entry.target, &rooms) {
                    out.push(entry);
                    if out.len() >= limit {
                        break 'pages;
                    }
                }
            }
            if !more {
                break;
            }
            cursor = oldest;
        }
        out.reverse();
        Ok(out)
    }
}

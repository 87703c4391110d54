//! What the tracker process costs, read from outside it: resident memory and
//! CPU time from `/proc/<pid>`, and Redis' own `used_memory`.

/// Bytes per page on the x86-64 and arm64 Linux kernels this runs on.
const PAGE_BYTES: u64 = 4096;
/// Clock ticks per second of `/proc/<pid>/stat` times (USER_HZ, fixed at
/// 100 by the Linux ABI).
const TICKS_PER_SECOND: f64 = 100.0;

/// A process's resident set in bytes, from `/proc/<pid>/statm`.
pub fn resident_bytes(pid: u32) -> anyhow::Result<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm"))?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("unexpected /proc/{pid}/statm: {statm}"))?;
    Ok(pages * PAGE_BYTES)
}

/// A process's user + system CPU time in seconds, from `/proc/<pid>/stat`.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is parenthesised and may hold
    // spaces: state is field 3, utime 14 and stime 15.
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| anyhow::anyhow!("unexpected /proc/{pid}/stat"))?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        let field = fields
            .get(i)
            .ok_or_else(|| anyhow::anyhow!("short /proc/{pid}/stat"))?;
        Ok(field.parse::<f64>()?)
    };
    Ok((ticks(11)? + ticks(12)?) / TICKS_PER_SECOND)
}

/// Redis' `used_memory` in bytes.
pub async fn redis_used_memory(url: &str) -> anyhow::Result<u64> {
    let client = redis::Client::open(url)?;
    let mut connection = client.get_multiplexed_async_connection().await?;
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut connection)
        .await?;
    info.lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("INFO memory has no used_memory"))
}

/// The process id of the Redis server at `url`, to read its CPU time.
pub async fn redis_pid(url: &str) -> anyhow::Result<u32> {
    let client = redis::Client::open(url)?;
    let mut connection = client.get_multiplexed_async_connection().await?;
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut connection)
        .await?;
    info.lines()
        .find_map(|line| line.strip_prefix("process_id:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("INFO server has no process_id"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        assert!(resident_bytes(pid).unwrap() > 0);
        assert!(cpu_seconds(pid).unwrap() >= 0.0);
    }
}

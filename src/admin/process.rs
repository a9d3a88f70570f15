//! The process as Prometheus client libraries export it (`process_*`), read from `/proc/self`
//! at scrape time: resident and virtual memory, CPU seconds, open and allowed descriptors, start
//! time. Held against the Deployment's limits (512 MiB) by the alert rules.

/// One reading; a field is `None` where `/proc` could not tell.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessStats {
    pub resident_bytes: Option<u64>,
    pub virtual_bytes: Option<u64>,
    pub cpu_seconds: Option<f64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
    pub start_time_seconds: Option<f64>,
}

impl ProcessStats {
    /// Reads the current process.
    pub fn read() -> ProcessStats {
        let ticks = rustix::param::clock_ticks_per_second().max(1) as f64;
        let page = rustix::param::page_size() as u64;
        let stat = std::fs::read_to_string("/proc/self/stat").ok();
        let fields = stat.as_deref().and_then(stat_fields);
        let field = |i: usize| fields.as_ref().and_then(|f| f.get(i)).and_then(|v| v.parse::<u64>().ok());
        // Fields after the command (`pid (comm) state …`), numbered as in proc(5) minus 3.
        let (utime, stime, starttime, vsize, rss) = (field(11), field(12), field(19), field(20), field(21));
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| s.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse::<u64>().ok()));
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        ProcessStats {
            resident_bytes: rss.map(|p| p * page),
            virtual_bytes: vsize,
            cpu_seconds: utime.zip(stime).map(|(u, s)| (u + s) as f64 / ticks),
            open_fds: std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count() as u64),
            max_fds: limit.current,
            start_time_seconds: boot.zip(starttime).map(|(b, s)| b as f64 + s as f64 / ticks),
        }
    }
}

/// The fields of `/proc/self/stat` after `pid (comm)` (a command name may hold spaces and `)`).
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let after = &stat[stat.rfind(')')? + 1..];
    Some(after.split_whitespace().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_reads() {
        let p = ProcessStats::read();
        assert!(p.resident_bytes.unwrap() > 1 << 20, "{p:?}");
        assert!(p.virtual_bytes.unwrap() >= p.resident_bytes.unwrap());
        assert!(p.open_fds.unwrap() >= 3 && p.max_fds.unwrap() >= p.open_fds.unwrap(), "{p:?}");
        assert!(p.start_time_seconds.unwrap() > 1.7e9, "{p:?}");
        assert!(p.cpu_seconds.unwrap() >= 0.0);
        assert_eq!(stat_fields("1 (a b) c) S 0 1").unwrap(), ["S", "0", "1"]);
    }
}

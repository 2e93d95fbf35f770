//! The process's own figures for the metrics page, under the names every Prometheus client
//! library uses (`process_*`): memory, CPU time, descriptors, start time. Read from `/proc/self`
//! at each scrape.
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Process {
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub cpu_seconds: f64,
    pub open_fds: u64,
    pub max_fds: Option<u64>,
    /// Seconds since the Unix epoch.
    pub start_time: f64,
}

/// This process now; a figure that cannot be read stays 0.
pub fn read() -> Process {
    let page = sysconf(libc::_SC_PAGESIZE).unwrap_or(4096);
    let ticks = sysconf(libc::_SC_CLK_TCK).unwrap_or(100) as f64;
    let mut p = Process::default();
    if let Ok(statm) = std::fs::read_to_string("/proc/self/statm") {
        let mut fields = statm
            .split_whitespace()
            .map(|f| f.parse::<u64>().unwrap_or(0));
        p.virtual_bytes = fields.next().unwrap_or(0) * page;
        p.resident_bytes = fields.next().unwrap_or(0) * page;
    }
    if let Some(stat) = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| parse_stat(&s))
    {
        p.cpu_seconds = (stat.utime + stat.stime) as f64 / ticks;
        let started_after_boot = stat.starttime as f64 / ticks;
        p.start_time = unix_now() - (since_boot() - started_after_boot);
    }
    p.open_fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    p.max_fds = crate::server::nofile_limit();
    p
}

#[derive(Debug, PartialEq)]
struct Stat {
    utime: u64,
    stime: u64,
    starttime: u64,
}

/// `/proc/self/stat`: fields 14, 15 and 22, counted after the command name (which may hold
/// spaces and parentheses: it ends at the last ')').
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (the state).
    let field = |n: usize| fields.get(n - 3)?.parse().ok();
    Some(Stat {
        utime: field(14)?,
        stime: field(15)?,
        starttime: field(22)?,
    })
}

fn sysconf(name: libc::c_int) -> Option<u64> {
    // SAFETY: sysconf only reads a system setting.
    let v = unsafe { libc::sysconf(name) };
    (v > 0).then_some(v as u64)
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Seconds since boot, on the clock `/proc/<pid>/stat`'s start time counts with (suspend
/// included).
fn since_boot() -> f64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut now) };
    now.tv_sec as f64 + now.tv_nsec as f64 / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_last_parenthesis() {
        let line = "4242 (php (rr) x) S 1 4242 4242 0 -1 4194560 2000 0 0 0 \
                    150 25 0 0 20 0 3 0 98765 300000000 5000 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                utime: 150,
                stime: 25,
                starttime: 98765
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_has_memory_descriptors_and_started_in_the_past() {
        let p = read();
        assert!(
            p.resident_bytes > 0 && p.virtual_bytes >= p.resident_bytes,
            "{p:?}"
        );
        assert!(p.open_fds >= 3, "{p:?}");
        let now = unix_now();
        assert!(
            p.start_time > now - 86400.0 * 365.0 && p.start_time <= now + 1.0,
            "{p:?}"
        );
    }
}

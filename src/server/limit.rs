//! `http.max_connections`: how many client connections are served at once. Beyond it a new
//! connection gets one small 503 and is closed, so descriptors never run out because of idle
//! clients (the pool master needs some to start workers) and the process degrades instead of
//! failing.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Descriptors `auto` leaves for everything that is not a client connection: workers'
/// channels and pipes, files being streamed, uploads, logs.
const AUTO_RESERVE_PERCENT: u64 = 25;
/// The fewest connections `auto` allows, however low the descriptor limit.
const AUTO_MIN: usize = 16;

/// The answer to a connection beyond the limit (written before the request is read).
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 58\r\n\r\n\
{\"error\":\"too many connections\",\"code\":\"connection_limit\"}";

/// The connections a listener (or a group of listeners) may have open at once.
#[derive(Clone)]
pub struct ConnectionLimit {
    open: Arc<AtomicUsize>,
    /// The most connections open at once since the last `reset_peak()` (see `release`).
    peak: Arc<AtomicUsize>,
    max: usize,
}

/// One open connection; dropping it frees its place.
pub struct Permit {
    open: Arc<AtomicUsize>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ConnectionLimit {
    /// `configured` 0 means auto: three quarters of the soft `RLIMIT_NOFILE`.
    pub fn new(configured: usize) -> ConnectionLimit {
        let max = match configured {
            0 => auto(nofile_limit()),
            n => n,
        };
        ConnectionLimit {
            open: Arc::new(AtomicUsize::new(0)),
            peak: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// A place for one more connection, if there is one.
    pub fn acquire(&self) -> Option<Permit> {
        let taken = self
            .open
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.max).then_some(n + 1)
            });
        let open = taken.ok()? + 1;
        self.peak.fetch_max(open, Ordering::Relaxed);
        Some(Permit {
            open: self.open.clone(),
        })
    }

    /// The most connections open at once since the last reset.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// Starts a new peak from the connections open now.
    pub fn reset_peak(&self) {
        self.peak.store(self.open(), Ordering::Relaxed);
    }
}

/// Answers a connection beyond the limit with 503 and closes it, without waiting for the
/// client: one non-blocking write (the answer fits any socket buffer), then the close.
pub async fn refuse(stream: TcpStream) {
    let _ = stream.try_write(REFUSED);
    let mut stream = stream;
    let _ = stream.shutdown().await;
}

/// The connection limit for a descriptor limit of `nofile` (None: unknown).
fn auto(nofile: Option<u64>) -> usize {
    match nofile {
        Some(n) => {
            let usable = n.saturating_sub(n * AUTO_RESERVE_PERCENT / 100);
            usize::try_from(usable).unwrap_or(usize::MAX).max(AUTO_MIN)
        }
        None => 10_000,
    }
}

/// The largest descriptor table grown at start (512 KB of kernel memory on 64-bit); beyond it
/// the table grows as descriptors are opened, as it would without this.
const PRESIZE_MAX: u64 = 65_536;

/// Grows the process's descriptor table, once, to hold as many descriptors as the soft limit
/// allows (at most [`PRESIZE_MAX`]). The kernel grows the table by doubling when a descriptor
/// past its end is opened, and in a multi-threaded process each growth waits for an RCU grace
/// period inside that `accept()` or `open()`: measured here 30-200 ms, during which the thread
/// serving every connection stood still (bench/bodies, slow readers: p99 430 ms, 503s from a
/// full queue). Grown at start, no connection pays it later. Best effort: a failure only
/// leaves the table to grow as before.
pub(crate) fn presize_descriptor_table() {
    let Some(want) = nofile_limit().map(|n| n.min(PRESIZE_MAX)) else {
        return;
    };
    let Ok(highest) = libc::c_int::try_from(want.saturating_sub(1)) else {
        return;
    };
    let Ok(null) = std::fs::File::open("/dev/null") else {
        return;
    };
    if highest <= std::os::fd::AsRawFd::as_raw_fd(&null) {
        return;
    }
    // SAFETY: F_DUPFD_CLOEXEC duplicates a descriptor we own onto the lowest free number at or
    // above `highest`; the copy is closed at once and nothing else refers to it.
    let copy = unsafe {
        libc::fcntl(
            std::os::fd::AsRawFd::as_raw_fd(&null),
            libc::F_DUPFD_CLOEXEC,
            highest,
        )
    };
    if copy >= 0 {
        // SAFETY: `copy` was just created by fcntl above and is owned by no one else.
        unsafe { libc::close(copy) };
    } else {
        tracing::debug!(
            "the descriptor table was not grown at start: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// The process's descriptor limit (`ulimit -n`); None when unlimited or unknown.
pub(crate) fn nofile_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct we own.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    (ok && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_keeps_a_quarter_of_the_descriptors_for_the_rest() {
        assert_eq!(auto(Some(1024)), 768);
        assert_eq!(auto(Some(65536)), 49152);
        assert_eq!(auto(Some(8)), AUTO_MIN);
        assert_eq!(auto(None), 10_000);
    }

    #[test]
    fn the_descriptor_table_is_grown_to_the_limit_at_start() {
        presize_descriptor_table();
        let highest = nofile_limit().map_or(0, |n| n.min(PRESIZE_MAX));
        // The kernel shows the table's size in FDSize; it only grows.
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let size: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("FDSize:"))
            .map(|v| v.trim().parse().unwrap())
            .unwrap();
        assert!(size >= highest, "FDSize {size} below {highest}");
    }

    #[test]
    fn places_are_freed_when_permits_drop() {
        let limit = ConnectionLimit::new(2);
        let a = limit.acquire().unwrap();
        let _b = limit.acquire().unwrap();
        assert!(limit.acquire().is_none());
        drop(a);
        assert!(limit.acquire().is_some());
    }

    #[test]
    fn the_peak_stays_until_reset() {
        let limit = ConnectionLimit::new(10);
        let permits: Vec<_> = (0..3).map(|_| limit.acquire().unwrap()).collect();
        drop(permits);
        assert_eq!((limit.peak(), limit.open()), (3, 0));
        limit.reset_peak();
        let _one = limit.acquire().unwrap();
        assert_eq!(limit.peak(), 1);
    }

    #[test]
    fn the_refusal_is_one_well_formed_answer() {
        let text = std::str::from_utf8(REFUSED).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["code"], "connection_limit");
    }
}

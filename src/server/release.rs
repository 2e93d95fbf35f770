//! Memory returned to the system after a burst of connections. Each open connection costs
//! ~23 KB of small allocations (hyper's buffers, the task, the watchdog); when thousands close,
//! glibc keeps the freed pages because a few live allocations sit above them in the heap, so
//! RSS stayed +230 MB after 10,000 keep-alive connections closed. `malloc_trim(0)` hands every
//! free page back (docs/config.md, "Request and response bodies").
use super::limit::ConnectionLimit;
use super::shutdown::Shutdown;
use std::time::Duration;

/// Connections that must have closed since the last peak before memory is handed back (about
/// 6 MB of buffers): fewer is the ordinary coming and going of clients.
const BURST: usize = 256;
/// How often the open-connection count is looked at.
const EVERY: Duration = Duration::from_secs(1);

/// Whether a burst is over: many connections closed since the peak, and at least half of them.
fn burst_over(peak: usize, open: usize) -> bool {
    peak.saturating_sub(open) >= BURST && open <= peak / 2
}

/// Watches `limit` until shutdown; once a burst of connections is over, trims the heap.
pub async fn after_bursts(limit: ConnectionLimit, mut shutdown: Shutdown) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let (peak, open) = (limit.peak(), limit.open());
                if burst_over(peak, open) {
                    limit.reset_peak();
                    trim();
                    tracing::debug!(peak, open, "a burst of connections closed: free memory returned to the system");
                }
            }
            _ = shutdown.triggered() => return,
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim takes glibc's arena locks itself and only releases free pages.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators (musl's, macOS's) return memory by themselves or have no such call.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_over_when_most_of_it_closed() {
        assert!(burst_over(10_000, 0));
        assert!(burst_over(10_000, 5_000));
        assert!(!burst_over(10_000, 5_001));
        assert!(burst_over(BURST, 0));
    }

    #[test]
    fn ordinary_comings_and_goings_are_no_burst() {
        assert!(!burst_over(0, 0));
        assert!(!burst_over(BURST - 1, 0));
        // Many closed, but most of the peak is still open.
        assert!(!burst_over(2_000, 1_500));
    }
}

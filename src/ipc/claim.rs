//! Who may still run a request sent ahead: one 64-bit word in memory shared by the master and
//! one worker, so the master can take back requests the worker has not started, with no race.
//!
//! Both sides number the `Request` frames of one channel 1, 2, 3... (the master as it writes
//! them, the worker as it reads them). The word holds `started` (low half: the last request the
//! worker started) and `revoked` (high half: requests up to this one the master took back).
//! The worker starts request `s` with a compare-and-swap that fails if the master revoked it;
//! the master revokes with a compare-and-swap that fails if the worker started something
//! meanwhile (then it looks again). So every request runs exactly once: here, or elsewhere.
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable naming the worker's descriptor of the shared word.
pub const CLAIM_ENV: &str = "RR_POOL_CLAIM_FD";

/// A page of shared memory holding the word.
pub struct Claim {
    word: NonNull<AtomicU64>,
}

// SAFETY: the mapping is only ever accessed through the atomic, and unmapped once on drop.
unsafe impl Send for Claim {}
// SAFETY: as above: shared access goes through atomic operations only.
unsafe impl Sync for Claim {}

const PAGE: usize = 4096;

/// `a` comes before or is `b`, with sequence numbers that wrap.
fn at_or_before(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) >= 0
}

fn split(word: u64) -> (u32, u32) {
    ((word >> 32) as u32, word as u32)
}

fn join(revoked: u32, started: u32) -> u64 {
    (u64::from(revoked) << 32) | u64::from(started)
}

impl Claim {
    /// A new word (master side) and the descriptor the worker maps it from.
    pub fn create() -> std::io::Result<(Claim, OwnedFd)> {
        // SAFETY: memfd_create takes a NUL-terminated name and flags; it returns a new
        // descriptor or -1.
        let fd = unsafe { libc::memfd_create(c"rr-claim".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: the kernel just gave us this descriptor.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: ftruncate on our own descriptor.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), PAGE as libc::off_t) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok((Claim::map(&fd)?, fd))
    }

    /// Maps the word of `fd` (the worker's side).
    pub fn map(fd: &OwnedFd) -> std::io::Result<Claim> {
        // SAFETY: a fresh shared mapping of one page of a memfd we hold; checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let word = NonNull::new(ptr.cast::<AtomicU64>())
            .ok_or_else(|| std::io::Error::other("mmap returned null"))?;
        Ok(Claim { word })
    }

    /// The word the master handed down (`RR_POOL_CLAIM_FD`), mapped; the descriptor is closed
    /// (the mapping stays). None when there is none.
    pub fn inherited() -> Option<Claim> {
        let fd: i32 = std::env::var(CLAIM_ENV).ok()?.parse().ok()?;
        // SAFETY: fstat fills the zeroed buffer we own and fails on a closed descriptor.
        let is_memfd = fd >= 3
            && unsafe {
                let mut st: libc::stat = std::mem::zeroed();
                libc::fstat(fd, &mut st) == 0 && (st.st_mode & libc::S_IFMT) == libc::S_IFREG
            };
        if !is_memfd {
            return None;
        }
        // SAFETY: the master opened it for this process and nothing else here owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        std::env::remove_var(CLAIM_ENV);
        Claim::map(&fd).ok()
    }

    fn word(&self) -> &AtomicU64 {
        // SAFETY: the page stays mapped until drop, and is aligned (page start).
        unsafe { self.word.as_ref() }
    }

    /// Worker: may request `seq` start? False when the master took it back.
    pub fn start(&self, seq: u32) -> bool {
        let word = self.word();
        let mut current = word.load(Ordering::Acquire);
        loop {
            let (revoked, _) = split(current);
            if at_or_before(seq, revoked) {
                return false;
            }
            // Requests before this one are past: marking them revoked keeps `revoked` close
            // behind, so the wrapping comparison stays right however long the worker lives.
            let floor = seq.wrapping_sub(1);
            let revoked = match at_or_before(floor, revoked) {
                true => revoked,
                false => floor,
            };
            match word.compare_exchange_weak(
                current,
                join(revoked, seq),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(now) => current = now,
            }
        }
    }

    /// Master: takes back every request up to `upto` that the worker has not started. Returns
    /// the last one it started (those after it, up to `upto`, will never run there), or None
    /// when it already started `upto`.
    pub fn revoke(&self, upto: u32) -> Option<u32> {
        let word = self.word();
        let mut current = word.load(Ordering::Acquire);
        loop {
            let (_, started) = split(current);
            if at_or_before(upto, started) {
                return None;
            }
            match word.compare_exchange_weak(
                current,
                join(upto, started),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(started),
                Err(now) => current = now,
            }
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        // SAFETY: unmaps the page mapped in `map`, once; no reference outlives self.
        unsafe { libc::munmap(self.word.as_ptr().cast(), PAGE) };
    }
}

/// Whether `seq` comes after `started` (so it was revoked by `revoke` returning `started`).
pub fn after(seq: u32, started: u32) -> bool {
    !at_or_before(seq, started)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_runs_on_the_worker_or_is_taken_back_never_both() {
        let (master, fd) = Claim::create().unwrap();
        let worker = Claim::map(&fd).unwrap();
        assert!(worker.start(1));
        // 2 and 3 written; the worker is still on 1: both come back.
        assert_eq!(master.revoke(3), Some(1));
        assert!(!worker.start(2));
        assert!(!worker.start(3));
        // Written later: run as usual.
        assert!(worker.start(4));
        assert_eq!(master.revoke(4), None, "already started");
        assert_eq!(master.revoke(6), Some(4));
        assert!(!worker.start(5) && !worker.start(6));
        assert!(worker.start(7));
    }

    #[test]
    fn sequence_numbers_wrap() {
        let (master, fd) = Claim::create().unwrap();
        let worker = Claim::map(&fd).unwrap();
        // As after 2^32 - 4 requests.
        let past = u32::MAX - 4;
        master.word().store(join(past - 1, past), Ordering::Relaxed);
        for seq in (u32::MAX - 3..=u32::MAX).chain(0..3) {
            assert!(worker.start(seq), "{seq}");
        }
        assert_eq!(master.revoke(4), Some(2));
        assert!(!worker.start(3) && !worker.start(4));
        assert!(worker.start(5));
        assert!(after(3, 2) && !after(2, 2) && after(0, u32::MAX));
    }

    #[test]
    fn racing_sides_never_both_win() {
        const N: u32 = 200;
        for _ in 0..100 {
            let (master, fd) = Claim::create().unwrap();
            let worker = Claim::map(&fd).unwrap();
            let runner =
                std::thread::spawn(move || (1..=N).map(|s| worker.start(s)).collect::<Vec<bool>>());
            let mut revoked = vec![false; N as usize + 1];
            for upto in (1..=N).step_by(7) {
                if let Some(started) = master.revoke(upto) {
                    for s in started + 1..=upto {
                        revoked[s as usize] = true;
                    }
                }
            }
            let ran = runner.join().unwrap();
            for s in 1..=N {
                // Exactly one side owns each request: it ran, or the master took it back.
                assert_ne!(ran[s as usize - 1], revoked[s as usize], "request {s}");
            }
        }
    }
}

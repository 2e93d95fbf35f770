//! When a worker must go, and how long to wait after boot failures: the supervisor's rules as
//! plain functions of a worker's life so far.
use super::message::Reason;
use crate::config::PoolConfig;
use std::time::Duration;

/// Workers that die before their first `waitRequest()`, in a row, before the master gives up.
pub const MAX_BOOT_FAILURES: u32 = 5;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What the limits look at.
pub struct Life {
    pub jobs: u64,
    pub age: Duration,
    pub idle: Duration,
}

/// Checked right after an answer: the worker is idle, so replacing it costs no request.
pub fn after_answer(pool: &PoolConfig, life: &Life, rss: Option<u64>) -> Option<Reason> {
    let sup = &pool.supervisor;
    if pool.max_jobs > 0 && life.jobs >= pool.max_jobs {
        Some(Reason::MaxJobs)
    } else if sup.max_worker_memory > 0 && rss.is_some_and(|rss| rss > sup.max_worker_memory) {
        Some(Reason::MaxMemory)
    } else if !sup.ttl.is_zero() && life.age >= sup.ttl {
        Some(Reason::Ttl)
    } else {
        None
    }
}

/// Checked on every tick for idle workers.
pub fn while_idle(pool: &PoolConfig, life: &Life) -> Option<Reason> {
    let sup = &pool.supervisor;
    if !sup.ttl.is_zero() && life.age >= sup.ttl {
        Some(Reason::Ttl)
    } else if !sup.idle_ttl.is_zero() && life.idle >= sup.idle_ttl {
        Some(Reason::IdleTtl)
    } else {
        None
    }
}

/// The wait before the next start after `failures` boot failures in a row (1 or more):
/// 100 ms, doubling, at most 5 s.
pub fn backoff(failures: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1 << failures.saturating_sub(1).min(10))
        .min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn life(jobs: u64, age_ms: u64, idle_ms: u64) -> Life {
        Life {
            jobs,
            age: Duration::from_millis(age_ms),
            idle: Duration::from_millis(idle_ms),
        }
    }

    #[test]
    fn limits_off_by_default() {
        let pool = PoolConfig::default();
        assert_eq!(
            after_answer(&pool, &life(u64::MAX, u64::MAX, 0), Some(u64::MAX)),
            None
        );
        assert_eq!(while_idle(&pool, &life(0, u64::MAX, u64::MAX)), None);
    }

    #[test]
    fn each_limit_names_its_reason() {
        let pool = PoolConfig {
            max_jobs: 10,
            supervisor: crate::config::SupervisorConfig {
                max_worker_memory: 1000,
                ttl: Duration::from_secs(60),
                idle_ttl: Duration::from_secs(5),
                exec_ttl: Duration::ZERO,
            },
            ..PoolConfig::default()
        };
        assert_eq!(after_answer(&pool, &life(9, 0, 0), Some(1000)), None);
        assert_eq!(
            after_answer(&pool, &life(10, 0, 0), None),
            Some(Reason::MaxJobs)
        );
        assert_eq!(
            after_answer(&pool, &life(1, 0, 0), Some(1001)),
            Some(Reason::MaxMemory)
        );
        assert_eq!(
            after_answer(&pool, &life(1, 60_000, 0), None),
            Some(Reason::Ttl)
        );
        assert_eq!(while_idle(&pool, &life(1, 1000, 4999)), None);
        assert_eq!(
            while_idle(&pool, &life(1, 1000, 5000)),
            Some(Reason::IdleTtl)
        );
        assert_eq!(while_idle(&pool, &life(1, 60_000, 0)), Some(Reason::Ttl));
    }

    #[test]
    fn backoff_doubles_up_to_five_seconds() {
        let ms = |n| backoff(n).as_millis();
        assert_eq!([ms(1), ms(2), ms(3), ms(4)], [100, 200, 400, 800]);
        assert_eq!(ms(7), 5000);
        assert_eq!(ms(u32::MAX), 5000);
    }
}

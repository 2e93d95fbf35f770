//! The machine's queries one by one (the faults as a whole: `machine/tests.rs`).
use super::*;
use crate::pool::process::for_lack_of_resources;
use std::time::Duration;

fn slot(state: State, generation: u64) -> Slot {
    let now = Instant::now();
    Slot {
        id: 0,
        pid: 1,
        state,
        jobs: 0,
        started: now,
        last_active: now,
        current_since: now,
        generation,
        forked: false,
        oneshot: false,
        inflight: u32::from(state == State::Busy),
        answers_take: Some(Duration::from_micros(50)),
        declined: false,
    }
}

fn pool(num_workers: usize) -> PoolConfig {
    PoolConfig {
        num_workers,
        ..PoolConfig::default()
    }
}

fn table<'a>(slots: &'a [Slot], pool: &'a PoolConfig, generation: u64) -> Table<'a> {
    Table {
        slots,
        pool,
        generation,
        template_ready: true,
    }
}

const NONE: Starts = Starts {
    in_place: 0,
    oneshot: 0,
};
const ONE: Starts = Starts {
    in_place: 1,
    oneshot: 0,
};

#[test]
fn a_crashed_or_retired_worker_is_replaced_and_a_stopping_one_does_not_count() {
    let p = pool(2);
    let slots = [slot(State::Idle, 0), slot(State::Stopping, 0)];
    assert_eq!(table(&slots, &p, 0).starts(0), ONE);
    let slots = [slot(State::Idle, 0), slot(State::Busy, 0)];
    assert_eq!(table(&slots, &p, 0).starts(0), NONE);
}

#[test]
fn a_reload_starts_one_new_worker_at_a_time_beside_the_old_ones() {
    let p = pool(2);
    let mut slots = vec![slot(State::Idle, 0), slot(State::Busy, 0)];
    assert_eq!(
        table(&slots, &p, 1).starts(0),
        ONE,
        "one beyond num_workers"
    );
    slots.push(slot(State::Booting, 1));
    assert_eq!(table(&slots, &p, 1).starts(0), NONE, "one at a time");
    // Still booting: no old worker leaves yet.
    assert_eq!(table(&slots, &p, 1).stale_to_retire(), None);
    // Template mode: nothing before the new template booted.
    let slots = [slot(State::Idle, 0), slot(State::Idle, 0)];
    let t = Table {
        template_ready: false,
        ..table(&slots, &p, 1)
    };
    assert_eq!(t.starts(0), NONE);
}

#[test]
fn a_broken_reload_never_retires_an_old_worker() {
    let p = pool(2);
    // The new worker died before it was ready (its slot is gone): old ones serve, a new one is
    // tried again (after the backoff the supervisor waits), and none of the old ones goes.
    let slots = [slot(State::Idle, 0), slot(State::Busy, 0)];
    let t = table(&slots, &p, 1);
    assert_eq!(t.stale_to_retire(), None);
    assert_eq!(t.starts(0), ONE);
    assert_eq!(t.stale().count(), 2, "the reload is still pending");
    assert_eq!(
        after_boot_failure(false, true, 50),
        AfterBootFailure::RetryIn(Duration::from_secs(5))
    );
}

#[test]
fn boot_failures_stop_the_pool_only_when_nothing_ever_booted() {
    let ms = |n| AfterBootFailure::RetryIn(Duration::from_millis(n));
    assert_eq!(after_boot_failure(false, false, 1), ms(100));
    assert_eq!(after_boot_failure(false, false, 4), ms(800));
    assert_eq!(
        after_boot_failure(false, false, 5),
        AfterBootFailure::GiveUp
    );
    assert_eq!(after_boot_failure(false, true, 5), ms(1600));
    assert_eq!(after_boot_failure(false, true, u32::MAX), ms(5000));
    // Debug mode: never fatal, never waiting; the request waiting for the worker fails.
    for (ever, n) in [(false, 1), (false, 5), (false, 500), (true, 5)] {
        assert_eq!(
            after_boot_failure(true, ever, n),
            AfterBootFailure::FailRequest
        );
    }
}

#[test]
fn debug_mode_boots_one_worker_per_request_and_none_ahead() {
    let p = PoolConfig {
        debug: true,
        ..pool(2)
    };
    let oneshot = |state| Slot {
        oneshot: true,
        ..slot(state, 0)
    };
    let starts = |n| Starts {
        in_place: 0,
        oneshot: n,
    };
    // Nothing waiting: nothing booted ahead, not even at start.
    assert_eq!(table(&[], &p, 0).starts(0), NONE);
    assert_eq!(table(&[], &p, 0).starts(1), starts(1));
    // One per request waiting, at most num_workers alive; one that ended frees its place.
    assert_eq!(table(&[], &p, 0).starts(5), starts(2));
    let slots = [oneshot(State::Busy), oneshot(State::Booting)];
    assert_eq!(table(&slots, &p, 0).starts(3), NONE);
    let slots = [oneshot(State::Busy), oneshot(State::Stopping)];
    assert_eq!(table(&slots, &p, 0).starts(3), starts(1));
    // A worker booting for a request already counts for it.
    let slots = [oneshot(State::Booting)];
    assert_eq!(table(&slots, &p, 0).starts(1), NONE);
    // A reload changes nothing: there is no in-place worker to replace.
    assert_eq!(table(&slots, &p, 3).starts(0), NONE);
    // A one-shot worker never gets a request ahead.
    let busy = [oneshot(State::Busy)];
    assert_eq!(table(&busy, &p, 0).pick_ahead(Instant::now()), None);
}

#[test]
fn under_load_a_busy_old_worker_is_retired_once_its_replacement_is_ready() {
    let p = pool(2);
    let mut busy_long = slot(State::Busy, 0);
    busy_long.inflight = 3;
    let slots = [busy_long, slot(State::Busy, 0), slot(State::Idle, 1)];
    assert_eq!(
        table(&slots, &p, 1).stale_to_retire(),
        Some(1),
        "fewest held"
    );
    let slots = [
        slot(State::Busy, 0),
        slot(State::Idle, 0),
        slot(State::Busy, 1),
    ];
    assert_eq!(
        table(&slots, &p, 1).stale_to_retire(),
        Some(1),
        "idle first"
    );
    // Done: nothing stale, nothing more to start.
    let slots = [slot(State::Busy, 1), slot(State::Idle, 1)];
    assert_eq!(table(&slots, &p, 1).stale_to_retire(), None);
    assert_eq!(table(&slots, &p, 1).starts(0), NONE);
}

#[test]
fn a_start_without_descriptors_is_not_a_boot_failure() {
    for errno in [libc::EMFILE, libc::ENFILE, libc::EAGAIN, libc::ENOMEM] {
        assert!(for_lack_of_resources(&std::io::Error::from_raw_os_error(
            errno
        )));
    }
    for errno in [libc::ENOENT, libc::EACCES, libc::ENOEXEC] {
        assert!(!for_lack_of_resources(&std::io::Error::from_raw_os_error(
            errno
        )));
    }
}

#[test]
fn nothing_goes_ahead_behind_a_request_past_the_recall_threshold() {
    let p = pool(1);
    let now = Instant::now();
    let mut busy = slot(State::Busy, 0);
    assert_eq!(
        table(std::slice::from_ref(&busy), &p, 0).pick_ahead(now),
        Some(0)
    );
    // 10 x send_ahead_wait (1 ms): a stuck or slow request holds nothing more behind it.
    let then = now + Duration::from_millis(10);
    busy.current_since = now;
    assert_eq!(
        table(std::slice::from_ref(&busy), &p, 0).pick_ahead(then),
        None
    );
}

#[test]
fn only_quick_busy_workers_with_room_get_requests_ahead() {
    let p = PoolConfig {
        max_jobs: 10,
        ..pool(1)
    };
    let now = Instant::now();
    let check = |f: &dyn Fn(&mut Slot)| {
        let mut s = slot(State::Busy, 0);
        f(&mut s);
        table(std::slice::from_ref(&s), &p, 0).pick_ahead(now)
    };
    assert_eq!(check(&|_| {}), Some(0));
    assert_eq!(check(&|s| s.answers_take = None), None, "pace unknown");
    assert_eq!(
        check(&|s| s.answers_take = Some(Duration::from_millis(2))),
        None,
        "too slow"
    );
    assert_eq!(check(&|s| s.declined = true), None, "declined");
    assert_eq!(
        check(&|s| s.state = State::Stopping),
        None,
        "being replaced"
    );
    assert_eq!(check(&|s| s.inflight = 17), None, "send_ahead reached");
    assert_eq!(
        check(&|s| s.jobs = 9),
        None,
        "max_jobs reached with what it holds"
    );
    let off = PoolConfig {
        send_ahead: 0,
        ..pool(1)
    };
    let s = [slot(State::Busy, 0)];
    assert_eq!(table(&s, &off, 0).pick_ahead(now), None);
}

#[test]
fn an_idle_worker_of_the_current_generation_goes_first_then_the_warmest() {
    let p = pool(3);
    let mut old_warm = slot(State::Idle, 0);
    old_warm.last_active += Duration::from_secs(1);
    let mut new_warm = slot(State::Idle, 1);
    new_warm.last_active += Duration::from_millis(500);
    let slots = [old_warm, slot(State::Idle, 1), new_warm];
    assert_eq!(table(&slots, &p, 1).pick_idle(false), Some(2));
    assert_eq!(table(&slots, &p, 0).pick_idle(false), Some(0));
    assert_eq!(
        table(&slots, &p, 1).pick_idle(true),
        None,
        "no one-shot worker"
    );
}

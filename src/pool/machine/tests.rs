//! One test per fault the master handles (docs/pool.md, "Lifecycle and failure"), driving the
//! machine with inputs and reading its effects: no process, no sleep, the clock moved by hand.
use super::*;
use crate::config::SupervisorConfig;

fn pool(num_workers: usize) -> PoolConfig {
    PoolConfig {
        num_workers,
        ..PoolConfig::default()
    }
}

const MS: Duration = Duration::from_millis(1);
const QUICK: Duration = Duration::from_micros(50);

/// The machine, and the supervisor's part played by hand: each `Spawn` is answered at once
/// (started, pid 1000 + its number, unless `spawns_fail` says why not).
struct Master {
    machine: Machine,
    now: Instant,
    next_job: u64,
    /// `Some(lack_of_resources)`: starts fail.
    spawns_fail: Option<bool>,
}

impl Master {
    fn new(pool: PoolConfig) -> Master {
        let now = Instant::now();
        Master {
            machine: Machine::new(pool, now),
            now,
            next_job: 1,
            spawns_fail: None,
        }
    }

    /// A pool whose `n` in-place workers booted (numbers 1..=n).
    fn booted(pool: PoolConfig) -> Master {
        let n = pool.num_workers as u64;
        let mut m = Master::new(pool);
        assert_eq!(spawned(&m.on(Input::Start)), (1..=n).collect::<Vec<_>>());
        for worker in 1..=n {
            m.on(Input::Booted { worker });
        }
        m
    }

    fn on(&mut self, input: Input) -> Vec<Effect> {
        let mut all = Vec::new();
        let mut inputs = vec![input];
        while let Some(input) = inputs.pop() {
            for effect in self.machine.on(input, self.now) {
                if let Effect::Spawn { worker, .. } = effect {
                    inputs.push(match self.spawns_fail {
                        None => Input::Spawned {
                            worker,
                            pid: 1000 + worker as u32,
                        },
                        Some(lack_of_resources) => Input::SpawnFailed {
                            worker,
                            lack_of_resources,
                            detail: "Too many open files (os error 24)".into(),
                        },
                    });
                }
                all.push(effect);
            }
        }
        all
    }

    fn wait(&mut self, d: Duration) {
        self.now += d;
    }

    /// A request arrives (queued now).
    fn request(&mut self, line: Line, small: bool) -> (u64, Vec<Effect>) {
        let job = self.next_job;
        self.next_job += 1;
        let waiting = Waiting {
            job,
            queued_at: self.now,
            line,
            small,
        };
        (job, self.on(Input::Arrived(waiting)))
    }

    fn arrive(&mut self) -> (u64, Vec<Effect>) {
        self.request(Line::InPlace, true)
    }

    fn answer(&mut self, worker: u64) -> Vec<Effect> {
        self.on(Input::Answered {
            worker,
            memory: None,
            retire: false,
            took: QUICK,
        })
    }

    fn exit(&mut self, worker: u64, end: End) -> Vec<Effect> {
        self.on(Input::Exited {
            worker,
            end,
            detail: "exit status: 255".into(),
        })
    }

    fn state(&self, worker: u64) -> Option<State> {
        let slots = self.machine.workers();
        slots.iter().find(|s| s.id == worker).map(|s| s.state)
    }
}

fn spawned(effects: &[Effect]) -> Vec<u64> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Spawn { worker, .. } => Some(*worker),
            _ => None,
        })
        .collect()
}

/// (worker, job, ahead) of each request handed.
fn handed(effects: &[Effect]) -> Vec<(u64, u64, bool)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Hand { worker, job, ahead } => Some((*worker, job.job, *ahead)),
            _ => None,
        })
        .collect()
}

fn stopped(effects: &[Effect]) -> Vec<u64> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Stop { worker } => Some(*worker),
            _ => None,
        })
        .collect()
}

fn refused(effects: &[Effect]) -> Vec<(u64, Refusal)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Refuse { job, why } => Some((*job, *why)),
            _ => None,
        })
        .collect()
}

fn notices(effects: &[Effect]) -> Vec<&Notice> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Tell(notice) => Some(notice),
            _ => None,
        })
        .collect()
}

fn boot_failure(effects: &[Effect]) -> Option<&Notice> {
    notices(effects)
        .into_iter()
        .find(|n| matches!(n, Notice::BootFailed { .. }))
}

/// The last snapshot published (one ends every step).
fn published(effects: &[Effect]) -> Snapshot {
    match effects.last() {
        Some(Effect::Publish(snapshot)) => *snapshot,
        other => panic!("the step did not end with its snapshot: {other:?}"),
    }
}

fn exit(effects: &[Effect]) -> Option<&Result<(), PoolError>> {
    effects.iter().find_map(|e| match e {
        Effect::Exit(result) => Some(result),
        _ => None,
    })
}

#[test]
fn a_broken_reload_keeps_the_old_generation_serving_says_so_and_retries_with_backoff() {
    let mut m = Master::booted(pool(2));
    m.on(Input::Reload);
    assert_eq!(spawned(&m.on(Input::Tick)), [3], "one new worker at a time");
    // The new code cannot boot.
    let effects = m.exit(3, End::BootFailed);
    let Some(Notice::BootFailed {
        then,
        ever_booted,
        serving,
        generation,
        failures,
        ..
    }) = boot_failure(&effects)
    else {
        panic!("the failure is not told: {effects:?}");
    };
    assert_eq!(*then, AfterBootFailure::RetryIn(100 * MS));
    assert!(*ever_booted);
    assert_eq!((*serving, *generation, *failures), (2, 1, 1));
    assert!(stopped(&effects).is_empty(), "no old worker leaves");
    assert!(exit(&effects).is_none());
    let snapshot = published(&effects);
    assert!(snapshot.reload_pending);
    assert_eq!(snapshot.boot_failures, 1);
    assert_eq!(snapshot.counts[State::Idle as usize], 2);
    // The old generation serves meanwhile.
    let (job, effects) = m.arrive();
    assert_eq!(handed(&effects), [(2, job, false)]);
    // Retried after the backoff, which doubles, many times: never fatal once booted.
    let mut backoff = 100 * MS;
    for failures in 1..=10u32 {
        m.wait(backoff - MS);
        assert!(spawned(&m.on(Input::Tick)).is_empty(), "within the backoff");
        m.wait(MS);
        let new = spawned(&m.on(Input::Tick));
        assert_eq!(new.len(), 1, "after {failures} failures");
        let effects = m.exit(new[0], End::BootFailed);
        assert!(exit(&effects).is_none() && stopped(&effects).is_empty());
        backoff = limits::backoff(failures + 1);
    }
    assert_eq!(backoff, 5000 * MS);
    // The fixed deploy: a reload boots at once, whatever the backoff reached, and replaces the
    // old workers one by one.
    m.on(Input::Reload);
    let new = spawned(&m.on(Input::Tick));
    assert_eq!(new.len(), 1);
    let effects = m.on(Input::Booted { worker: new[0] });
    assert!(notices(&effects).contains(&&Notice::Booted {
        generation: 2,
        after_failures: 11
    }));
    assert_eq!(stopped(&effects), [1], "the idle old worker goes first");
    assert_eq!(published(&effects).boot_failures, 0);
}

#[test]
fn boot_failures_end_the_pool_only_when_nothing_ever_booted() {
    let mut m = Master::new(pool(1));
    let mut worker = spawned(&m.on(Input::Start))[0];
    let (job, _) = m.arrive();
    for failures in 1..=4 {
        let effects = m.exit(worker, End::BootFailed);
        assert!(exit(&effects).is_none(), "after {failures}");
        m.wait(limits::backoff(failures));
        worker = spawned(&m.on(Input::Tick))[0];
    }
    let effects = m.exit(worker, End::BootFailed);
    assert!(matches!(
        boot_failure(&effects),
        Some(Notice::BootFailed {
            then: AfterBootFailure::GiveUp,
            ..
        })
    ));
    assert!(effects.iter().any(|e| matches!(e, Effect::CloseQueue)));
    assert_eq!(refused(&effects), [(job, Refusal::Stopping)]);
    match exit(&effects) {
        Some(Err(PoolError::BootFailed(message))) => {
            assert!(message.contains("5 times in a row"), "{message}");
            assert!(message.contains("exit status: 255"), "{message}");
        }
        other => panic!("{other:?}"),
    }

    // Booted once (then crashed): boot failures never end it.
    let mut m = Master::booted(pool(1));
    let mut worker = spawned(&m.exit(1, End::Crashed))[0];
    for failures in 1..=20 {
        let effects = m.exit(worker, End::BootFailed);
        assert!(exit(&effects).is_none());
        m.wait(limits::backoff(failures));
        worker = spawned(&m.on(Input::Tick))[0];
    }
    // Template mode: the template's own boot failures count the same way.
    let template = PoolConfig {
        template: true,
        ..pool(1)
    };
    let mut m = Master::new(template);
    m.on(Input::Start);
    for failures in 1..=4 {
        let effects = m.on(Input::TemplateBootFailed("parse error".into()));
        assert!(exit(&effects).is_none(), "after {failures}");
    }
    let effects = m.on(Input::TemplateBootFailed("parse error".into()));
    assert!(effects.iter().any(|e| matches!(e, Effect::CloseQueue)));
}

#[test]
fn a_spawn_failing_for_lack_of_descriptors_is_not_a_boot_failure() {
    let mut m = Master::booted(pool(2));
    // A worker ends (max_jobs, a crash...) while descriptors are out.
    m.spawns_fail = Some(true);
    let effects = m.exit(1, End::Crashed);
    assert_eq!(spawned(&effects), [3], "one start tried");
    assert!(boot_failure(&effects).is_none());
    assert!(notices(&effects).contains(&&Notice::NoResources {
        detail: "Too many open files (os error 24)".into(),
        serving: 1,
        retry_in: SPAWN_RETRY,
    }));
    assert_eq!(published(&effects).boot_failures, 0);
    // The pool goes on with what it has, retrying every SPAWN_RETRY, for as long as it takes.
    for _ in 0..100 {
        let (job, effects) = m.arrive();
        assert_eq!(handed(&effects), [(2, job, false)]);
        m.answer(2);
        m.wait(SPAWN_RETRY - MS);
        assert!(spawned(&m.on(Input::Tick)).is_empty());
        m.wait(MS);
        let effects = m.on(Input::Tick);
        assert_eq!(spawned(&effects).len(), 1);
        assert!(exit(&effects).is_none() && boot_failure(&effects).is_none());
    }
    // Descriptors again: the worker missing starts.
    m.spawns_fail = None;
    m.wait(SPAWN_RETRY);
    let new = spawned(&m.on(Input::Tick));
    assert_eq!(new.len(), 1);
    m.on(Input::Booted { worker: new[0] });
    assert_eq!(
        published(&m.on(Input::Tick)).counts[State::Idle as usize],
        2
    );

    // Before anything booted: the same, never fatal, and one start at a time.
    let mut m = Master::new(pool(3));
    m.spawns_fail = Some(true);
    for _ in 0..10 {
        let effects = m.on(Input::Tick);
        assert_eq!(spawned(&effects).len(), 1);
        assert!(exit(&effects).is_none());
        m.wait(SPAWN_RETRY);
    }
    // Template mode: a fork order that finds no descriptors ends the same way.
    let template = PoolConfig {
        template: true,
        ..pool(1)
    };
    let mut m = Master::new(template);
    let worker = spawned(&m.on(Input::Start))[0];
    let effects = m.exit(worker, End::NoResources);
    assert!(boot_failure(&effects).is_none());
    assert!(matches!(
        notices(&effects)[..],
        [Notice::NoResources { .. }]
    ));
}

#[test]
fn a_reload_under_sustained_load_replaces_every_worker_within_a_bounded_number_of_steps() {
    let mut m = Master::booted(pool(2));
    // Both workers always busy, requests always waiting.
    for _ in 0..6 {
        m.request(Line::InPlace, false);
    }
    m.on(Input::Reload);
    let mut booting: Vec<u64> = Vec::new();
    let mut steps = 0;
    let mut replaced_by = None;
    for round in 0..20 {
        let effects = m.on(Input::Tick);
        booting.extend(spawned(&effects));
        for worker in std::mem::take(&mut booting) {
            booting.extend(spawned(&m.on(Input::Booted { worker })));
            steps += 1;
        }
        // Every worker holding a request answers one, one more arrives each time; one told
        // to stop exits once it holds none.
        let busy: Vec<u64> = m
            .machine
            .workers()
            .iter()
            .filter(|s| s.inflight > 0)
            .map(|s| s.id)
            .collect();
        for worker in busy {
            booting.extend(spawned(&m.answer(worker)));
            let slot = m.machine.workers().iter().find(|s| s.id == worker);
            if slot.is_some_and(|s| s.state == State::Stopping && s.inflight == 0) {
                booting.extend(spawned(&m.exit(worker, End::Stopped)));
            }
            m.request(Line::InPlace, false);
            steps += 2;
        }
        m.wait(10 * MS);
        let snapshot = published(&m.on(Input::Tick));
        if !snapshot.reload_pending && snapshot.serving_current == 2 {
            replaced_by = Some(round);
            break;
        }
    }
    let round = replaced_by.expect("the reload never finished under load");
    assert!(round <= 4, "{round} rounds, {steps} steps");
    assert!(m.machine.workers().iter().all(|s| s.generation == 1));
}

#[test]
fn requests_sent_ahead_behind_a_slow_one_come_back_and_another_worker_takes_them() {
    let mut m = Master::booted(pool(2));
    // Both workers answered quickly once: they may be sent requests ahead.
    for worker in [1, 2] {
        let (_, effects) = m.arrive();
        assert_eq!(handed(&effects)[0].0, worker % 2 + 1);
    }
    m.answer(1);
    m.answer(2);
    let (a, effects) = m.arrive();
    let first = handed(&effects)[0].0;
    let (b, effects) = m.arrive();
    let second = handed(&effects)[0].0;
    assert_ne!(first, second);
    let (c, effects) = m.arrive();
    let [(slow, job, true)] = handed(&effects)[..] else {
        panic!("not sent ahead: {effects:?}");
    };
    assert_eq!(job, c);
    assert!(m.machine.deadline().is_none(), "nothing waits");
    // Its request runs past the recall threshold (10 x send_ahead_wait): the worker's task
    // takes the one behind it back.
    m.wait(10 * MS);
    let (d, effects) = m.arrive();
    assert!(
        handed(&effects).is_empty(),
        "nothing more goes ahead: {effects:?}"
    );
    let effects = m.on(Input::Returned {
        worker: slow,
        jobs: vec![Waiting {
            job: c,
            queued_at: m.now - 10 * MS,
            line: Line::InPlace,
            small: true,
        }],
        why: Returned::Recalled,
    });
    assert!(handed(&effects).is_empty());
    assert!(notices(&effects).contains(&&Notice::SentBack {
        why: Returned::Recalled,
        n: 1
    }));
    // The other worker is free first: it takes them, the oldest first.
    let other = if slow == first { second } else { first };
    let effects = m.answer(other);
    assert_eq!(handed(&effects), [(other, c, false), (other, d, true)]);
    let _ = (a, b);
}

#[test]
fn behind_a_stuck_worker_a_request_gets_503_at_allocate_timeout() {
    let allocate = Duration::from_secs(2);
    let mut m = Master::booted(PoolConfig {
        allocate_timeout: allocate,
        ..pool(1)
    });
    let (_, effects) = m.arrive();
    assert_eq!(handed(&effects).len(), 1);
    // Stuck: no answer, ever.
    m.wait(10 * MS);
    let queued = m.now;
    let (job, effects) = m.arrive();
    assert!(handed(&effects).is_empty());
    assert_eq!(m.machine.deadline(), Some(queued + allocate));
    m.wait(allocate - MS);
    assert!(refused(&m.on(Input::Tick)).is_empty());
    m.wait(MS);
    let effects = m.on(Input::Deadline);
    assert_eq!(refused(&effects), [(job, Refusal::NoWorker)]);
    assert_eq!(m.machine.deadline(), None);
}

#[test]
fn a_crashed_worker_costs_only_its_requests_and_is_replaced() {
    let mut m = Master::booted(pool(2));
    m.arrive();
    m.arrive();
    m.answer(2);
    m.wait(MS);
    m.answer(1);
    // Worker 1 (the warmest) runs a request and holds one sent ahead; worker 2 runs one.
    let (crashing, other) = (1, 2);
    let (_, effects) = m.arrive();
    assert_eq!(handed(&effects), [(crashing, 3, false)]);
    let (_, effects) = m.arrive();
    assert_eq!(handed(&effects)[0].0, other);
    let (behind, effects) = m.arrive();
    assert_eq!(handed(&effects), [(crashing, behind, true)]);
    m.answer(other);
    // It dies mid-request: its task answers the running one 502 and gives back the others.
    let effects = m.on(Input::Returned {
        worker: crashing,
        jobs: vec![Waiting {
            job: behind,
            queued_at: m.now,
            line: Line::InPlace,
            small: true,
        }],
        why: Returned::Gone,
    });
    assert_eq!(handed(&effects), [(other, behind, false)]);
    let effects = m.exit(crashing, End::Crashed);
    assert!(notices(&effects).contains(&&Notice::Died {
        pid: 1000 + crashing as u32,
        reason: Reason::Crash,
        detail: "exit status: 255".into(),
    }));
    let replacement = spawned(&effects);
    assert_eq!(replacement.len(), 1, "replaced at once");
    assert!(refused(&effects).is_empty());
    // A request that could not reach a worker whose task ended goes to another.
    let (job, effects) = m.arrive();
    let [(to, _, ahead)] = handed(&effects)[..] else {
        panic!("{effects:?}");
    };
    assert!(ahead);
    let effects = m.on(Input::NotHanded {
        worker: to,
        job: Waiting {
            job,
            queued_at: m.now,
            line: Line::InPlace,
            small: true,
        },
        why: NotHanded::Closed,
    });
    assert_eq!(m.state(to), Some(State::Stopping));
    assert!(handed(&effects).is_empty(), "it waits: {effects:?}");
    let effects = m.on(Input::Booted {
        worker: replacement[0],
    });
    assert_eq!(handed(&effects), [(replacement[0], job, false)]);
    // A worker whose channel is full gets nothing more in that step; the next one hands the
    // request again.
    m.answer(replacement[0]);
    let (job, effects) = m.arrive();
    let [(to, _, false)] = handed(&effects)[..] else {
        panic!("{effects:?}");
    };
    let job = Waiting {
        job,
        queued_at: m.now,
        line: Line::InPlace,
        small: true,
    };
    let why = NotHanded::Full;
    let effects = m.on(Input::NotHanded {
        worker: to,
        job,
        why,
    });
    assert!(handed(&effects).is_empty());
    assert_eq!(handed(&m.on(Input::Tick)), [(to, job.job, false)]);
}

#[test]
fn debug_mode_boots_a_worker_per_request_and_a_boot_failure_costs_that_request_only() {
    let mut m = Master::new(PoolConfig {
        debug: true,
        ..pool(2)
    });
    assert!(
        spawned(&m.on(Input::Start)).is_empty(),
        "none ahead of a request"
    );
    let (job, effects) = m.request(Line::OneShot, true);
    let worker = spawned(&effects)[0];
    let effects = m.on(Input::Booted { worker });
    assert_eq!(handed(&effects), [(worker, job, false)]);
    let effects = m.answer(worker);
    assert_eq!(stopped(&effects), [worker]);
    assert!(
        !notices(&effects)
            .iter()
            .any(|n| matches!(n, Notice::Replacing { .. })),
        "not a restart"
    );
    m.exit(worker, End::Stopped);
    // A typo: the worker booted for the request fails; the request gets 502, nothing waits.
    for _ in 0..10 {
        let (job, effects) = m.request(Line::OneShot, true);
        let worker = spawned(&effects)[0];
        let effects = m.exit(worker, End::BootFailed);
        assert_eq!(refused(&effects), [(job, Refusal::BootFailed)]);
        assert!(exit(&effects).is_none());
    }
    // Fixed: the next request boots a worker at once.
    let (_, effects) = m.request(Line::OneShot, true);
    assert_eq!(spawned(&effects).len(), 1);
}

#[test]
fn an_isolated_request_gets_a_one_shot_worker_and_a_spare_is_kept() {
    let mut m = Master::new(PoolConfig {
        template: true,
        isolate: vec!["/admin".into()],
        isolate_workers: 2,
        ..pool(1)
    });
    let effects = m.on(Input::Start);
    let workers = spawned(&effects);
    assert_eq!(workers.len(), 2, "one in place, one spare one-shot");
    let slots = m.machine.workers();
    let spare = slots.iter().find(|s| s.oneshot).map(|s| s.id).unwrap();
    let in_place = slots.iter().find(|s| !s.oneshot).map(|s| s.id).unwrap();
    m.on(Input::TemplateBooted { generation: 0 });
    for worker in [in_place, spare] {
        m.on(Input::Forked {
            worker,
            pid: 2000 + worker as u32,
            generation: 0,
        });
        m.on(Input::Booted { worker });
    }
    // An in-place request never goes to the one-shot worker, nor an isolated one in place.
    let (job, effects) = m.request(Line::OneShot, true);
    assert_eq!(handed(&effects), [(spare, job, false)]);
    assert_eq!(spawned(&effects).len(), 1, "the next spare");
    let (job, effects) = m.arrive();
    assert_eq!(handed(&effects), [(in_place, job, false)]);
    // Busy in place: nothing goes ahead to a one-shot worker, nor to the busy one (no pace yet).
    let (_, effects) = m.arrive();
    assert!(handed(&effects).is_empty());
    let effects = m.answer(spare);
    assert_eq!(stopped(&effects), [spare], "one request, then it ends");
    assert!(notices(&effects)
        .iter()
        .all(|n| !matches!(n, Notice::Replacing { .. })));
}

#[test]
fn stopping_answers_what_waits_and_exits_once_every_worker_is_gone() {
    let mut m = Master::booted(pool(2));
    let (_, effects) = m.arrive();
    let busy = handed(&effects)[0].0;
    let idle = 3 - busy;
    // Waiting for a one-shot worker (there is none).
    let (waiting, _) = m.request(Line::OneShot, true);
    let effects = m.on(Input::Stop);
    assert!(effects.iter().any(|e| matches!(e, Effect::CloseQueue)));
    assert_eq!(refused(&effects), [(waiting, Refusal::Stopping)]);
    assert_eq!(stopped(&effects), [idle], "the busy one after its answer");
    assert!(exit(&effects).is_none());
    let (late, effects) = m.arrive();
    assert_eq!(refused(&effects), [(late, Refusal::Stopping)]);
    assert_eq!(stopped(&m.answer(busy)), [busy]);
    m.exit(idle, End::Stopped);
    let effects = m.exit(busy, End::Stopped);
    assert!(matches!(exit(&effects), Some(Ok(()))));
}

#[test]
fn limits_replace_a_worker_after_its_answer_or_while_idle() {
    let mut m = Master::booted(PoolConfig {
        max_jobs: 2,
        supervisor: SupervisorConfig {
            idle_ttl: Duration::from_secs(10),
            ..SupervisorConfig::default()
        },
        ..pool(1)
    });
    m.arrive();
    m.answer(1);
    m.arrive();
    let effects = m.answer(1);
    assert_eq!(stopped(&effects), [1]);
    assert!(notices(&effects).contains(&&Notice::Replacing {
        pid: 1001,
        jobs: 2,
        reason: Reason::MaxJobs
    }));
    assert_eq!(spawned(&effects), [2], "its replacement starts at once");
    m.on(Input::Booted { worker: 2 });
    m.wait(Duration::from_secs(10));
    let effects = m.on(Input::Tick);
    assert_eq!(stopped(&effects), [2]);
    assert!(notices(&effects).contains(&&Notice::Replacing {
        pid: 1002,
        jobs: 0,
        reason: Reason::IdleTtl
    }));
}

/// The generations of the reloads started.
fn reloads(effects: &[Effect]) -> Vec<u64> {
    notices(effects)
        .into_iter()
        .filter_map(|n| match n {
            Notice::Reloading { generation } => Some(*generation),
            _ => None,
        })
        .collect()
}

#[test]
fn workers_asking_for_a_reload_get_one_per_generation() {
    let mut m = Master::booted(pool(2));
    // Both workers see the same change and ask: the first ask reloads, the second finds its
    // generation already being replaced.
    assert_eq!(reloads(&m.on(Input::ReloadAsked { worker: 1 })), [1]);
    let effects = m.on(Input::ReloadAsked { worker: 2 });
    assert_eq!(reloads(&effects), Vec::<u64>::new());
    assert_eq!(published(&effects).generation, 1);
    // The reload runs to its end: every worker replaced by one of generation 1.
    let mut finished = false;
    for _ in 0..10 {
        let mut effects = m.on(Input::Tick);
        while let Some(&worker) = spawned(&effects).first() {
            effects = m.on(Input::Booted { worker });
            for old in stopped(&effects) {
                effects.extend(m.exit(old, End::Stopped));
            }
        }
        let slots = m.machine.workers();
        if slots.len() == 2 && slots.iter().all(|s| s.generation == 1 && s.id > 2) {
            finished = true;
            break;
        }
        m.wait(10 * MS);
    }
    let table: Vec<(u64, u64)> = m
        .machine
        .workers()
        .iter()
        .map(|s| (s.id, s.generation))
        .collect();
    assert!(
        finished,
        "the reload never finished: (id, generation) {table:?}"
    );
    // A late ask from a worker already replaced (or unknown) changes nothing.
    assert_eq!(
        reloads(&m.on(Input::ReloadAsked { worker: 1 })),
        Vec::<u64>::new()
    );
    assert_eq!(
        reloads(&m.on(Input::ReloadAsked { worker: 99 })),
        Vec::<u64>::new()
    );
    // A worker of the new generation asking starts the next reload.
    let current = m.machine.workers()[0].id;
    assert_eq!(reloads(&m.on(Input::ReloadAsked { worker: current })), [2]);
}

#[test]
fn a_reload_asked_while_stopping_is_ignored() {
    let mut m = Master::booted(pool(1));
    m.on(Input::Stop);
    assert_eq!(
        reloads(&m.on(Input::ReloadAsked { worker: 1 })),
        Vec::<u64>::new()
    );
}

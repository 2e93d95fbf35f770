//! Send-ahead (`http.pool.send_ahead`): small requests written to a busy worker whose answers
//! are quick. Each answer reaches its own client; what a worker never started (it retired, its
//! script ended, it was killed) runs on another worker; the worker's list call still works
//! with a request waiting behind it.
mod common;
use common::pool::*;
use common::{client, Php};
use serde_json::{json, Value};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One worker that has answered enough quick requests to be sent requests ahead.
fn one_quick_worker(extra_env: &[(&'static str, String)]) -> (Php, u64) {
    quick_worker_with(json!({}), extra_env)
}

/// Whether a request goes ahead must not depend on the machine's speed: these tests allow any
/// pace (`send_ahead_wait`), so send-ahead happens whenever the worker is busy, and requests
/// are never taken back (see `a_request_behind_a_slow_one_goes_back_to_the_line`).
fn quick_worker_with(options: Value, extra_env: &[(&'static str, String)]) -> (Php, u64) {
    let mut all = json!({
        "http.pool.num_workers": 1,
        "http.pool.send_ahead": 4,
        "http.pool.send_ahead_wait": "1h",
    });
    for (k, v) in options.as_object().unwrap() {
        all[k] = v.clone();
    }
    let mut opts = pool_options(all);
    opts.env.extend(extra_env.iter().cloned());
    let php = Php::start_with("pool.php", opts);
    let pid = idle_workers(&php, 1)[0];
    for _ in 0..20 {
        assert_eq!(client().get(php.url("/")).send().unwrap().status(), 200);
    }
    (php, pid)
}

fn get(php: &Php, path: &str) -> JoinHandle<(u16, String)> {
    let url = php.url(path);
    std::thread::spawn(move || {
        let resp = client().get(url).send().unwrap();
        (resp.status().as_u16(), resp.text().unwrap())
    })
}

/// `/id` requests 1..=n started while the worker is busy; their answers "<id> <pid>".
fn ids_behind(php: &Php, n: usize) -> Vec<JoinHandle<(u16, String)>> {
    let handles = (1..=n).map(|i| get(php, &format!("/id?id={i}"))).collect();
    // Handed over to the busy worker, not waiting in the master's queue.
    let ahead = "rr_pool_sent_ahead_total";
    wait_metric(php, ahead, Duration::from_secs(10), "not sent ahead", |m| {
        m >= n as u64
    });
    handles
}

/// Waits until a worker holds a request (the supervisor handed it over).
fn wait_busy(php: &Php) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !workers(php).iter().any(|w| w["state"] == "busy") {
        assert!(
            Instant::now() < deadline,
            "no worker busy\n{}",
            php.stderr()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Both workers of a pool of two answer quick requests (only a worker with a known pace is sent
/// requests ahead): the idle one most recently active gets each request, so the first serves
/// a batch, then the second while the first is busy.
fn warm_both(php: &Php) {
    idle_workers(php, 2);
    let c = client();
    for _ in 0..20 {
        assert_eq!(c.get(php.url("/")).send().unwrap().status(), 200);
    }
    let slow = get(php, "/slow?ms=1000");
    wait_busy(php);
    for _ in 0..20 {
        assert_eq!(c.get(php.url("/")).send().unwrap().status(), 200);
    }
    assert_eq!(slow.join().unwrap().0, 200);
    idle_workers(php, 2);
}

/// A request under way: its status and body once answered.
type Answered = JoinHandle<(u16, String)>;

/// Starts `path` on the (only) worker, then `n` `/id` requests behind it, sent ahead.
fn busy_with(php: &Php, path: &str, n: usize) -> (Answered, Vec<Answered>) {
    let running = get(php, path);
    // The worker has it before anything is sent behind it.
    wait_busy(php);
    (running, ids_behind(php, n))
}

/// Each request got its own answer, from a worker other than `not`.
fn answered_elsewhere(handles: Vec<JoinHandle<(u16, String)>>, not: u64) {
    for (i, h) in handles.into_iter().enumerate() {
        let (status, body) = h.join().unwrap();
        assert_eq!(status, 200, "{body}");
        let (id, pid) = body.split_once(' ').unwrap();
        assert_eq!(id, (i + 1).to_string());
        assert_ne!(
            pid.parse::<u64>().unwrap(),
            not,
            "ran on the worker that gave it back"
        );
    }
}

#[test]
fn requests_sent_ahead_to_a_worker_that_retires_run_on_its_replacement() {
    let (php, pid) = one_quick_worker(&[]);
    let (retiring, behind) = busy_with(&php, "/retire?ms=400", 3);
    assert_eq!(retiring.join().unwrap(), (200, pid.to_string()));
    answered_elsewhere(behind, pid);
    assert_eq!(
        metric(&php, "rr_pool_requests_returned_total{reason=\"declined\"}"),
        3
    );
    assert_eq!(
        metric_reaches(&php, "rr_pool_worker_restarts_total{reason=\"retired\"}", 1),
        1
    );
    assert_eq!(metric(&php, "rr_http_requests_total{status=\"200\"}"), 24);
}

#[test]
fn requests_sent_ahead_to_a_script_that_ends_its_loop_run_on_another_worker() {
    // The 21st request is the slow one; the script ends its loop after answering it.
    let (php, pid) = one_quick_worker(&[("RR_TEST_MAX_REQUESTS", "21".into())]);
    let (last, behind) = busy_with(&php, "/slow?ms=400", 3);
    assert_eq!(last.join().unwrap(), (200, pid.to_string()));
    answered_elsewhere(behind, pid);
    assert_eq!(
        metric(&php, "rr_pool_requests_returned_total{reason=\"declined\"}"),
        3
    );
}

#[test]
fn a_killed_worker_costs_only_the_request_it_was_running() {
    let (php, pid) = one_quick_worker(&[]);
    let (victim, behind) = busy_with(&php, "/slow?ms=5000", 3);
    // SAFETY: signalling the worker process of the master this test started.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let (status, body) = victim.join().unwrap();
    assert_eq!(status, 502);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["code"],
        "worker_crashed"
    );
    answered_elsewhere(behind, pid);
    assert_eq!(
        metric(&php, "rr_pool_requests_returned_total{reason=\"gone\"}"),
        3
    );
    assert_eq!(metric(&php, "rr_http_requests_total{status=\"502\"}"), 1);
}

#[test]
fn a_request_past_exec_ttl_costs_only_itself() {
    let (php, pid) = quick_worker_with(json!({"http.pool.supervisor.exec_ttl": "500ms"}), &[]);
    let (stuck, behind) = busy_with(&php, "/slow?ms=3000", 3);
    assert_eq!(stuck.join().unwrap().0, 504);
    answered_elsewhere(behind, pid);
    assert_eq!(
        metric(&php, "rr_pool_requests_returned_total{reason=\"gone\"}"),
        3
    );
}

#[test]
fn the_workers_list_works_with_a_request_waiting_behind() {
    let (php, pid) = one_quick_worker(&[]);
    let (listing, behind) = busy_with(&php, "/workers?ms=300", 1);
    let (status, body) = listing.join().unwrap();
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["me"], pid);
    assert_eq!(v["workers"].as_array().unwrap().len(), 1);
    // Not handed back: the same worker ran it after the list came.
    let (status, body) = behind.into_iter().next().unwrap().join().unwrap();
    assert_eq!((status, body), (200, format!("1 {pid}")));
    assert_eq!(
        metric(&php, "rr_pool_requests_returned_total{reason=\"declined\"}"),
        0
    );
}

#[test]
fn under_load_every_answer_reaches_its_own_client() {
    let php = start(json!({
        "http.pool.num_workers": 2,
        "http.pool.send_ahead": 7,
        "http.pool.send_ahead_wait": "1h",
    }));
    idle_workers(&php, 2);
    let url = php.url("/id");
    let clients: Vec<_> = (0..8)
        .map(|t| {
            let url = url.clone();
            std::thread::spawn(move || {
                let c = client();
                for i in 0..250 {
                    let id = format!("{t}-{i}");
                    let resp = c.get(format!("{url}?id={id}")).send().unwrap();
                    assert_eq!(resp.status(), 200);
                    let body = resp.text().unwrap();
                    assert_eq!(body.split_once(' ').unwrap().0, id, "someone else's answer");
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    assert!(metric(&php, "rr_pool_sent_ahead_total") > 0);
    assert_eq!(metric(&php, "rr_pool_jobs_total"), 2000);
}

#[test]
fn sigterm_drains_requests_sent_ahead_then_exits_0() {
    let (mut php, pid) = one_quick_worker(&[]);
    let (first, behind) = busy_with(&php, "/slow?ms=400", 3);
    php.signal(libc::SIGTERM);
    assert_eq!(first.join().unwrap(), (200, pid.to_string()));
    for (i, h) in behind.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), (200, format!("{} {pid}", i + 1)));
    }
    assert_eq!(
        php.wait_exit(Duration::from_secs(10)).code(),
        Some(0),
        "{}",
        php.stderr()
    );
    assert!(php.wait_for_log("worker loop ended"));
}

#[test]
fn a_worker_replaced_for_memory_answers_what_it_holds_then_stops() {
    let (php, pid) = quick_worker_with(json!({"http.pool.supervisor.max_worker_memory": 48}), &[]);
    // Memory is read at most every 250 ms: the reading after the next answer is due.
    std::thread::sleep(Duration::from_millis(300));
    let leaking = get(&php, "/leak?mb=64&ms=300");
    wait_busy(&php);
    // Slow enough that the stop order comes while they are still in flight.
    let behind: Vec<_> = (0..2).map(|_| get(&php, "/slow?ms=200")).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&php, "rr_pool_sent_ahead_total") < 2 {
        assert!(Instant::now() < deadline, "not sent ahead");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(leaking.join().unwrap(), (200, pid.to_string()));
    for h in behind {
        assert_eq!(h.join().unwrap(), (200, pid.to_string()));
    }
    assert_eq!(
        metric_reaches(
            &php,
            "rr_pool_worker_restarts_total{reason=\"max_worker_memory\"}",
            1
        ),
        1
    );
    // It stopped: one worker again, the replacement.
    let now = idle_workers(&php, 1);
    assert_ne!(now[0], pid);
}

/// The scheduling policy of a process (field 41 of /proc/<pid>/stat): 0 normal, 3 batch.
fn policy(pid: u64) -> u32 {
    policy_of(&format!("/proc/{pid}/stat"))
}

/// The policy of the master's runtime thread (`rr-io`).
fn io_thread_policy(master: u64) -> u32 {
    let tasks = std::fs::read_dir(format!("/proc/{master}/task")).unwrap();
    let io: Vec<String> = tasks
        .map(|t| t.unwrap().path())
        .filter(|t| std::fs::read_to_string(t.join("comm")).unwrap().trim() == "rr-io")
        .map(|t| t.join("stat").display().to_string())
        .collect();
    assert_eq!(io.len(), 1, "one rr-io thread in the master: {io:?}");
    policy_of(&io[0])
}

fn policy_of(stat_path: &str) -> u32 {
    let stat = std::fs::read_to_string(stat_path).unwrap();
    let after_comm = stat.rsplit_once(')').unwrap().1;
    // Fields after the command name start at field 3.
    after_comm
        .split_whitespace()
        .nth(41 - 3)
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn workers_and_the_master_runtime_run_with_the_batch_policy_unless_told_otherwise() {
    const BATCH: u32 = libc::SCHED_BATCH as u32;
    const NORMAL: u32 = libc::SCHED_OTHER as u32;
    let php = start(json!({"http.pool.num_workers": 2}));
    for pid in idle_workers(&php, 2) {
        assert_eq!(policy(pid), BATCH, "worker {pid}");
    }
    assert_eq!(
        policy(php.pid() as u64),
        NORMAL,
        "the master's PHP thread keeps the normal policy"
    );
    assert_eq!(
        io_thread_policy(php.pid() as u64),
        BATCH,
        "the master's runtime thread runs batch (http.pool.master_scheduling)"
    );

    // Started by the master's batch runtime thread, the worker still starts normal.
    let php = start(json!({"http.pool.num_workers": 1, "http.pool.worker_scheduling": "normal"}));
    let pid = idle_workers(&php, 1)[0];
    assert_eq!(policy(pid), NORMAL);
    assert_eq!(io_thread_policy(php.pid() as u64), BATCH);

    let php = start(json!({"http.pool.num_workers": 1, "http.pool.master_scheduling": "normal"}));
    assert_eq!(io_thread_policy(php.pid() as u64), NORMAL);
    assert_eq!(policy(idle_workers(&php, 1)[0]), BATCH);

    // Forked from the template: inherited.
    let dir = tempfile::tempdir().unwrap();
    let mut opts = pool_options(json!({"http.pool.num_workers": 2, "http.pool.template": true}));
    opts.env.push((
        "RR_TEST_BOOT_FILE",
        dir.path().join("boots").display().to_string(),
    ));
    let php = Php::start_with("template.php", opts);
    for pid in idle_workers(&php, 2) {
        assert_eq!(policy(pid), BATCH, "forked worker {pid}");
    }
}

#[test]
fn retire_after_the_answer_still_keeps_later_requests_off_the_worker() {
    let php = start(json!({"http.pool.num_workers": 1}));
    for _ in 0..5 {
        let first = idle_workers(&php, 1)[0];
        let c = client();
        // It answers, then goes on for 100 ms before it calls retire().
        let resp = c.get(php.url("/retire-after?ms=100")).send().unwrap();
        assert_eq!(resp.text().unwrap(), first.to_string());
        // Sent meanwhile: the master hands it to that worker (idle to its eyes), which declines
        // it once it retired, and the replacement runs it.
        let next = c.get(php.url("/")).send().unwrap();
        assert_eq!(next.status(), 200);
        assert_ne!(next.text().unwrap(), first.to_string());
    }
    assert_eq!(
        metric_reaches(&php, "rr_pool_worker_restarts_total{reason=\"retired\"}", 5),
        5
    );
}

#[test]
fn a_request_behind_a_stuck_worker_goes_back_to_the_line_and_gets_503_at_allocate_timeout() {
    // Taken back once the request ahead of it has run 10 x send_ahead_wait = 2 s.
    let php = start(json!({
        "http.pool.num_workers": 2,
        "http.pool.send_ahead": 4,
        "http.pool.send_ahead_wait": "200ms",
        "http.pool.allocate_timeout": "4s",
    }));
    warm_both(&php);
    // The first worker stuck past the threshold: nothing is sent ahead to it any more.
    let _first = get(&php, "/slow?ms=25000");
    wait_busy(&php);
    std::thread::sleep(Duration::from_millis(2300));
    // The second worker freshly busy: the request goes ahead to it...
    let _second = get(&php, "/slow?ms=25000");
    let deadline = Instant::now() + Duration::from_secs(20);
    while workers(&php)
        .iter()
        .filter(|w| w["state"] == "busy")
        .count()
        < 2
    {
        assert!(Instant::now() < deadline, "second worker not busy");
        std::thread::sleep(Duration::from_millis(10));
    }
    let behind = ids_behind(&php, 1).pop().unwrap();
    // ...comes back once that one has run 2 s, and with no worker free within
    // allocate_timeout it gets 503 (not a 504 after request_timeout).
    let (status, body) = behind.join().unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["code"],
        "no_worker"
    );
    assert_eq!(
        metric(&php, "rr_pool_requests_returned_total{reason=\"recalled\"}"),
        1
    );
}

#[test]
fn a_request_taken_back_runs_on_the_worker_that_frees_up_first() {
    // One worker stuck, one that frees up: whichever the request went ahead to, the free one
    // answers it, long before the stuck one would have.
    let php = start(json!({
        "http.pool.num_workers": 2,
        "http.pool.send_ahead": 4,
        "http.pool.send_ahead_wait": "200ms",
    }));
    warm_both(&php);
    let dir = tempfile::tempdir().unwrap();
    let stuck_pid = dir.path().join("stuck");
    let _stuck = get(
        &php,
        &format!("/slow?ms=25000&pidfile={}", stuck_pid.display()),
    );
    wait_busy(&php);
    let quick = get(&php, "/slow?ms=500");
    let deadline = Instant::now() + Duration::from_secs(20);
    while workers(&php)
        .iter()
        .filter(|w| w["state"] == "busy")
        .count()
        < 2
    {
        assert!(Instant::now() < deadline, "second worker not busy");
        std::thread::sleep(Duration::from_millis(10));
    }
    let behind = ids_behind(&php, 1).pop().unwrap();
    let (status, quick_pid) = quick.join().unwrap();
    assert_eq!(status, 200);
    let (status, body) = behind.join().unwrap();
    assert_eq!((status, body), (200, format!("1 {quick_pid}")));
    let stuck: String = std::fs::read_to_string(&stuck_pid).unwrap();
    assert_ne!(stuck, quick_pid);
}

//! systemd's service notifications (`sd_notify(3)`): `READY=1`, `RELOADING=1`, `STOPPING=1`,
//! `STATUS=` and the watchdog's `WATCHDOG=1`, each a datagram to the socket in
//! `$NOTIFY_SOCKET`. Only the process the user started notifies: the single process, or the
//! pool master (`crate::engine` decides); the processes it starts never see the variables
//! (taken out of this process's environment at start, and out of every worker's).
//!
//! Written here rather than taken from the `sd-notify` crate: its 0.5 connects to
//! `NOTIFY_SOCKET` as a file path, so an abstract socket (`@name`, which systemd and container
//! managers hand out too) cannot be reached; the protocol itself is one `sendto`.
//!
//! When each message is sent: docs/observability.md.
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// The variables systemd hands a service for notifications; a process rr starts gets none.
pub const ENV_VARS: [&str; 3] = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

/// The longest a notification may block on a full socket queue (systemd reads at once; a stuck
/// reader must not stall the server).
const SEND_TIMEOUT: Duration = Duration::from_millis(500);

/// The longest `STATUS=` line sent (systemd shows it in `systemctl status`).
const STATUS_MAX: usize = 240;

/// One notification; several go out in one datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Ready,
    /// `RELOADING=1` with `MONOTONIC_USEC=` (required by `Type=notify-reload`).
    Reloading,
    Stopping,
    Status(String),
    Watchdog,
}

/// The datagram for `messages`: one `KEY=value` line each.
pub fn encode(messages: &[Message]) -> String {
    let mut out = String::new();
    for message in messages {
        match message {
            Message::Ready => out.push_str("READY=1\n"),
            Message::Reloading => {
                out.push_str("RELOADING=1\n");
                out.push_str(&format!("MONOTONIC_USEC={}\n", monotonic_usec()));
            }
            Message::Stopping => out.push_str("STOPPING=1\n"),
            Message::Status(text) => {
                out.push_str("STATUS=");
                out.push_str(&one_line(text));
                out.push('\n');
            }
            Message::Watchdog => out.push_str("WATCHDOG=1\n"),
        }
    }
    out
}

/// A status on one line of at most `STATUS_MAX` bytes.
fn one_line(text: &str) -> String {
    let mut line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if line.len() > STATUS_MAX {
        let mut end = STATUS_MAX - 3;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
        line.push_str("...");
    }
    line
}

/// CLOCK_MONOTONIC in microseconds, the clock systemd compares `MONOTONIC_USEC` with.
fn monotonic_usec() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1_000
}

/// The service manager's socket (`$NOTIFY_SOCKET`): a path, or `@name` for an abstract socket.
pub fn parse_address(value: &str) -> io::Result<SocketAddr> {
    match value.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
        None if value.starts_with('/') => SocketAddr::from_pathname(value),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "neither an absolute path nor an abstract socket name (@...)",
        )),
    }
}

/// Sends notifications to the service manager. Cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

struct Inner {
    socket: UnixDatagram,
    addr: SocketAddr,
    /// `$NOTIFY_SOCKET` as given, for the log.
    target: String,
    /// `WATCHDOG_USEC`, when meant for this process.
    watchdog: Option<Duration>,
    stopping: AtomicBool,
    /// A failed send is logged once.
    warned: AtomicBool,
}

static FROM_ENV: OnceLock<Option<Notifier>> = OnceLock::new();

impl Notifier {
    /// The notifier systemd asked for, if any: reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and
    /// `WATCHDOG_PID` once per process and takes them out of the environment, so that nothing
    /// this process starts (pool workers, the script's own commands) notifies in its name. Call
    /// it before rr starts threads (`engine::Worker::start` does, before the runtime): changing
    /// the environment races with threads that read it.
    pub fn from_env() -> Option<Notifier> {
        FROM_ENV
            .get_or_init(|| {
                let socket = std::env::var("NOTIFY_SOCKET").ok();
                let watchdog = watchdog_from(
                    std::env::var("WATCHDOG_USEC").ok().as_deref(),
                    std::env::var("WATCHDOG_PID").ok().as_deref(),
                    std::process::id(),
                );
                for name in ENV_VARS {
                    std::env::remove_var(name);
                }
                let target = socket.filter(|s| !s.is_empty())?;
                match Notifier::new(&target, watchdog) {
                    Ok(notifier) => Some(notifier),
                    Err(e) => {
                        tracing::warn!("NOTIFY_SOCKET={target}: {e}; no systemd notifications");
                        None
                    }
                }
            })
            .clone()
    }

    /// A notifier for the socket at `target` (`/path` or `@abstract`).
    pub fn new(target: &str, watchdog: Option<Duration>) -> io::Result<Notifier> {
        let addr = parse_address(target)?;
        let socket = UnixDatagram::unbound()?;
        socket.set_write_timeout(Some(SEND_TIMEOUT))?;
        Ok(Notifier {
            inner: Arc::new(Inner {
                socket,
                addr,
                target: target.to_owned(),
                watchdog,
                stopping: AtomicBool::new(false),
                warned: AtomicBool::new(false),
            }),
        })
    }

    /// `WATCHDOG_USEC`: the service manager expects `WATCHDOG=1` at least this often.
    pub fn watchdog(&self) -> Option<Duration> {
        self.inner.watchdog
    }

    /// Sends `messages` in one datagram. A failure is logged (once) and otherwise ignored:
    /// serving goes on whatever the service manager does.
    pub fn send(&self, messages: &[Message]) {
        let datagram = encode(messages);
        tracing::debug!(socket = %self.inner.target, "sd_notify: {}", datagram.trim_end().replace('\n', " "));
        // A new address each time, not a connected socket: systemd re-creates its socket when
        // it re-executes itself.
        if let Err(e) = self
            .inner
            .socket
            .send_to_addr(datagram.as_bytes(), &self.inner.addr)
        {
            if !self.inner.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "cannot notify the service manager at NOTIFY_SOCKET={}: {e}",
                    self.inner.target
                );
            }
        }
    }

    pub fn ready(&self, status: String) {
        self.send(&[Message::Ready, Message::Status(status)]);
    }

    pub fn reloading(&self, status: String) {
        self.send(&[Message::Reloading, Message::Status(status)]);
    }

    pub fn status(&self, status: String) {
        self.send(&[Message::Status(status)]);
    }

    /// `STOPPING=1`, once per process whoever asks again.
    pub fn stopping(&self, status: String) {
        if !self.inner.stopping.swap(true, Ordering::Relaxed) {
            self.send(&[Message::Stopping, Message::Status(status)]);
        }
    }
}

/// `WATCHDOG_USEC` when it is for process `pid` (`WATCHDOG_PID` unset or equal), as
/// `sd_watchdog_enabled(3)` decides; 0 or garbage is off.
fn watchdog_from(usec: Option<&str>, for_pid: Option<&str>, pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    match for_pid.map(|p| p.trim().parse::<u32>()) {
        None => Some(Duration::from_micros(usec)),
        Some(Ok(p)) if p == pid => Some(Duration::from_micros(usec)),
        Some(_) => None,
    }
}

/// When the watchdog pings: every half of `WATCHDOG_USEC`, if the server was healthy at one of
/// the samples taken since the last ping (a short dip, a worker being replaced, does not stop
/// the pings; being unhealthy for a whole period does).
#[derive(Debug)]
pub struct Beat {
    period: Duration,
    next: Instant,
    healthy_seen: bool,
}

impl Beat {
    pub fn new(watchdog: Duration, now: Instant) -> Beat {
        let period = (watchdog / 2).max(Duration::from_millis(1));
        Beat {
            period,
            next: now + period,
            healthy_seen: false,
        }
    }

    /// How often health is sampled.
    pub fn sample_every(&self) -> Duration {
        (self.period / 4).clamp(Duration::from_millis(1), Duration::from_secs(1))
    }

    /// One sample; true when `WATCHDOG=1` is due now.
    pub fn sample(&mut self, healthy: bool, now: Instant) -> bool {
        self.healthy_seen |= healthy;
        if now < self.next {
            return false;
        }
        while self.next <= now {
            self.next += self.period;
        }
        std::mem::replace(&mut self.healthy_seen, false)
    }
}

/// The watchdog task: pings as [`Beat`] says, for as long as the runtime runs it (a stuck
/// runtime stops the pings too). Returns at once when systemd set no watchdog.
pub async fn watchdog(notifier: Notifier, healthy: impl Fn() -> bool) {
    let Some(usec) = notifier.watchdog() else {
        return;
    };
    let mut beat = Beat::new(usec, Instant::now());
    let mut tick = tokio::time::interval(beat.sample_every());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if beat.sample(healthy(), Instant::now()) {
            notifier.send(&[Message::Watchdog]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_key_value_lines() {
        let text = encode(&[Message::Ready, Message::Status("a\nb".into())]);
        assert_eq!(text, "READY=1\nSTATUS=a b\n");
        let reloading = encode(&[Message::Reloading]);
        let mut lines = reloading.lines();
        assert_eq!(lines.next(), Some("RELOADING=1"));
        let usec: u64 = lines
            .next()
            .unwrap()
            .strip_prefix("MONOTONIC_USEC=")
            .unwrap()
            .parse()
            .unwrap();
        assert!(usec > 0);
        assert_eq!(
            encode(&[Message::Stopping, Message::Watchdog]),
            "STOPPING=1\nWATCHDOG=1\n"
        );
    }

    #[test]
    fn a_long_status_is_cut_on_a_character() {
        let long = "é".repeat(400);
        let line = one_line(&long);
        assert!(line.len() <= STATUS_MAX && line.ends_with("..."), "{line}");
    }

    #[test]
    fn addresses_are_paths_or_abstract_names() {
        let path = parse_address("/run/systemd/notify").unwrap();
        assert_eq!(
            path.as_pathname(),
            Some(std::path::Path::new("/run/systemd/notify"))
        );
        let abstract_ = parse_address("@rr/notify").unwrap();
        assert_eq!(abstract_.as_abstract_name(), Some(&b"rr/notify"[..]));
        assert!(parse_address("relative/path").is_err());
        assert!(parse_address("vsock:2:1234").is_err());
    }

    #[test]
    fn the_watchdog_is_ours_only_when_its_pid_is_ours_or_unset() {
        let d = Some(Duration::from_secs(10));
        assert_eq!(watchdog_from(Some("10000000"), None, 7), d);
        assert_eq!(watchdog_from(Some("10000000"), Some("7"), 7), d);
        assert_eq!(watchdog_from(Some("10000000"), Some("8"), 7), None);
        assert_eq!(watchdog_from(Some("0"), None, 7), None);
        assert_eq!(watchdog_from(Some("soon"), None, 7), None);
        assert_eq!(watchdog_from(None, Some("7"), 7), None);
    }

    #[test]
    fn pings_every_half_period_while_healthy_at_some_sample() {
        let start = Instant::now();
        let mut beat = Beat::new(Duration::from_secs(10), start);
        assert_eq!(beat.sample_every(), Duration::from_secs(1));
        let at = |s: u64| start + Duration::from_secs(s);
        // Healthy throughout: a ping at 5 s and at 10 s, none between.
        assert!(!beat.sample(true, at(1)));
        assert!(!beat.sample(true, at(4)));
        assert!(beat.sample(true, at(5)));
        assert!(!beat.sample(true, at(6)));
        assert!(beat.sample(true, at(10)));
        // A dip at the due sample: healthy earlier in the period is enough.
        assert!(!beat.sample(true, at(12)));
        assert!(beat.sample(false, at(15)));
        // Unhealthy for a whole period: no ping.
        for s in 16..20 {
            assert!(!beat.sample(false, at(s)));
        }
        assert!(!beat.sample(false, at(20)));
        // Healthy again: the next due sample pings.
        assert!(!beat.sample(true, at(21)));
        assert!(beat.sample(true, at(25)));
    }

    #[test]
    fn a_notifier_reaches_a_path_and_an_abstract_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        let notifier = Notifier::new(path.to_str().unwrap(), None).unwrap();
        notifier.ready("serving".into());
        notifier.stopping("one".into());
        notifier.stopping("two".into());
        listener.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 512];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=serving\n");
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1\nSTATUS=one\n");
        assert!(listener.recv(&mut buf).is_err(), "STOPPING=1 is sent once");

        let name = format!("rr-test-notify-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        let notifier = Notifier::new(&format!("@{name}"), None).unwrap();
        notifier.status("abstract".into());
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STATUS=abstract\n");
    }
}

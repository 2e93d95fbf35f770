//! Requests taken off the queue and waiting for a worker, as the supervisor's machine knows
//! them: one line for in-place workers and one for one-shot workers (`http.pool.isolate` paths),
//! each oldest first. The jobs themselves (with their reply channels, and the queue slot each
//! keeps taken so the queue still holds `max_queue_size` requests in all) stay with the
//! supervisor, filed by number.
use crate::config::PoolConfig;
use crate::request::target::Target;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    InPlace = 0,
    OneShot = 1,
}

/// A request waiting for a worker: the number its job is filed under, and what the decisions
/// need of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiting {
    pub job: u64,
    /// When it entered the queue (`allocate_timeout` counts from here).
    pub queued_at: Instant,
    pub line: Line,
    /// It may be sent to a busy worker ([`super::ahead::small`]).
    pub small: bool,
}

pub struct Lines {
    lines: [VecDeque<Waiting>; 2],
    allocate: Duration,
}

impl Lines {
    pub fn new(allocate: Duration) -> Lines {
        Lines {
            lines: [VecDeque::new(), VecDeque::new()],
            allocate,
        }
    }

    pub fn push(&mut self, waiting: Waiting) {
        self.lines[waiting.line as usize].push_back(waiting);
    }

    /// Back at the head of its line (the worker it was meant for is going away).
    pub fn put_back(&mut self, waiting: Waiting) {
        self.lines[waiting.line as usize].push_front(waiting);
    }

    pub fn len(&self, line: Line) -> usize {
        self.lines[line as usize].len()
    }

    /// The next request of `line` still worth running; those that waited longer than
    /// `allocate_timeout` go to `expired` (they get 503).
    pub fn next(
        &mut self,
        line: Line,
        now: Instant,
        mut expired: impl FnMut(u64),
    ) -> Option<Waiting> {
        while let Some(waiting) = self.lines[line as usize].pop_front() {
            if now.saturating_duration_since(waiting.queued_at) > self.allocate {
                expired(waiting.job);
                continue;
            }
            return Some(waiting);
        }
        None
    }

    /// When the oldest request runs out of `allocate_timeout`.
    pub fn deadline(&self) -> Option<Instant> {
        self.lines
            .iter()
            .filter_map(|l| l.front().map(|w| w.queued_at + self.allocate))
            .min()
    }

    /// Requests that waited `allocate_timeout` for a worker go to `expired` (they get 503).
    pub fn expire(&mut self, now: Instant, mut expired: impl FnMut(u64)) {
        for line in &mut self.lines {
            while let Some(w) = line
                .front()
                .filter(|w| now.saturating_duration_since(w.queued_at) >= self.allocate)
            {
                expired(w.job);
                line.pop_front();
            }
        }
    }

    /// Everything waiting, for the 503s of a stopping pool.
    pub fn drain(&mut self) -> impl Iterator<Item = Waiting> + '_ {
        let [a, b] = &mut self.lines;
        a.drain(..).chain(b.drain(..))
    }
}

/// Which line a request joins: in debug mode the one-shot line; otherwise by its path as nginx
/// would match a `location` (decoded, `//` merged, dot segments resolved), so `/%61dmin` or
/// `/x/../admin` cannot dodge an isolated `/admin`.
pub fn line_of(pool: &PoolConfig, target: &Target) -> Line {
    if pool.debug {
        // Debug mode: every request gets a worker of its own.
        return Line::OneShot;
    }
    if pool.isolate.is_empty() {
        return Line::InPlace;
    }
    match pool.is_isolated(&String::from_utf8_lossy(target.document_uri())) {
        true => Line::OneShot,
        false => Line::InPlace,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::RequestData;

    fn request(target: &str) -> RequestData {
        RequestData::for_test(http::Method::GET, target)
    }

    #[test]
    fn the_normalized_path_picks_the_line() {
        let pool = PoolConfig {
            template: true,
            isolate: vec!["/iso".into()],
            ..PoolConfig::default()
        };
        for (target, line) in [
            ("/iso", Line::OneShot),
            ("/iso/x?y=/z", Line::OneShot),
            ("/%69so", Line::OneShot),
            ("//iso/a", Line::OneShot),
            ("/x/../iso", Line::OneShot),
            ("/./iso/", Line::OneShot),
            ("/isotope", Line::InPlace),
            ("/?p=/iso", Line::InPlace),
            ("/", Line::InPlace),
        ] {
            assert_eq!(line_of(&pool, &request(target).target), line, "{target}");
        }
        assert_eq!(
            line_of(&PoolConfig::default(), &request("/iso").target),
            Line::InPlace
        );
    }

    #[test]
    fn lines_are_independent_and_expired_requests_get_503() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let waiting = |job, ms, line| Waiting {
            job,
            queued_at: at(ms),
            line,
            small: true,
        };
        let mut lines = Lines::new(Duration::from_millis(50));
        lines.push(waiting(1, 0, Line::InPlace));
        lines.push(waiting(2, 60, Line::OneShot));
        assert_eq!(lines.deadline(), Some(at(50)));
        let mut expired = Vec::new();
        assert!(lines
            .next(Line::InPlace, at(61), |j| expired.push(j))
            .is_none());
        assert_eq!(expired, [1], "past allocate_timeout");
        assert_eq!(lines.len(Line::OneShot), 1);
        let w = lines
            .next(Line::OneShot, at(61), |j| expired.push(j))
            .unwrap();
        assert_eq!(w.job, 2);
        lines.put_back(w);
        lines.expire(at(109), |j| expired.push(j));
        assert_eq!(expired, [1], "not yet");
        lines.expire(at(110), |j| expired.push(j));
        assert_eq!(expired, [1, 2]);
        lines.push(waiting(3, 100, Line::InPlace));
        assert_eq!(lines.drain().map(|w| w.job).collect::<Vec<_>>(), [3]);
        assert_eq!(lines.len(Line::InPlace), 0);
    }
}

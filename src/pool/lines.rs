//! Requests taken off the queue and waiting for a worker: one line for in-place workers and one
//! for one-shot workers (`http.pool.isolate` paths), each oldest first. Every request keeps its
//! queue slot taken, so the queue still holds `max_queue_size` requests in all.
use crate::config::PoolConfig;
use crate::dispatch::{HeldSlot, Job, Reply};
use crate::request::target::Target;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    InPlace = 0,
    OneShot = 1,
}

/// A request waiting for a worker, with the queue slot it keeps taken.
pub struct Waiting {
    pub job: Job,
    pub held: Option<HeldSlot>,
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

    pub fn push(&mut self, line: Line, job: Job, held: Option<HeldSlot>) {
        self.lines[line as usize].push_back(Waiting { job, held });
    }

    /// Back at the head of its line (the worker it was meant for is going away).
    pub fn put_back(&mut self, line: Line, waiting: Waiting) {
        self.lines[line as usize].push_front(waiting);
    }

    pub fn len(&self, line: Line) -> usize {
        self.lines[line as usize].len()
    }

    /// The next request of `line` still worth running: abandoned ones are dropped, those that
    /// waited longer than `allocate_timeout` get 503.
    pub fn next(&mut self, line: Line) -> Option<Waiting> {
        while let Some(waiting) = self.lines[line as usize].pop_front() {
            if waiting.job.is_abandoned() {
                continue;
            }
            if waiting.job.queued_at.elapsed() > self.allocate {
                let _ = waiting.job.reply.send(Reply::NoWorker);
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
            .filter_map(|l| l.front().map(|w| w.job.queued_at + self.allocate))
            .min()
    }

    /// Requests that waited `allocate_timeout` for a worker get 503.
    pub fn expire(&mut self) {
        for line in &mut self.lines {
            while line
                .front()
                .is_some_and(|w| w.job.queued_at.elapsed() >= self.allocate)
            {
                if let Some(w) = line.pop_front() {
                    let _ = w.job.reply.send(Reply::NoWorker);
                }
            }
        }
    }

    /// Everything waiting, for the 503s of a stopping pool.
    pub fn drain(&mut self) -> Vec<Job> {
        let mut jobs: Vec<Job> = Vec::new();
        for line in &mut self.lines {
            jobs.extend(line.drain(..).map(|w| w.job));
        }
        jobs
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
    use crate::dispatch;
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

    #[tokio::test]
    async fn lines_are_independent_and_expired_requests_get_503() {
        let (tx, mut inbox) = dispatch::queue(8);
        let mut lines = Lines::new(Duration::from_millis(50));
        let old = tx.submit(request("/old")).unwrap();
        lines.push(Line::InPlace, inbox.recv().await.unwrap(), None);
        tokio::time::sleep(Duration::from_millis(60)).await;
        let _fresh = tx.submit(request("/iso")).unwrap();
        lines.push(Line::OneShot, inbox.recv().await.unwrap(), None);
        assert!(lines.deadline().unwrap() <= Instant::now());
        assert!(lines.next(Line::InPlace).is_none(), "expired");
        assert!(matches!(old.await, Ok(Reply::NoWorker)));
        assert_eq!(lines.len(Line::OneShot), 1);
        let w = lines.next(Line::OneShot).unwrap();
        assert_eq!(w.job.request.target.path(), "/iso");
        lines.put_back(Line::OneShot, w);
        assert_eq!(lines.drain().len(), 1);
        assert_eq!(lines.len(Line::OneShot), 0);
    }
}

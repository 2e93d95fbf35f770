//! How a request reaches the PHP thread and its answer comes back.
//!
//! Connection tasks `submit` a [`RequestData`] into one bounded queue and await a [`Reply`] on a
//! oneshot; the PHP thread takes [`Job`]s from the [`Inbox`]. Dropping a job's responder without
//! replying (the script ended, threw, exited) is seen by the connection as "worker gone".
//! An HTTP/2 connection's requests enter the queue through its [`share::Share`].
pub mod answer;
pub mod share;

use crate::request::RequestData;
use crate::stream::FileReply;
use crate::velox::BuildOrder;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use tokio::sync::{mpsc, oneshot};

/// What PHP answered for one request.
pub enum Reply {
    /// The whole body at once.
    Full {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    },
    /// Head now, body chunks later (see [`answer`]: memory, then a temp file).
    Stream {
        status: StatusCode,
        headers: HeaderMap,
        chunks: answer::AnswerReceiver,
    },
    /// Rust streams a file from disk.
    File(FileReply),
    /// Rust asks the Velox build server for a binary and streams it (`RR\velox_build()`).
    Velox(BuildOrder),
    /// The worker reported an error (`RR\Worker::error()`): the client gets a 500, the log the message.
    WorkerError(String),
    /// The worker is going away before it could take this request: 503.
    Unavailable,
    /// Pool: the worker process died while running this request: 502.
    Crashed,
    /// Pool: the request ran longer than `exec_ttl`; its worker was killed: 504.
    ExecTimeout,
    /// Pool: no worker became free within `allocate_timeout`: 503.
    NoWorker,
}

/// One request waiting for PHP, with the way back to its connection.
pub struct Job {
    pub request: RequestData,
    pub reply: oneshot::Sender<Reply>,
    /// When it entered the queue (the pool's `allocate_timeout` counts from here).
    pub queued_at: std::time::Instant,
    /// Its HTTP/2 connection's place, held while the job is queued (see [`share::Turn`]).
    pub turn: Option<share::Turn>,
}

impl Job {
    /// The connection gave up (client gone, request timed out): PHP need not run it.
    pub fn is_abandoned(&self) -> bool {
        self.reply.is_closed()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitError {
    /// The queue holds `queue_size` requests already.
    Full,
    /// The worker stopped taking requests (shutdown, script ended).
    Closed,
}

/// The connection side of the queue.
#[derive(Clone)]
pub struct Submitter {
    tx: mpsc::Sender<Job>,
}

impl Submitter {
    pub fn submit(
        &self,
        request: RequestData,
        turn: Option<share::Turn>,
    ) -> Result<oneshot::Receiver<Reply>, SubmitError> {
        let (reply, answer) = oneshot::channel();
        let queued_at = std::time::Instant::now();
        match self.tx.try_send(Job {
            request,
            reply,
            queued_at,
            turn,
        }) {
            Ok(()) => Ok(answer),
            Err(mpsc::error::TrySendError::Full(_)) => Err(SubmitError::Full),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(SubmitError::Closed),
        }
    }

    /// Requests waiting for PHP right now.
    pub fn depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    pub fn capacity(&self) -> usize {
        self.tx.max_capacity()
    }

    /// Keeps one slot of the queue taken, for a job the pool holds at the head of the line,
    /// so that the queue still holds `capacity` requests in all. None when the queue is full.
    pub fn hold_slot(&self) -> Option<HeldSlot> {
        self.tx.clone().try_reserve_owned().ok().map(HeldSlot)
    }
}

/// A queue slot kept taken until dropped.
pub struct HeldSlot(#[allow(dead_code)] mpsc::OwnedPermit<Job>);

/// The PHP side of the queue.
pub struct Inbox {
    rx: mpsc::Receiver<Job>,
}

impl Inbox {
    /// The next job whose client is still waiting; `None` once closed and drained.
    pub async fn recv(&mut self) -> Option<Job> {
        loop {
            let job = self.rx.recv().await?;
            if !job.is_abandoned() {
                return Some(job);
            }
        }
    }

    /// A job that is already queued, without waiting.
    pub fn try_recv(&mut self) -> Option<Job> {
        while let Ok(job) = self.rx.try_recv() {
            if !job.is_abandoned() {
                return Some(job);
            }
        }
        None
    }

    /// Refuse new submissions; jobs already queued can still be received.
    pub fn close(&mut self) {
        self.rx.close();
    }
}

/// A queue holding at most `capacity` requests.
pub fn queue(capacity: usize) -> (Submitter, Inbox) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (Submitter { tx }, Inbox { rx })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(target: &str) -> RequestData {
        RequestData::for_test(http::Method::GET, target)
    }

    #[tokio::test]
    async fn full_queue_refuses_and_abandoned_jobs_are_skipped() {
        let (tx, mut inbox) = queue(2);
        let first = tx.submit(request("/a"), None).unwrap();
        let _second = tx.submit(request("/b"), None).unwrap();
        assert_eq!(tx.depth(), 2);
        assert!(matches!(
            tx.submit(request("/c"), None),
            Err(SubmitError::Full)
        ));
        assert!(tx.hold_slot().is_none());
        drop(first); // client of /a went away
        let job = inbox.recv().await.unwrap();
        assert_eq!(job.request.target.path(), "/b");
        assert!(inbox.try_recv().is_none());
        let held = tx.hold_slot().unwrap();
        let _c = tx.submit(request("/c"), None).unwrap();
        assert!(matches!(
            tx.submit(request("/d"), None),
            Err(SubmitError::Full)
        ));
        drop(held);
        assert!(tx.submit(request("/d"), None).is_ok());
    }

    #[tokio::test]
    async fn dropped_responder_reaches_the_connection() {
        let (tx, mut inbox) = queue(1);
        let answer = tx.submit(request("/"), None).unwrap();
        drop(inbox.recv().await.unwrap());
        assert!(answer.await.is_err());
        inbox.close();
        assert!(matches!(
            tx.submit(request("/"), None),
            Err(SubmitError::Closed)
        ));
    }
}

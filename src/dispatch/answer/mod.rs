//! A streamed answer's body on its way from PHP (or a pool worker's frames) to the connection,
//! as nginx buffers an upstream: up to `http.response_buffer_size` in memory, then a temp file
//! (at most `http.max_response_spool_size` unread bytes), so PHP hands over its chunks and goes on
//! while a slow client reads at its own pace. Only a spool that is full makes the sender wait
//! (for at most `http.send_timeout`).
//!
//! The order is kept: chunks go to memory only while the file holds nothing unread, and the
//! reader takes memory before the file. A sender dropped before [`AnswerSender::end`] cuts the
//! answer off: the client sees an incomplete body, never a short one that looks whole. A temp
//! file that cannot be created or written (a full disk, the directory gone) is a full spool:
//! the sender waits for the client as with `max_response_spool_size: 0`, and nothing is lost.
use bytes::Bytes;
use std::collections::VecDeque;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use tokio::sync::Notify;

use super::share::Turn;

/// Where a streamed answer may wait for its client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerLimits {
    /// Bytes held in memory before the temp file is used (`http.response_buffer_size`).
    pub memory: usize,
    /// Unread bytes the temp file may hold (`http.max_response_spool_size`); 0: no file, the sender
    /// waits for the client instead.
    pub file: u64,
    /// Where the temp file goes (`http.uploads.dir`).
    pub dir: PathBuf,
}

/// What became of a chunk handed to [`AnswerSender::push`].
#[derive(Debug, PartialEq, Eq)]
pub enum Push {
    /// Queued for the client.
    Queued,
    /// The spool is full (or its file cannot take more): wait for [`AnswerSender::room`], then
    /// push it again.
    Full(Bytes),
    /// The client is gone (or the spool file could not be read back): nothing more will be read.
    Gone,
}

/// The largest piece read back from the temp file at once.
const READ_PIECE: usize = 256 * 1024;

enum Ending {
    Open,
    Ended,
    Cut,
}

struct Spool {
    file: std::fs::File,
    written: u64,
    read: u64,
}

struct State {
    memory: VecDeque<Bytes>,
    in_memory: usize,
    spool: Option<Spool>,
    /// The temp file could not be read back: the answer is cut off.
    failed: bool,
    /// A write to the temp file failed and was logged (once per answer).
    write_failure_reported: bool,
    ending: Ending,
    receiver_gone: bool,
    /// The reader took every byte of the `Content-Length` the answer declared (see
    /// [`AnswerReceiver::complete`]); anything pushed after is dropped.
    complete: Option<u64>,
    /// The bytes dropped past that length were reported (once per answer).
    overrun_reported: bool,
    waker: Option<Waker>,
    /// The request's place in its connection's share, given back when the producer is done.
    turn: Option<Turn>,
}

impl State {
    /// Drops what waits for the reader, memory and temp file (the file goes now, not when the
    /// sender is done).
    fn discard_unread(&mut self) {
        self.memory.clear();
        self.in_memory = 0;
        self.spool = None;
    }

    /// Logs, once, that the application went on past the length it declared.
    fn report_overrun(&mut self) {
        if let (Some(declared), false) = (self.complete, self.overrun_reported) {
            self.overrun_reported = true;
            tracing::warn!(
                "the application wrote past the Content-Length: {declared} it declared: the \
                 {declared} bytes went out, the rest was dropped"
            );
        }
    }
}

struct Shared {
    limits: AnswerLimits,
    state: Mutex<State>,
    /// Signalled when the reader made room or left.
    room: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind: go on with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The producing end: PHP's engine, or the pool master's worker task.
pub struct AnswerSender {
    shared: Arc<Shared>,
    ended: bool,
}

/// The consuming end, read by the connection.
pub struct AnswerReceiver {
    shared: Arc<Shared>,
}

pub fn channel(limits: AnswerLimits) -> (AnswerSender, AnswerReceiver) {
    let shared = Arc::new(Shared {
        limits,
        state: Mutex::new(State {
            memory: VecDeque::new(),
            in_memory: 0,
            spool: None,
            failed: false,
            write_failure_reported: false,
            ending: Ending::Open,
            receiver_gone: false,
            complete: None,
            overrun_reported: false,
            waker: None,
            turn: None,
        }),
        room: Notify::new(),
    });
    (
        AnswerSender {
            shared: shared.clone(),
            ended: false,
        },
        AnswerReceiver { shared },
    )
}

impl AnswerSender {
    /// Queues a chunk without waiting: in memory while there is room and the file holds
    /// nothing unread, the rest appended to the temp file. A chunk larger than the room left in
    /// memory is split, so at most `http.response_buffer_size` waits in memory whatever the
    /// size of the chunks PHP or a worker sends (a 1 MB `flush()` kept whole cost a stalled
    /// answer ~2 MB in the pool master).
    pub fn push(&self, chunk: Bytes) -> Push {
        if chunk.is_empty() {
            return Push::Queued;
        }
        let limits = &self.shared.limits;
        let mut state = self.shared.lock();
        if state.complete.is_some() {
            state.report_overrun();
            return Push::Gone;
        }
        if state.receiver_gone || state.failed {
            return Push::Gone;
        }
        let unread_file = state.spool.as_ref().map_or(0, |s| s.written - s.read);
        let mut rest = chunk;
        if unread_file == 0 {
            let room = limits.memory.saturating_sub(state.in_memory);
            if rest.len() <= room {
                state.in_memory += rest.len();
                state.memory.push_back(rest);
                wake(&mut state);
                return Push::Queued;
            }
            if room > 0 {
                // A copy of the part that fits: a slice would keep the whole chunk's memory
                // alive for as long as the client takes to read it.
                let head = Bytes::copy_from_slice(&rest[..room]);
                state.in_memory += room;
                state.memory.push_back(head);
                rest = rest.slice(room..);
                wake(&mut state);
            } else if state.in_memory == 0 && rest.len() as u64 > limits.file {
                // No memory buffer, and nothing waits at all: any chunk the file cannot take is
                // taken whole, so an answer always makes progress.
                state.in_memory += rest.len();
                state.memory.push_back(rest);
                wake(&mut state);
                return Push::Queued;
            }
        }
        if unread_file + rest.len() as u64 > limits.file {
            return Push::Full(rest);
        }
        if let Err(e) = append(&mut state, &limits.dir, &rest) {
            if !state.write_failure_reported {
                state.write_failure_reported = true;
                tracing::warn!(
                    "a streamed answer could not be spooled to {}: it waits for its client \
                     instead (http.send_timeout): {e}",
                    limits.dir.display()
                );
            }
            let unread_file = state.spool.as_ref().map_or(0, |s| s.written - s.read);
            if state.in_memory == 0 && unread_file == 0 {
                // Nothing waits for the reader, so no room would ever be made: the chunk is
                // taken whole, as without a file.
                state.in_memory += rest.len();
                state.memory.push_back(rest);
                wake(&mut state);
                return Push::Queued;
            }
            return Push::Full(rest);
        }
        wake(&mut state);
        Push::Queued
    }

    /// Queues a chunk, waiting for room while the spool is full, for at most `limit` each
    /// time (`http.send_timeout`). False when the client left or read nothing in that time:
    /// the caller then drops the sender, which cuts the answer off.
    pub async fn deliver(&self, chunk: Bytes, limit: std::time::Duration) -> bool {
        let mut chunk = chunk;
        loop {
            match self.push(chunk) {
                Push::Queued => return true,
                Push::Gone => return false,
                Push::Full(back) => chunk = back,
            }
            if tokio::time::timeout(limit, self.room()).await.is_err() {
                tracing::warn!(
                    "a client read nothing of a streamed answer for http.send_timeout \
                     ({limit:?}): the answer is cut off and its sender goes on"
                );
                return false;
            }
        }
    }

    /// Completes once the reader made room or left.
    pub async fn room(&self) {
        self.shared.room.notified().await;
    }

    /// Whether the client is gone.
    pub fn is_gone(&self) -> bool {
        let state = self.shared.lock();
        state.receiver_gone || state.failed
    }

    /// The answer is complete.
    pub fn end(mut self) {
        self.ended = true;
        self.finish(Ending::Ended);
    }

    fn finish(&self, ending: Ending) {
        let mut state = self.shared.lock();
        state.ending = ending;
        wake(&mut state);
        let turn = state.turn.take();
        drop(state);
        drop(turn);
    }
}

impl Drop for AnswerSender {
    fn drop(&mut self) {
        if !self.ended {
            self.finish(Ending::Cut);
        }
    }
}

fn wake(state: &mut State) {
    if let Some(waker) = state.waker.take() {
        waker.wake();
    }
}

fn append(state: &mut State, dir: &std::path::Path, chunk: &[u8]) -> std::io::Result<()> {
    if state.spool.is_none() {
        // Without a name (O_TMPFILE): only this descriptor reaches it, so a process killed
        // mid-answer (SIGKILL, the OOM killer) leaves nothing behind to fill the disk.
        let file = tempfile::tempfile_in(dir)?;
        state.spool = Some(Spool {
            file,
            written: 0,
            read: 0,
        });
    }
    let Some(spool) = state.spool.as_mut() else {
        return Ok(());
    };
    // At the offset, not the file's position: a write that fails half-way (a full disk) leaves
    // its bytes past `written`, where nothing reads them and the next write goes over them.
    spool.file.write_all_at(chunk, spool.written)?;
    spool.written += chunk.len() as u64;
    Ok(())
}

impl AnswerReceiver {
    /// Keeps `turn` until the producer is done (the answer ended or was cut off): until then
    /// PHP (or a pool worker) is still busy with this request, however fast the client reads.
    pub fn hold_until_done(&self, turn: Turn) {
        let mut state = self.shared.lock();
        if matches!(state.ending, Ending::Open) {
            state.turn = Some(turn);
        }
    }

    /// The connection sent all `declared` bytes of the answer's `Content-Length` and ends it
    /// there: what is queued past them, or pushed later, is dropped and reported once (nginx
    /// logs "upstream sent more data than specified" for the same).
    pub fn complete(&self, declared: u64) {
        let mut state = self.shared.lock();
        state.complete = Some(declared);
        let unread_file = state.spool.as_ref().map_or(0, |s| s.written - s.read);
        if state.in_memory > 0 || unread_file > 0 {
            state.report_overrun();
        }
        state.discard_unread();
        drop(state);
        self.shared.room.notify_one();
    }

    /// The next chunk: memory first, then the temp file; `None` at the end, an error when the
    /// answer was cut off.
    pub fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<std::io::Result<Bytes>>> {
        let mut state = self.shared.lock();
        if let Some(chunk) = state.memory.pop_front() {
            state.in_memory -= chunk.len();
            drop(state);
            self.shared.room.notify_one();
            return Poll::Ready(Some(Ok(chunk)));
        }
        if let Some(piece) = read_spool(&mut state) {
            drop(state);
            self.shared.room.notify_one();
            return Poll::Ready(Some(piece));
        }
        if state.failed {
            return Poll::Ready(Some(Err(std::io::Error::other(
                "the answer could not be spooled",
            ))));
        }
        match state.ending {
            Ending::Ended => Poll::Ready(None),
            Ending::Cut => Poll::Ready(Some(Err(std::io::Error::other("the answer was cut off")))),
            Ending::Open => {
                state.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// The next piece of the temp file, if it holds anything unread; once all is read the file
/// starts over, so a client that catches up never makes it grow.
fn read_spool(state: &mut State) -> Option<std::io::Result<Bytes>> {
    let spool = state.spool.as_mut()?;
    if spool.read == spool.written {
        return None;
    }
    let want = (spool.written - spool.read).min(READ_PIECE as u64) as usize;
    let mut buf = vec![0u8; want];
    if let Err(e) = spool.file.read_exact_at(&mut buf, spool.read) {
        state.failed = true;
        return Some(Err(e));
    }
    spool.read += want as u64;
    if spool.read == spool.written {
        if let Err(e) = spool.file.set_len(0) {
            tracing::warn!("emptying a response spool file: {e}");
        }
        spool.read = 0;
        spool.written = 0;
    }
    Some(Ok(buf.into()))
}

impl Drop for AnswerReceiver {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.receiver_gone = true;
        state.discard_unread();
        drop(state);
        self.shared.room.notify_one();
    }
}

#[cfg(test)]
mod tests;

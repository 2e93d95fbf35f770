//! Template mode (`http.pool.template`): one task that keeps the template process running
//! (started like a worker, restarted with the boot backoff when it dies), hands it fork orders
//! with the new worker's descriptors, and turns its answers into [`Process`]es. Reload starts a
//! new template (new code); the old one is stopped, its workers keep serving.
use super::limits;
use super::message::{Event, ForkAnswer, ForkFailure, ForkedWorker, Order};
use super::process::{self, Fork, Process, Spawner};
use crate::ipc::{fds, Frame, FrameReader, ReadError};
use bytes::BytesMut;
use std::collections::{HashMap, VecDeque};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};
use tokio::io::{AsyncWriteExt, Interest};
use tokio::sync::{mpsc, oneshot};

pub struct Settings {
    pub boot_timeout: Duration,
    pub destroy_timeout: Duration,
}

/// A running template process and the orders it has not answered yet.
struct Running {
    process: Process,
    reader: FrameReader,
    booted: bool,
    started: Instant,
    generation: u64,
    sent: HashMap<u64, (Fork, oneshot::Sender<ForkAnswer>)>,
}

impl Running {
    async fn next(&mut self) -> Option<Frame> {
        match self.reader.next(&mut self.process.channel).await {
            Ok(frame) => Some(frame),
            Err(ReadError::Closed) => None,
            Err(ReadError::Malformed(e)) => {
                tracing::error!(pid = self.process.pid, "template channel: {e}");
                None
            }
        }
    }

    /// Sends one fork order with the worker's three descriptors attached.
    async fn order(&mut self, id: u64, fork: &Fork) -> std::io::Result<()> {
        let mut out = BytesMut::new();
        Frame::Fork { id }.encode(&mut out);
        let socket = &self.process.channel;
        let fd = socket.as_raw_fd();
        let theirs = fork.theirs.each_ref().map(|f| f.as_raw_fd());
        let sent = loop {
            socket.writable().await?;
            match socket.try_io(Interest::WRITABLE, || fds::send(fd, &out, &theirs)) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        };
        // The descriptors went with the first byte; the rest of a frame is plain bytes.
        self.process.channel.write_all(&out[sent..]).await
    }

    /// Stops it in the background (the template being replaced by a reload).
    fn retire(self, destroy_timeout: Duration) {
        tokio::spawn(self.stop(destroy_timeout));
    }

    /// `Stop`, then a kill after `destroy_timeout`.
    async fn stop(mut self, destroy_timeout: Duration) {
        for (_, (_, reply)) in self.sent.drain() {
            let _ = reply.send(Err(ForkFailure::Failed("the template was stopped".into())));
        }
        let mut out = BytesMut::new();
        Frame::Stop.encode(&mut out);
        let _ = self.process.channel.write_all(&out).await;
        if tokio::time::timeout(destroy_timeout, self.process.wait())
            .await
            .is_err()
        {
            self.process.kill();
            let _ = self.process.wait().await;
        }
        let _ = self.process.output_tail().await;
        tracing::debug!(pid = self.process.pid, "template stopped");
    }
}

/// Runs until `Order::Stop`. A template that cannot boot is retried with backoff, reported as
/// `Event::TemplateBootFailed` (the supervisor decides when that is fatal). After a reload the
/// previous template keeps forking (old code) until the new one has booted, so a broken
/// deploy leaves the pool able to replace crashed workers.
pub async fn run(
    spawner: Spawner,
    settings: Settings,
    mut orders: mpsc::UnboundedReceiver<Order>,
    events: mpsc::UnboundedSender<Event>,
) {
    let mut queue: VecDeque<(u64, oneshot::Sender<ForkAnswer>)> = VecDeque::new();
    let mut current: Option<Running> = None;
    // The last template that booted, while `current` (a reload's) has not.
    let mut previous: Option<Running> = None;
    let mut generation = 0;
    let mut failures = 0u32;
    let mut spawn_after = Instant::now();
    loop {
        if current.is_none() && Instant::now() >= spawn_after {
            match spawner.spawn_template() {
                Ok(process) => {
                    tracing::info!(pid = process.pid, "rr pool: template process started");
                    current = Some(Running {
                        process,
                        reader: FrameReader::new(4096),
                        booted: false,
                        started: Instant::now(),
                        generation,
                        sent: HashMap::new(),
                    });
                }
                Err(e) => {
                    let message = format!("cannot start the template process: {e}");
                    failed(&mut failures, &mut spawn_after, message, &events);
                }
            }
        }
        let forking = match current.as_mut().filter(|r| r.booted) {
            Some(running) => Some(running),
            None => previous.as_mut(),
        };
        if let Some(running) = forking {
            dispatch(running, &mut queue).await;
        }
        let boot_deadline = current
            .as_ref()
            .filter(|r| !r.booted)
            .map(|r| r.started + settings.boot_timeout);
        let respawn = current.is_none().then_some(spawn_after);
        tokio::select! {
            order = orders.recv() => match order {
                Some(Order::Fork { id, reply }) => queue.push_back((id, reply)),
                Some(Order::Reload(to)) => {
                    generation = to;
                    if let Some(mut old) = current.take() {
                        tracing::info!(pid = old.process.pid, "rr pool: reload: replacing the template");
                        // Orders it has not answered go to the new template (new code).
                        requeue(&mut queue, &mut old);
                        match old.booted {
                            // It serves forks until the new one boots.
                            true => {
                                if let Some(older) = previous.replace(old) {
                                    older.retire(settings.destroy_timeout);
                                }
                            }
                            false => old.retire(settings.destroy_timeout),
                        }
                    }
                    failures = 0;
                    spawn_after = Instant::now();
                }
                Some(Order::Stop) | None => break,
            },
            frame = next(&mut previous) => {
                let Some(old) = previous.as_mut() else { continue };
                if !answer(old, frame) {
                    // It died: forks wait for the new template.
                    if let Some(mut dead) = previous.take() {
                        requeue(&mut queue, &mut dead);
                        dead.retire(settings.destroy_timeout);
                    }
                }
            }
            frame = next(&mut current) => {
                let Some(running) = current.as_mut() else { continue };
                match frame {
                    Some(Frame::Booted) if !running.booted => {
                        running.booted = true;
                        failures = 0;
                        let ms = running.started.elapsed().as_secs_f64() * 1000.0;
                        tracing::info!(pid = running.process.pid, boot_ms = ms, "rr pool: template booted");
                        let _ = events.send(Event::TemplateReady { generation: running.generation });
                        if let Some(mut old) = previous.take() {
                            requeue(&mut queue, &mut old);
                            old.retire(settings.destroy_timeout);
                        }
                    }
                    Some(Frame::Error(message)) => {
                        // It cannot fork at all (threads): retrying would find the same.
                        let _ = events.send(Event::TemplateFailed(message));
                        break;
                    }
                    frame => {
                        if answer(running, frame) {
                            continue;
                        }
                        let Some(mut dead) = current.take() else { continue };
                        dead.process.kill();
                        let status = dead.process.wait().await;
                        let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
                        // Unanswered orders wait for the next template; should the old one
                        // have forked one of them, that worker finds its channel closed and ends.
                        let in_flight = !dead.sent.is_empty();
                        requeue(&mut queue, &mut dead);
                        if dead.booted && !in_flight {
                            tracing::warn!(pid = dead.process.pid, "rr pool: the template exited ({status}): starting a new one");
                        } else if dead.booted {
                            // It died while forking: counts as a failure, so a template that
                            // dies on every fork ends in backoff, then in a fatal error.
                            let message = format!(
                                "the template process pid {} exited while forking workers ({status})",
                                dead.process.pid
                            );
                            failed(&mut failures, &mut spawn_after, message, &events);
                        } else {
                            let tail = dead.process.output_tail().await;
                            let message = format!(
                                "the template process pid {} exited before its first waitRequest() ({status}); its last output:\n{tail}",
                                dead.process.pid
                            );
                            failed(&mut failures, &mut spawn_after, message, &events);
                        }
                    }
                }
            }
            _ = super::sleep_until(boot_deadline) => {
                if let Some(mut slow) = current.take() {
                    slow.process.kill();
                    let _ = slow.process.wait().await;
                    let message = format!(
                        "the template process pid {} did not boot within {:?}",
                        slow.process.pid, settings.boot_timeout
                    );
                    failed(&mut failures, &mut spawn_after, message, &events);
                }
            }
            _ = super::sleep_until(respawn) => {}
        }
    }
    for (_, reply) in queue {
        let _ = reply.send(Err(ForkFailure::Failed("the pool is stopping".into())));
    }
    if let Some(old) = previous {
        old.retire(settings.destroy_timeout);
    }
    if let Some(running) = current {
        running.stop(settings.destroy_timeout).await;
    }
}

/// Sends the queued fork orders to a booted template.
async fn dispatch(running: &mut Running, queue: &mut VecDeque<(u64, oneshot::Sender<ForkAnswer>)>) {
    while let Some((id, reply)) = queue.pop_front() {
        if reply.is_closed() {
            continue;
        }
        let fork = match Fork::new() {
            Ok(fork) => fork,
            Err(e) => {
                let message = format!("cannot create its channel: {e}");
                let failure = match process::for_lack_of_resources(&e) {
                    true => ForkFailure::NoResources(message),
                    false => ForkFailure::Failed(message),
                };
                let _ = reply.send(Err(failure));
                continue;
            }
        };
        if let Err(e) = running.order(id, &fork).await {
            tracing::error!(pid = running.process.pid, "template channel: {e}");
            queue.push_front((id, reply));
            break;
        }
        running.sent.insert(id, (fork, reply));
    }
}

/// A booted template's answer to a fork order; false when the frame is not one (it died or
/// broke the protocol).
fn answer(running: &mut Running, frame: Option<Frame>) -> bool {
    match frame {
        Some(Frame::Forked { id, pid }) => {
            if let Some((fork, reply)) = running.sent.remove(&id) {
                let generation = running.generation;
                let started = fork
                    .started(pid)
                    .map(|process| ForkedWorker {
                        process,
                        generation,
                    })
                    .map_err(|e| ForkFailure::Failed(e.to_string()));
                if let Err(Ok(mut orphan)) = reply.send(started) {
                    // Nobody wants it any more (stopped meanwhile): end and reap it.
                    tokio::spawn(async move {
                        orphan.process.kill();
                        let _ = orphan.process.wait().await;
                    });
                }
            }
            true
        }
        Some(Frame::ForkFailed { id, message }) => {
            tracing::error!(
                pid = running.process.pid,
                "template could not fork worker {id}: {message}"
            );
            if let Some((_, reply)) = running.sent.remove(&id) {
                let _ = reply.send(Err(ForkFailure::Failed(message)));
            }
            true
        }
        Some(frame) => {
            tracing::error!(
                pid = running.process.pid,
                "unexpected frame from the template: {frame:?}"
            );
            false
        }
        None => false,
    }
}

/// Puts the orders `template` has not answered back at the head of the queue, in id order.
fn requeue(queue: &mut VecDeque<(u64, oneshot::Sender<ForkAnswer>)>, template: &mut Running) {
    let mut unanswered: Vec<_> = template
        .sent
        .drain()
        .map(|(id, (_, reply))| (id, reply))
        .collect();
    unanswered.sort_by_key(|(id, _)| std::cmp::Reverse(*id));
    for order in unanswered {
        queue.push_front(order);
    }
}

/// A boot failure of the template: reported, and the next start waits (backoff).
fn failed(
    failures: &mut u32,
    spawn_after: &mut Instant,
    message: String,
    events: &mpsc::UnboundedSender<Event>,
) {
    *failures += 1;
    *spawn_after = Instant::now() + limits::backoff(*failures);
    let _ = events.send(Event::TemplateBootFailed(message));
}

async fn next(current: &mut Option<Running>) -> Option<Frame> {
    match current {
        Some(running) => running.next().await,
        None => std::future::pending().await,
    }
}

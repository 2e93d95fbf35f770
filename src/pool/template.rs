//! Template mode (`http.pool.template`): one task that keeps the template process running
//! (started like a worker, restarted with the boot backoff when it dies), hands it fork orders
//! with the new worker's descriptors, and turns its answers into [`Process`]es. Reload starts a
//! new template (new code); the old one is stopped, its workers keep serving.
use super::handle::Event;
use super::limits::{self, MAX_BOOT_FAILURES};
use super::process::{Fork, Process, Spawner};
use crate::ipc::{fds, Frame};
use bytes::BytesMut;
use std::collections::{HashMap, VecDeque};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::sync::{mpsc, oneshot};

/// The answer to a fork order: the running worker, or why there is none.
pub type Forked = Result<Process, String>;

pub enum Order {
    Fork {
        id: u64,
        reply: oneshot::Sender<Forked>,
    },
    /// Start a template of this generation (new code); the old one stops.
    Reload(u64),
    /// Stop the template and end.
    Stop,
}

pub struct Settings {
    pub boot_timeout: Duration,
    pub destroy_timeout: Duration,
}

/// A running template process and the orders it has not answered yet.
struct Running {
    process: Process,
    buf: BytesMut,
    booted: bool,
    started: Instant,
    generation: u64,
    sent: HashMap<u64, (Fork, oneshot::Sender<Forked>)>,
}

impl Running {
    async fn next(&mut self) -> Option<Frame> {
        loop {
            match Frame::split(&mut self.buf) {
                Ok(Some(frame)) => return Some(frame),
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(pid = self.process.pid, "template channel: {e}");
                    return None;
                }
            }
            self.buf.reserve(4096);
            match self.process.channel.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
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
            let _ = reply.send(Err("the template was stopped".into()));
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

/// Runs until `Order::Stop` (or until the template cannot boot, reported as
/// `Event::TemplateFailed`).
pub async fn run(
    spawner: Spawner,
    settings: Settings,
    mut orders: mpsc::UnboundedReceiver<Order>,
    events: mpsc::UnboundedSender<Event>,
) {
    let mut queue: VecDeque<(u64, oneshot::Sender<Forked>)> = VecDeque::new();
    let mut current: Option<Running> = None;
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
                        buf: BytesMut::with_capacity(4096),
                        booted: false,
                        started: Instant::now(),
                        generation,
                        sent: HashMap::new(),
                    });
                }
                Err(e) => {
                    let message = format!("cannot start the template process: {e}");
                    if !failed(&mut failures, &mut spawn_after, message, &events) {
                        break;
                    }
                }
            }
        }
        if let Some(running) = current.as_mut().filter(|r| r.booted) {
            while let Some((id, reply)) = queue.pop_front() {
                if reply.is_closed() {
                    continue;
                }
                let fork = match Fork::new() {
                    Ok(fork) => fork,
                    Err(e) => {
                        let _ = reply.send(Err(format!("cannot create its channel: {e}")));
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
                        old.retire(settings.destroy_timeout);
                    }
                    failures = 0;
                    spawn_after = Instant::now();
                }
                Some(Order::Stop) | None => break,
            },
            frame = next(&mut current) => {
                let Some(running) = current.as_mut() else { continue };
                match frame {
                    Some(Frame::Booted) if !running.booted => {
                        running.booted = true;
                        failures = 0;
                        let ms = running.started.elapsed().as_secs_f64() * 1000.0;
                        tracing::info!(pid = running.process.pid, boot_ms = ms, "rr pool: template booted");
                        let _ = events.send(Event::TemplateReady { generation: running.generation });
                    }
                    Some(Frame::Forked { id, pid }) => {
                        failures = 0;
                        if let Some((fork, reply)) = running.sent.remove(&id) {
                            if let Err(Ok(mut orphan)) = reply.send(fork.started(pid).map_err(|e| e.to_string())) {
                                // Nobody wants it any more (stopped meanwhile): end and reap it.
                                tokio::spawn(async move {
                                    orphan.kill();
                                    let _ = orphan.wait().await;
                                });
                            }
                        }
                    }
                    Some(Frame::ForkFailed { id, message }) => {
                        tracing::error!(pid = running.process.pid, "template could not fork worker {id}: {message}");
                        if let Some((_, reply)) = running.sent.remove(&id) {
                            let _ = reply.send(Err(message));
                        }
                    }
                    Some(Frame::Error(message)) => {
                        // It cannot fork at all (threads): retrying would find the same.
                        let _ = events.send(Event::TemplateFailed(message));
                        break;
                    }
                    other => {
                        if let Some(frame) = other {
                            tracing::error!(pid = running.process.pid, "unexpected frame from the template: {frame:?}");
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
                            if !failed(&mut failures, &mut spawn_after, message, &events) {
                                break;
                            }
                        } else {
                            let tail = dead.process.output_tail().await;
                            let message = format!(
                                "the template process pid {} exited before its first waitRequest() ({status}); its last output:\n{tail}",
                                dead.process.pid
                            );
                            if !failed(&mut failures, &mut spawn_after, message, &events) {
                                break;
                            }
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
                    if !failed(&mut failures, &mut spawn_after, message, &events) {
                        break;
                    }
                }
            }
            _ = super::sleep_until(respawn) => {}
        }
    }
    for (_, reply) in queue {
        let _ = reply.send(Err("the pool is stopping".into()));
    }
    if let Some(running) = current {
        running.stop(settings.destroy_timeout).await;
    }
}

/// Puts the orders `template` has not answered back at the head of the queue, in id order.
fn requeue(queue: &mut VecDeque<(u64, oneshot::Sender<Forked>)>, template: &mut Running) {
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

/// A boot failure of the template: backoff, or false (and `TemplateFailed`) after too many.
fn failed(
    failures: &mut u32,
    spawn_after: &mut Instant,
    message: String,
    events: &mpsc::UnboundedSender<Event>,
) -> bool {
    *failures += 1;
    tracing::error!("{message}");
    if *failures >= MAX_BOOT_FAILURES {
        let _ = events.send(Event::TemplateFailed(format!(
            "the template failed to boot {failures} times in a row; giving up. The last: {message}"
        )));
        return false;
    }
    *spawn_after = Instant::now() + limits::backoff(*failures);
    true
}

async fn next(current: &mut Option<Running>) -> Option<Frame> {
    match current {
        Some(running) => running.next().await,
        None => std::future::pending().await,
    }
}

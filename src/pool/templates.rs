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
            Err(e) => {
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
    let mut keeper = Keeper {
        spawner,
        settings,
        events,
        queue: VecDeque::new(),
        current: None,
        previous: None,
        generation: 0,
        failures: 0,
        spawn_after: Instant::now(),
    };
    loop {
        keeper.start_if_due();
        keeper.dispatch().await;
        let boot_deadline = keeper
            .current
            .as_ref()
            .filter(|r| !r.booted)
            .map(|r| r.started + keeper.settings.boot_timeout);
        let respawn = keeper.current.is_none().then_some(keeper.spawn_after);
        let go_on = tokio::select! {
            order = orders.recv() => keeper.on_order(order),
            frame = next(&mut keeper.previous) => {
                keeper.on_previous(frame);
                true
            }
            frame = next(&mut keeper.current) => keeper.on_current(frame).await,
            _ = super::sleep_until(boot_deadline) => {
                keeper.boot_timed_out().await;
                true
            }
            _ = super::sleep_until(respawn) => true,
        };
        if !go_on {
            break;
        }
    }
    keeper.stop().await;
}

/// The template processes and the fork orders waiting for one.
struct Keeper {
    spawner: Spawner,
    settings: Settings,
    events: mpsc::UnboundedSender<Event>,
    queue: VecDeque<(u64, oneshot::Sender<ForkAnswer>)>,
    /// The newest template (of `generation`), booted or not.
    current: Option<Running>,
    /// The last template that booted, while `current` (a reload's) has not.
    previous: Option<Running>,
    generation: u64,
    /// Boot failures in a row (for the backoff).
    failures: u32,
    spawn_after: Instant,
}

impl Keeper {
    fn start_if_due(&mut self) {
        if self.current.is_some() || Instant::now() < self.spawn_after {
            return;
        }
        match self.spawner.spawn_template() {
            Ok(process) => {
                tracing::info!(pid = process.pid, "rr pool: template process started");
                self.current = Some(Running {
                    process,
                    reader: FrameReader::new(4096),
                    booted: false,
                    started: Instant::now(),
                    generation: self.generation,
                    sent: HashMap::new(),
                });
            }
            Err(e) => self.failed(format!("cannot start the template process: {e}")),
        }
    }

    /// Fork orders go to the booted current template, else to the previous one.
    async fn dispatch(&mut self) {
        let forking = match self.current.as_mut().filter(|r| r.booted) {
            Some(running) => Some(running),
            None => self.previous.as_mut(),
        };
        if let Some(running) = forking {
            dispatch(running, &mut self.queue).await;
        }
    }

    /// False once told to stop.
    fn on_order(&mut self, order: Option<Order>) -> bool {
        match order {
            Some(Order::Fork { id, reply }) => self.queue.push_back((id, reply)),
            Some(Order::Reload(to)) => {
                self.generation = to;
                if let Some(mut old) = self.current.take() {
                    tracing::info!(
                        pid = old.process.pid,
                        "rr pool: reload: replacing the template"
                    );
                    // Orders it has not answered go to the new template (new code).
                    requeue(&mut self.queue, &mut old);
                    match old.booted {
                        // It serves forks until the new one boots.
                        true => {
                            if let Some(older) = self.previous.replace(old) {
                                older.retire(self.settings.destroy_timeout);
                            }
                        }
                        false => old.retire(self.settings.destroy_timeout),
                    }
                }
                self.failures = 0;
                self.spawn_after = Instant::now();
            }
            Some(Order::Stop) | None => return false,
        }
        true
    }

    fn on_previous(&mut self, frame: Option<Frame>) {
        let Some(old) = self.previous.as_mut() else {
            return;
        };
        if !answer(old, frame) {
            // It died: forks wait for the new template.
            if let Some(mut dead) = self.previous.take() {
                requeue(&mut self.queue, &mut dead);
                dead.retire(self.settings.destroy_timeout);
            }
        }
    }

    /// False when the template cannot fork at all (the pool stops).
    async fn on_current(&mut self, frame: Option<Frame>) -> bool {
        let Some(running) = self.current.as_mut() else {
            return true;
        };
        match frame {
            Some(Frame::Booted) if !running.booted => {
                running.booted = true;
                self.failures = 0;
                let ms = running.started.elapsed().as_secs_f64() * 1000.0;
                tracing::info!(
                    pid = running.process.pid,
                    boot_ms = ms,
                    "rr pool: template booted"
                );
                let generation = running.generation;
                let _ = self.events.send(Event::TemplateReady { generation });
                if let Some(mut old) = self.previous.take() {
                    requeue(&mut self.queue, &mut old);
                    old.retire(self.settings.destroy_timeout);
                }
            }
            Some(Frame::Error(message)) => {
                // It cannot fork at all (threads): retrying would find the same.
                let _ = self.events.send(Event::TemplateFailed(message));
                return false;
            }
            frame => {
                if !answer(running, frame) {
                    self.died().await;
                }
            }
        }
        true
    }

    /// The current template died (or broke the protocol).
    async fn died(&mut self) {
        let Some(mut dead) = self.current.take() else {
            return;
        };
        dead.process.kill();
        let status = dead.process.wait().await;
        let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
        // Unanswered orders wait for the next template; should the old one have forked one of
        // them, that worker finds its channel closed and ends.
        let in_flight = !dead.sent.is_empty();
        requeue(&mut self.queue, &mut dead);
        let pid = dead.process.pid;
        if dead.booted && !in_flight {
            tracing::warn!(
                pid,
                "rr pool: the template exited ({status}): starting a new one"
            );
        } else if dead.booted {
            // It died while forking: counts as a failure, so a template that dies on every
            // fork ends in backoff (and, if none ever booted, in a fatal error).
            self.failed(format!(
                "the template process pid {pid} exited while forking workers ({status})"
            ));
        } else {
            let tail = dead.process.output_tail().await;
            self.failed(format!(
                "the template process pid {pid} exited before its first waitRequest() ({status}); its last output:\n{tail}"
            ));
        }
    }

    async fn boot_timed_out(&mut self) {
        if let Some(mut slow) = self.current.take() {
            slow.process.kill();
            let _ = slow.process.wait().await;
            self.failed(format!(
                "the template process pid {} did not boot within {:?}",
                slow.process.pid, self.settings.boot_timeout
            ));
        }
    }

    /// A boot failure of the template: reported, and the next start waits (backoff).
    fn failed(&mut self, message: String) {
        self.failures += 1;
        self.spawn_after = Instant::now() + limits::backoff(self.failures);
        let _ = self.events.send(Event::TemplateBootFailed(message));
    }

    async fn stop(self) {
        for (_, reply) in self.queue {
            let _ = reply.send(Err(ForkFailure::Failed("the pool is stopping".into())));
        }
        if let Some(old) = self.previous {
            old.retire(self.settings.destroy_timeout);
        }
        if let Some(running) = self.current {
            running.stop(self.settings.destroy_timeout).await;
        }
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

async fn next(current: &mut Option<Running>) -> Option<Frame> {
    match current {
        Some(running) => running.next().await,
        None => std::future::pending().await,
    }
}

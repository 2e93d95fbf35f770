//! The private channel between the pool master and a worker process: a unix socketpair
//! carrying length-prefixed binary frames. Plain Rust, unit-tested without PHP.
//!
//! # Layout
//! - `wire`   primitives: little-endian integers, length-prefixed bytes, headers.
//! - `frame`  [`Frame`]: the messages, their encoding, and splitting them off a byte buffer.
//! - `reader` [`FrameReader`]: frames read whole off a channel, async for the master's tasks
//!   (cancel-safe) and blocking for the worker and the template; typed [`ReadError`]s.
//! - `reply`  a worker's answer as a frame and back ([`Frame::from_reply`], [`Frame::into_reply`]).
//! - `worker_info` one row of the workers list (sent as JSON in `Frame::Workers`).
//! - `fds`    passing descriptors along with a frame (SCM_RIGHTS), master → template.
//! - `claim`  the word shared with a worker that decides who runs a request sent ahead.
//! - `child`  what a process the master starts does first: signal mask, death with the master.
pub mod child;
pub mod claim;
pub mod fds;
mod frame;
mod reader;
mod reply;
mod wire;
mod worker_info;

pub use frame::Frame;
pub use reader::{FrameReader, ReadError};
pub use wire::DecodeError;
pub use worker_info::WorkerInfo;

/// The environment variable that marks a pool worker and names its end of the socketpair.
pub const FD_ENV: &str = "RR_POOL_FD";
/// The master's listen addresses, for `RR\Worker::addresses()` in a worker.
pub const ADDRS_ENV: &str = "RR_POOL_ADDRS";
/// The worker's number in the pool (1-based), for logs.
pub const ID_ENV: &str = "RR_POOL_WORKER";
/// Marks the template process (`http.pool.template`): it boots, then forks workers.
pub const TEMPLATE_ENV: &str = "RR_POOL_TEMPLATE";

/// Why `RR_POOL_FD` names no channel.
#[derive(Debug)]
pub enum ChannelError {
    /// The value is not a number.
    NotANumber(String),
    /// No inherited unix socket has that number (a process started by a worker inherits the
    /// variable, not the descriptor).
    NoSocket(std::os::fd::RawFd),
}

impl std::fmt::Display for ChannelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChannelError::NotANumber(value) => {
                write!(f, "{}={value:?} is not a file descriptor", FD_ENV)
            }
            ChannelError::NoSocket(fd) => write!(
                f,
                "{}={fd} names no inherited socket: start rr workers only from an rr pool master",
                FD_ENV
            ),
        }
    }
}

impl std::error::Error for ChannelError {}

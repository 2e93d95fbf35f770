//! One HTTP/2 connection's share of PHP (`http.http2.max_queued_streams`): how many of its
//! requests may wait in the queue or run in PHP at once. The others wait in their connection,
//! first come first served, so one client's streams cannot fill the queue all clients share
//! (over HTTP/1 a request in the queue costs a client a connection, and those are capped).
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Shared by the requests of one connection.
#[derive(Clone)]
pub struct Share(Arc<Semaphore>);

/// A request's place in its connection's share, given back when its last clone is dropped:
/// the connection holds one until PHP is done with the request, the queued job another, so a
/// stream reset while its job waits in the queue frees its place only once PHP has taken or
/// skipped the job (else resetting streams would fill the queue with abandoned jobs).
#[derive(Clone)]
pub struct Turn(#[allow(dead_code)] Arc<OwnedSemaphorePermit>);

impl Share {
    pub fn new(places: usize) -> Share {
        Share(Arc::new(Semaphore::new(
            places.clamp(1, Semaphore::MAX_PERMITS),
        )))
    }

    /// Waits for a free place; a caller that stops waiting (its stream reset, its request
    /// timed out) leaves the line and takes nothing.
    pub async fn turn(&self) -> Turn {
        match self.0.clone().acquire_owned().await {
            Ok(permit) => Turn(Arc::new(permit)),
            // Only a closed semaphore refuses, and this one is never closed.
            Err(_) => unreachable!("a connection's share is never closed"),
        }
    }

    /// Places free right now.
    pub fn free(&self) -> usize {
        self.0.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};

    fn poll<F: Future>(f: Pin<&mut F>) -> Poll<F::Output> {
        f.poll(&mut Context::from_waker(Waker::noop()))
    }

    /// A turn that must be free at once.
    fn take(share: &Share) -> Turn {
        match poll(std::pin::pin!(share.turn())) {
            Poll::Ready(turn) => turn,
            Poll::Pending => panic!("no free place"),
        }
    }

    #[test]
    fn places_are_given_in_order_and_a_waiter_that_leaves_takes_none() {
        let share = Share::new(2);
        let first = take(&share);
        let _second = take(&share);
        assert_eq!(share.free(), 0);
        let mut third = Box::pin(share.turn());
        let mut fourth = Box::pin(share.turn());
        assert!(poll(third.as_mut()).is_pending());
        assert!(poll(fourth.as_mut()).is_pending());
        // The third leaves the line (its stream was reset): the place freed goes to the fourth.
        drop(third);
        drop(first);
        let Poll::Ready(_fourth) = poll(fourth.as_mut()) else {
            panic!("the place freed goes to the next in line")
        };
        assert_eq!(share.free(), 0);
    }

    #[test]
    fn a_place_comes_back_when_its_turn_is_dropped() {
        let share = Share::new(1);
        let turn = take(&share);
        assert_eq!(share.free(), 0);
        drop(turn);
        assert_eq!(share.free(), 1);
        // Zero places would stop the connection for good: one at least.
        assert_eq!(Share::new(0).free(), 1);
    }
}

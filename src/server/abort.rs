//! An HTTP/1 answer cut off mid-body ends its connection with a reset (RST), not a close (FIN).
//!
//! hyper closes the connection when a response body fails, which is all a chunked or
//! `Content-Length` answer needs. An answer to an HTTP/1.0 request (nginx's `proxy_http_version`
//! by default, `ab`, old clients) has neither: its end is the close itself, so a plain close
//! makes the part sent look like the whole answer. A reset cannot be taken for an end; nginx
//! reports it as an upstream error and cuts its own client off. HTTP/2 resets the stream instead.
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use std::os::fd::RawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

/// Set when an answer on the connection was cut off; read when the socket closes.
#[derive(Clone, Default)]
pub struct Cut(Arc<AtomicBool>);

impl Cut {
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A response body that marks `cut` when it fails (`None`: an HTTP/2 stream, reset on its own).
pub struct Watched<B> {
    inner: B,
    cut: Option<Cut>,
}

impl<B> Watched<B> {
    pub fn new(inner: B, cut: Option<Cut>) -> Watched<B> {
        Watched { inner, cut }
    }
}

impl<B> Body for Watched<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let (Poll::Ready(Some(Err(_))), Some(cut)) = (&polled, &this.cut) {
            cut.set();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Makes the close of `fd` send a reset: `SO_LINGER` on with a zero timeout.
pub fn reset_on_close(fd: RawFd) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `fd` is the connection's socket, still open (the caller owns it until after this
    // call); the option value is a valid `linger` of the size given.
    let done = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if done != 0 {
        tracing::debug!(
            "SO_LINGER on a cut-off connection: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    #[tokio::test]
    async fn a_failing_body_marks_the_connection_and_a_whole_one_does_not() {
        let cut = Cut::default();
        let whole = http_body_util::Full::new(Bytes::from_static(b"whole"));
        let got = Watched::new(whole, Some(cut.clone()))
            .collect()
            .await
            .unwrap();
        assert_eq!(got.to_bytes(), "whole");
        assert!(!cut.is_set());

        let failing = StreamBody::new(futures_util::stream::iter([
            Ok(Frame::data(Bytes::from_static(b"part"))),
            Err(std::io::Error::other("cut off")),
        ]));
        assert!(Watched::new(failing, Some(cut.clone()))
            .collect()
            .await
            .is_err());
        assert!(cut.is_set());
    }
}

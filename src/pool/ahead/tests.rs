use super::*;
use crate::request::form::Tree;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};

fn limits() -> AnswerLimits {
    AnswerLimits {
        memory: 1 << 20,
        file: 1 << 30,
        dir: std::env::temp_dir(),
    }
}

/// Nothing may wait for a client beyond one chunk: a client that does not read holds the
/// sender at once.
fn no_spool() -> AnswerLimits {
    AnswerLimits {
        memory: 0,
        file: 0,
        dir: std::env::temp_dir(),
    }
}

async fn next(rx: &mut answer::AnswerReceiver) -> Option<std::io::Result<Bytes>> {
    std::future::poll_fn(|cx| rx.poll_chunk(cx)).await
}

fn request(body: &'static [u8]) -> RequestData {
    RequestData {
        body: RequestBody::Memory(Bytes::from_static(body)),
        ..RequestData::for_test(http::Method::GET, "/")
    }
}

fn job(body: &'static [u8]) -> (Job, oneshot::Receiver<Reply>) {
    let (reply, rx) = oneshot::channel();
    let job = Job {
        request: request(body),
        reply,
        queued_at: Instant::now(),
        turn: None,
    };
    (job, rx)
}

fn full(body: &'static str) -> Frame {
    Frame::Full {
        status: StatusCode::OK,
        headers: HeaderMap::new(),
        body: Bytes::from_static(body.as_bytes()),
    }
}

fn body(reply: Reply) -> Bytes {
    match reply {
        Reply::Full { body, .. } => body,
        _ => panic!("not a full answer"),
    }
}

#[tokio::test]
async fn answers_go_to_the_requests_in_the_order_they_were_sent() {
    let mut flight = InFlight::new(Duration::from_secs(60), limits());
    let (a, mut ra) = job(b"a");
    let (b, mut rb) = job(b"b");
    flight.push(a, 10);
    flight.push(b, 10);
    let step = flight.step(full("A")).await;
    assert!(matches!(step, Step::Done { .. }));
    assert_eq!(body(ra.try_recv().unwrap()), "A");
    assert!(rb.try_recv().is_err(), "b is not answered yet");
    assert!(!flight.is_empty());
    assert!(flight.since().is_some(), "b started when a's answer ended");
    let step = flight.step(full("B")).await;
    assert!(matches!(step, Step::Done { .. }));
    assert_eq!(body(rb.try_recv().unwrap()), "B");
    assert!(flight.is_empty());
    assert!(flight.since().is_none());
    // An answer with nothing sent is nonsense.
    assert_eq!(flight.step(full("C")).await, Step::Broken);
}

fn stream_head() -> Frame {
    Frame::StreamHead {
        status: StatusCode::OK,
        headers: HeaderMap::new(),
    }
}

#[tokio::test]
async fn a_streamed_answer_holds_the_next_request_until_it_ends() {
    let mut flight = InFlight::new(Duration::from_secs(60), limits());
    let (a, mut ra) = job(b"");
    let (b, mut rb) = job(b"");
    flight.push(a, 10);
    flight.push(b, 10);
    assert_eq!(flight.step(stream_head()).await, Step::More);
    let Reply::Stream { mut chunks, .. } = ra.try_recv().unwrap() else {
        panic!("not a stream");
    };
    let chunk = Frame::Chunk(Bytes::from_static(b"x"));
    assert_eq!(flight.step(chunk).await, Step::More);
    assert_eq!(next(&mut chunks).await.unwrap().unwrap(), "x");
    assert!(matches!(
        flight.step(Frame::StreamEnd).await,
        Step::Done { .. }
    ));
    assert!(next(&mut chunks).await.is_none(), "the body ended");
    assert!(matches!(flight.step(full("B")).await, Step::Done { .. }));
    assert_eq!(body(rb.try_recv().unwrap()), "B");
}

#[tokio::test]
async fn only_chunks_or_the_end_belong_to_a_stream() {
    let mut flight = InFlight::new(Duration::from_secs(60), limits());
    let (a, _ra) = job(b"");
    flight.push(a, 10);
    flight.step(stream_head()).await;
    assert_eq!(flight.step(full("nope")).await, Step::Broken);
    let mut flight = InFlight::new(Duration::from_secs(60), limits());
    let (a, _ra) = job(b"");
    flight.push(a, 10);
    let chunk = Frame::Chunk(Bytes::from_static(b"x"));
    assert_eq!(flight.step(chunk).await, Step::Broken, "no stream started");
}

#[tokio::test]
async fn a_dead_worker_fails_only_the_request_it_was_on() {
    let mut flight = InFlight::new(Duration::from_secs(60), limits());
    let (a, mut ra) = job(b"a");
    let (b, mut rb) = job(b"b");
    let (c, mut rc) = job(b"c");
    flight.push(a, 10);
    flight.push(b, 10);
    flight.push(c, 10);
    let back = flight.fail(Reply::Crashed, "gone");
    assert!(matches!(ra.try_recv().unwrap(), Reply::Crashed));
    let bodies: Vec<_> = back
        .iter()
        .map(|j| j.request.body.in_memory().unwrap().clone())
        .collect();
    assert_eq!(bodies, ["b", "c"], "handed back in order, unanswered");
    assert!(rb.try_recv().is_err() && rc.try_recv().is_err());
    assert!(flight.is_empty());

    // Mid-stream: the stream is cut off, the rest handed back.
    let (a, mut ra) = job(b"a");
    let (b, _rb) = job(b"b");
    flight.push(a, 10);
    flight.push(b, 10);
    flight.step(stream_head()).await;
    let Reply::Stream { mut chunks, .. } = ra.try_recv().unwrap() else {
        panic!("not a stream");
    };
    assert_eq!(flight.fail(Reply::Crashed, "gone").len(), 1);
    assert!(
        next(&mut chunks).await.unwrap().is_err(),
        "closed without its end: the client sees a cut-off body"
    );
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_and_the_worker_goes_on() {
    let mut flight = InFlight::new(Duration::from_millis(20), no_spool());
    let (a, mut ra) = job(b"");
    let (b, mut rb) = job(b"");
    flight.push(a, 10);
    flight.push(b, 10);
    assert_eq!(flight.step(stream_head()).await, Step::More);
    let Reply::Stream { mut chunks, .. } = ra.try_recv().unwrap() else {
        panic!("not a stream");
    };
    // One chunk is taken; the next waits send_timeout, then the rest is dropped at once.
    for _ in 0..100 {
        let chunk = Frame::Chunk(Bytes::from_static(b"x"));
        assert_eq!(flight.step(chunk).await, Step::More);
    }
    assert!(matches!(
        flight.step(Frame::StreamEnd).await,
        Step::Done { .. }
    ));
    assert!(matches!(flight.step(full("B")).await, Step::Done { .. }));
    assert_eq!(
        body(rb.try_recv().unwrap()),
        "B",
        "the worker served the next"
    );
    let mut got = 0;
    let cut = loop {
        match next(&mut chunks).await {
            Some(Ok(chunk)) => {
                assert_eq!(chunk, "x");
                got += 1;
            }
            Some(Err(_)) => break true,
            None => break false,
        }
    };
    assert!(cut, "the client sees a cut-off answer, never its end");
    assert_eq!(got, 1, "what was queued before the client stalled");
}

#[tokio::test]
async fn a_worker_declines_between_answers_only() {
    let mut flight = InFlight::new(Duration::from_secs(60), limits());
    let (a, _ra) = job(b"a");
    let (b, _rb) = job(b"b");
    flight.push(a, 10);
    flight.push(b, 10);
    let back = flight.decline().unwrap();
    assert_eq!(back.len(), 2);
    assert!(flight.is_empty());

    let (a, _ra) = job(b"a");
    flight.push(a, 10);
    flight.step(stream_head()).await;
    assert!(flight.decline().is_none(), "not in the middle of an answer");
}

#[test]
fn only_small_requests_without_uploads_go_ahead_and_the_socket_never_fills() {
    assert!(small(&request(b"x")));
    let big: &'static [u8] = Box::leak(vec![b'x'; MAX_BODY + 1].into_boxed_slice());
    assert!(!small(&request(big)));
    let mut form = request(b"");
    form.form = Some(Tree::new());
    assert!(!small(&form), "multipart fields: no raw body to measure");
    let mut upload = request(b"");
    upload.uploads.put(
        crate::request::form::Key::Name("f".into()),
        crate::request::form::Node::Leaf(crate::request::multipart::Upload {
            name: "f".into(),
            full_path: "f".into(),
            mime: "text/plain".into(),
            size: 0,
            error: 4,
            tmp_name: None,
        }),
    );
    assert!(!small(&upload));

    let mut flight = InFlight::new(Duration::from_secs(60), limits());
    assert!(flight.fits(MAX_BYTES));
    let (a, _ra) = job(b"");
    flight.push(a, MAX_BYTES - 100);
    assert!(flight.fits(100));
    assert!(!flight.fits(101));
}

#[test]
fn quick_is_smoothed() {
    let ms = Duration::from_millis;
    assert_eq!(smooth(None, ms(4)), ms(4));
    assert_eq!(smooth(Some(ms(4)), ms(0)), ms(3));
    assert_eq!(smooth(Some(ms(0)), ms(8)), ms(2));
}

#[test]
fn what_a_request_sent_ahead_waits_for_stays_under_a_millisecond() {
    let us = Duration::from_micros;
    let ms1 = Duration::from_millis(1);
    // Quick answers: many may wait behind each other.
    assert!(quick_enough(us(10), 1, ms1));
    assert!(quick_enough(us(10), 99, ms1));
    assert!(!quick_enough(us(10), 100, ms1));
    // 200 us answers: four in flight (1 running + 3 ahead) is 800 us; five would be 1 ms.
    assert!(quick_enough(us(200), 4, ms1));
    assert!(!quick_enough(us(200), 5, ms1));
    // Slow answers: none.
    assert!(!quick_enough(us(1000), 1, ms1));
    assert!(quick_enough(us(999), 1, ms1));
    // Never zero in flight for a busy worker; treated as one.
    assert!(quick_enough(us(999), 0, ms1));
    // A longer wait allowed (http.pool.send_ahead_wait): slower workers qualify.
    assert!(quick_enough(us(1000), 1, Duration::from_secs(1)));
    assert_eq!(recall_after(ms1), Duration::from_millis(10));
}

#[tokio::test]
async fn requests_the_worker_has_not_started_are_taken_back_and_never_run_there() {
    let (master, fd) = crate::ipc::claim::Claim::create().unwrap();
    let worker = crate::ipc::claim::Claim::map(&fd).unwrap();
    let mut flight = InFlight::new(Duration::from_secs(60), limits());
    let (a, mut ra) = job(b"a");
    let (b, _) = job(b"b");
    let (c, _) = job(b"c");
    for j in [a, b, c] {
        flight.push(j, 10);
    }
    assert_eq!(flight.behind(), 2);
    assert!(worker.start(1), "the worker is on a");
    let back = flight.recall(&master);
    let bodies: Vec<_> = back
        .iter()
        .map(|j| j.request.body.in_memory().unwrap().clone())
        .collect();
    assert_eq!(bodies, [Bytes::from_static(b"b"), Bytes::from_static(b"c")]);
    assert!(
        !worker.start(2) && !worker.start(3),
        "b and c never run on it"
    );
    // a's answer still reaches a's client.
    assert!(matches!(flight.step(full("A")).await, Step::Done { .. }));
    assert_eq!(body(ra.try_recv().unwrap()), "A");
    assert!(flight.is_empty());
    // The worker raced ahead: what it started stays, nothing is taken back.
    let (d, _) = job(b"d");
    let (e, _) = job(b"e");
    flight.push(d, 10);
    flight.push(e, 10);
    assert!(worker.start(4) && worker.start(5));
    assert!(flight.recall(&master).is_empty());
}

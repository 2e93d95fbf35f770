use super::*;
use crate::ipc::{FrameReader, ReadError};
use crate::request::spool::RequestBody;
use crate::request::target::Target;

fn roundtrip(frame: &Frame) -> Frame {
    let mut buf = BytesMut::new();
    frame.encode(&mut buf);
    // Arrives in two pieces: nothing until the whole frame is there.
    let mut partial = buf.split_to(buf.len() - 1);
    assert!(Frame::split(&mut partial).unwrap().is_none());
    partial.unsplit(buf);
    let got = Frame::split(&mut partial).unwrap().unwrap();
    assert!(partial.is_empty());
    got
}

#[test]
fn request_with_form_and_uploads_survives_the_wire() {
    let mut headers = HeaderMap::new();
    headers.append("x-a", "1".parse().unwrap());
    headers.append("x-a", "2".parse().unwrap());
    let mut form = Tree::new();
    form.insert(b"a[b][]", Bytes::from_static(b"x"), 64);
    form.insert(b"c", Bytes::from_static(b"\0bin"), 64);
    form.insert(b"n\xe9", Bytes::from_static(b"latin-1"), 64);
    let mut uploads = Tree::new();
    let tmp = Upload::unowned("/tmp/rr-upload-x").unwrap();
    uploads.insert(
        b"f",
        Upload {
            name: b"\xe9.txt".to_vec(),
            full_path: "d/a.txt".into(),
            mime: b"text/plain".to_vec(),
            size: 3,
            error: 0,
            tmp_name: Some(tmp),
        },
        64,
    );
    let request = RequestData {
        remote_addr: "[::1]:5".parse().unwrap(),
        protocol: "HTTP/2.0",
        method: http::Method::PATCH,
        target: Target::from_parts(
            true,
            Some("h:8".into()),
            "/x/%2e%2e/z".into(),
            Some("y=1".into()),
        )
        .unwrap(),
        headers,
        body: RequestBody::Memory(Bytes::from_static(b"body")),
        form: Some(form),
        spooled_fields: None,
        uploads,
    };
    let Frame::Request(got) = roundtrip(&Frame::Request(Box::new(request))) else {
        panic!("not a request");
    };
    assert_eq!(got.remote_addr.to_string(), "[::1]:5");
    assert_eq!(got.protocol, "HTTP/2.0");
    assert_eq!(got.method, http::Method::PATCH);
    assert_eq!(got.headers.get_all("x-a").iter().count(), 2);
    assert_eq!(got.body.in_memory().unwrap(), "body");
    assert!(got.target.https());
    assert_eq!(got.target.authority(), Some("h:8"));
    assert_eq!(got.target.request_uri(), "/x/%2e%2e/z?y=1");
    assert_eq!(got.target.document_uri(), b"/z");
    assert_eq!(
        format!("{:?}", got.form.unwrap()),
        r#"{Name("a"): Map({Name("b"): Map({Index(0): Leaf(b"x")})}), Name("c"): Leaf(b"\0bin"), Name("n\xe9"): Leaf(b"latin-1")}"#
    );
    let Some(Node::Leaf(upload)) = got.uploads.get(&Key::Name("f".into())) else {
        panic!("no upload");
    };
    assert_eq!(upload.full_path, b"d/a.txt");
    assert_eq!(upload.name, b"\xe9.txt");
    assert_eq!(
        upload.tmp_name.as_deref(),
        Some(std::path::Path::new("/tmp/rr-upload-x"))
    );
}

#[test]
fn answers_survive_the_wire() {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", "text/plain".parse().unwrap());
    let frames = [
        Frame::Ready,
        Frame::Stop,
        Frame::Full {
            status: StatusCode::CREATED,
            headers: headers.clone(),
            body: Bytes::from_static(b"hi"),
        },
        Frame::StreamHead {
            status: StatusCode::OK,
            headers: headers.clone(),
        },
        Frame::Chunk(Bytes::from_static(b"c")),
        Frame::StreamEnd,
        Frame::StreamAbort,
        Frame::File {
            path: "/etc/hosts".into(),
            status: StatusCode::OK,
            headers: headers.clone(),
        },
        Frame::Velox {
            body: Bytes::from_static(b"{}"),
            gzip: true,
            headers,
        },
        Frame::Error("boom".into()),
        Frame::ListWorkers,
        Frame::Workers("[]".into()),
        Frame::Fork { id: 7 },
        Frame::Retire,
        Frame::Declined,
        Frame::Reload,
        Frame::Released,
        Frame::Booted,
        Frame::Forked { id: 7, pid: 4242 },
        Frame::ForkFailed {
            id: 8,
            message: "no".into(),
        },
    ];
    for frame in &frames {
        assert_eq!(format!("{:?}", roundtrip(frame)), format!("{frame:?}"));
    }
}

#[test]
fn several_frames_in_one_read_come_out_in_order() {
    let mut buf = BytesMut::new();
    Frame::Chunk(Bytes::from_static(b"a")).encode(&mut buf);
    Frame::StreamEnd.encode(&mut buf);
    assert!(matches!(Frame::split(&mut buf), Ok(Some(Frame::Chunk(_)))));
    assert!(matches!(Frame::split(&mut buf), Ok(Some(Frame::StreamEnd))));
    assert!(matches!(Frame::split(&mut buf), Ok(None)));
}

#[test]
fn addresses_survive_the_wire_with_their_port_and_scope() {
    for text in [
        "203.0.113.7:65535",
        "[::1]:5",
        "[fe80::1%3]:443",
        "0.0.0.0:0",
    ] {
        let addr: std::net::SocketAddr = text.parse().unwrap();
        let mut out = BytesMut::new();
        put_addr(&mut out, &addr);
        let mut reader = Reader::new(out.freeze());
        assert_eq!(reader.addr().unwrap(), addr);
        assert!(reader.is_empty());
    }
    for bad in [
        &[5u8, 1, 2, 3, 4, 0, 0][..],
        &[4, 1, 2, 3, 4, 0],
        &[6, 0, 0],
    ] {
        let mut reader = Reader::new(Bytes::copy_from_slice(bad));
        assert!(reader.addr().is_err(), "{bad:?}");
    }
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    for bad in [
        &[0u8, 0, 0, 0, 1][..],
        &[1, 0, 0, 0, 99],
        &[3, 0, 0, 0, 11, 1, 0],
        &[2, 0, 0, 0, 2, 0],
        &[5, 0, 0, 0, 13, 200, 0, 0, 0],
    ] {
        let mut buf = BytesMut::from(bad);
        assert!(Frame::split(&mut buf).is_err(), "{bad:?}");
    }
}

#[test]
fn descriptors_travel_with_their_frame_in_order() {
    use std::collections::VecDeque;
    use std::io::{Read, Write};
    use std::os::fd::{AsRawFd, OwnedFd};
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut pipes = Vec::new();
    for _ in 0..2 {
        let (r, mut w) = std::os::unix::net::UnixStream::pair().unwrap();
        w.write_all(b"x").unwrap();
        pipes.push((OwnedFd::from(r), w));
    }
    for (i, (r, _)) in pipes.iter().enumerate() {
        let mut out = BytesMut::new();
        Frame::Fork { id: i as u64 }.encode(&mut out);
        super::super::fds::send(a.as_raw_fd(), &out, &[r.as_raw_fd()]).unwrap();
    }
    let mut got = VecDeque::new();
    let mut buf = BytesMut::new();
    while got.len() < 2 || buf.len() < 2 * 13 {
        let mut chunk = [0u8; 64];
        let n = super::super::fds::recv(b.as_raw_fd(), &mut chunk, &mut got).unwrap();
        assert!(n > 0);
        buf.extend_from_slice(&chunk[..n]);
    }
    for i in 0..2 {
        assert!(matches!(Frame::split(&mut buf), Ok(Some(Frame::Fork { id })) if id == i));
        let mut stream = std::os::unix::net::UnixStream::from(got.pop_front().unwrap());
        let mut one = [0u8; 1];
        stream.read_exact(&mut one).unwrap();
        assert_eq!(&one, b"x");
    }
}

#[test]
fn a_spooled_body_travels_as_its_path_and_the_worker_does_not_delete_it() {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), b"spooled").unwrap();
    let path = file.path().to_owned();
    let request = RequestData {
        body: RequestBody::unowned_file(path.clone(), 7).unwrap(),
        ..RequestData::for_test(http::Method::PUT, "/f")
    };
    let Frame::Request(got) = roundtrip(&Frame::Request(Box::new(request))) else {
        panic!("not a request");
    };
    assert_eq!(got.body.file(), Some(path.as_path()));
    assert_eq!(got.body.len(), 7);
    assert_eq!(got.body.load().unwrap().as_ref(), b"spooled");
    drop(got);
    assert!(
        path.exists(),
        "the worker's copy must not delete the master's file"
    );
}

#[test]
fn spooled_fields_travel_as_their_path_and_the_worker_does_not_delete_them() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let path = file.path().to_owned();
    let request = RequestData {
        spooled_fields: crate::request::fields::SpooledFields::unowned(&path),
        ..RequestData::for_test(http::Method::POST, "/f")
    };
    let Frame::Request(got) = roundtrip(&Frame::Request(Box::new(request))) else {
        panic!("not a request");
    };
    assert_eq!(
        got.spooled_fields.as_ref().map(|f| f.path()),
        Some(path.as_path())
    );
    drop(got);
    assert!(
        path.exists(),
        "the worker's copy must not delete the master's file"
    );
    let Frame::Request(none) = roundtrip(&Frame::Request(Box::new(RequestData::for_test(
        http::Method::GET,
        "/",
    )))) else {
        panic!("not a request");
    };
    assert!(none.spooled_fields.is_none());
}

/// Reads as a channel would give them: each call returns the next piece (at most what fits).
fn pieces(
    mut pieces: Vec<std::io::Result<Vec<u8>>>,
) -> impl FnMut(&mut [u8]) -> std::io::Result<usize> {
    pieces.reverse();
    move |buf| match pieces.pop() {
        Some(Ok(piece)) => {
            assert!(
                piece.len() <= buf.len(),
                "a piece larger than the reader's chunk"
            );
            buf[..piece.len()].copy_from_slice(&piece);
            Ok(piece.len())
        }
        Some(Err(e)) => Err(e),
        None => Ok(0),
    }
}

fn encoded(frames: &[Frame]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for frame in frames {
        frame.encode(&mut out);
    }
    out.to_vec()
}

#[test]
fn the_blocking_reader_waits_for_a_whole_frame_across_reads() {
    let bytes = encoded(&[Frame::Error("x".repeat(300))]);
    let mut read = pieces(bytes.chunks(7).map(|c| Ok(c.to_vec())).collect());
    let mut reader = FrameReader::new(16);
    match reader.next_blocking(&mut read) {
        Ok(Some(Frame::Error(m))) => assert_eq!(m.len(), 300),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        reader.next_blocking(&mut read),
        Err(ReadError::Closed)
    ));
}

#[test]
fn the_blocking_reader_gives_several_frames_of_one_read_in_order_without_reading_again() {
    let bytes = encoded(&[Frame::Fork { id: 7 }, Frame::Stop, Frame::Ready]);
    let mut reads = 0;
    let mut one = Some(bytes);
    let mut reader = FrameReader::new(4096);
    let mut read = |buf: &mut [u8]| {
        reads += 1;
        let piece = one.take().unwrap_or_default();
        buf[..piece.len()].copy_from_slice(&piece);
        Ok(piece.len())
    };
    assert!(matches!(
        reader.next_blocking(&mut read),
        Ok(Some(Frame::Fork { id: 7 }))
    ));
    assert!(matches!(
        reader.next_blocking(&mut read),
        Ok(Some(Frame::Stop))
    ));
    assert!(matches!(
        reader.next_blocking(&mut read),
        Ok(Some(Frame::Ready))
    ));
    assert!(matches!(
        reader.next_blocking(&mut read),
        Err(ReadError::Closed)
    ));
    assert_eq!(reads, 2, "one read for the three frames, one for the end");
}

#[test]
fn a_timeout_or_a_signal_keeps_the_bytes_read_so_far() {
    let bytes = encoded(&[Frame::Stop]);
    let (head, tail) = bytes.split_at(3);
    let mut read = pieces(vec![
        Ok(head.to_vec()),
        Err(std::io::ErrorKind::WouldBlock.into()),
        Err(std::io::ErrorKind::Interrupted.into()),
        Ok(tail.to_vec()),
    ]);
    let mut reader = FrameReader::new(64);
    assert!(matches!(reader.next_blocking(&mut read), Ok(None)));
    assert!(matches!(reader.next_blocking(&mut read), Ok(None)));
    assert!(matches!(
        reader.next_blocking(&mut read),
        Ok(Some(Frame::Stop))
    ));
}

#[test]
fn an_end_or_an_error_in_the_middle_of_a_frame_is_the_end() {
    let bytes = encoded(&[Frame::Chunk(Bytes::from_static(b"abcdef"))]);
    let half = bytes[..bytes.len() / 2].to_vec();
    let mut reader = FrameReader::new(64);
    assert!(matches!(
        reader.next_blocking(pieces(vec![Ok(half.clone())])),
        Err(ReadError::Closed)
    ));
    let mut reader = FrameReader::new(64);
    let broken = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
    assert!(matches!(
        reader.next_blocking(pieces(vec![Ok(half), Err(broken)])),
        Err(ReadError::Closed)
    ));
}

#[test]
fn garbage_and_frames_over_the_limit_are_typed_errors() {
    let mut reader = FrameReader::new(64);
    let garbage = vec![Ok(vec![1u8, 0, 0, 0, 99])];
    assert!(matches!(
        reader.next_blocking(pieces(garbage)),
        Err(ReadError::Malformed(_))
    ));
    // Refused from its length prefix alone: nothing of it is buffered or awaited.
    let mut reader = FrameReader::new(64).limit(4096);
    let huge = vec![Ok(vec![0xff, 0xff, 0xff, 0x7f])];
    match reader.next_blocking(pieces(huge)) {
        Err(ReadError::TooLarge { len, max }) => assert_eq!((len, max), (0x7fff_ffff, 4096)),
        other => panic!("{other:?}"),
    }
    let fits = encoded(&[Frame::Error("y".repeat(4000))]);
    let mut reader = FrameReader::new(8192).limit(4096);
    assert!(matches!(
        reader.next_blocking(pieces(vec![Ok(fits)])),
        Ok(Some(Frame::Error(_)))
    ));
}

#[tokio::test]
async fn the_async_reader_waits_for_whole_frames_then_tells_the_end() {
    use tokio::io::AsyncWriteExt;
    let (mut a, mut b) = tokio::io::duplex(64);
    let out = encoded(&[Frame::Ready, Frame::Error("x".repeat(300))]);
    tokio::spawn(async move {
        for piece in out.chunks(7) {
            a.write_all(piece).await.unwrap();
        }
    });
    let mut reader = FrameReader::new(16);
    assert!(matches!(reader.next(&mut b).await, Ok(Frame::Ready)));
    match reader.next(&mut b).await {
        Ok(Frame::Error(m)) => assert_eq!(m.len(), 300),
        other => panic!("{other:?}"),
    }
    assert!(matches!(reader.next(&mut b).await, Err(ReadError::Closed)));
}

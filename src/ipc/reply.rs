//! A worker's answer crosses the channel as a frame: [`Reply`] to [`Frame`] in the worker,
//! and back in the master. Streamed answers are several frames (`StreamHead`, `Chunk`s,
//! `StreamEnd`) and are put together by the master's handle task.
use super::Frame;
use crate::dispatch::Reply;
use crate::stream::FileReply;
use crate::velox::BuildOrder;

impl Frame {
    /// The frame of a whole answer; the reply back when it cannot cross processes (a stream
    /// fed by another thread, a server-made answer).
    pub fn from_reply(reply: Reply) -> Result<Frame, Box<Reply>> {
        Ok(match reply {
            Reply::Full {
                status,
                headers,
                body,
            } => Frame::Full {
                status,
                headers,
                body,
            },
            Reply::File(file) => Frame::File {
                path: file.path.to_string_lossy().into_owned(),
                status: file.status,
                headers: file.headers,
            },
            Reply::Velox(order) => Frame::Velox {
                body: order.body,
                gzip: order.gzip,
                headers: order.headers,
            },
            Reply::WorkerError(message) => Frame::Error(message),
            other => return Err(Box::new(other)),
        })
    }

    /// The answer a whole-answer frame carries (`Full`, `File`, `Velox`, `Error`); the frame
    /// back when it is not one.
    pub fn into_reply(self) -> Result<Reply, Box<Frame>> {
        Ok(match self {
            Frame::Full {
                status,
                headers,
                body,
            } => Reply::Full {
                status,
                headers,
                body,
            },
            Frame::File {
                path,
                status,
                headers,
            } => Reply::File(FileReply {
                path: path.into(),
                status,
                headers,
            }),
            Frame::Velox {
                body,
                gzip,
                headers,
            } => Reply::Velox(BuildOrder {
                body,
                gzip,
                headers,
            }),
            Frame::Error(message) => Reply::WorkerError(message),
            other => return Err(Box::new(other)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::{HeaderMap, StatusCode};

    #[test]
    fn whole_answers_cross_both_ways() {
        let mut headers = HeaderMap::new();
        headers.insert("x-a", "1".parse().unwrap());
        let full = Reply::Full {
            status: StatusCode::CREATED,
            headers: headers.clone(),
            body: Bytes::from_static(b"hi"),
        };
        match Frame::from_reply(full)
            .ok()
            .expect("a whole answer")
            .into_reply()
        {
            Ok(Reply::Full {
                status,
                headers: h,
                body,
            }) => assert_eq!(
                (status, h, &body[..]),
                (StatusCode::CREATED, headers.clone(), &b"hi"[..])
            ),
            _ => panic!("not a full answer"),
        }
        let file = Reply::File(FileReply {
            path: "/tmp/x".into(),
            status: StatusCode::OK,
            headers,
        });
        match Frame::from_reply(file)
            .ok()
            .expect("a whole answer")
            .into_reply()
        {
            Ok(Reply::File(f)) => assert_eq!(f.path, std::path::PathBuf::from("/tmp/x")),
            _ => panic!("not a file answer"),
        }
        match Frame::from_reply(Reply::WorkerError("boom".into()))
            .ok()
            .expect("a whole answer")
            .into_reply()
        {
            Ok(Reply::WorkerError(m)) => assert_eq!(m, "boom"),
            _ => panic!("not an error"),
        }
        assert!(Frame::from_reply(Reply::Crashed).is_err());
        assert!(Frame::Ready.into_reply().is_err());
    }
}

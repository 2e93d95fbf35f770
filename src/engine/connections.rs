//! What a template would hand every forked worker without meaning to: stream sockets that are
//! connected to a peer (a database, Redis, Memcached, LDAP...). Forked workers would share each
//! one, write requests into it in turn and read each other's replies, which is how one user
//! gets another user's data. The template checks before its first fork (docs/pool.md,
//! "Connections and fork").
use std::fmt;
use std::os::fd::RawFd;

/// A connected stream socket found open in this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub fd: RawFd,
    /// The peer: `ip:port`, a unix socket's path, or `an unnamed unix socket`.
    pub peer: String,
}

impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fd {} to {}", self.fd, self.peer)
    }
}

/// The connected stream sockets among this process's descriptors above stderr, except `ours`.
pub fn open(ours: &[RawFd]) -> Vec<Connection> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    let mut fds: Vec<RawFd> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2 && !ours.contains(fd))
        .collect();
    fds.sort_unstable();
    fds.into_iter()
        .filter_map(|fd| {
            Some(Connection {
                fd,
                peer: peer(fd)?,
            })
        })
        .collect()
}

/// The peer of `fd` when it is a connected stream socket.
fn peer(fd: RawFd) -> Option<String> {
    let mut kind: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `kind` and `len` are valid for writes of the sizes given; a descriptor that is not
    // a socket (or was closed meanwhile, e.g. read_dir's own) makes the call fail, nothing else.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&mut kind as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc != 0 || kind != libc::SOCK_STREAM {
        return None;
    }
    // SAFETY: an all-zero sockaddr_storage is a valid value of that plain C struct.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `addr` is valid for `len` bytes of writes; getpeername writes at most that and
    // sets `len` to the address's size. A listening or unconnected socket fails with ENOTCONN.
    let rc = unsafe {
        libc::getpeername(
            fd,
            (&mut addr as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return None;
    }
    Some(describe(&addr, len as usize))
}

fn describe(addr: &libc::sockaddr_storage, len: usize) -> String {
    match addr.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let a: &libc::sockaddr_in = unsafe { &*(addr as *const _ as *const libc::sockaddr_in) };
            let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            format!("{ip}:{}", u16::from_be(a.sin_port))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let a: &libc::sockaddr_in6 =
                unsafe { &*(addr as *const _ as *const libc::sockaddr_in6) };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            format!("[{ip}]:{}", u16::from_be(a.sin6_port))
        }
        libc::AF_UNIX => {
            // SAFETY: the family says the storage holds a sockaddr_un.
            let a: &libc::sockaddr_un = unsafe { &*(addr as *const _ as *const libc::sockaddr_un) };
            let offset = std::mem::size_of::<libc::sa_family_t>();
            let path_len = len.saturating_sub(offset).min(a.sun_path.len());
            let bytes: Vec<u8> = a.sun_path[..path_len].iter().map(|&c| c as u8).collect();
            match bytes.first() {
                None => "an unnamed unix socket".to_owned(),
                // Linux's abstract namespace.
                Some(0) => format!("unix socket @{}", String::from_utf8_lossy(&bytes[1..])),
                Some(_) => {
                    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
                    format!("unix socket {}", String::from_utf8_lossy(&bytes[..end]))
                }
            }
        }
        family => format!("a socket of family {family}"),
    }
}

/// Why the template refuses to fork, naming every connection it found.
pub fn refusal(found: &[Connection]) -> String {
    let list: Vec<String> = found.iter().map(ToString::to_string).collect();
    format!(
        "rr pool template: connections are open at the first waitRequest(): {}; every forked \
         worker would share them and read the others' replies. Close them before forking \
         (RR\\Worker::beforeFork(), then reconnect lazily in the workers), or set \
         http.pool.template_connections: allow",
        list.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn connected_stream_sockets_are_found_with_their_peer() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let unix_listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let unix = std::os::unix::net::UnixStream::connect(&path).unwrap();
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        udp.connect(("127.0.0.1", port)).unwrap();

        let found = open(&[ours.as_raw_fd()]);
        let peer_of = |fd: RawFd| found.iter().find(|c| c.fd == fd).map(|c| c.peer.clone());
        assert_eq!(
            peer_of(client.as_raw_fd()),
            Some(format!("127.0.0.1:{port}"))
        );
        assert_eq!(
            peer_of(unix.as_raw_fd()),
            Some(format!("unix socket {}", path.display()))
        );
        assert_eq!(
            peer_of(theirs.as_raw_fd()),
            Some("an unnamed unix socket".into())
        );
        assert_eq!(peer_of(ours.as_raw_fd()), None, "excluded");
        assert_eq!(peer_of(listener.as_raw_fd()), None, "listening");
        assert_eq!(peer_of(unix_listener.as_raw_fd()), None, "listening");
        assert_eq!(peer_of(udp.as_raw_fd()), None, "datagrams");
        let message = refusal(&found);
        assert!(
            message.contains(&format!("to 127.0.0.1:{port}")),
            "{message}"
        );
    }
}

//! The listening socket and the process limits around it: a backlog of [`BACKLOG`], the soft
//! open-file limit raised to the hard one at start (each connection is a file), the connection
//! cap that follows from it, and what an `accept` error means.

use std::io;
use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpSocket};

/// Pending connections the kernel may queue before we accept them (also capped by
/// `net.core.somaxconn`).
pub const BACKLOG: u32 = 1024;

/// Open files kept free for the store, mail, logs and the accept that refuses a connection.
pub const FILE_RESERVE: u64 = 64;

/// Binds `addr` with [`BACKLOG`] and `SO_REUSEADDR` (a restart does not wait for old
/// connections in TIME_WAIT).
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Raises the soft open-file limit to the hard one and returns the soft limit in force.
pub fn raise_open_file_limit() -> io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

/// The connection cap: `explicit` when given, else the open-file limit less [`FILE_RESERVE`].
pub fn connection_cap(explicit: Option<usize>, open_files: u64) -> usize {
    explicit.unwrap_or_else(|| {
        let cap = open_files.saturating_sub(FILE_RESERVE).max(1);
        usize::try_from(cap).unwrap_or(usize::MAX)
    })
}

/// What a failed `accept` calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptFailure {
    /// The peer gave up between the handshake and our accept: nothing to do.
    PeerGone,
    /// Out of file descriptors or kernel memory: wait a moment for connections to close.
    Exhausted,
    /// Anything else: also wait a moment, so a persistent error cannot spin.
    Other,
}

impl AcceptFailure {
    /// Classifies an `accept` error.
    pub fn of(error: &io::Error) -> Self {
        // EMFILE, ENFILE, ENOBUFS, ENOMEM on Linux.
        const EXHAUSTED: [i32; 4] = [24, 23, 105, 12];
        match error.kind() {
            io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted => Self::PeerGone,
            _ if error
                .raw_os_error()
                .is_some_and(|code| EXHAUSTED.contains(&code)) =>
            {
                Self::Exhausted
            }
            _ => Self::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_is_the_file_limit_less_the_reserve_unless_given() {
        assert_eq!(connection_cap(None, 1024), 960);
        assert_eq!(connection_cap(None, 10), 1, "never zero");
        assert_eq!(connection_cap(Some(5), 1024), 5);
    }

    #[test]
    fn accept_errors_are_classified() {
        let emfile = io::Error::from_raw_os_error(24);
        assert_eq!(AcceptFailure::of(&emfile), AcceptFailure::Exhausted);
        let reset = io::Error::from(io::ErrorKind::ConnectionAborted);
        assert_eq!(AcceptFailure::of(&reset), AcceptFailure::PeerGone);
        let other = io::Error::from(io::ErrorKind::PermissionDenied);
        assert_eq!(AcceptFailure::of(&other), AcceptFailure::Other);
    }
}

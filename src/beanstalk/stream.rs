//! The door's listeners and connections: TCP, or a Unix socket (beanstalkd's `-l unix:PATH`).
//! A connection is read and written through [`Reader`] and [`Writer`], which are the same to
//! the rest of the door whichever kind of socket is under them.

use std::io;
use std::path::{Path, PathBuf};

use tokio::net::{TcpListener, UnixListener, tcp, unix};
use tokio_util::either::Either;

/// A listener of the beanstalk door.
pub enum Listener {
    Tcp(TcpListener),
    /// Bound at this path, which is removed when the door stops serving on it.
    Unix(UnixListener, PathBuf),
}

impl Listener {
    /// Binds a Unix socket at `path` as beanstalkd does: a socket already there (left by a
    /// server that did not stop cleanly) is replaced; any other file there is an error.
    pub fn bind_unix(path: &Path) -> io::Result<Self> {
        use std::os::unix::fs::FileTypeExt;
        match std::fs::symlink_metadata(path) {
            Ok(found) if found.file_type().is_socket() => std::fs::remove_file(path)?,
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "another file already exists at that path",
                ));
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
        Ok(Self::Unix(UnixListener::bind(path)?, path.to_owned()))
    }

    /// Where it listens, as `--beanstalk-listen` names it: `HOST:PORT` (the port bound), or
    /// `unix:PATH`.
    pub fn address(&self) -> String {
        match self {
            Listener::Tcp(listener) => listener
                .local_addr()
                .map_or_else(|err| format!("(no address: {err})"), |a| a.to_string()),
            Listener::Unix(_, path) => format!("unix:{}", path.display()),
        }
    }

    /// The next connection: its two halves and a name for the logs (the peer's address, or
    /// the socket's path).
    pub(super) async fn accept(&self) -> io::Result<(Reader, Writer, String)> {
        match self {
            Listener::Tcp(listener) => {
                let (stream, peer) = listener.accept().await?;
                if let Err(err) = stream.set_nodelay(true) {
                    tracing::debug!(error = %err, "beanstalk: TCP_NODELAY not set");
                }
                let (reader, writer) = stream.into_split();
                Ok((Either::Left(reader), Either::Left(writer), peer.to_string()))
            }
            Listener::Unix(listener, path) => {
                let (stream, _) = listener.accept().await?;
                let (reader, writer) = stream.into_split();
                let name = format!("unix:{}", path.display());
                Ok((Either::Right(reader), Either::Right(writer), name))
            }
        }
    }

    /// Stops listening; a Unix socket's file goes with it.
    pub(super) fn close(self) {
        if let Listener::Unix(listener, path) = self {
            drop(listener);
            if let Err(err) = std::fs::remove_file(&path) {
                tracing::debug!(error = %err, path = %path.display(), "beanstalk: socket file left");
            }
        }
    }
}

/// The reading half of a connection (tokio-util's `Either` reads and writes through
/// whichever half it holds).
pub(super) type Reader = Either<tcp::OwnedReadHalf, unix::OwnedReadHalf>;

/// The writing half of a connection.
pub(super) type Writer = Either<tcp::OwnedWriteHalf, unix::OwnedWriteHalf>;

//! [`Input`]: a connection's reader, bounded the way beanstalkd bounds it. A command line
//! must end (`\r\n`) within [`MAX_LINE`] bytes; a longer one is reported once and then
//! skipped through its end. Bodies are read by exact length (the caller checks the length
//! first) and skipped in chunks. The buffer never holds more than a line, a body, or one
//! read's worth of what a client sends ahead.

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::protocol::MAX_LINE;

/// How much one read takes from the socket at most.
const READ_CHUNK: usize = 4096;

/// What a connection sent next.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// A command line, without its `\r\n`.
    Line(Vec<u8>),
    /// [`MAX_LINE`] bytes without a `\r\n`: they are dropped; skip the rest of the line
    /// with [`Input::skip_line`].
    TooLong,
    /// The client closed the connection.
    Closed,
}

/// A connection's reader. See the module docs.
pub struct Input<R> {
    reader: R,
    buf: BytesMut,
}

fn crlf(data: &[u8]) -> Option<usize> {
    data.windows(2).position(|w| w == b"\r\n")
}

impl<R: AsyncRead + Unpin> Input<R> {
    pub fn new(reader: R) -> Self {
        Self {
            reader,
            buf: BytesMut::with_capacity(READ_CHUNK),
        }
    }

    /// Reads one more chunk; 0 when the client closed its side.
    async fn fill(&mut self) -> std::io::Result<usize> {
        self.buf.reserve(READ_CHUNK);
        let mut chunk = (&mut self.reader).take(READ_CHUNK as u64);
        chunk.read_buf(&mut self.buf).await
    }

    /// The next command line.
    pub async fn line(&mut self) -> std::io::Result<Next> {
        loop {
            let window = &self.buf[..self.buf.len().min(MAX_LINE)];
            if let Some(end) = crlf(window) {
                let line = self.buf.split_to(end + 2);
                return Ok(Next::Line(line[..end].to_vec()));
            }
            if self.buf.len() >= MAX_LINE {
                self.buf.advance(MAX_LINE);
                return Ok(Next::TooLong);
            }
            if self.fill().await? == 0 {
                return Ok(Next::Closed);
            }
        }
    }

    /// Drops everything through the next `\r\n` (after a line that was too long); `false`
    /// if the client closed first.
    pub async fn skip_line(&mut self) -> std::io::Result<bool> {
        loop {
            if let Some(end) = crlf(&self.buf) {
                self.buf.advance(end + 2);
                return Ok(true);
            }
            // Keep a last `\r`: its `\n` may come with the next read.
            let keep = usize::from(self.buf.ends_with(b"\r"));
            let drop = self.buf.len() - keep;
            self.buf.advance(drop);
            if self.fill().await? == 0 {
                return Ok(false);
            }
        }
    }

    /// Exactly `n` bytes (a body and its `\r\n`); `None` if the client closed first.
    pub async fn exact(&mut self, n: usize) -> std::io::Result<Option<Vec<u8>>> {
        while self.buf.len() < n {
            if self.fill().await? == 0 {
                return Ok(None);
            }
        }
        Ok(Some(self.buf.split_to(n).to_vec()))
    }

    /// Drops `n` bytes (the body of a job too big); `false` if the client closed first.
    pub async fn skip(&mut self, mut n: usize) -> std::io::Result<bool> {
        loop {
            let here = n.min(self.buf.len());
            self.buf.advance(here);
            n -= here;
            if n == 0 {
                return Ok(true);
            }
            if self.fill().await? == 0 {
                return Ok(false);
            }
        }
    }

    /// Completes when the client closes its side while a command waits (a `reserve`).
    /// What it sends meanwhile is kept for after, up to one line's worth and one read;
    /// beyond that nothing more is read until the wait ends (so it can pile up nothing).
    pub async fn closed(&mut self) -> std::io::Result<()> {
        while self.buf.len() < MAX_LINE {
            if self.fill().await? == 0 {
                return Ok(());
            }
        }
        std::future::pending().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(bytes: &[u8]) -> Input<&[u8]> {
        Input::new(bytes)
    }

    #[tokio::test]
    async fn lines_end_with_crlf_and_a_lone_newline_is_not_an_end() {
        let mut i = input(b"use a\r\nlist\ntubes\r\n");
        assert_eq!(i.line().await.unwrap(), Next::Line(b"use a".to_vec()));
        assert_eq!(i.line().await.unwrap(), Next::Line(b"list\ntubes".to_vec()));
        assert_eq!(i.line().await.unwrap(), Next::Closed);
    }

    #[tokio::test]
    async fn a_line_longer_than_224_bytes_is_refused_and_skipped_through_its_end() {
        // 222 bytes and the CRLF fit exactly.
        let mut fits = b"x".repeat(222);
        fits.extend_from_slice(b"\r\nnext\r\n");
        let mut i = input(&fits);
        assert!(matches!(i.line().await.unwrap(), Next::Line(l) if l.len() == 222));
        assert_eq!(i.line().await.unwrap(), Next::Line(b"next".to_vec()));

        let mut long = b"x".repeat(230);
        long.extend_from_slice(b"\r\nlist-tubes\r\n");
        let mut i = input(&long);
        assert_eq!(i.line().await.unwrap(), Next::TooLong);
        assert!(i.skip_line().await.unwrap());
        assert_eq!(i.line().await.unwrap(), Next::Line(b"list-tubes".to_vec()));

        // The 224th byte is the CR: the line is too long, and its LF ends the skip.
        let mut split = b"x".repeat(223);
        split.extend_from_slice(b"\r\nlost\r\nkept\r\n");
        let mut i = input(&split);
        assert_eq!(i.line().await.unwrap(), Next::TooLong);
        assert!(i.skip_line().await.unwrap());
        assert_eq!(i.line().await.unwrap(), Next::Line(b"kept".to_vec()));
    }

    #[tokio::test]
    async fn bodies_are_read_or_skipped_by_length() {
        let mut i = input(b"ab\r\ncd\r\nlist-tubes\r\n");
        assert_eq!(i.exact(4).await.unwrap(), Some(b"ab\r\n".to_vec()));
        assert!(i.skip(4).await.unwrap());
        assert_eq!(i.line().await.unwrap(), Next::Line(b"list-tubes".to_vec()));
        assert_eq!(i.exact(1).await.unwrap(), None);
    }
}

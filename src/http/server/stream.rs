//! The connection's byte stream: a deadline for the first bytes, and a
//! lingering close.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::time::Duration;

/// Bytes a connection must send before its first-request deadline is lifted:
/// the length of the HTTP/2 preface, which is what protocol detection reads.
const FIRST_BYTES: usize = 24;

/// Fails reads once `deadline` passes while the connection has sent fewer
/// than [`FIRST_BYTES`] bytes. hyper's header timeout starts only after
/// protocol detection, so without this a client that connects and stays
/// silent (or stops inside the HTTP/2 preface) would hold a socket forever.
///
/// It also closes connections gracefully ("lingering close", as nginx
/// does): on shutdown it sends FIN, then reads and discards what the client
/// is still sending, until the client closes, for at most [`LINGER_FOR`] and
/// [`LINGER_BYTES`]. Closing a socket with unread data resets the
/// connection, and a client still uploading a body the gateway refused
/// (413) would get that reset instead of the response.
pub(super) struct FirstBytesDeadline<IO> {
    inner: IO,
    remaining: usize,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    closing: Closing,
}

/// Where a connection is in its graceful close.
enum Closing {
    Open,
    /// FIN sent; discarding input until the deadline.
    Lingering {
        until: Pin<Box<tokio::time::Sleep>>,
        discarded: usize,
    },
    Closed,
}

/// How long a closing connection keeps reading the client's leftovers.
const LINGER_FOR: Duration = Duration::from_secs(2);
/// How much of them it reads at most.
const LINGER_BYTES: usize = 32 * 1024 * 1024;

impl<IO> FirstBytesDeadline<IO> {
    pub(super) fn new(inner: IO, limit: Duration) -> Self {
        Self {
            inner,
            remaining: FIRST_BYTES,
            deadline: Some(Box::pin(tokio::time::sleep(limit))),
            closing: Closing::Open,
        }
    }
}

impl<IO: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for FirstBytesDeadline<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        if let Some(deadline) = self.deadline.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            return std::task::Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no request within the header read timeout",
            )));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if polled.is_ready() && self.deadline.is_some() {
            let read = buf.filled().len() - before;
            self.remaining = self.remaining.saturating_sub(read);
            if self.remaining == 0 {
                self.deadline = None;
            }
        }
        polled
    }
}

impl<IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite
    for FirstBytesDeadline<IO>
{
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        use std::task::Poll;
        let this = &mut *self;
        if matches!(this.closing, Closing::Open) {
            std::task::ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
            this.closing = Closing::Lingering {
                until: Box::pin(tokio::time::sleep(LINGER_FOR)),
                discarded: 0,
            };
        }
        let Closing::Lingering { until, discarded } = &mut this.closing else {
            return Poll::Ready(Ok(()));
        };
        let mut scratch = [0u8; 8192];
        loop {
            let mut buf = tokio::io::ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    *discarded += buf.filled().len();
                    if *discarded >= LINGER_BYTES {
                        break;
                    }
                }
                // The client closed, or the connection failed.
                Poll::Ready(_) => break,
                Poll::Pending => {
                    if until.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    break;
                }
            }
        }
        this.closing = Closing::Closed;
        Poll::Ready(Ok(()))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> std::task::Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

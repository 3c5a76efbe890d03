//! The client's socket, plain TCP or TLS: a read buffer split into whole
//! frames, and an output buffer written in as few system calls as the exchange
//! allows.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::protocol::frame::shrink_if_idle;
use crate::protocol::{FrameLimits, Message, ProtocolError, StartupPacket};

/// Why a session ends early.
#[derive(Debug)]
pub(crate) enum SessionEnd {
    /// The client closed its socket or a write to it failed: nothing more to say.
    ClientGone,
    /// The client broke the protocol: tell it (08P01) and close.
    Protocol(ProtocolError),
    /// The proxy is shutting down: the FATAL that says so is written, and
    /// the connection closes.
    Terminated,
}

impl From<std::io::Error> for SessionEnd {
    fn from(_: std::io::Error) -> Self {
        SessionEnd::ClientGone
    }
}

impl From<ProtocolError> for SessionEnd {
    fn from(error: ProtocolError) -> Self {
        SessionEnd::Protocol(error)
    }
}

/// The transport under a client connection: one match per read or write, no
/// allocation and no dynamic dispatch on the hot path.
enum ClientStream {
    /// Plain TCP, before (or without) TLS.
    Plain(TcpStream),
    /// TLS over TCP, after an SSLRequest answered `S`. Boxed: rustls state is
    /// large, and a plaintext client should not pay for it.
    Tls(Box<TlsStream<TcpStream>>),
    /// Handed to a TLS handshake that failed: the connection is over.
    Closed,
}

/// How long closing may wait for a client to take the last bytes.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

fn closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the client connection is closed",
    )
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            ClientStream::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
            ClientStream::Closed => Poll::Ready(Err(closed())),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            ClientStream::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
            ClientStream::Closed => Poll::Ready(Err(closed())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            ClientStream::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
            ClientStream::Closed => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            ClientStream::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
            ClientStream::Closed => Poll::Ready(Ok(())),
        }
    }
}

/// One client connection.
pub(crate) struct ClientConnection {
    stream: ClientStream,
    read_buffer: BytesMut,
    /// Bytes waiting to be written to the client.
    pub(crate) out: BytesMut,
    /// Frame limits: tight before authentication, `limits.max_message_bytes` after.
    limits: FrameLimits,
    logged_in: bool,
}

/// The capacity buffers start with.
const BUFFER_CAPACITY: usize = 8 * 1024;

/// Past this many pending output bytes, write them out even mid-result.
const OUT_HIGH_WATER: usize = 64 * 1024;

impl ClientConnection {
    pub(crate) fn new(stream: TcpStream) -> ClientConnection {
        ClientConnection {
            stream: ClientStream::Plain(stream),
            read_buffer: BytesMut::with_capacity(BUFFER_CAPACITY),
            out: BytesMut::with_capacity(BUFFER_CAPACITY),
            limits: FrameLimits::before_authentication(),
            logged_in: false,
        }
    }

    /// The client logged in: from now on its messages may be as large as
    /// `max_message_len`.
    pub(crate) fn set_logged_in(&mut self, max_message_len: usize) {
        self.limits = FrameLimits {
            max_message_len,
            ..FrameLimits::default()
        };
        self.logged_in = true;
    }

    /// Whether the client has logged in.
    pub(crate) fn logged_in(&self) -> bool {
        self.logged_in
    }

    /// The next startup-phase packet; `None` when the client closed first.
    pub(crate) async fn read_startup(&mut self) -> Result<Option<StartupPacket>, SessionEnd> {
        loop {
            if let Some(packet) = StartupPacket::split_from(&mut self.read_buffer, &self.limits)? {
                return Ok(Some(packet));
            }
            if self.fill().await? == 0 {
                return Ok(None);
            }
        }
    }

    /// The next whole message already buffered.
    pub(crate) fn buffered(&mut self) -> Result<Option<Message>, ProtocolError> {
        Message::split_from(&mut self.read_buffer, &self.limits)
    }

    /// The next message; `None` when the client closed between messages.
    pub(crate) async fn read_message(&mut self) -> Result<Option<Message>, SessionEnd> {
        loop {
            if let Some(message) = self.buffered()? {
                return Ok(Some(message));
            }
            // About to wait for the client: everything owed to it goes out first.
            self.flush().await?;
            if self.fill().await? == 0 {
                return Ok(None);
            }
        }
    }

    /// Splits off, in one piece, the whole messages at the front of the buffer
    /// up to and including the first whose tag `ends_run` accepts (all the
    /// whole ones if none does), with the tag of the last one taken. `None`
    /// when no whole message is buffered. Zero-copy: a run of COPY data goes
    /// to the node in one write, not one per message.
    pub(crate) fn split_run_through(
        &mut self,
        ends_run: impl Fn(u8) -> bool,
    ) -> Result<Option<(BytesMut, u8)>, ProtocolError> {
        let mut end = 0;
        let mut last = None;
        while let Some(length) =
            crate::protocol::frame::check_message(&self.read_buffer[end..], &self.limits)?
        {
            let tag = self.read_buffer[end];
            end += length;
            last = Some(tag);
            if ends_run(tag) {
                break;
            }
        }
        Ok(last.map(|tag| (self.read_buffer.split_to(end), tag)))
    }

    /// Reads more bytes (cancel-safe); 0 means the client closed.
    pub(crate) async fn fill(&mut self) -> std::io::Result<usize> {
        shrink_if_idle(&mut self.read_buffer);
        self.stream.read_buf(&mut self.read_buffer).await
    }

    /// Writes out everything pending.
    pub(crate) async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
            // TLS may keep records the socket did not take yet; TCP flushes at once.
            self.stream.flush().await?;
            self.out.clear();
            shrink_if_idle(&mut self.out);
        }
        Ok(())
    }

    /// Writes out pending bytes if there are many.
    pub(crate) async fn flush_if_full(&mut self) -> std::io::Result<()> {
        if self.out.len() >= OUT_HIGH_WATER {
            self.flush().await?;
        }
        Ok(())
    }

    /// Writes raw bytes at once (the one-byte SSL/GSS answer).
    pub(crate) async fn write_now(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.flush().await?;
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// How many bytes the client sent are read but not consumed yet.
    pub(crate) fn input_len(&self) -> usize {
        self.read_buffer.len()
    }

    /// Whether bytes the client sent are read but not consumed yet.
    pub(crate) fn has_buffered_input(&self) -> bool {
        !self.read_buffer.is_empty()
    }

    /// Whether the connection is encrypted.
    pub(crate) fn is_tls(&self) -> bool {
        matches!(self.stream, ClientStream::Tls(_))
    }

    /// Answers an SSLRequest with `S` and runs the TLS handshake; every later
    /// byte is encrypted. The caller has checked that no plaintext is buffered
    /// (it would otherwise be taken as sent over TLS). A failed handshake
    /// closes this connection only.
    pub(crate) async fn start_tls(&mut self, acceptor: &TlsAcceptor) -> std::io::Result<()> {
        debug_assert!(self.read_buffer.is_empty(), "plaintext buffered before TLS");
        self.write_now(b"S").await?;
        let ClientStream::Plain(tcp) = std::mem::replace(&mut self.stream, ClientStream::Closed)
        else {
            return Err(closed());
        };
        let tls = acceptor.accept(tcp).await?;
        self.stream = ClientStream::Tls(Box::new(tls));
        Ok(())
    }

    /// Ends the connection cleanly: for TLS, a close_notify before the FIN, so
    /// that the client reads the last message and not a truncation error.
    /// A client that stops reading cannot keep the session (and what it
    /// holds) alive: after [`CLOSE_GRACE`] the connection is simply dropped.
    pub(crate) async fn close(&mut self) {
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            if self.flush().await.is_ok() {
                let _ = self.stream.shutdown().await;
            }
        })
        .await;
    }
}

//! The client's socket: a read buffer split into whole frames, and an output
//! buffer written in as few system calls as the exchange allows.

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::protocol::{FrameLimits, Message, ProtocolError, StartupPacket};

/// Why a session ends early.
#[derive(Debug)]
pub(crate) enum SessionEnd {
    /// The client closed its socket or a write to it failed: nothing more to say.
    ClientGone,
    /// The client broke the protocol: tell it (08P01) and close.
    Protocol(ProtocolError),
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

/// One client connection.
pub(crate) struct ClientConnection {
    stream: TcpStream,
    read_buffer: BytesMut,
    /// Bytes waiting to be written to the client.
    pub(crate) out: BytesMut,
    /// Frame limits: tight before authentication, PostgreSQL's after.
    pub(crate) limits: FrameLimits,
}

/// Past this many pending output bytes, write them out even mid-result.
const OUT_HIGH_WATER: usize = 64 * 1024;

impl ClientConnection {
    pub(crate) fn new(stream: TcpStream) -> ClientConnection {
        ClientConnection {
            stream,
            read_buffer: BytesMut::with_capacity(8 * 1024),
            out: BytesMut::with_capacity(8 * 1024),
            limits: FrameLimits::before_authentication(),
        }
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

    /// The tag of the next message, when a whole one is buffered.
    pub(crate) fn peek_tag(&self) -> Result<Option<u8>, ProtocolError> {
        let whole = crate::protocol::frame::check_message(&self.read_buffer, &self.limits)?;
        Ok(whole.map(|_| self.read_buffer[0]))
    }

    /// Reads more bytes (cancel-safe); 0 means the client closed.
    pub(crate) async fn fill(&mut self) -> std::io::Result<usize> {
        self.stream.read_buf(&mut self.read_buffer).await
    }

    /// Writes out everything pending.
    pub(crate) async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
            self.out.clear();
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

    /// Writes raw bytes at once (the one-byte SSL/GSS refusal).
    pub(crate) async fn write_now(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.flush().await?;
        self.stream.write_all(bytes).await
    }
}

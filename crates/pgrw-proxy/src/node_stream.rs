//! The transport under a backend connection: TCP, a Unix socket (a node
//! whose `host` is a directory such as `/var/run/postgresql`), or TLS over
//! TCP after the node answered an SSLRequest with `S` — chosen per node by
//! its `sslmode` (see `pgrw_monitor::tls`). One match per read or write, no
//! dynamic dispatch.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use pgrw_monitor::tls::{NodeTlsClient, server_name, unix_socket_path};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::protocol::frontend::encode_ssl_request;

/// A connection to a node, before or after login.
pub(crate) enum NodeStream {
    /// Plain TCP.
    Tcp(TcpStream),
    /// A Unix socket in the node's socket directory.
    Unix(UnixStream),
    /// TLS over TCP. Boxed: rustls state is large.
    Tls(Box<TlsStream<TcpStream>>),
}

impl NodeStream {
    /// Opens a plain connection to `host` (a Unix socket directory when it
    /// starts with `/`) and `port`: for a CancelRequest, or the start of a login.
    pub(crate) async fn open(host: &str, port: u16) -> io::Result<NodeStream> {
        match unix_socket_path(host, port) {
            Some(path) => UnixStream::connect(&path)
                .await
                .map(NodeStream::Unix)
                .map_err(|error| {
                    io::Error::new(error.kind(), format!("{}: {error}", path.display()))
                }),
            None => {
                let stream = TcpStream::connect((host, port)).await?;
                stream.set_nodelay(true)?;
                Ok(NodeStream::Tcp(stream))
            }
        }
    }

    /// Opens a connection to `host` and `port` and negotiates TLS as `tls`
    /// says, ready for the StartupMessage. Over a Unix socket TLS is never
    /// asked for (as libpq does).
    pub(crate) async fn connect(
        host: &str,
        port: u16,
        tls: &NodeTlsClient,
    ) -> io::Result<NodeStream> {
        let (mut tcp, config) = match (NodeStream::open(host, port).await?, tls.config()) {
            (NodeStream::Tcp(tcp), Some(config)) => (tcp, config),
            (plain, _) => return Ok(plain),
        };
        let mode = tls.settings().mode;
        let mut request = BytesMut::new();
        encode_ssl_request(&mut request);
        tcp.write_all(&request).await?;
        let mut answer = [0u8; 1];
        tcp.read_exact(&mut answer).await?;
        if answer[0] != b'S' {
            if mode.allows_plaintext() {
                // `prefer`: the node does not do TLS; log in in plaintext.
                return Ok(NodeStream::Tcp(tcp));
            }
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!(
                    "the node does not accept TLS (sslmode = \"{mode}\"): set ssl = on in its \
                     postgresql.conf, or sslmode = \"prefer\" for this node"
                ),
            ));
        }
        let name = server_name(host).map_err(io::Error::other)?;
        TlsConnector::from(config.clone())
            .connect(name, tcp)
            .await
            .map(|tls| NodeStream::Tls(Box::new(tls)))
            .map_err(|error| {
                io::Error::new(
                    error.kind(),
                    tls.settings().describe_handshake_failure(&error),
                )
            })
    }

    /// Whether an idle connection still looks usable: nothing arrived unasked
    /// (a FATAL on shutdown, a TLS alert) and the node has not closed it.
    /// Never blocks; a byte it reads means the connection is discarded anyway.
    pub(crate) fn looks_alive(&self) -> bool {
        let mut probe = [0u8; 1];
        let read = match self {
            NodeStream::Tcp(tcp) => tcp.try_read(&mut probe),
            NodeStream::Unix(unix) => unix.try_read(&mut probe),
            NodeStream::Tls(tls) => tls.get_ref().0.try_read(&mut probe),
        };
        matches!(read, Err(error) if error.kind() == io::ErrorKind::WouldBlock)
    }
}

impl AsyncRead for NodeStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            NodeStream::Tcp(tcp) => Pin::new(tcp).poll_read(cx, buf),
            NodeStream::Unix(unix) => Pin::new(unix).poll_read(cx, buf),
            NodeStream::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for NodeStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            NodeStream::Tcp(tcp) => Pin::new(tcp).poll_write(cx, buf),
            NodeStream::Unix(unix) => Pin::new(unix).poll_write(cx, buf),
            NodeStream::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            NodeStream::Tcp(tcp) => Pin::new(tcp).poll_flush(cx),
            NodeStream::Unix(unix) => Pin::new(unix).poll_flush(cx),
            NodeStream::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            NodeStream::Tcp(tcp) => Pin::new(tcp).poll_shutdown(cx),
            NodeStream::Unix(unix) => Pin::new(unix).poll_shutdown(cx),
            NodeStream::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}

//! TLS to a node, as libpq's `sslmode` and `sslrootcert` describe it: whether
//! to ask for it, and what to verify. Shared by the monitor's probes and the
//! proxy's backend connections, so that both reach a node the same way.
//!
//! | `sslmode`     | asks for TLS | plaintext if refused | checks the certificate        |
//! |---------------|--------------|----------------------|-------------------------------|
//! | `disable`     | no           | —                    | —                             |
//! | `prefer`      | yes          | yes                  | no                            |
//! | `require`     | yes          | no                   | no                            |
//! | `verify-ca`   | yes          | no                   | signed by `sslrootcert`       |
//! | `verify-full` | yes          | no                   | … and issued for the host     |
//!
//! Over a Unix socket (a `host` starting with `/`) TLS is never asked for, as
//! libpq does not.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// Whether and how a connection to a node uses TLS (libpq's `sslmode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Plaintext only.
    Disable,
    /// TLS when the node offers it, plaintext otherwise; the certificate is
    /// not checked. libpq's default, and pgrw's.
    #[default]
    Prefer,
    /// TLS or no connection; the certificate is not checked.
    Require,
    /// TLS, with a certificate signed by the CA in `sslrootcert`.
    VerifyCa,
    /// TLS, with a certificate signed by the CA in `sslrootcert` and issued
    /// for the host name or IP address connected to.
    VerifyFull,
}

impl SslMode {
    /// The spelling in `pgrw.toml` and libpq.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Whether a node that answers the SSLRequest with `N` may be used in plaintext.
    pub fn allows_plaintext(self) -> bool {
        matches!(self, SslMode::Disable | SslMode::Prefer)
    }

    /// Whether the certificate is checked against `sslrootcert`.
    pub fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A node's TLS settings: the mode and the CA file that verifies it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeTls {
    /// Whether to ask for TLS and what to check.
    pub mode: SslMode,
    /// PEM file with the CA certificate(s) the node's certificate must chain
    /// to (`verify-ca`, `verify-full`).
    pub root_cert: Option<PathBuf>,
}

/// Why a node's TLS settings cannot be used. Each names the file given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeTlsError {
    /// `verify-ca`/`verify-full` without a CA file.
    #[error(
        "sslmode = \"{mode}\" needs sslrootcert, the PEM file of the CA that signed the node's certificate"
    )]
    MissingRootCert {
        /// The mode.
        mode: SslMode,
    },
    /// The CA file could not be read or holds no usable certificate.
    #[error("sslrootcert = {}: {problem}", given_path(file))]
    BadRootCert {
        /// The file as given.
        file: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
}

impl NodeTls {
    /// TLS off.
    pub fn disabled() -> NodeTls {
        NodeTls {
            mode: SslMode::Disable,
            root_cert: None,
        }
    }

    /// The rustls configuration for this node (`None` under `disable`): the
    /// CA file is read now, so call it once per node, not per connection.
    pub fn client_config(&self) -> Result<Option<Arc<ClientConfig>>, NodeTlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = match self.mode {
            SslMode::Disable => return Ok(None),
            SslMode::Prefer | SslMode::Require => None,
            SslMode::VerifyCa | SslMode::VerifyFull => {
                let file = self
                    .root_cert
                    .as_deref()
                    .ok_or(NodeTlsError::MissingRootCert { mode: self.mode })?;
                let roots = read_roots(file)?;
                let webpki =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|error| NodeTlsError::BadRootCert {
                            file: file.to_path_buf(),
                            problem: error.to_string(),
                        })?;
                Some(ChainCheck {
                    webpki,
                    check_name: self.mode == SslMode::VerifyFull,
                })
            }
        };
        let verifier = Arc::new(NodeCertVerifier {
            chain,
            algorithms: provider.signature_verification_algorithms,
        });
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| NodeTlsError::BadRootCert {
                file: PathBuf::new(),
                problem: error.to_string(),
            })?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(Some(Arc::new(config)))
    }

    /// A TLS handshake failure, in words that name what to check: the CA
    /// file given when the certificate was refused.
    pub fn describe_handshake_failure(&self, error: &std::io::Error) -> String {
        let refused_certificate = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .is_some_and(|inner| matches!(inner, rustls::Error::InvalidCertificate(_)));
        match (&self.root_cert, refused_certificate) {
            (Some(file), true) => format!(
                "TLS handshake failed (sslmode = \"{}\"): {error}; the node's certificate \
                 was checked against sslrootcert = {}: use the CA that signed it, or \
                 sslmode = \"require\" to skip the check",
                self.mode,
                given_path(file)
            ),
            _ => format!(
                "TLS handshake failed (sslmode = \"{}\"): {error}",
                self.mode
            ),
        }
    }
}

/// A node's TLS settings with their rustls configuration, built once (the
/// CA file read) for every connection to the node. Equal when the settings are.
#[derive(Debug, Clone)]
pub struct NodeTlsClient {
    settings: NodeTls,
    config: Option<Arc<ClientConfig>>,
}

impl NodeTlsClient {
    /// Reads the CA file `settings` name, if any.
    pub fn new(settings: NodeTls) -> Result<NodeTlsClient, NodeTlsError> {
        let config = settings.client_config()?;
        Ok(NodeTlsClient { settings, config })
    }

    /// Plaintext.
    pub fn disabled() -> NodeTlsClient {
        NodeTlsClient {
            settings: NodeTls::disabled(),
            config: None,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &NodeTls {
        &self.settings
    }

    /// The rustls configuration; `None` under `disable`.
    pub fn config(&self) -> Option<&Arc<ClientConfig>> {
        self.config.as_ref()
    }
}

impl PartialEq for NodeTlsClient {
    fn eq(&self, other: &NodeTlsClient) -> bool {
        self.settings == other.settings
    }
}

impl Eq for NodeTlsClient {}

/// A file as the configuration gave it, quoted, and where a relative one was
/// looked for: `"certs/ca.pem" (read as /etc/pgrw/certs/ca.pem)`.
pub fn given_path(path: &Path) -> String {
    let given = format!("{:?}", path.display().to_string());
    match std::path::absolute(path) {
        Ok(absolute) if path.is_relative() => format!("{given} (read as {})", absolute.display()),
        _ => given,
    }
}

/// The server name to check a node's certificate against (a host name or an IP address).
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_string())
        .map_err(|_| format!("host {host:?} is not a DNS name or IP address TLS can check"))
}

/// The socket file of a node whose `host` is a Unix socket directory
/// (`/var/run/postgresql` → `/var/run/postgresql/.s.PGSQL.5432`), as libpq
/// finds it; `None` for a TCP host.
pub fn unix_socket_path(host: &str, port: u16) -> Option<PathBuf> {
    host.starts_with('/')
        .then(|| Path::new(host).join(format!(".s.PGSQL.{port}")))
}

fn read_roots(file: &Path) -> Result<RootCertStore, NodeTlsError> {
    let bad = |problem: String| NodeTlsError::BadRootCert {
        file: file.to_path_buf(),
        problem,
    };
    let certificates = CertificateDer::pem_file_iter(file)
        .map_err(|error| bad(format!("cannot be read: {error}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| bad(format!("is not PEM: {error}")))?;
    if certificates.is_empty() {
        return Err(bad("holds no CERTIFICATE block".to_string()));
    }
    let mut roots = RootCertStore::empty();
    for certificate in certificates {
        roots
            .add(certificate)
            .map_err(|error| bad(format!("holds a certificate rustls refuses: {error}")))?;
    }
    Ok(roots)
}

/// What a node's certificate must be. The handshake's signatures are always
/// checked, so even unverified (`prefer`, `require`: encryption without
/// authentication, as libpq's) the connection is encrypted to whoever holds
/// the certificate's key.
#[derive(Debug)]
struct NodeCertVerifier {
    /// `verify-ca`, `verify-full`: the chain to check; `None` checks nothing.
    chain: Option<ChainCheck>,
    algorithms: WebPkiSupportedAlgorithms,
}

/// The chain must end at `sslrootcert`; under `verify-ca` a certificate
/// issued for another name is accepted.
#[derive(Debug)]
struct ChainCheck {
    webpki: Arc<WebPkiServerVerifier>,
    check_name: bool,
}

impl ServerCertVerifier for NodeCertVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !chain.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_modes_without_a_ca_file_say_which_key_is_missing() {
        let tls = NodeTls {
            mode: SslMode::VerifyFull,
            root_cert: None,
        };
        let error = tls.client_config().unwrap_err();
        assert!(error.to_string().contains("sslrootcert"), "{error}");
    }

    #[test]
    fn an_unreadable_ca_file_is_named_in_the_error() {
        let tls = NodeTls {
            mode: SslMode::VerifyCa,
            root_cert: Some(PathBuf::from("/nonexistent/pgrw-ca.pem")),
        };
        let error = tls.client_config().unwrap_err();
        assert!(
            error.to_string().contains("/nonexistent/pgrw-ca.pem"),
            "{error}"
        );
    }

    #[test]
    fn disable_builds_no_tls_and_prefer_builds_one_without_a_ca() {
        assert!(NodeTls::disabled().client_config().unwrap().is_none());
        assert!(NodeTls::default().client_config().unwrap().is_some());
    }

    #[test]
    fn a_relative_file_is_named_as_given_and_as_read() {
        let text = given_path(Path::new("certs/ca.pem"));
        assert!(text.starts_with("\"certs/ca.pem\" (read as /"), "{text}");
        assert!(text.ends_with("/certs/ca.pem)"), "{text}");
        assert_eq!(given_path(Path::new("/etc/ca.pem")), "\"/etc/ca.pem\"");
    }

    #[test]
    fn a_socket_directory_names_postgresqls_socket_file() {
        assert_eq!(
            unix_socket_path("/var/run/postgresql", 5433),
            Some(PathBuf::from("/var/run/postgresql/.s.PGSQL.5433"))
        );
        assert_eq!(unix_socket_path("127.0.0.1", 5433), None);
    }
}

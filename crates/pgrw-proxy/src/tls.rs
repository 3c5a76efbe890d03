//! TLS between clients and the proxy: the `[tls]` table of `pgrw.toml`, and
//! the certificate and key loaded once at bind into the acceptor that every
//! session answering an SSLRequest with `S` hands its socket to.
//!
//! ```toml
//! [tls]
//! cert_file = "/etc/pgrw/server.crt"   # PEM, the proxy's certificate first
//! key_file = "/etc/pgrw/server.key"    # PEM, its private key
//! mode = "require"                     # or "allow" (the default), "disable"
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use tokio_rustls::TlsAcceptor;

use crate::config::ConfigError;

/// Whether clients may, or must, encrypt their connection to the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// No TLS: every SSLRequest is answered `N`.
    Disable,
    /// TLS for the clients that ask for it, plaintext for the others.
    Allow,
    /// TLS only: a client that logs in without it gets FATAL 28000.
    Require,
}

/// The `[tls]` table: TLS between clients and the proxy (not to the nodes).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM file with the certificate chain, the proxy's own certificate first.
    pub cert_file: Option<PathBuf>,
    /// PEM file with the unencrypted private key of that certificate.
    pub key_file: Option<PathBuf>,
    /// Default: `allow` when both files are set, else `disable`.
    pub mode: Option<TlsMode>,
}

impl TlsConfig {
    /// The mode in force, defaults applied.
    pub fn mode(&self) -> TlsMode {
        match (self.mode, &self.cert_file, &self.key_file) {
            (Some(mode), _, _) => mode,
            (None, Some(_), Some(_)) => TlsMode::Allow,
            (None, _, _) => TlsMode::Disable,
        }
    }

    /// Checks that the keys agree with each other (the files are read at bind).
    pub(crate) fn check(&self, source_name: &str) -> Result<(), ConfigError> {
        let invalid = |key: &str, problem: &str, fix: &str| ConfigError::Invalid {
            source_name: source_name.to_string(),
            key: key.to_string(),
            problem: problem.to_string(),
            fix: fix.to_string(),
        };
        match (&self.cert_file, &self.key_file) {
            (Some(_), None) => Err(invalid(
                "tls.key_file",
                "is missing while tls.cert_file is set",
                "set it to the PEM file with the certificate's private key",
            )),
            (None, Some(_)) => Err(invalid(
                "tls.cert_file",
                "is missing while tls.key_file is set",
                "set it to the PEM file with the certificate chain",
            )),
            (None, None) if self.mode() != TlsMode::Disable => Err(invalid(
                "tls.mode",
                "asks for TLS but no certificate is configured",
                "set tls.cert_file and tls.key_file, or mode = \"disable\"",
            )),
            _ => Ok(()),
        }
    }
}

/// TLS for clients as loaded at bind: what a session does with an SSLRequest
/// and with a client that logs in without one.
#[derive(Clone)]
pub struct ClientTls {
    /// `None` when TLS is disabled.
    acceptor: Option<TlsAcceptor>,
    required: bool,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("offered", &self.acceptor.is_some())
            .field("required", &self.required)
            .finish()
    }
}

/// The ALPN protocol name PostgreSQL 17 and later negotiate.
const ALPN_POSTGRESQL: &[u8] = b"postgresql";

impl ClientTls {
    /// No TLS: every SSLRequest is answered `N`.
    pub fn disabled() -> ClientTls {
        ClientTls {
            acceptor: None,
            required: false,
        }
    }

    /// Reads the certificate chain and key named by `config` (nothing when
    /// TLS is disabled). Every failure names the key at fault and the fix.
    pub fn load(config: &TlsConfig) -> Result<ClientTls, ConfigError> {
        let mode = config.mode();
        let (Some(cert_file), Some(key_file)) = (&config.cert_file, &config.key_file) else {
            // `TlsConfig::check` refused TLS without files already.
            return Ok(ClientTls::disabled());
        };
        if mode == TlsMode::Disable {
            return Ok(ClientTls::disabled());
        }
        let chain = read_chain(cert_file)?;
        let key = read_key(key_file)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut server = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| invalid("tls", &error.to_string(), "report this as a pgrw bug"))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|error| match error {
                rustls::Error::InconsistentKeys(_) => invalid(
                    "tls.key_file",
                    &format!(
                        "= {} is not the key of the certificate in tls.cert_file",
                        quoted(key_file)
                    ),
                    "use the private key the certificate was issued for",
                ),
                other => invalid(
                    "tls.key_file",
                    &format!("= {} cannot be used: {other}", quoted(key_file)),
                    "use an RSA, ECDSA or Ed25519 key in PEM (PKCS#8, PKCS#1 or SEC1)",
                ),
            })?;
        server.alpn_protocols = vec![ALPN_POSTGRESQL.to_vec()];
        Ok(ClientTls {
            acceptor: Some(TlsAcceptor::from(Arc::new(server))),
            required: mode == TlsMode::Require,
        })
    }

    /// The acceptor an SSLRequest is answered with, when TLS is on.
    pub(crate) fn acceptor(&self) -> Option<&TlsAcceptor> {
        self.acceptor.as_ref()
    }

    /// Whether a client must use TLS to log in.
    pub fn required(&self) -> bool {
        self.required
    }
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let fix = "point it at a PEM file with the proxy's certificate first, then its CA chain";
    let text = std::fs::read(path).map_err(|error| {
        invalid(
            "tls.cert_file",
            &format!("= {} cannot be read: {error}", quoted(path)),
            fix,
        )
    })?;
    let chain = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| {
            invalid(
                "tls.cert_file",
                &format!("= {} is not valid PEM: {error}", quoted(path)),
                fix,
            )
        })?;
    if chain.is_empty() {
        return Err(invalid(
            "tls.cert_file",
            &format!("= {} holds no CERTIFICATE block", quoted(path)),
            fix,
        ));
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, ConfigError> {
    let fix = "point it at the certificate's unencrypted private key in PEM \
               (BEGIN PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)";
    let text = std::fs::read(path).map_err(|error| {
        invalid(
            "tls.key_file",
            &format!("= {} cannot be read: {error}", quoted(path)),
            fix,
        )
    })?;
    PrivateKeyDer::from_pem_slice(&text).map_err(|error| {
        let problem = match error {
            rustls::pki_types::pem::Error::NoItemsFound => "holds no private key".to_string(),
            other => format!("is not valid PEM: {other}"),
        };
        invalid(
            "tls.key_file",
            &format!("= {} {problem}", quoted(path)),
            fix,
        )
    })
}

fn quoted(path: &Path) -> String {
    pgrw_monitor::tls::given_path(path)
}

/// Loading happens at bind, after the file was parsed: errors name the file
/// as `pgrw.toml`, as [`crate::ProxyConfig::listen_addr`] does.
fn invalid(key: &str, problem: &str, fix: &str) -> ConfigError {
    ConfigError::Invalid {
        source_name: "pgrw.toml".to_string(),
        key: key.to_string(),
        problem: problem.to_string(),
        fix: fix.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate and its key, written to `dir` as `name.crt` and `name.key`.
    fn write_certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
            .expect("rcgen makes a certificate");
        let cert_file = dir.join(format!("{name}.crt"));
        let key_file = dir.join(format!("{name}.key"));
        std::fs::write(&cert_file, certified.cert.pem()).unwrap();
        std::fs::write(&key_file, certified.signing_key.serialize_pem()).unwrap();
        (cert_file, key_file)
    }

    fn config(cert_file: &Path, key_file: &Path, mode: Option<TlsMode>) -> TlsConfig {
        TlsConfig {
            cert_file: Some(cert_file.to_path_buf()),
            key_file: Some(key_file.to_path_buf()),
            mode,
        }
    }

    fn load_error(config: &TlsConfig) -> String {
        ClientTls::load(config)
            .expect_err("the files are refused")
            .to_string()
    }

    #[test]
    fn tls_is_off_without_files_and_allowed_with_them() {
        assert_eq!(TlsConfig::default().mode(), TlsMode::Disable);
        let with_files = config(Path::new("a.crt"), Path::new("a.key"), None);
        assert_eq!(with_files.mode(), TlsMode::Allow);
    }

    #[test]
    fn a_matching_certificate_and_key_load_and_offer_tls() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_certificate(dir.path(), "proxy");
        let allowed = ClientTls::load(&config(&cert, &key, None)).unwrap();
        assert!(allowed.acceptor().is_some() && !allowed.required());
        let required = ClientTls::load(&config(&cert, &key, Some(TlsMode::Require))).unwrap();
        assert!(required.acceptor().is_some() && required.required());
    }

    #[test]
    fn disable_reads_no_file() {
        let missing = Path::new("/nonexistent/proxy.crt");
        let tls = ClientTls::load(&config(missing, missing, Some(TlsMode::Disable))).unwrap();
        assert!(tls.acceptor().is_none());
    }

    #[test]
    fn a_missing_certificate_file_is_named_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let (_, key) = write_certificate(dir.path(), "proxy");
        let text = load_error(&config(&dir.path().join("absent.crt"), &key, None));
        assert!(
            text.contains("`tls.cert_file`")
                && text.contains("absent.crt")
                && text.contains("cannot be read")
                && text.contains("fix:"),
            "{text}"
        );
    }

    #[test]
    fn a_certificate_file_without_a_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (_, key) = write_certificate(dir.path(), "proxy");
        let text = load_error(&config(&key, &key, None));
        assert!(
            text.contains("`tls.cert_file`") && text.contains("no CERTIFICATE"),
            "{text}"
        );
    }

    #[test]
    fn broken_pem_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, _) = write_certificate(dir.path(), "proxy");
        let broken = dir.path().join("broken.crt");
        std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\nnot base64!\n").unwrap();
        let text = load_error(&config(&broken, &cert, None));
        assert!(
            text.contains("`tls.cert_file`") && text.contains("not valid PEM"),
            "{text}"
        );
    }

    #[test]
    fn a_key_file_without_a_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, _) = write_certificate(dir.path(), "proxy");
        let text = load_error(&config(&cert, &cert, None));
        assert!(
            text.contains("`tls.key_file`") && text.contains("holds no private key"),
            "{text}"
        );
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, _) = write_certificate(dir.path(), "proxy");
        let (_, other_key) = write_certificate(dir.path(), "other");
        let text = load_error(&config(&cert, &other_key, None));
        assert!(
            text.contains("`tls.key_file`") && text.contains("is not the key of the certificate"),
            "{text}"
        );
    }

    const NODES_AND_USERS: &str = "[[nodes]]\nname = \"p\"\nport = 5432\n\
                                   [[users]]\nname = \"a\"\npassword = \"b\"\n";

    #[test]
    fn the_tls_table_is_read_from_pgrw_toml() {
        let text = format!(
            "{NODES_AND_USERS}[tls]\ncert_file = \"a.crt\"\nkey_file = \"a.key\"\nmode = \"require\"\n"
        );
        let config = crate::ProxyConfig::from_toml("pgrw.toml", &text).unwrap();
        assert_eq!(config.tls.cert_file, Some(PathBuf::from("a.crt")));
        assert_eq!(config.tls.mode(), TlsMode::Require);
    }

    #[test]
    fn pgrw_toml_with_require_and_no_certificate_is_refused() {
        let text = format!("{NODES_AND_USERS}[tls]\nmode = \"require\"\n");
        let error = crate::ProxyConfig::from_toml("pgrw.toml", &text).unwrap_err();
        assert!(error.to_string().contains("`tls.mode`"), "{error}");
    }

    #[test]
    fn an_unknown_tls_mode_is_refused_with_the_spellings() {
        let text = format!("{NODES_AND_USERS}[tls]\nmode = \"prefer\"\n");
        let error = crate::ProxyConfig::from_toml("pgrw.toml", &text).unwrap_err();
        assert!(error.to_string().contains("require"), "{error}");
    }

    fn check_error(config: &TlsConfig) -> String {
        config
            .check("pgrw.toml")
            .expect_err("the table is refused")
            .to_string()
    }

    #[test]
    fn require_without_a_certificate_says_what_to_set() {
        let text = check_error(&TlsConfig {
            mode: Some(TlsMode::Require),
            ..TlsConfig::default()
        });
        assert!(
            text.contains("`tls.mode`") && text.contains("tls.cert_file"),
            "{text}"
        );
    }

    #[test]
    fn a_certificate_without_its_key_is_refused() {
        let text = check_error(&TlsConfig {
            cert_file: Some("proxy.crt".into()),
            ..TlsConfig::default()
        });
        assert!(text.contains("`tls.key_file`"), "{text}");
    }

    #[test]
    fn a_key_without_its_certificate_is_refused() {
        let text = check_error(&TlsConfig {
            key_file: Some("proxy.key".into()),
            ..TlsConfig::default()
        });
        assert!(text.contains("`tls.cert_file`"), "{text}");
    }
}

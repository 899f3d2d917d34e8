//! TLS to Redis: which certificates a `rediss://` connection trusts and shows, read and
//! checked before the first connection, and the crypto provider it needs.
//!
//! Managed Redis services require TLS, so it is never a weaker connection in disguise: the
//! server's certificate and host name are always verified, by default against Mozilla's
//! root certificates compiled into the binary (the distroless image has no `/etc/ssl`),
//! or against the private CA in `REDIS_TLS_CA_FILE`, which then replaces them. There is no
//! opt-out. `REDIS_TLS_CERT_FILE` and `REDIS_TLS_KEY_FILE` give a client certificate for
//! mutual TLS. Each file follows the password file's rules and is parsed at start, so a
//! wrong file is a one-line configuration error, not a failed handshake on every tick.
//!
//! redis-rs builds its rustls configuration on the process-wide crypto provider, which
//! rustls picks by itself only while one provider is compiled in, and panics at the first
//! handshake otherwise; every TLS client is built through [`client`], which installs ring's
//! first, so a dependency that compiles in a second provider cannot make that panic.

use std::mem::{Discriminant, discriminant};
use std::path::Path;
use std::sync::Arc;

use redis::{
    Client, ClientTlsConfig, ConnectionAddr, ConnectionInfo, RedisError, RedisResult,
    TlsCertificates,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{AlertDescription, CertificateError, ClientConfig, RootCertStore};

use super::error::TargetError;
use crate::setting_file;

/// The variable naming a PEM file of CA certificates to trust instead of Mozilla's roots.
pub const CA_FILE_ENV: &str = "REDIS_TLS_CA_FILE";

/// The variable naming the PEM client certificate (chain) for mutual TLS.
pub const CERT_FILE_ENV: &str = "REDIS_TLS_CERT_FILE";

/// The variable naming the PEM private key of that client certificate.
pub const KEY_FILE_ENV: &str = "REDIS_TLS_KEY_FILE";

/// The largest certificate or key file read: room for a full CA bundle, not for mistakes.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// What a TLS connection trusts and shows; the default trusts Mozilla's roots and shows
/// no client certificate.
#[derive(Clone, Debug, Default)]
pub struct TlsSettings {
    certificates: Option<TlsCertificates>,
}

/// A TLS file that cannot be used: which setting, the path it gave, and why. `Display`
/// gives the reason, which a person reads after the setting's name and path.
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct FileError {
    /// The environment variable that named the file.
    pub setting: &'static str,
    /// The path it holds.
    pub path: String,
    /// What is wrong with the file.
    pub reason: FileProblem,
}

/// What is wrong with a TLS file.
#[derive(Debug, thiserror::Error)]
pub enum FileProblem {
    /// It cannot be read by the rules of every file a setting names.
    #[error(transparent)]
    File(setting_file::FileError),
    /// Its PEM does not parse.
    #[error("not PEM certificates: {0}")]
    NotPem(rustls::pki_types::pem::Error),
    /// It holds no certificate.
    #[error("holds no PEM certificate (BEGIN CERTIFICATE)")]
    NoCertificate,
    /// A certificate in the CA file that cannot be a trust anchor.
    #[error("not a CA certificate: {0}")]
    NotCa(rustls::Error),
    /// A certificate or a key given without the other; the setting that is missing.
    #[error("{0} is not set; a client certificate needs its key and the key its certificate")]
    MissingPair(&'static str),
    /// The key file holds no private key.
    #[error("holds no PEM private key: {0}")]
    NoKey(rustls::pki_types::pem::Error),
    /// rustls has no protocol version to offer.
    #[error(transparent)]
    Protocol(rustls::Error),
    /// rustls refused the key for the certificate.
    #[error("does not fit the certificate in {CERT_FILE_ENV}: {0}")]
    KeyDoesNotFit(rustls::Error),
    /// The client certificate is X.509 version 1, which rustls refuses.
    #[error(
        "an X.509 version 1 certificate (issued without extensions), which TLS clients \
         refuse; re-issue it as version 3, e.g. openssl x509 -req … -extfile FILE with \
         extendedKeyUsage=clientAuth in FILE"
    )]
    VersionOne,
}

impl TlsSettings {
    /// Reads and checks the files named by [`CA_FILE_ENV`], [`CERT_FILE_ENV`] and
    /// [`KEY_FILE_ENV`] (empty: not set); `None` when none is set, so the caller can
    /// refuse them for a URL without TLS.
    pub fn from_files(ca: &str, cert: &str, key: &str) -> Result<Option<Self>, FileError> {
        let given = |path: &str| (!path.is_empty()).then(|| path.to_owned());
        let (ca, cert, key) = (given(ca), given(cert), given(key));
        if ca.is_none() && cert.is_none() && key.is_none() {
            return Ok(None);
        }
        let root_cert = ca.map(|path| read_roots(&path)).transpose()?;
        let client_tls = match (cert, key) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(read_identity(&cert, &key)?),
            (Some(path), None) => return Err(missing_pair(CERT_FILE_ENV, path, KEY_FILE_ENV)),
            (None, Some(path)) => return Err(missing_pair(KEY_FILE_ENV, path, CERT_FILE_ENV)),
        };
        Ok(Some(Self {
            certificates: Some(TlsCertificates {
                client_tls,
                root_cert,
            }),
        }))
    }

    /// The client for `info`, whose address must be a TLS one.
    pub fn client(&self, info: ConnectionInfo) -> RedisResult<Client> {
        install_crypto_provider();
        match &self.certificates {
            Some(certificates) => Client::build_with_tls(info, certificates.clone()),
            None => Client::open(info),
        }
    }
}

/// Puts `settings`, when given, into `tls`, the TLS of a URL naming several servers:
/// `Some` when the URL asked for TLS. Refused for a URL without it, where the files would
/// be silently ignored; the error suggests `tls_scheme`.
pub fn use_settings(
    tls: &mut Option<TlsSettings>,
    settings: Option<&TlsSettings>,
    tls_scheme: &'static str,
) -> Result<(), TargetError> {
    let Some(settings) = settings else {
        return Ok(());
    };
    let tls = tls.as_mut().ok_or(TargetError::NotTls(tls_scheme, None))?;
    *tls = settings.clone();
    Ok(())
}

/// Refuses the only switch a `rediss://` or `valkeys://` URL has, `#insecure`: it turns
/// verification off, which is never done.
pub fn refuse_insecure(info: &ConnectionInfo) -> Result<(), TargetError> {
    if matches!(info.addr(), ConnectionAddr::TcpTls { insecure: true, .. }) {
        return Err(TargetError::Insecure);
    }
    Ok(())
}

/// The client for a parsed URL: TLS with these settings for a `rediss://` or `valkeys://`
/// one (checked by [`refuse_insecure`]), plain TCP for any other.
pub fn url_client(info: ConnectionInfo, tls: &TlsSettings) -> Result<Client, TargetError> {
    Ok(tls.client(info)?)
}

/// Makes ring the process's crypto provider, once; later calls change nothing.
///
/// rustls picks ring by itself while it is the only provider compiled in; were a
/// dependency to add another (`aws-lc-rs`), it would panic at the first handshake instead.
pub fn install_crypto_provider() {
    // An error only says a provider is installed already, which is what is wanted.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// True when a TLS handshake failed on a certificate (an unknown CA, a wrong host name, an
/// expired certificate, a client certificate missing or refused): only a person can fix
/// that, so it is a refusal, like a wrong password. Told by rustls's error variant.
pub fn is_certificate_refusal(err: &RedisError) -> bool {
    matches!(
        cause::<rustls::Error>(err),
        Some(
            rustls::Error::InvalidCertificate(_)
                | rustls::Error::AlertReceived(_)
                | rustls::Error::NoCertificatesPresented
                | rustls::Error::PeerIncompatible(_)
        )
    )
}

/// What a server's alert about the worker's own certificate asks of the user, to go beside
/// the refusal: a server sends these alerts only about the certificate the client showed
/// (or did not show), so each names `REDIS_TLS_CERT_FILE`. `None` for any other failure.
pub fn client_certificate_hint(err: &RedisError) -> Option<&'static str> {
    let rustls::Error::AlertReceived(alert) = cause::<rustls::Error>(err)? else {
        return None;
    };
    match alert {
        AlertDescription::CertificateRequired => Some(
            "Redis asks for a client certificate: give it in REDIS_TLS_CERT_FILE and its key \
             in REDIS_TLS_KEY_FILE",
        ),
        AlertDescription::CertificateExpired => Some(
            "Redis says the client certificate in REDIS_TLS_CERT_FILE has expired: issue a \
             new one",
        ),
        AlertDescription::UnknownCA
        | AlertDescription::BadCertificate
        | AlertDescription::UnsupportedCertificate
        | AlertDescription::CertificateRevoked
        | AlertDescription::CertificateUnknown => Some(
            "Redis refused the client certificate in REDIS_TLS_CERT_FILE: it must be valid \
             now, issued for client authentication, and signed by a CA in Redis's \
             tls-ca-cert-file",
        ),
        _ => None,
    }
}

/// The first error of type `T` behind `err`: through redis-rs's shared error, an I/O
/// error's inner one, and any error's source, such as the context a Sentinel or Cluster
/// connection adds (`node_set`).
pub fn cause<T: std::error::Error + 'static>(err: &RedisError) -> Option<&T> {
    let mut current: &(dyn std::error::Error + 'static) = err;
    loop {
        if let Some(found) = current.downcast_ref::<T>() {
            return Some(found);
        }
        current = if let Some(shared) =
            current.downcast_ref::<Arc<dyn std::error::Error + Send + Sync>>()
        {
            &**shared
        } else if let Some(io) = current.downcast_ref::<std::io::Error>() {
            io.get_ref()?
        } else {
            current.source()?
        };
    }
}

fn read_pem(setting: &'static str, path: &str) -> Result<Vec<u8>, FileError> {
    setting_file::read(Path::new(path), MAX_FILE_BYTES, "PEM certificates or a key")
        .map_err(|err| file_error(setting, path, FileProblem::File(err)))
}

fn file_error(setting: &'static str, path: &str, reason: FileProblem) -> FileError {
    FileError {
        setting,
        path: path.to_owned(),
        reason,
    }
}

fn missing_pair(given: &'static str, path: String, missing: &'static str) -> FileError {
    FileError {
        setting: given,
        path,
        reason: FileProblem::MissingPair(missing),
    }
}

/// The certificates in the PEM file `setting` names; at least one.
fn certificates(
    setting: &'static str,
    path: &str,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, FileError> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| file_error(setting, path, FileProblem::NotPem(err)))?;
    if certificates.is_empty() {
        return Err(file_error(setting, path, FileProblem::NoCertificate));
    }
    Ok(certificates)
}

/// The CA file's PEM bytes, once every certificate in it is a usable trust anchor.
fn read_roots(path: &str) -> Result<Vec<u8>, FileError> {
    let pem = read_pem(CA_FILE_ENV, path)?;
    let mut roots = RootCertStore::empty();
    for certificate in certificates(CA_FILE_ENV, path, &pem)? {
        roots
            .add(certificate)
            .map_err(|err| file_error(CA_FILE_ENV, path, FileProblem::NotCa(err)))?;
    }
    Ok(pem)
}

/// The client certificate and key, once rustls accepts them as a pair.
fn read_identity(cert_path: &str, key_path: &str) -> Result<ClientTlsConfig, FileError> {
    let client_cert = read_pem(CERT_FILE_ENV, cert_path)?;
    let chain = certificates(CERT_FILE_ENV, cert_path, &client_cert)?;
    let client_key = read_pem(KEY_FILE_ENV, key_path)?;
    let key = PrivateKeyDer::from_pem_slice(&client_key)
        .map_err(|err| file_error(KEY_FILE_ENV, key_path, FileProblem::NoKey(err)))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| file_error(KEY_FILE_ENV, key_path, FileProblem::Protocol(err)))?
        .with_root_certificates(RootCertStore::empty())
        .with_client_auth_cert(chain, key)
        .map_err(|err| identity_error(err, cert_path, key_path))?;
    Ok(ClientTlsConfig {
        client_cert,
        client_key,
    })
}

/// Why rustls refused a client certificate and key as a pair: a certificate of X.509
/// version 1 (what `openssl x509 -req` makes without `-extfile`) is named as such, with how
/// to re-issue it; any other refusal is the key's not fitting the certificate.
fn identity_error(err: rustls::Error, cert_path: &str, key_path: &str) -> FileError {
    if is_version_one_certificate(&err) {
        return file_error(CERT_FILE_ENV, cert_path, FileProblem::VersionOne);
    }
    file_error(KEY_FILE_ENV, key_path, FileProblem::KeyDoesNotFit(err))
}

/// True when rustls refused a certificate for being X.509 version 1.
fn is_version_one_certificate(err: &rustls::Error) -> bool {
    let rustls::Error::InvalidCertificate(CertificateError::Other(other)) = err else {
        return false;
    };
    matches!(
        other.0.downcast_ref::<webpki::Error>(),
        Some(webpki::Error::UnsupportedCertVersion)
    )
}

/// A failed TLS handshake told by rustls's error variants alone, never by their text,
/// which for an expired or not-yet-valid certificate carries the current time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeFailure {
    error: Discriminant<rustls::Error>,
    certificate: Option<Discriminant<CertificateError>>,
    alert: Option<AlertDescription>,
}

/// The rustls error in `err`, kept by redis-rs inside an I/O error, as its variants; `None`
/// for a failure that is not a TLS handshake's.
pub fn handshake_failure(err: &RedisError) -> Option<HandshakeFailure> {
    let tls = cause::<rustls::Error>(err)?;
    Some(HandshakeFailure {
        error: discriminant(tls),
        certificate: match tls {
            rustls::Error::InvalidCertificate(certificate) => Some(discriminant(certificate)),
            _ => None,
        },
        alert: match tls {
            rustls::Error::AlertReceived(alert) => Some(*alert),
            _ => None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn as_redis_error(err: rustls::Error) -> RedisError {
        // As tokio-rustls hands it to redis-rs.
        RedisError::from(std::io::Error::new(std::io::ErrorKind::InvalidData, err))
    }

    #[test]
    fn a_handshake_failure_is_known_by_its_variants_not_its_time() {
        use rustls::pki_types::UnixTime;
        use std::time::Duration;
        let expired_at = |seconds| {
            as_redis_error(rustls::Error::InvalidCertificate(
                CertificateError::ExpiredContext {
                    time: UnixTime::since_unix_epoch(Duration::from_secs(seconds)),
                    not_after: UnixTime::since_unix_epoch(Duration::from_secs(1)),
                },
            ))
        };
        let first = handshake_failure(&expired_at(1_796_637_451));
        assert!(first.is_some());
        assert_eq!(first, handshake_failure(&expired_at(1_796_637_452)));
        let unknown = as_redis_error(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ));
        assert_ne!(first, handshake_failure(&unknown));
        let alert = |alert| handshake_failure(&as_redis_error(rustls::Error::AlertReceived(alert)));
        assert_ne!(
            alert(AlertDescription::CertificateRequired),
            alert(AlertDescription::CertificateExpired),
            "a client certificate missing, then expired, is a new failure"
        );
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(handshake_failure(&RedisError::from(reset)), None);
    }

    #[test]
    fn certificate_failures_are_refusals_and_transport_failures_are_not() {
        for refusal in [
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
            rustls::Error::InvalidCertificate(CertificateError::Expired),
            rustls::Error::InvalidCertificate(CertificateError::NotValidForName),
            rustls::Error::AlertReceived(AlertDescription::CertificateRequired),
            rustls::Error::NoCertificatesPresented,
        ] {
            let shown = refusal.to_string();
            assert!(is_certificate_refusal(&as_redis_error(refusal)), "{shown}");
        }
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(!is_certificate_refusal(&RedisError::from(reset)));
    }
}

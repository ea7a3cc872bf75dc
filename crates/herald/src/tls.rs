//! TLS to brokers (`security.protocol=SSL`), with rustls.
//!
//! Trust: the CA certificates of `ssl.ca.location` (PEM), else the
//! system's roots. Hostname verification is on unless
//! `ssl.endpoint.identification.algorithm` is empty, as in Kafka. A client
//! certificate (`ssl.certificate.location` + `ssl.key.location`, PEM) is
//! offered to brokers that ask for one (mutual TLS).
//!
//! A failed handshake is an [`Error::Security`] that says what to check
//! (the CA, the host name, the client certificate), not a retry: the same
//! certificate fails the same way next time.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::config::ProducerConfig;
use crate::error::Error;

fn read_certs(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(key, path, &e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(key, path, &e.to_string()))?;
    if certs.is_empty() {
        return Err(file_error(key, path, "no PEM certificate in it"));
    }
    Ok(certs)
}

fn file_error(key: &str, path: &Path, what: &str) -> Error {
    Error::Security {
        broker: key.to_string(),
        message: format!("cannot use {}: {what}", path.display()),
    }
}

/// The TLS connector for this config, or `None` without TLS.
pub(crate) fn connector(cfg: &ProducerConfig) -> Result<Option<TlsConnector>, Error> {
    if !cfg.security_protocol.tls() {
        return Ok(None);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    match &cfg.ssl_ca_location {
        Some(path) => {
            for c in read_certs("ssl.ca.location", path)? {
                roots
                    .add(c)
                    .map_err(|e| file_error("ssl.ca.location", path, &e.to_string()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                let _ = roots.add(c);
            }
            if roots.is_empty() {
                return Err(Error::Security {
                    broker: "ssl.ca.location".into(),
                    message: "no system CA certificates found; set ssl.ca.location to the CA \
                              that signed the brokers' certificates"
                        .into(),
                });
            }
        }
    }
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::config("security.protocol", e.to_string()))?;
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| Error::config("ssl.ca.location", e.to_string()))?;
    let builder = if cfg.ssl_verify_hostname {
        builder.with_webpki_verifier(verifier)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyName(verifier)))
    };
    let config = match (&cfg.ssl_certificate_location, &cfg.ssl_key_location) {
        (Some(cert), Some(key)) => {
            let chain = read_certs("ssl.certificate.location", cert)?;
            let key_der = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| file_error("ssl.key.location", key, &e.to_string()))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| Error::Security {
                    broker: "ssl.key.location".into(),
                    message: format!(
                        "the key does not fit ssl.certificate.location {}: {e}",
                        cert.display()
                    ),
                })?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Some(TlsConnector::from(Arc::new(config))))
}

/// The TLS handshake on a connected socket to `addr` (`host:port`).
pub(crate) async fn handshake(
    connector: &TlsConnector,
    tcp: TcpStream,
    addr: &str,
) -> Result<TlsStream<TcpStream>, Error> {
    let host = crate::connection::host_of(addr);
    let name = ServerName::try_from(host.to_string()).map_err(|_| Error::Security {
        broker: addr.to_string(),
        message: format!("`{host}` is not a valid TLS server name"),
    })?;
    connector.connect(name, tcp).await.map_err(|e| {
        let message = match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            Some(tls) => explain(host, tls),
            None => format!("TLS handshake failed: {e} (is this a TLS port?)"),
        };
        Error::Security {
            broker: format!("broker {addr}"),
            message,
        }
    })
}

/// An I/O error on an established TLS connection that is really a TLS
/// refusal (with TLS 1.3 a broker that wants a client certificate says so
/// only after the handshake): the same [`Error::Security`] as a failed
/// handshake.
pub(crate) fn refusal(addr: &str, e: &std::io::Error) -> Option<Error> {
    let tls = e.get_ref()?.downcast_ref::<rustls::Error>()?;
    let host = crate::connection::host_of(addr);
    Some(Error::Security {
        broker: format!("broker {addr}"),
        message: explain(host, tls),
    })
}

/// What a TLS error means for the user, and what to set.
fn explain(host: &str, e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            rustls::CertificateError::UnknownIssuer | rustls::CertificateError::BadSignature => {
                format!(
                    "the broker's certificate is not signed by a trusted CA ({c:?}); set \
                     ssl.ca.location to the CA that signed it"
                )
            }
            rustls::CertificateError::NotValidForName
            | rustls::CertificateError::NotValidForNameContext { .. } => format!(
                "the broker's certificate is not for `{host}` ({c:?}); connect by a name it \
                 lists, or set ssl.endpoint.identification.algorithm= to skip the check"
            ),
            other => format!("the broker's certificate was refused: {other:?}"),
        },
        rustls::Error::AlertReceived(a) => format!(
            "the broker refused the TLS session ({a:?}); if it asks for a client \
             certificate, set ssl.certificate.location and ssl.key.location to one signed by \
             a CA it trusts"
        ),
        other => format!("TLS failed: {other}"),
    }
}

/// Certificate checks without the host name check
/// (`ssl.endpoint.identification.algorithm=`): the chain must still lead
/// to a trusted CA.
#[derive(Debug)]
struct AnyName(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

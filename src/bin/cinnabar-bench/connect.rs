//! Opening WebSockets to the server: plain `ws://`, or `wss://` with the usual web roots
//! or, with `--insecure`, any certificate.

use std::net::ToSocketAddrs;
use std::sync::Arc;

use tokio_rustls::rustls;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use cinnabar::peer::SubscriberConfig;
use cinnabar::peer::galene::GaleneClient;

/// Where the server is and how to reach it.
#[derive(Clone)]
pub struct Connector {
    url: String,
    host: String,
    port: u16,
    tls: Option<tokio_rustls::TlsConnector>,
    /// Whether the server is on this machine's loopback: peers then gather only there.
    pub loopback: bool,
}

impl Connector {
    pub fn new(url: &str, insecure: bool) -> Result<Connector, String> {
        let (secure, rest) = if let Some(rest) = url.strip_prefix("wss://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("ws://") {
            (false, rest)
        } else {
            return Err(format!("{url}: expected a ws:// or wss:// URL"));
        };
        let authority = rest.split('/').next().unwrap_or(rest);
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                let port = p.parse().map_err(|_| format!("{url}: bad port"))?;
                (h.trim_matches(['[', ']']).to_owned(), port)
            }
            _ => (authority.to_owned(), if secure { 443 } else { 80 }),
        };
        let loopback = (host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| format!("{host}: {e}"))?
            .all(|a| a.ip().is_loopback());
        let tls = secure.then(|| tls_connector(insecure));
        Ok(Connector {
            url: url.to_owned(),
            host,
            port,
            tls,
            loopback,
        })
    }

    /// Connects a client with id `id` and sends the handshake.
    pub async fn connect(&self, id: &str) -> Result<Arc<GaleneClient>, String> {
        let all_interfaces = !self.loopback;
        let factory: cinnabar::peer::galene::SubscriberFactory =
            Arc::new(move |_| SubscriberConfig {
                all_interfaces,
                ..Default::default()
            });
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("{}:{}: {e}", self.host, self.port))?;
        let _ = tcp.set_nodelay(true);
        let client = match &self.tls {
            None => GaleneClient::connect_over(&self.url, tcp, id, factory).await,
            Some(tls) => {
                let name = ServerName::try_from(self.host.clone())
                    .map_err(|e| format!("{}: {e}", self.host))?;
                let stream = tls
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS with {}: {e}", self.host))?;
                GaleneClient::connect_over(&self.url, stream, id, factory).await
            }
        };
        client.map_err(|e| e.to_string())
    }
}

fn tls_connector(insecure: bool) -> tokio_rustls::TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|_| {
            rustls::ClientConfig::builder_with_protocol_versions(rustls::DEFAULT_VERSIONS)
        });
    let config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnything(provider)))
            .with_no_client_auth()
    } else {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// `--insecure`: any certificate is accepted (signatures are still checked for form).
#[derive(Debug)]
struct AcceptAnything(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

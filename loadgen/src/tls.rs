//! HTTPS client side: rustls over a [`Socket`] (the io_uring engine's connection or
//! glommio's `TcpStream`, whichever the thread runs).
//!
//! Owns the client configuration (webpki roots, ALPN `http/1.1`, and the
//! `--insecure` verifier that accepts any certificate) and [`TlsStream`], which moves
//! records between rustls and the socket with reused buffers. rustls is sans-IO, so
//! the only await points are socket reads and writes; a read future dropped while
//! waiting loses no data, which lets `conn.rs` race reads against timers.

use portico_io::{Conn, RecvBuf, Socket};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use std::io::{self, Read, Write};
use std::sync::Arc;

/// Builds the shared client configuration.
pub fn client_config(insecure: bool) -> Result<Arc<ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let mut config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
            .with_no_client_auth()
    } else {
        let roots = RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The server name for SNI and verification; an IP address sends no SNI (RFC 6066).
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_string()).map_err(|e| format!("bad TLS server name {host:?}: {e}"))
}

/// Largest TLS record with its header and slack: one socket read's worth.
const RECORD: usize = 16 * 1024 + 512;

/// A TLS client connection over TCP.
pub struct TlsStream {
    tcp: Socket,
    conn: ClientConnection,
    /// Ciphertext read from the socket, not yet handed to rustls.
    inbuf: RecvBuf,
    /// Ciphertext produced by rustls, written to the socket.
    outbuf: Vec<u8>,
}

impl TlsStream {
    /// Runs the handshake.
    pub async fn connect(
        tcp: Socket,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> io::Result<TlsStream> {
        let conn = ClientConnection::new(config, name).map_err(io::Error::other)?;
        let mut s = TlsStream {
            tcp,
            conn,
            inbuf: RecvBuf::new(RECORD, RECORD),
            outbuf: Vec::with_capacity(RECORD),
        };
        loop {
            if s.conn.wants_write() {
                s.flush().await?;
                continue;
            }
            if !s.conn.is_handshaking() {
                break;
            }
            if !s.conn.wants_read() {
                return Err(io::Error::other("TLS handshake stalled"));
            }
            if s.fill().await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed during the TLS handshake",
                ));
            }
        }
        s.flush().await?;
        Ok(s)
    }

    /// Reads plaintext; `Ok(0)` at end of stream (with or without close_notify:
    /// response framing, not TLS, decides whether a response was cut short).
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            if self.fill().await? == 0 {
                return Ok(0);
            }
        }
    }

    /// Encrypts and writes all of `data`.
    pub async fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let n = self.conn.writer().write(data)?;
            data = &data[n..];
            if n == 0 && !self.conn.wants_write() {
                return Err(io::Error::new(io::ErrorKind::WriteZero, "TLS buffer full"));
            }
            self.flush().await?;
        }
        Ok(())
    }

    /// Reads ciphertext from the socket into rustls; returns bytes read.
    async fn fill(&mut self) -> io::Result<usize> {
        let n = self.tcp.recv(&mut self.inbuf).await?;
        if n == 0 {
            return Ok(0);
        }
        while !self.inbuf.is_empty() {
            let mut rest = self.inbuf.filled();
            let before = rest.len();
            let read = self.conn.read_tls(&mut rest);
            let used = before - rest.len();
            self.inbuf.consume(used);
            read?;
            if used == 0 {
                return Err(io::Error::other("TLS receive buffer full"));
            }
            if let Err(e) = self.conn.process_new_packets() {
                // Try to tell the peer why (an alert) before giving up.
                let _ = self.flush().await;
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
        if self.conn.wants_write() {
            self.flush().await?;
        }
        Ok(n)
    }

    async fn flush(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            self.outbuf.clear();
            self.conn.write_tls(&mut self.outbuf)?;
            self.tcp.send(&self.outbuf).await?;
        }
        Ok(())
    }
}

/// `--insecure`: any certificate is accepted, but handshake signatures are still
/// checked so that the connection is at least consistent with the certificate.
#[derive(Debug)]
struct AcceptAnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
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
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
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
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_build() {
        let secure = client_config(false).unwrap();
        assert_eq!(secure.alpn_protocols, vec![b"http/1.1".to_vec()]);
        client_config(true).unwrap();
        assert!(server_name("example.com").is_ok());
        assert!(matches!(
            server_name("127.0.0.1").unwrap(),
            ServerName::IpAddress(_)
        ));
    }
}

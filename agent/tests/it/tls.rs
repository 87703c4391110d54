//! The tracker's gRPC over mutual TLS, through the agent's tracker client:
//! announces go through with a certificate from the CA; a client with a
//! certificate from another CA, with none, or speaking plain h2 is refused.

use std::sync::Arc;
use std::time::Duration;

use shoal_agent::tracker::{Identity, Tracker};
use shoal_e2e::pki::{LeafFiles, Pki};
use shoal_swarm::tls::{Tls, TlsConfig};
use shoal_swarm::{Bitfield, Digest, PeerId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

fn tls(files: &LeafFiles) -> Tls {
    Tls::load(&TlsConfig {
        ca: files.ca.clone(),
        cert: files.cert.clone(),
        key: files.key.clone(),
        peer: false,
    })
    .unwrap()
}

fn identity(port: u16) -> Identity {
    Identity {
        id: PeerId::random(),
        port,
        zone: String::new(),
    }
}

fn client(url: &str, port: u16, tls: Option<&Tls>) -> Tracker {
    Tracker::new(Some(url), Duration::from_secs(5), identity(port), tls).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announces_need_a_client_certificate_from_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"), "shoal CA");
    let other = Pki::new(&dir.path().join("other"), "another CA");
    let toml = format!(
        "[announce]\ninterval_seconds = 1\n{}",
        pki.issue("tracker").toml(false)
    );
    let settings = shoal_tracker::Config::parse(&toml)
        .unwrap()
        .settings()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(shoal_tracker::serve(
        listener,
        settings,
        shoal_tracker::MemoryStore::new(1000),
        async {
            let _ = stopped.await;
        },
    ));
    let url = format!("https://127.0.0.1:{}", addr.port());
    let digest = Digest::of(b"layer");
    let have = Bitfield::new(3);

    let first = client(&url, 7101, Some(&tls(&pki.issue("agent-1"))));
    let announced = first.announce(&digest, &have, 0, 0).await.unwrap();
    assert!(announced.peers.is_empty(), "{:?}", announced.peers);
    // By DNS name too; the second agent is handed the first.
    let by_name = format!("https://localhost:{}", addr.port());
    let second = client(&by_name, 7102, Some(&tls(&pki.issue("agent-2"))));
    let announced = second.announce(&digest, &have, 0, 0).await.unwrap();
    let ports: Vec<u16> = announced.peers.iter().map(|p| p.addr.port()).collect();
    assert_eq!(ports, [7101]);

    let foreign = client(&url, 7103, Some(&tls(&other.issue("foreign"))));
    assert!(foreign.announce(&digest, &have, 0, 0).await.is_err());
    let plain = client(&format!("http://{addr}"), 7104, None);
    assert!(plain.announce(&digest, &have, 0, 0).await.is_err());
    assert_eq!(no_certificate_reply(addr, &pki).await, 0);
}

/// Completes a TLS handshake that trusts the CA but presents no
/// certificate, sends the h2 preface and returns how many bytes the tracker
/// answers with before closing: none, it refuses the connection.
async fn no_certificate_reply(addr: std::net::SocketAddr, pki: &Pki) -> usize {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(pki.ca_file()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let Ok(mut tls) = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
    else {
        return 0;
    };
    let _ = tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
    let mut buf = [0u8; 1024];
    tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf))
        .await
        .expect("the tracker neither answered nor closed")
        .unwrap_or(0)
}

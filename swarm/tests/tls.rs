//! Peer connections over mutual TLS: a transfer between two sessions, peers
//! without a certificate from the CA refused, a rotated certificate used by
//! the next connection, and bad `[tls]` files named in the error.

#![allow(clippy::unwrap_used)]

#[path = "../../e2e/src/pki.rs"]
#[allow(dead_code)]
mod pki;

use std::sync::Arc;
use std::time::Duration;

use pki::{LeafFiles, Pki};
use rand::{RngCore, SeedableRng};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use shoal_swarm::Digest;
use shoal_swarm::metainfo::Metainfo;
use shoal_swarm::session::{PeerAddr, Session, SessionConfig};
use shoal_swarm::store::Store;
use shoal_swarm::tls::{Tls, TlsConfig};

const BLOB_LEN: usize = 5 << 20;

fn config(files: &LeafFiles) -> TlsConfig {
    TlsConfig {
        ca: files.ca.clone(),
        cert: files.cert.clone(),
        key: files.key.clone(),
        peer: true,
    }
}

async fn session(dir: &std::path::Path, tls: Option<&LeafFiles>) -> Session {
    let store = Store::open(dir, 0).await.unwrap();
    let tls = tls.map(|files| Tls::load(&config(files)).unwrap());
    Session::start(
        SessionConfig {
            tls,
            ..SessionConfig::default()
        },
        store,
    )
    .await
    .unwrap()
}

/// A seeding session holding a random blob.
async fn seeder(dir: &std::path::Path, tls: &LeafFiles) -> (Session, Arc<Metainfo>) {
    let mut data = vec![0u8; BLOB_LEN];
    rand::rngs::SmallRng::seed_from_u64(3).fill_bytes(&mut data);
    let digest = Digest::of(&data);
    let seeder = session(dir, Some(tls)).await;
    let mut writer = seeder
        .store()
        .ingest(digest, BLOB_LEN as u64)
        .await
        .unwrap();
    writer.write(&data).await.unwrap();
    let (metainfo, _reader) = writer.finish().await.unwrap();
    seeder.seed(&digest).await.unwrap();
    (seeder, metainfo)
}

fn peer(session: &Session) -> PeerAddr {
    PeerAddr {
        addr: session.local_addr(),
        id: Some(session.peer_id()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_moves_between_two_tls_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"), "shoal CA");
    let (seeder, metainfo) = seeder(&dir.path().join("s"), &pki.issue("seeder")).await;
    let leecher = session(&dir.path().join("l"), Some(&pki.issue("leecher"))).await;
    let handle = leecher.download(Arc::clone(&metainfo)).await.unwrap();
    handle.add_peers([peer(&seeder)]);
    let reader = tokio::time::timeout(Duration::from_secs(30), handle.wait_complete())
        .await
        .expect("download over TLS did not finish")
        .unwrap();
    assert_eq!(reader.len(), BLOB_LEN as u64);
    assert_eq!(handle.progress().downloaded, BLOB_LEN as u64);
}

/// A plain peer and a peer whose certificate comes from another CA get
/// nothing from a TLS seeder (and it nothing from them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_without_a_certificate_from_the_ca_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"), "shoal CA");
    let other = Pki::new(&dir.path().join("other"), "another CA");
    let (seeder, metainfo) = seeder(&dir.path().join("s"), &pki.issue("seeder")).await;
    let plain = session(&dir.path().join("plain"), None).await;
    let foreign = session(&dir.path().join("foreign"), Some(&other.issue("foreign"))).await;
    let mut handles = Vec::new();
    for leecher in [&plain, &foreign] {
        let handle = leecher.download(Arc::clone(&metainfo)).await.unwrap();
        handle.add_peers([peer(&seeder)]);
        handles.push(handle);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    for handle in &handles {
        assert_eq!(handle.progress().downloaded, 0);
        assert_eq!(handle.progress().pieces, 0);
    }
    // The control: a certificate from the right CA gets the blob.
    let good = session(&dir.path().join("good"), Some(&pki.issue("good"))).await;
    let handle = good.download(Arc::clone(&metainfo)).await.unwrap();
    handle.add_peers([peer(&seeder)]);
    tokio::time::timeout(Duration::from_secs(30), handle.wait_complete())
        .await
        .expect("the control download did not finish")
        .unwrap();
}

/// The leaf certificate a peer listener presents to a new connection.
async fn presented(addr: std::net::SocketAddr, client: &Tls) -> CertificateDer<'static> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let tls = client.peer_connector().connect(name, tcp).await.unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_serves_the_next_connection() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"), "shoal CA");
    let files = pki.issue("seeder");
    let seeder = session(&dir.path().join("s"), Some(&files)).await;
    let client = Tls::load(&config(&pki.issue("client"))).unwrap();
    let first = presented(seeder.local_addr(), &client).await;
    assert_eq!(first, CertificateDer::from_pem_file(&files.cert).unwrap());

    let (cert, key) = pki.leaf_pem("seeder-rotated");
    std::fs::write(&files.key, key).unwrap();
    std::fs::write(&files.cert, &cert).unwrap();
    let rotated = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
    // Files are looked at no more than once a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut now = presented(seeder.local_addr(), &client).await;
    if now != rotated {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        now = presented(seeder.local_addr(), &client).await;
    }
    assert_eq!(now, rotated);
    assert_ne!(now, first);
}

#[test]
fn bad_tls_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"), "shoal CA");
    let files = pki.issue("a");
    let mut bad = config(&files);
    bad.ca = dir.path().join("missing.pem");
    let err = Tls::load(&bad).unwrap_err().to_string();
    assert!(err.starts_with("tls.ca: "), "{err}");
    assert!(err.contains("missing.pem"), "{err}");

    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not pem at all").unwrap();
    let mut bad = config(&files);
    bad.cert = garbage.clone();
    let err = Tls::load(&bad).unwrap_err().to_string();
    assert!(err.starts_with("tls.cert: "), "{err}");
    let mut bad = config(&files);
    bad.key = garbage;
    let err = Tls::load(&bad).unwrap_err().to_string();
    assert!(err.starts_with("tls.key: "), "{err}");

    // A key that is not the certificate's.
    let mut bad = config(&files);
    bad.key = pki.issue("b").key;
    let err = Tls::load(&bad).unwrap_err().to_string();
    assert!(err.starts_with("tls.key: "), "{err}");
}

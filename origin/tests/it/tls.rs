//! The origin's HTTP API with `[tls]`: HTTPS only, client certificates
//! from the CA required; a client without one, or with one from another
//! CA, is refused.

use shoal_e2e::pki::Pki;
use shoal_swarm::tls::{Tls, TlsConfig};

use crate::support::{TestImages, digest_of, start_origin};

fn tls(files: &shoal_e2e::pki::LeafFiles) -> Tls {
    Tls::load(&TlsConfig {
        ca: files.ca.clone(),
        cert: files.cert.clone(),
        key: files.key.clone(),
        peer: false,
    })
    .unwrap()
}

fn client(tls: Option<&Tls>) -> reqwest::Client {
    let builder = reqwest::Client::builder();
    match tls {
        Some(tls) => builder.tls_backend_preconfigured(tls.client_config(&[])),
        None => builder,
    }
    .build()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_api_requires_a_client_certificate_from_the_ca() {
    let images = TestImages::build(900);
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"), "shoal CA");
    let other = Pki::new(&dir.path().join("other"), "another CA");
    let origin = start_origin(
        &dir.path().join("data"),
        &format!(
            "[upstreams.\"shoal.local\"]\nlayout = \"{}\"\n{}",
            images.layout().display(),
            pki.issue("origin").toml(false)
        ),
    )
    .await;
    let port = origin.http_addr().port();
    let url = format!("https://127.0.0.1:{port}/v2/any/manifests/v1");

    let agent = client(Some(&tls(&pki.issue("agent"))));
    let response = agent.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["docker-content-digest"],
        digest_of(&images.v1).to_string().as_str()
    );
    // A DNS name in the certificate works as well as the IP.
    let by_name = format!("https://localhost:{port}/v2/");
    assert_eq!(agent.get(&by_name).send().await.unwrap().status(), 200);

    let foreign = client(Some(&tls(&other.issue("foreign"))));
    assert!(foreign.get(&url).send().await.is_err());
    let plain = client(None);
    assert!(
        plain
            .get(format!("http://127.0.0.1:{port}/v2/"))
            .send()
            .await
            .is_err()
    );
    origin.shutdown().await;
}

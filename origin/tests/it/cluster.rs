//! Two origins on one ring: a non-owner redirects to the owner, a second
//! owner copies from the first instead of upstream, and while an owner is
//! down the other serves.

use axum::http::{StatusCode, header};
use shoal_origin::Origin;
use shoal_swarm::Digest;
use shoal_swarm::ring::{Member, Ring};

use crate::support::{Auth, PASSWORD, Registry, TestImages, digest_of, get, get_ready};

const REPO: &str = "cluster/app";

fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

struct Pair {
    names: [String; 2],
    origins: Vec<Option<Origin>>,
    _dirs: Vec<tempfile::TempDir>,
}

/// Two origins named `names`, replication `replication`, on `upstream`.
async fn start_pair(names: [String; 2], replication: usize, upstream: &str) -> Pair {
    let addrs: Vec<_> = (0..2).map(|_| (free_addr(), free_addr())).collect();
    let mut ring = String::new();
    for (name, (http, peer)) in names.iter().zip(&addrs) {
        ring.push_str(&format!(
            "[[origins]]\nname = \"{name}\"\nhttp = \"http://{http}\"\npeer = \"{peer}\"\n"
        ));
    }
    let mut origins = Vec::new();
    let mut dirs = Vec::new();
    for (name, (http, peer)) in names.iter().zip(&addrs) {
        let dir = tempfile::tempdir().unwrap();
        let toml = format!(
            "name = \"{name}\"\nlisten = \"{http}\"\npeer_listen = \"{peer}\"\ndata_dir = \"{}\"\n\
             replication = {replication}\nfetch_wait_ms = 0\n{ring}{upstream}",
            dir.path().display()
        );
        let settings = shoal_origin::Config::parse(&toml)
            .unwrap()
            .settings()
            .unwrap();
        origins.push(Some(Origin::start(settings).await.unwrap()));
        dirs.push(dir);
    }
    Pair {
        names,
        origins,
        _dirs: dirs,
    }
}

impl Pair {
    fn origin(&self, name: &str) -> &Origin {
        let i = self.names.iter().position(|n| n == name).unwrap();
        self.origins[i].as_ref().unwrap()
    }

    fn base(&self, name: &str) -> String {
        format!("http://{}", self.origin(name).http_addr())
    }

    async fn stop(&mut self, name: &str) {
        let i = self.names.iter().position(|n| n == name).unwrap();
        self.origins[i].take().unwrap().shutdown().await;
    }

    async fn shutdown(mut self) {
        for origin in self.origins.iter_mut().filter_map(Option::take) {
            origin.shutdown().await;
        }
    }
}

/// The most preferred of `names` for `digest` on a ring of those names.
fn top(names: &[String; 2], replication: usize, digest: &Digest) -> String {
    let members = names
        .iter()
        .map(|name| Member {
            name: name.clone(),
            http: "http://unused".into(),
            peer: "127.0.0.1:1".parse().unwrap(),
        })
        .collect();
    let ring = Ring::new(members, replication).unwrap();
    ring.owners(digest).next().unwrap().name.clone()
}

/// Names for which the first member is the top owner of every digest.
fn names_topped_by_first(digests: &[Digest]) -> [String; 2] {
    (0..1000)
        .map(|i| [format!("origin-a{i}"), format!("origin-b{i}")])
        .find(|names| digests.iter().all(|d| top(names, 2, d) == names[0]))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_owner_redirects_to_the_owner_keeping_the_query() {
    let registry = Registry::start(Auth::Anonymous).await;
    let images = TestImages::build(400);
    registry.push(&images.layout(), "v1", REPO, "v1", &["--preserve-digests"]);
    let names = ["origin-0".to_owned(), "origin-1".to_owned()];
    let pair = start_pair(names.clone(), 1, &registry.upstream_toml(PASSWORD)).await;
    let layer = &images.v1_layers[0];
    let owner = top(&names, 1, &digest_of(layer));
    let other = names.iter().find(|n| **n != owner).unwrap();

    let path = format!("/v2/{REPO}/blobs/{}?ns={}", layer.digest(), registry.addr);
    let (status, headers, _) = get(&format!("{}{path}", pair.base(other)), &[]).await;
    assert_eq!(status, StatusCode::TEMPORARY_REDIRECT);
    let location = headers[header::LOCATION].to_str().unwrap().to_owned();
    assert_eq!(location, format!("{}{path}", pair.base(&owner)));
    let (status, _, body) = get_ready(&location, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(Digest::of(&body), digest_of(layer));
    assert_eq!(pair.origin(other).stats().upstream_requests, 0);

    // Manifests are not placed on the ring: any origin answers.
    let (status, _, _) = get(&format!("{}/v2/{REPO}/manifests/v1", pair.base(other)), &[]).await;
    assert_eq!(status, StatusCode::OK);
    pair.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_second_owner_copies_from_the_first_and_serves_while_it_is_down() {
    let registry = Registry::start(Auth::Anonymous).await;
    let images = TestImages::build(500);
    registry.push(&images.layout(), "v1", REPO, "v1", &["--preserve-digests"]);
    let copied = &images.v1_layers[0];
    let later = &images.v1_layers[1];
    let names = names_topped_by_first(&[digest_of(copied), digest_of(later)]);
    let (first, second) = (names[0].clone(), names[1].clone());
    let mut pair = start_pair(names, 2, &registry.upstream_toml(PASSWORD)).await;

    // Asking the second owner makes the first fetch it (once) and the
    // second copy it from the first.
    let url = format!("{}/v2/{REPO}/blobs/{}", pair.base(&second), copied.digest());
    let (status, _, body) = get_ready(&url, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(Digest::of(&body), digest_of(copied));
    let gets = registry.requests(&format!("GET /v2/{REPO}/blobs/{}", copied.digest()));
    assert_eq!(gets, 1, "upstream saw {gets} GETs");
    let second_stats = pair.origin(&second).stats();
    assert_eq!(second_stats.upstream_requests, 0, "{second_stats:?}");
    assert_eq!(second_stats.replica_bytes_received, copied.size());
    assert_eq!(pair.origin(&first).stats().upstream_requests, 1);
    assert_eq!(pair.origin(&first).stats().blobs_stored, 1);

    // The first owner goes down: the second still serves what it holds,
    // and fetches a new blob from upstream itself.
    pair.stop(&first).await;
    let (status, _, body) = get(&url, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(Digest::of(&body), digest_of(copied));
    let url = format!("{}/v2/{REPO}/blobs/{}", pair.base(&second), later.digest());
    let (status, _, body) = get_ready(&url, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(Digest::of(&body), digest_of(later));
    assert_eq!(pair.origin(&second).stats().upstream_requests, 1);
    pair.shutdown().await;
}

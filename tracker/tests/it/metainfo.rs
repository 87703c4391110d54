//! GetMetainfo against in-test origins speaking the internal HTTP endpoint.

use std::time::Duration;

use shoal_proto::tracker::GetMetainfoRequest;
use shoal_swarm::Metainfo;
use shoal_swarm::ring::{Member, Ring};
use shoal_tracker::MemoryStore;
use tonic::Code;

use crate::support::{InProcess, Script, TestOrigin, metainfo, origins_toml, settings};

fn request(m: &Metainfo) -> GetMetainfoRequest {
    GetMetainfoRequest {
        digest: m.digest().to_string(),
        repository: "library/alpine".into(),
        namespace: "docker.io".into(),
    }
}

async fn tracker(origins: &[&TestOrigin]) -> InProcess {
    let members: Vec<Member> = origins.iter().map(|o| o.member.clone()).collect();
    let config = format!(
        "[metainfo]\norigin_timeout_ms = 2000\n{}",
        origins_toml(&members)
    );
    InProcess::start(settings(&config), MemoryStore::default()).await
}

#[tokio::test]
async fn served_by_the_origin_then_from_cache() {
    let m = metainfo(b"blob");
    let origin = TestOrigin::start("origin-0", Script::Serve(m.clone())).await;
    let tracker = tracker(&[&origin]).await;
    let mut client = tracker.client().await;
    for _ in 0..3 {
        let got = client.get_metainfo(request(&m)).await.unwrap().into_inner();
        assert_eq!(Metainfo::from_proto(&got).unwrap(), m);
    }
    assert_eq!(origin.calls(), 1);
    let query = origin.last_query.lock().unwrap().clone();
    assert!(
        query.contains(&("repository".into(), "library/alpine".into())),
        "{query:?}"
    );
    assert!(
        query.contains(&("namespace".into(), "docker.io".into())),
        "{query:?}"
    );
}

#[tokio::test]
async fn concurrent_asks_share_one_origin_call() {
    let m = metainfo(b"blob");
    let origin = TestOrigin::start(
        "origin-0",
        Script::SlowServe(m.clone(), Duration::from_millis(300)),
    )
    .await;
    let tracker = tracker(&[&origin]).await;
    let asks = (0..20).map(|_| {
        let addr = tracker.addr;
        let request = request(&m);
        tokio::spawn(async move {
            crate::support::client(addr)
                .await
                .get_metainfo(request)
                .await
        })
    });
    for ask in asks.collect::<Vec<_>>() {
        assert_eq!(
            ask.await.unwrap().unwrap().into_inner().digest,
            m.digest().to_string()
        );
    }
    assert_eq!(origin.calls(), 1);
}

#[tokio::test]
async fn an_origin_still_fetching_means_unavailable_with_a_retry_hint() {
    let m = metainfo(b"blob");
    let origin = TestOrigin::start("origin-0", Script::Fetching("4")).await;
    let tracker = tracker(&[&origin]).await;
    let mut client = tracker.client().await;
    for calls in 1..=2 {
        let status = client.get_metainfo(request(&m)).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable);
        assert!(
            status.message().contains("retry after 4s"),
            "{}",
            status.message()
        );
        assert_eq!(status.metadata().get("retry-after").unwrap(), "4");
        assert_eq!(origin.calls(), calls, "a 202 is not cached");
    }
}

#[tokio::test]
async fn unknown_upstream_is_not_found() {
    let m = metainfo(b"blob");
    let origin = TestOrigin::start("origin-0", Script::NotFound).await;
    let tracker = tracker(&[&origin]).await;
    let status = tracker
        .client()
        .await
        .get_metainfo(request(&m))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

/// The first owner in ring order fails in three ways in turn (HTTP 500,
/// nothing listening, metainfo of another blob); each time the next answers.
#[tokio::test]
async fn a_failing_owner_passes_to_the_next() {
    let m = metainfo(b"blob");
    let good = TestOrigin::start("good", Script::Serve(m.clone())).await;
    let failures = [
        TestOrigin::start("bad", Script::Fail).await,
        TestOrigin::start("bad", Script::Serve(metainfo(b"another blob"))).await,
    ];
    let mut closed = TestOrigin::start("bad", Script::Fail).await;
    closed.member.http = format!("http://127.0.0.1:{}", crate::support::free_port());
    for bad in failures.iter().chain([&closed]) {
        // Name the failing origin so that it comes first for this digest.
        let mut bad_member = bad.member.clone();
        bad_member.name = first_owner_name(&good.member, &bad_member, &m);
        let mut good_member = good.member.clone();
        good_member.name = if bad_member.name == "a" {
            "b".into()
        } else {
            "a".into()
        };
        let config = origins_toml(&[bad_member, good_member]);
        let tracker = InProcess::start(settings(&config), MemoryStore::default()).await;
        let got = tracker
            .client()
            .await
            .get_metainfo(request(&m))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(Metainfo::from_proto(&got).unwrap(), m);
    }
    assert_eq!(failures[0].calls(), 1);
    assert_eq!(failures[1].calls(), 1);
    assert_eq!(good.calls(), 3);
}

/// Of the names "a" and "b", the one the ring prefers for `m`.
fn first_owner_name(x: &Member, y: &Member, m: &Metainfo) -> String {
    let named = |member: &Member, name: &str| Member {
        name: name.into(),
        ..member.clone()
    };
    let ring = Ring::new(vec![named(x, "a"), named(y, "b")], 2).unwrap();
    ring.preference(m.digest()).next().unwrap().name.clone()
}

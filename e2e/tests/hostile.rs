//! Hostile registry API requests (issue 8, item 9) against a real
//! `shoal-agent` and `shoal-origin`: path traversal in every encoding,
//! overlong names, bad digests, hostile `Range` headers and request
//! smuggling, each sent byte for byte over TCP and checked for its exact
//! status and OCI error code. After every request the server must still
//! answer `/v2/`. docs/RELIABILITY.md lists the same table.

// A panic is a failed test, in helpers as in the tests.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;

use shoal_e2e::cluster::{Cluster, ClusterSpec};
use shoal_e2e::raw_http::{RawResponse, exchange, request};
use shoal_e2e::registry::{Auth, Registry};

const MIB: u64 = 1 << 20;
/// SHA-256 of nothing the registry holds.
const UNKNOWN: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

/// One row of the table: what is sent, what must come back.
struct Case {
    what: &'static str,
    method: &'static str,
    target: String,
    headers: Vec<(&'static str, String)>,
    /// Expected status at the agent and at the origin.
    agent: Expected,
    origin: Expected,
}

fn case(what: &'static str, target: impl Into<String>, agent: Expected, origin: Expected) -> Case {
    Case {
        what,
        method: "GET",
        target: target.into(),
        headers: Vec::new(),
        agent,
        origin,
    }
}

fn same(what: &'static str, target: impl Into<String>, expected: Expected) -> Case {
    case(what, target, expected, expected)
}

/// A status and the OCI error code of the body (None: not an error).
type Expected = (u16, Option<&'static str>);

const NAME_INVALID: Expected = (400, Some("NAME_INVALID"));
const DIGEST_INVALID: Expected = (400, Some("DIGEST_INVALID"));
const TAG_INVALID: Expected = (400, Some("MANIFEST_UNKNOWN"));
const RANGE_INVALID: Expected = (416, Some("RANGE_INVALID"));
const UNSUPPORTED: Expected = (405, Some("UNSUPPORTED"));

fn cases(blob: &str, blob_size: u64) -> Vec<Case> {
    let long_name = format!("{}/app", "a".repeat(252));
    let long_tag = "t".repeat(129);
    let sha512 = format!("sha512:{}", "a".repeat(128));
    let blob_url = format!("/v2/team/app/blobs/{blob}");
    let mut table = vec![
        same("the base route", "/v2/", (200, None)),
        // Path traversal, literal and percent-encoded.
        case(
            "`..` escaping /v2/",
            "/v2/../../../etc/passwd",
            (404, Some("UNSUPPORTED")),
            (404, Some("NAME_UNKNOWN")),
        ),
        same("`..` as the name", "/v2/../manifests/v1", NAME_INVALID),
        same(
            "`..` inside the name",
            "/v2/team/../app/manifests/v1",
            NAME_INVALID,
        ),
        same(
            "`..` before a blob",
            format!("/v2/team/app/../../blobs/{blob}"),
            NAME_INVALID,
        ),
        same(
            "percent-encoded `..` (%2e%2e)",
            "/v2/team/%2e%2e/manifests/v1",
            NAME_INVALID,
        ),
        same(
            "percent-encoded `..` (%2E%2E) as the name",
            "/v2/%2E%2E/manifests/v1",
            NAME_INVALID,
        ),
        same(
            "encoded slash in the name (%2f)",
            "/v2/team%2fapp/manifests/v1",
            NAME_INVALID,
        ),
        same(
            "encoded slash in the name (%2F)",
            "/v2/team%2Fapp/manifests/v1",
            NAME_INVALID,
        ),
        same(
            "double-encoded slash (%252f)",
            "/v2/team%252fapp/manifests/v1",
            NAME_INVALID,
        ),
        same("`..` as the tag", "/v2/team/app/manifests/..", TAG_INVALID),
        same(
            "encoded slash and `..` in the tag",
            "/v2/team/app/manifests/v1%2f..",
            TAG_INVALID,
        ),
        same(
            "`..` in the digest",
            "/v2/team/app/blobs/sha256:..%2f..%2fetc%2fpasswd",
            DIGEST_INVALID,
        ),
        same(
            "backslash traversal in the name",
            "/v2/team/..%5c..%5capp/manifests/v1",
            NAME_INVALID,
        ),
        same(
            "NUL in the name",
            "/v2/team/app%00/manifests/v1",
            NAME_INVALID,
        ),
        same(
            "`..` in ?ns=",
            "/v2/team/app/manifests/v1?ns=..%2f..%2fetc",
            NAME_INVALID,
        ),
        same(
            "URL in ?ns=",
            "/v2/team/app/manifests/v1?ns=http://evil.example/x",
            NAME_INVALID,
        ),
        // Overlong input.
        same(
            "name of 256 bytes",
            format!("/v2/{long_name}/manifests/v1"),
            NAME_INVALID,
        ),
        same(
            "tag of 129 bytes",
            format!("/v2/team/app/manifests/{long_tag}"),
            TAG_INVALID,
        ),
        same(
            "?ns= of 300 bytes",
            format!("/v2/team/app/manifests/v1?ns={}.com", "a".repeat(296)),
            NAME_INVALID,
        ),
        same(
            "path of 60 KiB",
            format!("/v2/{}/manifests/v1", "a/".repeat(30 * 1024)),
            NAME_INVALID,
        ),
        // Bad digests.
        same(
            "digest without algorithm",
            "/v2/team/app/blobs/abc",
            DIGEST_INVALID,
        ),
        same(
            "sha256 too short",
            "/v2/team/app/blobs/sha256:abc",
            DIGEST_INVALID,
        ),
        same(
            "sha256 upper-case hex",
            format!("/v2/team/app/blobs/{}", blob.to_ascii_uppercase()),
            DIGEST_INVALID,
        ),
        same(
            "sha256 non-hex",
            format!("/v2/team/app/blobs/sha256:{}", "g".repeat(64)),
            DIGEST_INVALID,
        ),
        same(
            "sha256 too long",
            format!("/v2/team/app/blobs/{blob}0"),
            DIGEST_INVALID,
        ),
        same(
            "unsupported algorithm sha512",
            format!("/v2/team/app/blobs/{sha512}"),
            DIGEST_INVALID,
        ),
        same(
            "unsupported algorithm md5",
            "/v2/team/app/blobs/md5:d41d8cd98f00b204e9800998ecf8427e",
            DIGEST_INVALID,
        ),
        same(
            "manifest by sha512 digest",
            format!("/v2/team/app/manifests/{sha512}"),
            DIGEST_INVALID,
        ),
        same(
            "well-formed digest nobody has",
            format!("/v2/team/app/blobs/{UNKNOWN}"),
            (404, Some("BLOB_UNKNOWN")),
        ),
        // Methods a read-only proxy refuses.
        Case {
            method: "DELETE",
            ..same("DELETE a blob", blob_url.clone(), UNSUPPORTED)
        },
        Case {
            method: "PUT",
            ..same("PUT a manifest", "/v2/team/app/manifests/v1", UNSUPPORTED)
        },
        Case {
            method: "POST",
            ..same("POST an upload", "/v2/team/app/blobs/uploads/", UNSUPPORTED)
        },
    ];
    // Ranges on a blob both servers hold, read by one parser
    // (`shoal_registry::range`, RFC 9110 section 14): a header that does
    // not parse is ignored (200, whole blob); a valid one that selects no
    // byte is 416 with `Content-Range: bytes */<size>`; several ranges get
    // the whole blob. Numbers beyond u64 are still numbers.
    let whole = (200, None);
    let part = (206, None);
    let ranges: [(&'static str, String, Expected); 19] = [
        ("Range: first byte", "bytes=0-0".into(), part),
        ("Range: suffix", "bytes=-10".into(), part),
        ("Range: unit in capitals", "Bytes=0-0".into(), part),
        (
            "Range: past the end",
            format!("bytes={blob_size}-"),
            RANGE_INVALID,
        ),
        (
            "Range: start beyond u64",
            "bytes=99999999999999999999999999-".into(),
            RANGE_INVALID,
        ),
        (
            "Range: end beyond u64 (to the end)",
            "bytes=0-99999999999999999999999999".into(),
            part,
        ),
        (
            "Range: suffix beyond u64 (whole blob)",
            "bytes=-99999999999999999999999999".into(),
            part,
        ),
        ("Range: empty suffix", "bytes=-0".into(), RANGE_INVALID),
        (
            "Range: 4 KiB of digits (to the end)",
            format!("bytes=0-{}", "9".repeat(4096)),
            part,
        ),
        (
            "Range: last before first (ignored)",
            "bytes=5-4".into(),
            whole,
        ),
        ("Range: not numbers (ignored)", "bytes=a-b".into(), whole),
        ("Range: negative start (ignored)", "bytes=--5".into(), whole),
        ("Range: no range (ignored)", "bytes=".into(), whole),
        ("Range: no dash (ignored)", "bytes=7".into(), whole),
        (
            "Range: one bad of two (ignored)",
            format!("bytes=0-0,{}", "x".repeat(100)),
            whole,
        ),
        (
            "Range: 1000 ranges (whole blob instead)",
            format!("bytes={}", vec!["0-0"; 1000].join(",")),
            whole,
        ),
        (
            "Range: two, one satisfiable (whole blob)",
            format!("bytes=0-0,{blob_size}-"),
            whole,
        ),
        (
            "Range: two, none satisfiable",
            format!("bytes={blob_size}-,-0"),
            RANGE_INVALID,
        ),
        ("Range: unknown unit (ignored)", "items=0-1".into(), whole),
    ];
    for (what, range, expected) in ranges {
        table.push(Case {
            headers: vec![("Range", range)],
            ..same(what, blob_url.clone(), expected)
        });
    }
    table
}

/// Sends `case` to `addr` and returns the status and OCI code measured.
fn measure(addr: SocketAddr, case: &Case) -> (u16, Option<String>, RawResponse) {
    let headers: Vec<(&str, &str)> = case.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let response = request(addr, case.method, &case.target, &headers)
        .unwrap_or_else(|e| panic!("{}: {e:#}", case.what));
    (response.status, response.oci_code(), response)
}

fn assert_alive(addr: SocketAddr, after: &str) {
    let response = request(addr, "GET", "/v2/", &[])
        .unwrap_or_else(|e| panic!("{addr} stopped answering after {after}: {e:#}"));
    assert_eq!(response.status, 200, "/v2/ after {after}");
}

/// Raw request bytes that try to smuggle a second request past the first,
/// and the one status that must come back for the first. RFC 9112 section
/// 6.3: with both headers, Transfer-Encoding wins and the connection is
/// closed after the response, so the smuggled request is never read.
fn smuggling(host: SocketAddr, blob: &str) -> Vec<(&'static str, String, u16)> {
    let smuggled = format!("GET /v2/team/app/blobs/{blob} HTTP/1.1\r\nHost: {host}\r\n\r\n");
    let get = format!("GET /v2/ HTTP/1.1\r\nHost: {host}\r\n");
    vec![
        (
            "Content-Length and Transfer-Encoding: chunked (CL.TE)",
            format!(
                "{get}Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
            ),
            200,
        ),
        (
            "two different Content-Lengths",
            format!(
                "{get}Content-Length: 0\r\nContent-Length: {}\r\n\r\n{smuggled}",
                smuggled.len()
            ),
            400,
        ),
        (
            "Content-Length list `0, <n>`",
            format!(
                "{get}Content-Length: 0, {}\r\n\r\n{smuggled}",
                smuggled.len()
            ),
            400,
        ),
        (
            "Transfer-Encoding: chunked, identity (chunked not last)",
            format!(
                "{get}Transfer-Encoding: chunked, identity\r\nContent-Length: 5\r\n\r\n0\r\n\r\n{smuggled}"
            ),
            400,
        ),
        (
            "obfuscated Transfer-Encoding: xchunked",
            format!(
                "{get}Transfer-Encoding: xchunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n{smuggled}"
            ),
            400,
        ),
        (
            "space before the colon (`Transfer-Encoding :`)",
            format!(
                "{get}Transfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n{smuggled}"
            ),
            400,
        ),
        (
            "obs-fold Transfer-Encoding",
            format!(
                "{get}Transfer-Encoding:\r\n chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n{smuggled}"
            ),
            400,
        ),
        (
            "Content-Length with a sign (+5)",
            format!("{get}Content-Length: +5\r\n\r\n0\r\n\r\n{smuggled}"),
            400,
        ),
        (
            // The handler answers without reading the body; the bad chunk
            // size is found while draining it and the connection closes.
            "chunk size overflowing u64",
            format!(
                "{get}Transfer-Encoding: chunked\r\n\r\n10000000000000000000001\r\nx\r\n0\r\n\r\n{smuggled}"
            ),
            200,
        ),
    ]
}

async fn start() -> (tempfile::TempDir, Registry, Cluster, (String, u64)) {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(Auth::Anonymous).await;
    let layer = registry.push_one_layer_image(dir.path(), "team/app", "v1", 3 * MIB, 81);
    let spec = ClusterSpec {
        origins: 1,
        agents: 1,
        upstream_toml: registry.upstream_toml(""),
        default_registry: registry.addr.to_string(),
        origin_upload_limit: 0,
        agent_upload_limit: 0,
    };
    let cluster_dir = dir.path().join("cluster");
    std::fs::create_dir_all(&cluster_dir).unwrap();
    let cluster = Cluster::start(&cluster_dir, &spec).unwrap();
    let blob = (layer.digest().to_string(), layer.size());
    (dir, registry, cluster, blob)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_registry_requests_get_exact_oci_errors() {
    let (_dir, _registry, cluster, (blob, size)) = start().await;
    let agent = cluster.agents[0].1;
    let origin = cluster.origins[0].1;
    // Warm both caches, so Range cases are answered from a complete blob.
    let warm = tokio::task::spawn_blocking({
        let blob = blob.clone();
        move || request(agent, "GET", &format!("/v2/team/app/blobs/{blob}"), &[])
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(warm.status, 200, "{}", cluster.logs());
    assert_eq!(warm.body.len() as u64, size);

    let table = cases(&blob, size);
    let mut failures = Vec::new();
    for case in &table {
        for (server, addr, expected) in [
            ("agent", agent, case.agent),
            ("origin", origin, case.origin),
        ] {
            let (status, code, response) = tokio::task::block_in_place(|| measure(addr, case));
            println!(
                "{server:6} {:55} {} {} -> {status} {}",
                case.what,
                case.method,
                shorten(&case.target),
                code.as_deref().unwrap_or("-")
            );
            if (status, code.as_deref()) != expected {
                failures.push(format!(
                    "{server}: {}: expected {expected:?}, got {status} {code:?}: {}",
                    case.what,
                    String::from_utf8_lossy(&response.body[..response.body.len().min(300)])
                ));
            }
            let content_range = response.header("content-range").unwrap_or_default();
            if status == 206 {
                assert!(
                    content_range.starts_with("bytes ")
                        && content_range.ends_with(&format!("/{size}")),
                    "{server}: {}: Content-Range {content_range:?}",
                    case.what
                );
            }
            if status == 416 {
                assert_eq!(
                    content_range,
                    format!("bytes */{size}"),
                    "{server}: {}: a 416 names the blob's length",
                    case.what
                );
            }
            if status == 200 && case.headers.iter().any(|(name, _)| *name == "Range") {
                assert_eq!(
                    response.body.len() as u64,
                    size,
                    "{server}: {}: an ignored Range gets the whole blob",
                    case.what
                );
            }
            if status >= 400 {
                // Every refusal is OCI JSON and never echoes long input.
                assert!(
                    response.body.len() < 1024,
                    "{server}: {}: {} byte error body",
                    case.what,
                    response.body.len()
                );
            }
            tokio::task::block_in_place(|| assert_alive(addr, case.what));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n{}",
        failures.join("\n"),
        cluster.logs()
    );

    // Only GET has range semantics (RFC 9110 section 14.2): a HEAD with a
    // Range describes the whole blob. (The raw client cannot read a HEAD
    // answer, whose Content-Length comes without a body.)
    let http = reqwest::Client::new();
    for (server, addr) in [("agent", agent), ("origin", origin)] {
        for range in ["bytes=0-0", &format!("bytes={size}-")] {
            let response = http
                .head(format!("http://{addr}/v2/team/app/blobs/{blob}"))
                .header("Range", range)
                .send()
                .await
                .unwrap();
            println!(
                "{server:6} HEAD with Range: {range} -> {}",
                response.status()
            );
            assert_eq!(response.status(), 200, "{server}: HEAD with {range}");
            assert_eq!(
                response.headers()["content-length"].to_str().unwrap(),
                size.to_string(),
                "{server}: HEAD with {range}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_smuggling_is_refused_and_never_answered_twice() {
    let (_dir, registry, cluster, (blob, _)) = start().await;
    let agent = cluster.agents[0].1;
    let origin = cluster.origins[0].1;
    let mut failures = Vec::new();
    for (server, addr) in [("agent", agent), ("origin", origin)] {
        for (what, raw, expected) in smuggling(addr, &blob) {
            let exchange = tokio::task::block_in_place(|| exchange(addr, raw.as_bytes())).unwrap();
            let statuses: Vec<u16> = exchange.responses.iter().map(|r| r.status).collect();
            println!(
                "{server:6} {what:60} -> {statuses:?} closed={}",
                exchange.closed
            );
            // One answer to the first request, then the connection closes:
            // nothing after it is ever read as a request.
            if statuses != [expected] || !exchange.closed {
                failures.push(format!(
                    "{server}: {what}: responses {statuses:?}, closed {}",
                    exchange.closed
                ));
            }
            tokio::task::block_in_place(|| assert_alive(addr, what));
        }
    }
    // The smuggled blob request never reached the origin's upstream.
    assert_eq!(
        registry.requests(&format!("GET /v2/team/app/blobs/{blob}")),
        0,
        "a smuggled request was served"
    );
    assert!(
        failures.is_empty(),
        "{}\n{}",
        failures.join("\n"),
        cluster.logs()
    );
}

fn shorten(target: &str) -> String {
    if target.len() > 70 {
        format!("{}...({} bytes)", &target[..60], target.len())
    } else {
        target.to_owned()
    }
}

//! Turns wire requests into checked values before anything is stored or
//! forwarded. Every refusal names the offending field (`peer.port: ...`), so
//! that whoever wrote the client can fix it from the message alone.

use std::net::{IpAddr, SocketAddr};

use shoal_proto::tracker::{AnnounceRequest, GetMetainfoRequest, announce_request::Pieces};
use shoal_swarm::{Bitfield, Digest, PeerId};
use tonic::Status;

use crate::peer::{MAX_ZONE_LEN, PeerRecord};

/// Longest repository name the distribution spec allows.
const MAX_REPOSITORY_LEN: usize = 255;
/// Longest registry host name (DNS limit).
const MAX_NAMESPACE_LEN: usize = 253;

/// A refused request field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ValidationError {
    /// The field's path in the request, e.g. `peer.id`.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl From<ValidationError> for Status {
    fn from(error: ValidationError) -> Self {
        Status::invalid_argument(error.to_string())
    }
}

pub(crate) fn refuse(field: &'static str, reason: impl Into<String>) -> ValidationError {
    ValidationError {
        field,
        reason: reason.into(),
    }
}

/// A checked announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    /// The blob.
    pub digest: Digest,
    /// The announcer as it will be stored.
    pub record: PeerRecord,
    /// The blob's piece count as the announcer knows it (0 if unknown).
    pub total_pieces: u32,
    /// Bytes the announcer has uploaded for this blob.
    pub uploaded: u64,
    /// Bytes the announcer has downloaded for this blob.
    pub downloaded: u64,
}

/// Checks an announce. `remote` is the connection's address: a peer that
/// leaves `peer.address` empty is taken to listen on the IP it connects from,
/// which spares agents behind simple networks from discovering their own IP.
pub fn announce(
    request: &AnnounceRequest,
    remote: Option<SocketAddr>,
) -> Result<Announce, ValidationError> {
    let digest = digest(&request.digest)?;
    let peer = request
        .peer
        .as_ref()
        .ok_or_else(|| refuse("peer", "required"))?;
    let id = PeerId::from_slice(&peer.id).map_err(|e| {
        refuse(
            "peer.id",
            format!("must be exactly {} bytes, got {}", PeerId::LEN, e.0),
        )
    })?;
    let ip = if peer.address.is_empty() {
        remote.map(|addr| addr.ip()).ok_or_else(|| {
            refuse(
                "peer.address",
                "required: the connection's address is unknown",
            )
        })?
    } else {
        peer.address
            .parse::<IpAddr>()
            .map_err(|_| refuse("peer.address", "not an IP address literal"))?
    };
    if ip.is_unspecified() || ip.is_multicast() {
        return Err(refuse(
            "peer.address",
            format!("{ip} is not a unicast address"),
        ));
    }
    let port = u16::try_from(peer.port)
        .ok()
        .filter(|port| *port != 0)
        .ok_or_else(|| refuse("peer.port", format!("must be 1..=65535, got {}", peer.port)))?;
    if peer.zone.len() > MAX_ZONE_LEN {
        return Err(refuse(
            "peer.zone",
            format!("longer than {MAX_ZONE_LEN} bytes"),
        ));
    }
    let total = request.total_pieces;
    let held = match &request.pieces {
        None => 0,
        Some(Pieces::PieceCount(count)) if *count > total => {
            return Err(refuse(
                "piece_count",
                format!("{count} exceeds total_pieces {total}"),
            ));
        }
        Some(Pieces::PieceCount(count)) => *count,
        Some(Pieces::Bitfield(bytes)) => Bitfield::from_bytes(bytes, total)
            .map_err(|_| {
                refuse(
                    "bitfield",
                    format!("{} bytes for {total} pieces", bytes.len()),
                )
            })?
            .count(),
    };
    let complete = request.complete || (total > 0 && held == total);
    Ok(Announce {
        digest,
        record: PeerRecord {
            id,
            ip,
            port,
            zone: peer.zone.as_str().into(),
            pieces: if complete { total } else { held },
            complete,
            origin: request.origin,
        },
        total_pieces: total,
        uploaded: request.uploaded,
        downloaded: request.downloaded,
    })
}

/// A checked metainfo request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetainfoQuery {
    /// The blob.
    pub digest: Digest,
    /// Repository the blob was referenced from, passed to the origin.
    pub repository: String,
    /// Registry of the repository, passed to the origin.
    pub namespace: String,
}

/// Checks a metainfo request.
pub fn metainfo_query(request: &GetMetainfoRequest) -> Result<MetainfoQuery, ValidationError> {
    let digest = digest(&request.digest)?;
    if request.repository.len() > MAX_REPOSITORY_LEN {
        return Err(refuse(
            "repository",
            format!("longer than {MAX_REPOSITORY_LEN} bytes"),
        ));
    }
    if request.namespace.len() > MAX_NAMESPACE_LEN {
        return Err(refuse(
            "namespace",
            format!("longer than {MAX_NAMESPACE_LEN} bytes"),
        ));
    }
    Ok(MetainfoQuery {
        digest,
        repository: request.repository.clone(),
        namespace: request.namespace.clone(),
    })
}

fn digest(text: &str) -> Result<Digest, ValidationError> {
    text.parse().map_err(|e| refuse("digest", format!("{e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::tracker::PeerInfo;

    fn request() -> AnnounceRequest {
        AnnounceRequest {
            digest: Digest::of(b"blob").to_string(),
            peer: Some(PeerInfo {
                id: vec![1; 20],
                address: "10.0.0.1".into(),
                port: 7000,
                zone: "a".into(),
            }),
            pieces: Some(Pieces::Bitfield(vec![0b1110_0000, 0])),
            total_pieces: 10,
            ..AnnounceRequest::default()
        }
    }

    fn refused(request: &AnnounceRequest) -> String {
        announce(request, None).unwrap_err().to_string()
    }

    #[test]
    fn accepts_a_good_announce_and_counts_pieces() {
        let a = announce(&request(), None).unwrap();
        assert_eq!(a.record.pieces, 3);
        assert!(!a.record.complete);
        let mut full = request();
        full.pieces = Some(Pieces::PieceCount(10));
        assert!(announce(&full, None).unwrap().record.complete);
    }

    #[test]
    fn empty_address_means_the_connection_address() {
        let mut r = request();
        r.peer.as_mut().unwrap().address.clear();
        let remote = "10.1.2.3:5555".parse().unwrap();
        assert_eq!(announce(&r, Some(remote)).unwrap().record.ip, remote.ip());
        assert!(refused(&r).starts_with("peer.address: required"));
    }

    #[test]
    fn each_bad_field_is_named() {
        type Mutation = fn(&mut AnnounceRequest);
        let cases: [(Mutation, &str); 10] = [
            (
                |r| r.digest = "md5:abc".into(),
                "digest: unsupported digest algorithm",
            ),
            (
                |r| r.digest = "sha256:xyz".into(),
                "digest: digest encoding",
            ),
            (|r| r.peer = None, "peer: required"),
            (
                |r| r.peer.as_mut().unwrap().id.clear(),
                "peer.id: must be exactly 20 bytes, got 0",
            ),
            (
                |r| r.peer.as_mut().unwrap().id = vec![0; 64],
                "peer.id: must be exactly 20 bytes, got 64",
            ),
            (
                |r| r.peer.as_mut().unwrap().port = 0,
                "peer.port: must be 1..=65535, got 0",
            ),
            (
                |r| r.peer.as_mut().unwrap().port = 70_000,
                "peer.port: must be 1..=65535, got 70000",
            ),
            (
                |r| r.peer.as_mut().unwrap().address = "0.0.0.0".into(),
                "peer.address: 0.0.0.0 is not",
            ),
            (
                |r| r.pieces = Some(Pieces::Bitfield(vec![0; 300])),
                "bitfield: 300 bytes for 10 pieces",
            ),
            (
                |r| r.pieces = Some(Pieces::PieceCount(11)),
                "piece_count: 11 exceeds total_pieces 10",
            ),
        ];
        for (mutate, expected) in cases {
            let mut r = request();
            mutate(&mut r);
            let message = refused(&r);
            assert!(message.starts_with(expected), "{message:?} vs {expected:?}");
        }
        let mut r = request();
        r.peer.as_mut().unwrap().zone = "z".repeat(64);
        assert_eq!(refused(&r), "peer.zone: longer than 63 bytes");
    }

    #[test]
    fn metainfo_query_fields() {
        let mut q = GetMetainfoRequest {
            digest: Digest::of(b"x").to_string(),
            repository: "library/alpine".into(),
            namespace: "docker.io".into(),
        };
        assert!(metainfo_query(&q).is_ok());
        q.repository = "r".repeat(256);
        assert!(
            metainfo_query(&q)
                .unwrap_err()
                .to_string()
                .starts_with("repository:")
        );
        q.digest = String::new();
        assert!(
            metainfo_query(&q)
                .unwrap_err()
                .to_string()
                .starts_with("digest:")
        );
    }
}

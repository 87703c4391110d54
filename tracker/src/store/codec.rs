//! The compact binary form of a [`PeerRecord`] kept in Redis.
//!
//! Layout: version (1), flags (1: complete, origin, IPv6), peer id (20), IP
//! (4 or 16), port (2, big-endian), pieces (4, big-endian), zone length (1),
//! zone. At most 108 bytes; 33 for an IPv4 peer without a zone. Values under
//! 64 bytes keep Redis' small hashes in its compact listpack encoding.
//!
//! The version byte lets a newer tracker skip (rather than misread) entries
//! written by an older one during a rolling upgrade.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use shoal_swarm::PeerId;

use crate::peer::{MAX_ZONE_LEN, PeerRecord};

const VERSION: u8 = 1;
const COMPLETE: u8 = 1;
const ORIGIN: u8 = 2;
const IPV6: u8 = 4;

/// Why stored bytes are not a record this tracker understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecodeError {
    /// Written by another version of the tracker.
    #[error("unknown record version {0}")]
    Version(u8),
    /// Cut short, too long, or a field out of range.
    #[error("malformed record")]
    Malformed,
}

pub(crate) fn encode(record: &PeerRecord) -> Vec<u8> {
    let mut flags = 0;
    if record.complete {
        flags |= COMPLETE;
    }
    if record.origin {
        flags |= ORIGIN;
    }
    if record.ip.is_ipv6() {
        flags |= IPV6;
    }
    let zone = &record.zone.as_bytes()[..record.zone.len().min(MAX_ZONE_LEN)];
    let mut out = Vec::with_capacity(50 + zone.len());
    out.extend([VERSION, flags]);
    out.extend_from_slice(record.id.as_bytes());
    match record.ip {
        IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
    }
    out.extend_from_slice(&record.port.to_be_bytes());
    out.extend_from_slice(&record.pieces.to_be_bytes());
    // The zone is at most MAX_ZONE_LEN (63) bytes, so its length fits a byte.
    out.push(zone.len() as u8);
    out.extend_from_slice(zone);
    out
}

pub(crate) fn decode(bytes: &[u8]) -> Result<PeerRecord, DecodeError> {
    let mut r = Reader(bytes);
    let version = r.take::<1>()?[0];
    if version != VERSION {
        return Err(DecodeError::Version(version));
    }
    let flags = r.take::<1>()?[0];
    let id = PeerId::from_array(r.take::<20>()?);
    let ip = if flags & IPV6 != 0 {
        IpAddr::V6(Ipv6Addr::from(r.take::<16>()?))
    } else {
        IpAddr::V4(Ipv4Addr::from(r.take::<4>()?))
    };
    let port = u16::from_be_bytes(r.take::<2>()?);
    let pieces = u32::from_be_bytes(r.take::<4>()?);
    let zone_len = usize::from(r.take::<1>()?[0]);
    let zone = std::str::from_utf8(r.0).map_err(|_| DecodeError::Malformed)?;
    if port == 0 || zone.len() != zone_len || zone_len > MAX_ZONE_LEN {
        return Err(DecodeError::Malformed);
    }
    Ok(PeerRecord {
        id,
        ip,
        port,
        zone: zone.into(),
        pieces,
        complete: flags & COMPLETE != 0,
        origin: flags & ORIGIN != 0,
    })
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(DecodeError::Malformed)?;
        self.0 = rest;
        Ok(*head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::record;

    #[test]
    fn round_trips_v4_and_v6() {
        let v4 = PeerRecord {
            complete: true,
            ..record(7, 12)
        };
        assert_eq!(decode(&encode(&v4)).unwrap(), v4);
        let v6 = PeerRecord {
            ip: "fd00::1".parse().unwrap(),
            zone: "".into(),
            origin: true,
            ..record(8, 0)
        };
        let bytes = encode(&v6);
        assert_eq!(bytes.len(), 45);
        assert_eq!(decode(&bytes).unwrap(), v6);
    }

    #[test]
    fn refuses_every_truncation_and_other_versions() {
        let bytes = encode(&record(7, 12));
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "{len}");
        }
        let mut longer = bytes.clone();
        longer.push(b'x');
        assert_eq!(decode(&longer), Err(DecodeError::Malformed));
        let mut other = bytes;
        other[0] = 2;
        assert_eq!(decode(&other), Err(DecodeError::Version(2)));
    }
}

//! Content digests as they appear in registry paths, manifests and the peer
//! handshake. Only `sha256` is accepted: it is what every registry emits for
//! layers, and accepting an algorithm we cannot verify would let unverified
//! bytes through.

use std::fmt;
use std::str::FromStr;

/// A validated `sha256:<64 lowercase hex>` digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

/// Why a digest string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// No `algorithm:` prefix.
    #[error("digest has no algorithm prefix (expected sha256:<hex>)")]
    MissingAlgorithm,
    /// An algorithm other than sha256 (sha512 included: we do not verify it).
    #[error("unsupported digest algorithm {0:?} (only sha256 is supported)")]
    UnsupportedAlgorithm(String),
    /// The encoded part is not 64 lowercase hex characters.
    #[error("digest encoding is not 64 lowercase hex characters")]
    InvalidEncoding,
}

impl Digest {
    /// The prefix of every digest string.
    pub const PREFIX: &'static str = "sha256:";

    /// Wraps raw SHA-256 output, e.g. from a hasher that just finished.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Digest(bytes)
    }

    /// The 32 raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64-character lowercase hex part, as used for file names.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Digest of `data`, for tests and small blobs held in memory.
    pub fn of(data: &[u8]) -> Self {
        use sha2::Digest as _;
        Digest(sha2::Sha256::digest(data).into())
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (algorithm, encoded) = s.split_once(':').ok_or(DigestError::MissingAlgorithm)?;
        if algorithm != "sha256" {
            // Never echo arbitrarily long attacker input back in errors.
            let shown: String = algorithm.chars().take(32).collect();
            return Err(DigestError::UnsupportedAlgorithm(shown));
        }
        let valid = encoded.len() == 64
            && encoded
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !valid {
            return Err(DigestError::InvalidEncoding);
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(encoded, &mut bytes).map_err(|_| DigestError::InvalidEncoding)?;
        Ok(Digest(bytes))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", Self::PREFIX, self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn round_trips_and_matches_sha256_of_empty() {
        let d: Digest = EMPTY.parse().unwrap();
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(d, Digest::of(b""));
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!("abc".parse::<Digest>(), Err(DigestError::MissingAlgorithm));
        assert!(matches!(
            "sha512:00".parse::<Digest>(),
            Err(DigestError::UnsupportedAlgorithm(a)) if a == "sha512"
        ));
        assert_eq!(
            EMPTY
                .to_uppercase()
                .replace("SHA256", "sha256")
                .parse::<Digest>(),
            Err(DigestError::InvalidEncoding)
        );
        assert_eq!(
            "sha256:abcd".parse::<Digest>(),
            Err(DigestError::InvalidEncoding)
        );
        assert_eq!(
            format!("{EMPTY}0").parse::<Digest>(),
            Err(DigestError::InvalidEncoding)
        );
        assert_eq!(
            "sha256:../../etc/passwd".parse::<Digest>(),
            Err(DigestError::InvalidEncoding)
        );
    }
}

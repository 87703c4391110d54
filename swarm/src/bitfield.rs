//! Which pieces of a blob a peer holds. Bit order matches BitTorrent's: the
//! most significant bit of byte 0 is piece 0, and spare bits at the end must
//! be zero so that two encodings of the same set are byte-identical.

/// A fixed-length set of piece indices.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Bitfield {
    bytes: Vec<u8>,
    len: u32,
    ones: u32,
}

/// Why wire bytes could not become a [`Bitfield`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BitfieldError {
    /// The byte length does not match the piece count.
    #[error("bitfield has {got} bytes, expected {expected} for {pieces} pieces")]
    WrongLength {
        /// Bytes received.
        got: usize,
        /// Bytes required by the piece count.
        expected: usize,
        /// The blob's piece count.
        pieces: u32,
    },
    /// A bit past the last piece is set.
    #[error("bitfield sets bits beyond the last piece")]
    SpareBitsSet,
}

impl Bitfield {
    /// An empty set for a blob of `len` pieces.
    pub fn new(len: u32) -> Self {
        Bitfield {
            bytes: vec![0; Self::byte_len(len)],
            len,
            ones: 0,
        }
    }

    /// The set of all `len` pieces, as a seeder holds.
    pub fn full(len: u32) -> Self {
        let mut bf = Self::new(len);
        for i in 0..len {
            bf.set(i);
        }
        bf
    }

    /// Parses the wire form, checked against the blob's piece count.
    pub fn from_bytes(bytes: &[u8], len: u32) -> Result<Self, BitfieldError> {
        let expected = Self::byte_len(len);
        if bytes.len() != expected {
            return Err(BitfieldError::WrongLength {
                got: bytes.len(),
                expected,
                pieces: len,
            });
        }
        let spare = (expected * 8) as u64 - u64::from(len);
        if spare > 0 {
            let mask = (1u8 << spare) - 1;
            if bytes[expected - 1] & mask != 0 {
                return Err(BitfieldError::SpareBitsSet);
            }
        }
        let ones = bytes.iter().map(|b| b.count_ones()).sum();
        Ok(Bitfield {
            bytes: bytes.to_vec(),
            len,
            ones,
        })
    }

    /// Bytes needed to hold `len` bits.
    pub fn byte_len(len: u32) -> usize {
        (len as usize).div_ceil(8)
    }

    /// The wire form.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Number of pieces of the blob (set or not).
    pub fn len(&self) -> u32 {
        self.len
    }

    /// True for a blob of zero pieces.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of pieces held.
    pub fn count(&self) -> u32 {
        self.ones
    }

    /// True once every piece is held.
    pub fn is_complete(&self) -> bool {
        self.ones == self.len
    }

    /// Whether piece `i` is held; false for indices out of range.
    pub fn get(&self, i: u32) -> bool {
        i < self.len && self.bytes[(i / 8) as usize] & (0x80 >> (i % 8)) != 0
    }

    /// Marks piece `i` held. Returns false if it already was or is out of range.
    pub fn set(&mut self, i: u32) -> bool {
        if i >= self.len || self.get(i) {
            return false;
        }
        self.bytes[(i / 8) as usize] |= 0x80 >> (i % 8);
        self.ones += 1;
        true
    }

    /// Marks piece `i` missing. Returns false if it already was or is out of range.
    pub fn clear(&mut self, i: u32) -> bool {
        if !self.get(i) {
            return false;
        }
        self.bytes[(i / 8) as usize] &= !(0x80 >> (i % 8));
        self.ones -= 1;
        true
    }

    /// Indices of held pieces, ascending. Empty bytes are skipped whole, so
    /// a sparse set costs O(len / 8 + ones), not O(len); spare bits are
    /// zero, so no index reaches `len`.
    pub fn ones(&self) -> impl Iterator<Item = u32> + '_ {
        Ones {
            rest: &self.bytes,
            word: 0,
            base: 0,
            next_base: 0,
        }
    }

    /// Indices of missing pieces, ascending.
    pub fn zeros(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.len).filter(|&i| !self.get(i))
    }
}

/// The set bits of a [`Bitfield`], ascending, read 64 bits at a time: a
/// connecting seed's bitfield, a departing peer's and every rarest-first
/// pick through a peer's pieces walk all of them (a per-byte iterator was
/// about 5% of a simulated 1 GiB swarm).
struct Ones<'a> {
    /// Bytes not yet loaded into `word`.
    rest: &'a [u8],
    /// Bits of the current chunk not yet returned; bit 63 is index `base`.
    word: u64,
    base: u32,
    next_base: u32,
}

impl Iterator for Ones<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        while self.word == 0 {
            if self.rest.is_empty() {
                return None;
            }
            let n = self.rest.len().min(8);
            let mut chunk = [0u8; 8];
            chunk[..n].copy_from_slice(&self.rest[..n]);
            self.word = u64::from_be_bytes(chunk);
            self.rest = &self.rest[n..];
            self.base = self.next_base;
            self.next_base += 64;
        }
        let bit = self.word.leading_zeros();
        self.word ^= (1 << 63) >> bit;
        Some(self.base + bit)
    }
}

impl std::fmt::Debug for Bitfield {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bitfield({}/{})", self.ones, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_clear_and_count() {
        let mut bf = Bitfield::new(10);
        assert!(bf.set(0) && bf.set(9));
        assert!(!bf.set(9), "second set reports no change");
        assert!(!bf.set(10), "out of range is refused");
        assert_eq!(bf.count(), 2);
        assert_eq!(bf.as_bytes(), &[0x80, 0x40]);
        assert!(bf.clear(0));
        assert_eq!(bf.ones().collect::<Vec<_>>(), vec![9]);
        assert!(!bf.get(100));
    }

    #[test]
    fn ones_lists_exactly_the_set_bits_in_order() {
        for len in 0..40 {
            for pattern in [0u64, u64::MAX, 0x8000_0000_0000_0001, 0x0f0f_00ff_1234_5678] {
                let mut bf = Bitfield::new(len);
                (0..len).filter(|i| pattern >> i & 1 == 1).for_each(|i| {
                    bf.set(i);
                });
                let expected: Vec<u32> = (0..len).filter(|&i| bf.get(i)).collect();
                assert_eq!(bf.ones().collect::<Vec<_>>(), expected, "{len} {pattern:x}");
            }
            let full: Vec<u32> = Bitfield::full(len).ones().collect();
            assert_eq!(full, (0..len).collect::<Vec<_>>());
        }
    }

    #[test]
    fn wire_form_is_checked() {
        let full = Bitfield::full(10);
        assert!(full.is_complete());
        assert_eq!(Bitfield::from_bytes(full.as_bytes(), 10).unwrap(), full);
        assert!(matches!(
            Bitfield::from_bytes(&[0xff], 10),
            Err(BitfieldError::WrongLength { .. })
        ));
        assert_eq!(
            Bitfield::from_bytes(&[0xff, 0xff], 10),
            Err(BitfieldError::SpareBitsSet)
        );
    }
}

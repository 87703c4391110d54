//! The persisted bitmap of a partial blob's verified pieces. It is a hint:
//! piece data is not fsynced, so a set bit is re-verified on resume, and a
//! bit lost in a crash only costs fetching that piece again.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::error::{StoreError, io_error};
use super::layout::open_rw;
use crate::bitfield::Bitfield;

/// The bitmap file and the bits last written to it.
pub(crate) struct BitmapFile {
    file: File,
    path: PathBuf,
    bits: Bitfield,
}

impl BitmapFile {
    /// Opens the bitmap of a blob of `pieces` pieces. With `keep`, bits on
    /// disk are loaded (a malformed file reads as empty); otherwise the file
    /// is reset to all zeros.
    pub(crate) fn open(path: &Path, pieces: u32, keep: bool) -> Result<Self, StoreError> {
        let file = open_rw(path, !keep)?;
        let mut bitmap = BitmapFile {
            file,
            path: path.to_path_buf(),
            bits: Bitfield::new(pieces),
        };
        let loaded = if keep { bitmap.load(pieces) } else { None };
        match loaded {
            Some(bits) => bitmap.bits = bits,
            None => bitmap.write_all()?,
        }
        Ok(bitmap)
    }

    fn load(&self, pieces: u32) -> Option<Bitfield> {
        let mut bytes = vec![0; Bitfield::byte_len(pieces)];
        self.file.read_exact_at(&mut bytes, 0).ok()?;
        Bitfield::from_bytes(&bytes, pieces).ok()
    }

    /// Bits as last persisted.
    pub(crate) fn bits(&self) -> &Bitfield {
        &self.bits
    }

    /// Persists piece `index` as verified, writing only its byte.
    pub(crate) fn set(&mut self, index: u32) -> Result<(), StoreError> {
        if !self.bits.set(index) {
            return Ok(());
        }
        let at = (index / 8) as usize;
        let byte = self.bits.as_bytes()[at..=at].to_vec();
        if let Err(e) = self.file.write_all_at(&byte, at as u64) {
            self.bits.clear(index);
            return Err(io_error(&self.path, e));
        }
        Ok(())
    }

    /// Replaces every bit, e.g. after resume verification cleared some or a
    /// whole-blob check failed.
    pub(crate) fn replace(&mut self, bits: Bitfield) -> Result<(), StoreError> {
        self.bits = bits;
        self.write_all()
    }

    fn write_all(&self) -> Result<(), StoreError> {
        self.file
            .write_all_at(self.bits.as_bytes(), 0)
            .map_err(|e| io_error(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_survive_reopen_and_reset_without_keep() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bitmap");
        let mut bm = BitmapFile::open(&path, 10, true).unwrap();
        bm.set(0).unwrap();
        bm.set(9).unwrap();
        drop(bm);
        let bm = BitmapFile::open(&path, 10, true).unwrap();
        assert_eq!(bm.bits().ones().collect::<Vec<_>>(), vec![0, 9]);
        drop(bm);
        // A different piece count makes the file malformed: it reads as empty.
        let bm = BitmapFile::open(&path, 30, true).unwrap();
        assert_eq!(bm.bits().count(), 0);
        let bm = BitmapFile::open(&path, 30, false).unwrap();
        assert_eq!(bm.bits().count(), 0);
        assert_eq!(std::fs::read(&path).unwrap(), vec![0; 4]);
    }
}

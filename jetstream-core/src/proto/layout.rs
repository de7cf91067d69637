//! The global byte space of a transfer.
//!
//! Everything a transfer carries travels through one reliable byte space, so one mechanism
//! (ranges acknowledged, ranges retransmitted) serves the manifest, the file data and the
//! digests alike, and acknowledgements coalesce across file boundaries (10,000 small files
//! acknowledged as one range):
//!
//! ```text
//! 0            M                                  M+D                    M+D+32·N
//! | manifest   | file 0 | file 1 | ... | file N-1 | digest 0 | ... | digest N-1 |
//! ```

use std::ops::Range;

use crate::manifest::Manifest;
use crate::types::FileIndex;

/// Bytes of one digest slot.
pub(crate) const DIGEST_LEN: u64 = 32;

/// Where each entry of a manifest lives in the transfer's byte space.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    manifest_len: u64,
    /// Global start of each entry's data (sizes come from the manifest).
    starts: Vec<u64>,
    sizes: Vec<u64>,
    data_end: u64,
}

impl Layout {
    /// Only the manifest region is known (receiver before the manifest arrives).
    pub(crate) fn manifest_only(manifest_len: u64) -> Self {
        Self {
            manifest_len,
            starts: Vec::new(),
            sizes: Vec::new(),
            data_end: manifest_len,
        }
    }

    pub(crate) fn new(manifest_len: u64, manifest: &Manifest) -> Self {
        let mut starts = Vec::with_capacity(manifest.len());
        let mut sizes = Vec::with_capacity(manifest.len());
        let mut at = manifest_len;
        for e in manifest.entries() {
            starts.push(at);
            sizes.push(e.size());
            at += e.size();
        }
        Self {
            manifest_len,
            starts,
            sizes,
            data_end: at,
        }
    }

    pub(crate) fn entry_count(&self) -> usize {
        self.starts.len()
    }

    pub(crate) fn manifest_range(&self) -> Range<u64> {
        0..self.manifest_len
    }

    /// All file data, between the manifest and the digests.
    pub(crate) fn data_range(&self) -> Range<u64> {
        self.manifest_len..self.data_end
    }

    pub(crate) fn digest_range(&self) -> Range<u64> {
        self.data_end..self.data_end + DIGEST_LEN * self.starts.len() as u64
    }

    pub(crate) fn total(&self) -> u64 {
        self.digest_range().end
    }

    pub(crate) fn file_range(&self, file: usize) -> Range<u64> {
        self.starts[file]..self.starts[file] + self.sizes[file]
    }

    pub(crate) fn digest_slot(&self, file: usize) -> Range<u64> {
        let s = self.data_end + DIGEST_LEN * file as u64;
        s..s + DIGEST_LEN
    }

    /// Maps a frame's (file, offset, len) to global bytes; `None` if out of bounds.
    pub(crate) fn to_global(&self, file: FileIndex, offset: u64, len: u64) -> Option<Range<u64>> {
        let end = offset.checked_add(len)?;
        let (base, size) = match file {
            FileIndex::MANIFEST => (0, self.manifest_len),
            FileIndex::DIGESTS => (self.data_end, DIGEST_LEN * self.starts.len() as u64),
            FileIndex(i) => {
                let i = i as usize;
                (*self.starts.get(i)?, *self.sizes.get(i)?)
            }
        };
        (end <= size).then(|| base + offset..base + end)
    }

    /// Maps a global offset to the (file, offset) holding it and the end of that region, so a
    /// sender never lets one frame straddle two files.
    pub(crate) fn locate(&self, global: u64) -> Option<(FileIndex, u64, u64)> {
        if global < self.manifest_len {
            return Some((FileIndex::MANIFEST, global, self.manifest_len));
        }
        if global < self.data_end {
            // The first entry ending after `global` holds it: files are contiguous, and
            // zero-sized entries end where they start, so they are never picked.
            let i = self.first_ending_after(global);
            let r = self.file_range(i);
            return Some((FileIndex(i as u32), global - r.start, r.end));
        }
        let d = self.digest_range();
        if d.contains(&global) {
            return Some((FileIndex::DIGESTS, global - d.start, d.end));
        }
        None
    }

    /// Index of the first entry whose end is > `x`.
    fn first_ending_after(&self, x: u64) -> usize {
        let (mut lo, mut hi) = (0, self.starts.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.starts[mid] + self.sizes[mid] <= x {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::ManifestEntry;

    fn layout(sizes: &[u64]) -> Layout {
        let entries = sizes
            .iter()
            .enumerate()
            .map(|(i, &s)| ManifestEntry {
                src_path: None,
                src_id: None,
                dest_path: format!("f{i}"),
                size: s,
                mtime_us: 0,
                executable: false,
                is_empty_dir: false,
            })
            .collect();
        Layout::new(100, &Manifest { entries })
    }

    #[test]
    fn locate_skips_empty_entries_and_maps_back() {
        let l = layout(&[10, 0, 0, 5, 0, 7]);
        assert_eq!(l.data_range(), 100..122);
        assert_eq!(l.locate(99), Some((FileIndex::MANIFEST, 99, 100)));
        assert_eq!(l.locate(100), Some((FileIndex(0), 0, 110)));
        assert_eq!(l.locate(110), Some((FileIndex(3), 0, 115)));
        assert_eq!(l.locate(115), Some((FileIndex(5), 0, 122)));
        assert_eq!(l.locate(122), Some((FileIndex::DIGESTS, 0, 122 + 6 * 32)));
        assert_eq!(l.locate(122 + 6 * 32), None);
        for g in 0..l.total() {
            let (f, off, end) = l.locate(g).unwrap();
            assert!(g < end);
            assert_eq!(l.to_global(f, off, 1), Some(g..g + 1));
        }
        assert_eq!(l.to_global(FileIndex(0), 5, 6), None);
        assert_eq!(l.to_global(FileIndex(9), 0, 0), None);
        assert_eq!(l.to_global(FileIndex(0), u64::MAX, 2), None);
    }
}

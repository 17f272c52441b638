//! Compact nibble paths: up to 64 nibbles packed two to a byte, on the stack (no heap allocation).

use alloy_primitives::B256;
use core::fmt;

/// The number of nibbles in a key (a 32-byte hash).
pub(crate) const KEY_NIBBLES: usize = 64;

/// Nibble `i` (0 = the high nibble of byte 0) of a 32-byte key. `i < 64`.
#[inline]
pub(crate) fn key_nibble(key: &B256, i: usize) -> u8 {
    let b = key.0[i / 2];
    if i.is_multiple_of(2) {
        b >> 4
    } else {
        b & 0x0f
    }
}

/// A path of at most 64 nibbles, high nibble first. Unused nibbles are always zero, so the derived
/// equality compares paths.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Path {
    len: u8,
    bytes: [u8; 32],
}

impl fmt::Debug for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("0x")?;
        for i in 0..self.len() {
            write!(f, "{:x}", self.at(i))?;
        }
        Ok(())
    }
}

impl Path {
    /// Number of nibbles.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len as usize
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Nibble `i`; `i < len`.
    #[inline]
    pub(crate) fn at(&self, i: usize) -> u8 {
        debug_assert!(i < self.len());
        let b = self.bytes[i / 2];
        if i.is_multiple_of(2) {
            b >> 4
        } else {
            b & 0x0f
        }
    }

    /// Appends nibble `n` (< 16). The path must be shorter than 64 nibbles.
    #[inline]
    pub(crate) fn push(&mut self, n: u8) {
        debug_assert!(self.len() < KEY_NIBBLES && n < 16);
        let i = self.len();
        if i.is_multiple_of(2) {
            self.bytes[i / 2] = n << 4;
        } else {
            self.bytes[i / 2] |= n;
        }
        self.len += 1;
    }

    /// The nibbles `from..64` of `key`.
    pub(crate) fn key_suffix(key: &B256, from: usize) -> Self {
        debug_assert!(from <= KEY_NIBBLES);
        let mut p = Self::default();
        if from.is_multiple_of(2) {
            let n = 32 - from / 2;
            p.bytes[..n].copy_from_slice(&key.0[from / 2..]);
            p.len = (KEY_NIBBLES - from) as u8;
        } else {
            for i in from..KEY_NIBBLES {
                p.push(key_nibble(key, i));
            }
        }
        p
    }

    /// The nibbles `from..to` of this path.
    pub(crate) fn slice(&self, from: usize, to: usize) -> Self {
        debug_assert!(from <= to && to <= self.len());
        let mut p = Self::default();
        if from.is_multiple_of(2) {
            let n = (to - from).div_ceil(2);
            p.bytes[..n].copy_from_slice(&self.bytes[from / 2..from / 2 + n]);
            p.len = (to - from) as u8;
            if p.len % 2 == 1 {
                p.bytes[n - 1] &= 0xf0;
            }
        } else {
            for i in from..to {
                p.push(self.at(i));
            }
        }
        p
    }

    /// `nibble` followed by this path. The path must be shorter than 64 nibbles.
    pub(crate) fn prepend(&self, nibble: u8) -> Self {
        let mut p = Self::default();
        p.push(nibble);
        p.extend(self);
        p
    }

    /// This path followed by `other`. The sum of lengths must not exceed 64.
    pub(crate) fn concat(&self, other: &Self) -> Self {
        let mut p = *self;
        p.extend(other);
        p
    }

    fn extend(&mut self, other: &Self) {
        debug_assert!(self.len() + other.len() <= KEY_NIBBLES);
        if self.len().is_multiple_of(2) {
            let start = self.len() / 2;
            let n = other.len().div_ceil(2);
            self.bytes[start..start + n].copy_from_slice(&other.bytes[..n]);
            self.len += other.len;
        } else {
            for i in 0..other.len() {
                self.push(other.at(i));
            }
        }
    }

    /// How many leading nibbles this path shares with `key[depth..]`.
    #[inline]
    pub(crate) fn common_prefix_with_key(&self, key: &B256, depth: usize) -> usize {
        let n = self.len().min(KEY_NIBBLES - depth);
        if depth.is_multiple_of(2) {
            // Aligned: compare whole bytes, then the nibbles of the first differing byte.
            let key_bytes = &key.0[depth / 2..];
            let mut i = 0;
            while i + 2 <= n && self.bytes[i / 2] == key_bytes[i / 2] {
                i += 2;
            }
            while i < n && self.at(i) == key_nibble(key, depth + i) {
                i += 1;
            }
            i
        } else {
            let mut i = 0;
            while i < n && self.at(i) == key_nibble(key, depth + i) {
                i += 1;
            }
            i
        }
    }

    /// Whether this path equals the first `len` nibbles of `key[depth..]`.
    #[inline]
    pub(crate) fn is_prefix_of_key(&self, key: &B256, depth: usize) -> bool {
        self.len() <= KEY_NIBBLES - depth && self.common_prefix_with_key(key, depth) == self.len()
    }

    /// The hex-prefix ("compact") encoding of this path with the leaf or extension flag: at most 33
    /// bytes, returned with its length.
    pub(crate) fn hex_prefix(&self, leaf: bool) -> ([u8; 33], usize) {
        let mut out = [0u8; 33];
        let flag = if leaf { 0x20 } else { 0x00 };
        let len = self.len();
        if len.is_multiple_of(2) {
            out[0] = flag;
            out[1..1 + len / 2].copy_from_slice(&self.bytes[..len / 2]);
        } else {
            out[0] = flag | 0x10 | self.at(0);
            for j in 0..len / 2 {
                out[1 + j] = (self.at(1 + 2 * j) << 4) | self.at(2 + 2 * j);
            }
        }
        (out, len / 2 + 1)
    }

    /// Decodes a hex-prefix encoded path: `Ok((is_leaf, path))`, or what is wrong with it.
    pub(crate) fn from_hex_prefix(hp: &[u8]) -> Result<(bool, Self), &'static str> {
        let (&first, rest) = hp.split_first().ok_or("empty hex-prefix path")?;
        let flag = first >> 4;
        if flag > 3 {
            return Err("hex-prefix flag nibble above 3");
        }
        let leaf = flag & 2 != 0;
        let odd = flag & 1 != 0;
        if !odd && first & 0x0f != 0 {
            return Err("even hex-prefix path with a non-zero padding nibble");
        }
        let len = 2 * rest.len() + usize::from(odd);
        if len > KEY_NIBBLES {
            return Err("path longer than 64 nibbles");
        }
        let mut p = Self::default();
        if odd {
            p.push(first & 0x0f);
            for &b in rest {
                p.push(b >> 4);
                p.push(b & 0x0f);
            }
        } else {
            p.bytes[..rest.len()].copy_from_slice(rest);
            p.len = len as u8;
        }
        Ok((leaf, p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_nibbles(n: &[u8]) -> Path {
        let mut p = Path::default();
        for &x in n {
            p.push(x);
        }
        p
    }

    fn nibbles(p: &Path) -> Vec<u8> {
        (0..p.len()).map(|i| p.at(i)).collect()
    }

    #[test]
    fn slicing_concat_and_prefixes() {
        let key = B256::from_slice(&(0u8..32).map(|i| i.wrapping_mul(37)).collect::<Vec<_>>());
        let all: Vec<u8> = (0..64).map(|i| key_nibble(&key, i)).collect();
        for from in 0..=64 {
            let s = Path::key_suffix(&key, from);
            assert_eq!(nibbles(&s), all[from..]);
            assert_eq!(s, from_nibbles(&all[from..]));
            assert_eq!(s.common_prefix_with_key(&key, from), 64 - from);
            assert!(s.is_prefix_of_key(&key, from));
            for to in from..=64 {
                let p = Path::key_suffix(&key, 0).slice(from, to);
                assert_eq!(p, from_nibbles(&all[from..to]), "{from}..{to}");
                let q = Path::key_suffix(&key, 0).slice(0, from).concat(&p);
                assert_eq!(q, from_nibbles(&all[..to]));
            }
        }
        let p = from_nibbles(&[1, 2, 3]).prepend(9);
        assert_eq!(nibbles(&p), [9, 1, 2, 3]);
        let mut other = key;
        other.0[5] ^= 0x01; // nibble 11 differs
        assert_eq!(
            Path::key_suffix(&key, 0).common_prefix_with_key(&other, 0),
            11
        );
        assert_eq!(
            Path::key_suffix(&key, 3).common_prefix_with_key(&other, 3),
            8
        );
        assert_eq!(
            Path::key_suffix(&key, 4).common_prefix_with_key(&other, 4),
            7
        );
    }

    #[test]
    fn hex_prefix_round_trips() {
        for len in 0..=64usize {
            let p = from_nibbles(&(0..len).map(|i| (i * 7 % 16) as u8).collect::<Vec<_>>());
            for leaf in [false, true] {
                let (hp, n) = p.hex_prefix(leaf);
                assert_eq!(n, len / 2 + 1);
                assert_eq!(hp[0] >> 4, u8::from(leaf) * 2 + (len % 2) as u8);
                assert_eq!(Path::from_hex_prefix(&hp[..n]), Ok((leaf, p)));
            }
        }
        assert!(Path::from_hex_prefix(&[]).is_err());
        assert!(Path::from_hex_prefix(&[0x40]).is_err());
        assert!(Path::from_hex_prefix(&[0x21]).is_err());
        assert!(Path::from_hex_prefix(&[0x20; 34]).is_err());
    }
}

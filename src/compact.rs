//! Compact forms of the strings the caches keep for every tunnel and child: a
//! [`ShortHash`] of a string that is only ever compared, and a [`Uid`] that is sent back
//! (a delete's precondition). Each is 16 or 24 bytes in place, instead of a pointer, a
//! length and a heap allocation.

use std::fmt;

use sha2::{Digest, Sha256};

/// 128 bits of a string's SHA-256, for a string only ever compared for equality (a
/// resourceVersion, an applied hash, an object's key). Two different strings share one
/// with a probability of about 2^-128.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ShortHash([u8; 16]);

impl ShortHash {
    pub fn of(s: &str) -> ShortHash {
        ShortHash::of_parts(&[s])
    }

    /// Of a sequence of strings, each prefixed by its length: `["ab", "c"]` and
    /// `["a", "bc"]` differ.
    pub fn of_parts(parts: &[&str]) -> ShortHash {
        let mut h = Sha256::new();
        for part in parts {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        let digest = h.finalize();
        let mut short = [0; 16];
        short.copy_from_slice(&digest[..16]);
        ShortHash(short)
    }
}

/// An object's uid: the API server's are UUIDs in canonical form (16 bytes here);
/// anything else is kept as it came.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Uid {
    Uuid(u128),
    Other(Box<str>),
}

impl Uid {
    pub fn of(s: &str) -> Uid {
        let bytes = s.as_bytes();
        let canonical = bytes.len() == 36
            && bytes.iter().enumerate().all(|(i, b)| match i {
                8 | 13 | 18 | 23 => *b == b'-',
                _ => b.is_ascii_digit() || (b'a'..=b'f').contains(b),
            });
        if !canonical {
            return Uid::Other(s.into());
        }
        let n = bytes
            .iter()
            .filter_map(|b| char::from(*b).to_digit(16))
            .fold(0u128, |n, digit| n << 4 | u128::from(digit));
        Uid::Uuid(n)
    }
}

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uid::Uuid(n) => {
                let h = format!("{n:032x}");
                write!(
                    f,
                    "{}-{}-{}-{}-{}",
                    &h[..8],
                    &h[8..12],
                    &h[12..16],
                    &h[16..20],
                    &h[20..]
                )
            }
            Uid::Other(s) => f.write_str(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uid_reads_back_as_it_came() {
        let uuid = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
        assert!(matches!(Uid::of(uuid), Uid::Uuid(_)));
        for s in [
            uuid,
            "u1",
            "",
            "0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0",
            "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
            "+f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
        ] {
            assert_eq!(Uid::of(s).to_string(), s);
        }
        assert_ne!(
            Uid::of(uuid),
            Uid::of("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f1")
        );
    }

    #[test]
    fn equal_strings_only() {
        assert_eq!(ShortHash::of("uid-1"), ShortHash::of("uid-1"));
        assert_ne!(ShortHash::of("uid-1"), ShortHash::of("uid-2"));
        assert_ne!(
            ShortHash::of_parts(&["ab", "c"]),
            ShortHash::of_parts(&["a", "bc"])
        );
        assert_ne!(ShortHash::of(""), ShortHash::of_parts(&[]));
    }
}

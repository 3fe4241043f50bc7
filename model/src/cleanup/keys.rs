//! Object keys packed end to end in shared blocks, each key a handle into its block.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

/// Keys written end to end: key `i` ends at `ends[i]` and starts where key `i - 1` ends.
#[derive(Debug)]
struct Block {
    text: Box<str>,
    ends: Box<[u32]>,
}

/// An object's key relative to the cache's root, shared by the listing and every plan that
/// names the object. A cache of 1,000,000 specs lists 2,000,000 keys of ~140 bytes: one
/// allocation each (an `Arc<str>`) cost ~36 bytes a key in headers and rounding, ~75 MB, so
/// keys are packed into blocks and a key is a handle to its block, as cheap to clone as an
/// `Arc<str>` and as large.
#[derive(Clone)]
pub struct Key {
    block: Arc<Block>,
    at: u32,
}

impl Key {
    pub fn as_str(&self) -> &str {
        let (ends, i) = (&self.block.ends, self.at as usize);
        let start = if i == 0 { 0 } else { ends[i - 1] as usize };
        &self.block.text[start..ends[i] as usize]
    }
}

impl Deref for Key {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Key {
    fn as_ref(&self) -> &str {
        self
    }
}

impl Borrow<str> for Key {
    fn borrow(&self) -> &str {
        self
    }
}

/// A key of its own (not from a listing: a fixture, a key a manifest names).
impl From<&str> for Key {
    fn from(key: &str) -> Key {
        let mut packer = Packer::default();
        packer.push(key);
        packer.take().next().expect("one key was packed")
    }
}

impl From<String> for Key {
    fn from(key: String) -> Key {
        Key::from(key.as_str())
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Key {}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Key) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Key) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

/// As the key's text, so that a set of keys is searched by `&str`.
impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self)
    }
}

impl serde::Serialize for Key {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self)
    }
}

/// Keys packed as they come, a block at a time: [`Packer::push`] says when a block is full,
/// [`Packer::take`] hands out its keys.
#[derive(Debug, Default)]
pub struct Packer {
    text: String,
    ends: Vec<u32>,
}

impl Packer {
    /// Keys a block holds: enough that a block's own cost (~100 bytes) is little per key, few
    /// enough that a block (~36 KB of ~140-byte keys) stays below the size glibc maps on its
    /// own (128 KiB at least): blocks then come from the heap and fill the holes the index
    /// parse left there, whatever the threshold has grown to meanwhile.
    pub const BLOCK: usize = 256;

    /// Add `key`; true when the block is full and should be taken.
    pub fn push(&mut self, key: &str) -> bool {
        self.text.push_str(key);
        let end = u32::try_from(self.text.len()).expect("a block of keys is below 4 GiB");
        self.ends.push(end);
        self.ends.len() >= Self::BLOCK
    }

    /// The keys pushed since the last take, in order, in one block of their exact size.
    pub fn take(&mut self) -> impl ExactSizeIterator<Item = Key> + use<> {
        let block = Arc::new(Block {
            text: self.text.as_str().into(),
            ends: self.ends.as_slice().into(),
        });
        self.text.clear();
        self.ends.clear();
        (0..block.ends.len() as u32).map(move |at| Key {
            block: block.clone(),
            at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn keys_read_back_as_packed_across_blocks() {
        let all: Vec<String> = (0..Packer::BLOCK + 3)
            .map(|i| format!("build_cache/k{i}"))
            .collect();
        let (mut packer, mut keys) = (Packer::default(), Vec::new());
        for k in &all {
            if packer.push(k) {
                keys.extend(packer.take());
            }
        }
        keys.extend(packer.take());
        let read: Vec<&str> = keys.iter().map(|k| &**k).collect();
        assert_eq!(read, all);
        assert_eq!(Key::from(""), Key::from(String::new()));
        assert_eq!(Key::from("a").to_string(), "a");
    }

    #[test]
    fn keys_compare_hash_and_serialize_as_their_text() {
        let (a, b) = (Key::from("v3/a"), Key::from("v3/b"));
        assert!(a < b);
        let set: HashSet<Key> = [a.clone(), b].into_iter().collect();
        assert!(set.contains("v3/a"));
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"v3/a\"");
        assert_eq!(format!("{a:?}"), "\"v3/a\"");
    }
}

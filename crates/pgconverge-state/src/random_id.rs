//! Random UUID-v4-shaped identifiers for state lineages and lock ids.

use std::collections::hash_map::RandomState;
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Returns a random identifier such as `3f2b8c1e-9a4d-4c7e-b1f0-5d6e7a8b9c0d`.
///
/// The bytes come from `/dev/urandom`. Where that cannot be read, std's randomly keyed
/// SipHash mixes the clock, the pid and a counter: weaker, but still unique per call, which
/// is all a lineage or lock id needs.
pub(crate) fn random_id() -> String {
    let mut bytes = urandom_bytes().unwrap_or_else(fallback_bytes);
    // Mark the value as a version 4, RFC 4122 variant UUID so tools recognise the shape.
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn urandom_bytes() -> Option<[u8; 16]> {
    let mut bytes = [0u8; 16];
    File::open("/dev/urandom")
        .and_then(|mut file| file.read_exact(&mut bytes))
        .ok()?;
    Some(bytes)
}

fn fallback_bytes() -> [u8; 16] {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default();
    let mut bytes = [0u8; 16];
    for (half, chunk) in bytes.chunks_exact_mut(8).enumerate() {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u128(nanos);
        hasher.write_u32(std::process::id());
        hasher.write_u64(call);
        hasher.write_usize(half);
        chunk.copy_from_slice(&hasher.finish().to_le_bytes());
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_uuid_v4_shape(id: &str) {
        let groups: Vec<&str> = id.split('-').collect();
        assert_eq!(
            groups.iter().map(|group| group.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12],
            "{id}"
        );
        assert!(id
            .chars()
            .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c)));
        assert!(groups[2].starts_with('4'), "{id}");
        assert!(groups[3].starts_with(['8', '9', 'a', 'b']), "{id}");
    }

    #[test]
    fn ids_have_uuid_v4_shape_and_differ() {
        let first = random_id();
        let second = random_id();
        assert_uuid_v4_shape(&first);
        assert_uuid_v4_shape(&second);
        assert_ne!(first, second);
    }

    #[test]
    fn fallback_bytes_differ_between_calls() {
        assert_ne!(fallback_bytes(), fallback_bytes());
    }
}

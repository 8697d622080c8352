//! Node-unique integer keys: each node owns a slot, and every key sequence on it hands out
//! values only from its slot's block of the integer range. Block 0 holds the values that
//! existed before adoption; slots start at 1 and are never reused (see docs/adopting.md).

use crate::types::normalize_type;

/// The integer widths a key sequence can feed, with the size of their blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyWidth {
    /// `smallint`: blocks of 2^9 values, slots 1..=63.
    Small,
    /// `integer`: blocks of 2^24 values, slots 1..=127.
    Int,
    /// `bigint`: blocks of 2^48 values, slots 1..=32767.
    Big,
}

impl KeyWidth {
    /// The width of a column type (`bigint`, `int4`, `serial`, …), if it is an integer one.
    pub fn of_type(data_type: &str) -> Option<KeyWidth> {
        let normalized = normalize_type(data_type);
        let integer = serial_integer_type(&normalized).unwrap_or(&normalized);
        match integer {
            "smallint" => Some(KeyWidth::Small),
            "integer" => Some(KeyWidth::Int),
            "bigint" => Some(KeyWidth::Big),
            _ => None,
        }
    }

    /// log2 of the number of values in one block.
    pub fn block_bits(self) -> u32 {
        match self {
            KeyWidth::Small => 9,
            KeyWidth::Int => 24,
            KeyWidth::Big => 48,
        }
    }

    /// The highest slot whose block fits in the type's positive range.
    pub fn max_slot(self) -> i64 {
        let value_bits = match self {
            KeyWidth::Small => 15,
            KeyWidth::Int => 31,
            KeyWidth::Big => 63,
        };
        (1i64 << (value_bits - self.block_bits())) - 1
    }

    /// The first and last value of `slot`'s block, or `None` when the slot is out of range.
    pub fn block(self, slot: i64) -> Option<KeyBlock> {
        if slot < 1 || slot > self.max_slot() {
            return None;
        }
        let first = slot << self.block_bits();
        // `first + size - 1` computed without overflowing at the top of `bigint`.
        let last = first + ((1i64 << self.block_bits()) - 1);
        Some(KeyBlock { first, last })
    }

    /// The type as PostgreSQL's `format_type` prints it.
    pub fn type_name(self) -> &'static str {
        match self {
            KeyWidth::Small => "smallint",
            KeyWidth::Int => "integer",
            KeyWidth::Big => "bigint",
        }
    }
}

/// The inclusive range of values one node's key sequences hand out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyBlock {
    pub first: i64,
    pub last: i64,
}

impl KeyBlock {
    pub fn size(self) -> i64 {
        self.last - self.first + 1
    }
}

/// The integer type a `serial` pseudo-type stands for (`bigserial` → `bigint`), given a
/// normalised type name.
pub fn serial_integer_type(normalized: &str) -> Option<&'static str> {
    match normalized {
        "serial" | "serial4" => Some("integer"),
        "bigserial" | "serial8" => Some("bigint"),
        "smallserial" | "serial2" => Some("smallint"),
        _ => None,
    }
}

/// Whether a column default draws from a sequence (`nextval('…')`).
pub fn is_sequence_default(default: &str) -> bool {
    default
        .trim_start()
        .to_ascii_lowercase()
        .replace(' ', "")
        .trim_start_matches("pg_catalog.")
        .starts_with("nextval(")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_disjoint_and_inside_the_type() {
        for width in [KeyWidth::Small, KeyWidth::Int, KeyWidth::Big] {
            let first = width.block(1).expect("slot 1");
            assert_eq!(first.first, 1i64 << width.block_bits());
            let top = width.block(width.max_slot()).expect("top slot");
            let type_max = match width {
                KeyWidth::Small => i16::MAX as i64,
                KeyWidth::Int => i32::MAX as i64,
                KeyWidth::Big => i64::MAX,
            };
            assert_eq!(top.last, type_max);
            assert!(width.block(0).is_none());
            assert!(width.block(width.max_slot() + 1).is_none());
            let second = width.block(2).expect("slot 2");
            assert_eq!(second.first, first.last + 1);
        }
        assert_eq!(KeyWidth::Big.max_slot(), 32767);
        assert_eq!(KeyWidth::Int.max_slot(), 127);
        assert_eq!(KeyWidth::Small.max_slot(), 63);
    }

    #[test]
    fn widths_come_from_integer_and_serial_types() {
        assert_eq!(KeyWidth::of_type("BIGSERIAL"), Some(KeyWidth::Big));
        assert_eq!(KeyWidth::of_type("int4"), Some(KeyWidth::Int));
        assert_eq!(KeyWidth::of_type("smallserial"), Some(KeyWidth::Small));
        assert_eq!(KeyWidth::of_type("numeric"), None);
        assert!(is_sequence_default("nextval('public.t_id_seq'::regclass)"));
        assert!(is_sequence_default("pg_catalog.nextval('s')"));
        assert!(!is_sequence_default("now()"));
    }
}

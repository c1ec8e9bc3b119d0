//! Integers in request bodies as JSON Schema counts them: `209` and `209.0` are
//! the same integer (a number with no fractional part), so a client whose JSON
//! library writes every number as a float is not refused. `209.5`, `-1`, values
//! out of range and non-numbers are still errors. Use with
//! `#[serde(deserialize_with = "crate::json_int::u32")]`.

use serde::de::{Deserializer, Error, Unexpected, Visitor};

struct Whole(u64);

impl<'de> Visitor<'de> for Whole {
    type Value = u64;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "a whole number from 0 to {}", self.0)
    }
    fn visit_u64<E: Error>(self, v: u64) -> Result<u64, E> {
        if v > self.0 {
            return Err(E::invalid_value(Unexpected::Unsigned(v), &self));
        }
        Ok(v)
    }
    fn visit_i64<E: Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v)
            .map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
            .and_then(|v| self.visit_u64(v))
    }
    fn visit_f64<E: Error>(self, v: f64) -> Result<u64, E> {
        // Exactly representable whole numbers only (below 2^53).
        if v.fract() == 0.0 && (0.0..9_007_199_254_740_992.0).contains(&v) {
            self.visit_u64(v as u64)
        } else {
            Err(E::invalid_value(Unexpected::Float(v), &self))
        }
    }
}

/// A Unicode code point (0 to 0x10FFFF) as a JSON integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodePoint(pub u32);

impl<'de> serde::Deserialize<'de> for CodePoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Whole(0x10FFFF))
            .map(|v| CodePoint(v as u32))
    }
}

pub fn u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    d.deserialize_any(Whole(u32::MAX as u64)).map(|v| v as u32)
}

pub fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    d.deserialize_any(Whole(u64::MAX))
}

/// A map from names to whole numbers up to `u32::MAX`.
pub fn u32_map<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<std::collections::BTreeMap<String, u32>, D::Error> {
    struct N(u32);
    impl<'de> serde::Deserialize<'de> for N {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            u32(d).map(N)
        }
    }
    let m: std::collections::BTreeMap<String, N> = serde::Deserialize::deserialize(d)?;
    Ok(m.into_iter().map(|(k, v)| (k, v.0)).collect())
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize, Debug)]
    struct T {
        #[serde(deserialize_with = "super::u32")]
        n: u32,
    }

    fn n(json: &str) -> Result<u32, String> {
        serde_json::from_str::<T>(&format!(r#"{{"n": {json}}}"#))
            .map(|t| t.n)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn whole_floats_are_integers_and_nothing_else_is() {
        assert_eq!(n("209"), Ok(209));
        assert_eq!(n("209.0"), Ok(209));
        assert_eq!(n("2.09e2"), Ok(209));
        assert_eq!(n("4294967295"), Ok(u32::MAX));
        for bad in [
            "209.5",
            "-1",
            "-0.5",
            "4294967296",
            "1e300",
            "\"7\"",
            "true",
            "null",
        ] {
            assert!(n(bad).is_err(), "{bad} was accepted");
        }
    }
}

//! The wall clock, read in one place: result timestamps, expiry checks, certificate ages.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, with fractions; `0.0` if the clock is before 1970.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Whole seconds since the Unix epoch (for comparing with `exp`, `notAfter` and other
/// whole-second times); `0` if the clock is before 1970.
pub fn unix_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn both_readings_agree() {
        let (f, s) = (super::unix_now(), super::unix_secs());
        assert!(s > 1_600_000_000, "{s}");
        assert!((f - s as f64).abs() < 2.0, "{f} vs {s}");
    }
}

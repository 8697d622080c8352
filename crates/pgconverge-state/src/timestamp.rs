//! RFC 3339 UTC timestamps from `SystemTime` and back, without a date-time dependency.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds from the Unix epoch to 0000-01-01T00:00:00Z.
const EARLIEST_SECONDS: i64 = -62_167_219_200;
/// Seconds from the Unix epoch to 9999-12-31T23:59:59Z.
const LATEST_SECONDS: i64 = 253_402_300_799;
const SECONDS_PER_DAY: i64 = 86_400;

/// Formats `time` as `YYYY-MM-DDTHH:MM:SSZ` (whole seconds, UTC).
///
/// Times outside years 0000..=9999 are clamped to that range: RFC 3339 has four-digit years.
pub fn format_rfc3339_utc(time: SystemTime) -> String {
    let seconds = match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => {
            let before = before.duration();
            let whole = i64::try_from(before.as_secs()).unwrap_or(i64::MAX);
            // Floor towards the past so 0.5 s before the epoch is 23:59:59 of the previous day.
            let partial = i64::from(before.subsec_nanos() > 0);
            whole.saturating_add(partial).saturating_neg()
        }
    }
    .clamp(EARLIEST_SECONDS, LATEST_SECONDS);
    let days = seconds.div_euclid(SECONDS_PER_DAY);
    let second_of_day = seconds.rem_euclid(SECONDS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
}

/// Parses an RFC 3339 timestamp (`Z` or a numeric offset, optional fractional seconds).
///
/// Returns `None` for anything else; callers treat an unreadable timestamp as "age unknown".
pub fn parse_rfc3339_utc(text: &str) -> Option<SystemTime> {
    let bytes = text.as_bytes();
    let year = digits(bytes, 0, 4)?;
    expect_byte(bytes, 4, b'-')?;
    let month = digits(bytes, 5, 2)?;
    expect_byte(bytes, 7, b'-')?;
    let day = digits(bytes, 8, 2)?;
    if !matches!(bytes.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let hour = digits(bytes, 11, 2)?;
    expect_byte(bytes, 13, b':')?;
    let minute = digits(bytes, 14, 2)?;
    expect_byte(bytes, 16, b':')?;
    let second = digits(bytes, 17, 2)?;
    let mut position = 19;
    let mut nanos: u32 = 0;
    if bytes.get(position) == Some(&b'.') {
        position += 1;
        let start = position;
        while let Some(digit) = bytes.get(position).filter(|byte| byte.is_ascii_digit()) {
            // Digits past nanoseconds are accepted and ignored.
            if position - start < 9 {
                nanos = nanos * 10 + u32::from(digit - b'0');
            }
            position += 1;
        }
        if position == start {
            return None;
        }
        for _ in (position - start)..9 {
            nanos *= 10;
        }
    }
    let offset_seconds: i64 = match bytes.get(position) {
        Some(b'Z' | b'z') if position + 1 == bytes.len() => 0,
        Some(sign @ (b'+' | b'-')) if position + 6 == bytes.len() => {
            let offset_hours = digits(bytes, position + 1, 2)?;
            expect_byte(bytes, position + 3, b':')?;
            let offset_minutes = digits(bytes, position + 4, 2)?;
            if offset_hours > 23 || offset_minutes > 59 {
                return None;
            }
            let magnitude = offset_hours * 3600 + offset_minutes * 60;
            if *sign == b'+' {
                magnitude
            } else {
                -magnitude
            }
        }
        _ => return None,
    };
    let month = u32::try_from(month).ok()?;
    let day = u32::try_from(day).ok()?;
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        // 60 is a leap second; it is counted as the following second, as Unix time does.
        || second > 60
    {
        return None;
    }
    let seconds =
        days_from_civil(year, month, day) * SECONDS_PER_DAY + hour * 3600 + minute * 60 + second
            - offset_seconds;
    let nanos = Duration::from_nanos(u64::from(nanos));
    if seconds >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(seconds.unsigned_abs()) + nanos)
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::from_secs(seconds.unsigned_abs()))?
            .checked_add(nanos)
    }
}

/// Formats a duration with its two largest units: `45s`, `3m12s`, `2h5m`, `3d4h`.
pub(crate) fn format_duration_short(duration: Duration) -> String {
    let total = duration.as_secs();
    let (days, hours, minutes, seconds) = (
        total / 86_400,
        total % 86_400 / 3600,
        total % 3600 / 60,
        total % 60,
    );
    if days > 0 {
        format!("{days}d{hours}h")
    } else if hours > 0 {
        format!("{hours}h{minutes}m")
    } else if minutes > 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}

fn digits(bytes: &[u8], start: usize, count: usize) -> Option<i64> {
    let slice = bytes.get(start..start + count)?;
    slice.iter().try_fold(0i64, |value, byte| {
        byte.is_ascii_digit()
            .then(|| value * 10 + i64::from(byte - b'0'))
    })
}

fn expect_byte(bytes: &[u8], index: usize, expected: u8) -> Option<()> {
    (bytes.get(index) == Some(&expected)).then_some(())
}

fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// The two conversions below are Howard Hinnant's `days_from_civil` / `civil_from_days`
// (proleptic Gregorian calendar, days counted from 1970-01-01).

fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month = i64::from(month);
    let shifted_month = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * shifted_month + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // Both values are small by construction (1..=12, 1..=31), so the casts are exact.
    (year, month as u32, day as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_rfc3339_utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339_utc(at(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(
            format_rfc3339_utc(at(1_700_000_000)),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(
            format_rfc3339_utc(UNIX_EPOCH - Duration::from_millis(500)),
            "1969-12-31T23:59:59Z"
        );
    }

    #[test]
    fn parse_inverts_format_across_centuries() {
        for seconds in [
            0,
            59,
            951_782_400,
            1_700_000_000,
            4_102_444_800,
            13_000_000_000,
        ] {
            let time = at(seconds);
            assert_eq!(parse_rfc3339_utc(&format_rfc3339_utc(time)), Some(time));
        }
    }

    #[test]
    fn parse_accepts_offsets_and_fractions() {
        assert_eq!(
            parse_rfc3339_utc("2023-11-15T00:13:20.250+02:00"),
            Some(at(1_700_000_000) + Duration::from_millis(250))
        );
        assert_eq!(
            parse_rfc3339_utc("2023-11-14t22:13:20z"),
            Some(at(1_700_000_000))
        );
    }

    #[test]
    fn parse_rejects_malformed_text() {
        for text in [
            "",
            "2023-11-14",
            "2023-11-14T22:13:20",
            "2023-02-29T00:00:00Z",
            "2023-13-01T00:00:00Z",
            "2023-11-14T24:00:00Z",
            "2023-11-14T22:13:20.Z",
            "2023-11-14T22:13:20Zjunk",
            "２０23-11-14T22:13:20Z",
        ] {
            assert_eq!(parse_rfc3339_utc(text), None, "{text:?}");
        }
    }

    #[test]
    fn short_durations_use_two_units() {
        assert_eq!(format_duration_short(Duration::from_secs(45)), "45s");
        assert_eq!(format_duration_short(Duration::from_secs(192)), "3m12s");
        assert_eq!(format_duration_short(Duration::from_secs(7_512)), "2h5m");
        assert_eq!(format_duration_short(Duration::from_secs(273_600)), "3d4h");
    }
}

//! Quantities with units: Go-style durations ("1h30m", "1.5s") and byte sizes ("512KB", "1GB"),
//! parsed exactly (no floating point) and formatted back in the same syntax.

use std::time::Duration;

pub(crate) const KB: u64 = 1024;
pub(crate) const MB: u64 = 1024 * KB;
pub(crate) const GB: u64 = 1024 * MB;
const TB: u64 = 1024 * GB;

pub(crate) const DURATION_EXPECTED: &str =
    "a duration like \"500ms\", \"10s\", \"5m\" or \"1h30m\" (a plain number means seconds)";
pub(crate) const NEGATIVE_DURATION: &str = "a duration that is not negative";
pub(crate) const SIZE_EXPECTED: &str = "a size like \"100B\", \"512KB\", \"10MB\" or \"1GB\"";
pub(crate) const NEGATIVE_SIZE: &str = "a size that is not negative";

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Parses a Go duration ("300ms", "1.5h", "2h45m", "0"); a plain number ("5", "2.5") is
/// seconds. The error is the text for "expected ...".
pub(crate) fn parse_duration(text: &str) -> Result<Duration, &'static str> {
    let text = text.trim();
    if text.starts_with('-') {
        return Err(NEGATIVE_DURATION);
    }
    let text = text.strip_prefix('+').unwrap_or(text);
    if text.is_empty() {
        return Err(DURATION_EXPECTED);
    }
    if is_decimal(text) {
        let nanos = decimal_times(text, NANOS_PER_SEC).ok_or(DURATION_EXPECTED)?;
        return nanos_to_duration(nanos);
    }
    let mut total: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or(DURATION_EXPECTED)?;
        let (number, tail) = rest.split_at(number_len);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => NANOS_PER_SEC,
            "m" => 60 * NANOS_PER_SEC,
            "h" => 3600 * NANOS_PER_SEC,
            _ => return Err(DURATION_EXPECTED),
        };
        if !is_decimal(number) {
            return Err(DURATION_EXPECTED);
        }
        let part = decimal_times(number, scale).ok_or(DURATION_EXPECTED)?;
        total = total.checked_add(part).ok_or(DURATION_EXPECTED)?;
        rest = tail;
    }
    nanos_to_duration(total)
}

/// Formats like Go but without zero parts: "0s", "750ms", "10s", "1m30s", "1h30m", "1.5s".
pub(crate) fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < NANOS_PER_SEC {
        return match nanos {
            n if n % 1_000_000 == 0 => format!("{}ms", n / 1_000_000),
            n if n % 1_000 == 0 => format!("{}us", n / 1_000),
            n => format!("{n}ns"),
        };
    }
    let secs = d.as_secs();
    let (hours, minutes, seconds) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    let sub = d.subsec_nanos();
    if sub > 0 {
        let fraction = format!("{sub:09}");
        out.push_str(&format!("{seconds}.{}s", fraction.trim_end_matches('0')));
    } else if seconds > 0 {
        out.push_str(&format!("{seconds}s"));
    }
    out
}

/// Parses a size: a number with an optional unit B, K/KB/KiB, M/MB/MiB, G/GB/GiB, T/TB/TiB
/// (case-insensitive, all powers of 1024). A number without a unit is `bare_unit` bytes,
/// because RoadRunner counts some keys in megabytes.
pub(crate) fn parse_size(text: &str, bare_unit: u64) -> Result<u64, &'static str> {
    let text = text.trim();
    if text.starts_with('-') {
        return Err(NEGATIVE_SIZE);
    }
    let number_len = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(number_len);
    if !is_decimal(number) {
        return Err(SIZE_EXPECTED);
    }
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" => bare_unit,
        "b" => 1,
        "k" | "kb" | "kib" => KB,
        "m" | "mb" | "mib" => MB,
        "g" | "gb" | "gib" => GB,
        "t" | "tb" | "tib" => TB,
        _ => return Err(SIZE_EXPECTED),
    };
    let bytes = decimal_times(number, u128::from(scale)).ok_or(SIZE_EXPECTED)?;
    u64::try_from(bytes).map_err(|_| SIZE_EXPECTED)
}

/// A size for people: the largest unit that keeps the number at least 1, e.g. "100MB", "1.5GB".
pub(crate) fn human_size(bytes: u64) -> String {
    let (scale, unit) = [(TB, "TB"), (GB, "GB"), (MB, "MB"), (KB, "KB")]
        .into_iter()
        .find(|(scale, _)| bytes >= *scale)
        .unwrap_or((1, "B"));
    if bytes.is_multiple_of(scale) {
        return format!("{}{unit}", bytes / scale);
    }
    // Precision loss is fine here: this is for display only.
    let value = format!("{:.2}", bytes as f64 / scale as f64);
    format!(
        "{}{unit}",
        value.trim_end_matches('0').trim_end_matches('.')
    )
}

/// "104857600 bytes (100MB)": exact for machines, readable for people.
pub(crate) fn describe_size(bytes: u64) -> String {
    format!("{bytes} bytes ({})", human_size(bytes))
}

fn is_decimal(text: &str) -> bool {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    !(whole.is_empty() && fraction.is_empty())
        && whole.chars().all(|c| c.is_ascii_digit())
        && fraction.chars().all(|c| c.is_ascii_digit())
}

/// `text` (digits with an optional fraction) times `scale`, truncated to an integer; None on
/// overflow. Fraction digits past the 18th cannot matter at nanosecond or byte precision.
fn decimal_times(text: &str, scale: u128) -> Option<u128> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let fraction = &fraction[..fraction.len().min(18)];
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut total = whole.checked_mul(scale)?;
    if !fraction.is_empty() {
        let digits: u128 = fraction.parse().ok()?;
        total =
            total.checked_add(digits.checked_mul(scale)? / 10u128.pow(fraction.len() as u32))?;
    }
    Some(total)
}

fn nanos_to_duration(nanos: u128) -> Result<Duration, &'static str> {
    let secs = u64::try_from(nanos / NANOS_PER_SEC).map_err(|_| DURATION_EXPECTED)?;
    Ok(Duration::new(secs, (nanos % NANOS_PER_SEC) as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("500ms"), Ok(ms(500)));
        assert_eq!(parse_duration("10s"), Ok(ms(10_000)));
        assert_eq!(parse_duration("5m"), Ok(ms(300_000)));
        assert_eq!(parse_duration("1h30m"), Ok(ms(5_400_000)));
        assert_eq!(parse_duration("1.5s"), Ok(ms(1_500)));
        assert_eq!(parse_duration("1m0.25s"), Ok(ms(60_250)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("250µs"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse_duration(".5s"), Ok(ms(500)));
        assert_eq!(parse_duration(" +2s "), Ok(ms(2_000)));
    }

    #[test]
    fn zero_and_plain_numbers_are_seconds() {
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("5"), Ok(ms(5_000)));
        assert_eq!(parse_duration("2.5"), Ok(ms(2_500)));
    }

    #[test]
    fn bad_durations() {
        for bad in [
            "", "s", "10x", "1.2.3s", "ms10", "10 s", "1h 30m", "1d", ".",
        ] {
            assert_eq!(parse_duration(bad), Err(DURATION_EXPECTED), "{bad:?}");
        }
        assert_eq!(parse_duration("-1s"), Err(NEGATIVE_DURATION));
        assert_eq!(
            parse_duration("99999999999999999999h"),
            Err(DURATION_EXPECTED)
        );
    }

    #[test]
    fn durations_format_and_round_trip() {
        let cases = [
            (Duration::ZERO, "0s"),
            (ms(1), "1ms"),
            (Duration::from_micros(250), "250us"),
            (Duration::from_nanos(7), "7ns"),
            (ms(1_500), "1.5s"),
            (ms(10_000), "10s"),
            (ms(60_000), "1m"),
            (ms(90_000), "1m30s"),
            (ms(5_400_000), "1h30m"),
            (ms(3_600_001), "1h0.001s"),
        ];
        for (duration, text) in cases {
            assert_eq!(format_duration(duration), text);
            assert_eq!(parse_duration(text), Ok(duration), "{text}");
        }
    }

    #[test]
    fn sizes_with_units() {
        assert_eq!(parse_size("100B", MB), Ok(100));
        assert_eq!(parse_size("512KB", MB), Ok(512 * KB));
        assert_eq!(parse_size("10MB", 1), Ok(10 * MB));
        assert_eq!(parse_size("1GB", 1), Ok(GB));
        assert_eq!(parse_size("2 gib", 1), Ok(2 * GB));
        assert_eq!(parse_size("1.5k", 1), Ok(1536));
        assert_eq!(parse_size("1T", 1), Ok(TB));
    }

    #[test]
    fn bare_numbers_use_the_key_unit() {
        assert_eq!(parse_size("100", MB), Ok(100 * MB));
        assert_eq!(parse_size("100", 1), Ok(100));
    }

    #[test]
    fn bad_sizes() {
        for bad in ["", "MB", "10XB", "1.2.3MB", "ten"] {
            assert_eq!(parse_size(bad, 1), Err(SIZE_EXPECTED), "{bad:?}");
        }
        assert_eq!(parse_size("-1MB", 1), Err(NEGATIVE_SIZE));
        assert_eq!(parse_size("99999999999TB", 1), Err(SIZE_EXPECTED));
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(100), "100B");
        assert_eq!(human_size(64 * KB), "64KB");
        assert_eq!(human_size(100 * MB), "100MB");
        assert_eq!(human_size(GB + GB / 2), "1.5GB");
        assert_eq!(describe_size(MB), "1048576 bytes (1MB)");
    }
}

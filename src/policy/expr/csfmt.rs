//! What .NET does when it turns numbers and dates into text, in the invariant culture:
//! `double.ToString()` (shortest round-trip digits, "E+XX" past 15 digits), and
//! `DateTime` as ticks (100 ns since 0001-01-01, UTC) with the standard ("o", "s", "u",
//! "r", "G"...) and custom ("yyyy-MM-ddTHH:mm:ss") format strings. Pure functions; a bad
//! format string is an `Err` with .NET's complaint, never a panic.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub(crate) const TICKS_PER_SECOND: i64 = 10_000_000;
pub(crate) const TICKS_PER_MINUTE: i64 = 60 * TICKS_PER_SECOND;
pub(crate) const TICKS_PER_HOUR: i64 = 60 * TICKS_PER_MINUTE;
pub(crate) const TICKS_PER_DAY: i64 = 24 * TICKS_PER_HOUR;
/// `DateTime.MaxValue.Ticks`.
pub(crate) const MAX_TICKS: i64 = 3_155_378_975_999_999_999;
/// Ticks of 1970-01-01T00:00:00Z.
pub(crate) const UNIX_EPOCH_TICKS: i64 = 621_355_968_000_000_000;

/// A `SystemTime` as .NET ticks, clamped to `DateTime`'s range.
pub(crate) fn ticks_from_system(t: SystemTime) -> i64 {
    let rel = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => duration_ticks(d),
        Err(e) => -duration_ticks(e.duration()),
    };
    UNIX_EPOCH_TICKS.saturating_add(rel).clamp(0, MAX_TICKS)
}

fn duration_ticks(d: Duration) -> i64 {
    i64::try_from(d.as_nanos() / 100).unwrap_or(i64::MAX)
}

/// Ticks back to a `SystemTime` (`None` if the platform cannot represent it).
pub(crate) fn system_from_ticks(ticks: i64) -> Option<SystemTime> {
    let rel = ticks.checked_sub(UNIX_EPOCH_TICKS)?;
    let mag = rel.unsigned_abs();
    let d = Duration::new(
        mag / TICKS_PER_SECOND as u64,
        ((mag % TICKS_PER_SECOND as u64) * 100) as u32,
    );
    if rel >= 0 {
        UNIX_EPOCH.checked_add(d)
    } else {
        UNIX_EPOCH.checked_sub(d)
    }
}

/// The calendar fields of a tick count (proleptic Gregorian, UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Civil {
    pub year: i64,
    pub month: i64,
    pub day: i64,
    pub hour: i64,
    pub minute: i64,
    pub second: i64,
    /// Ticks within the second (0..10_000_000).
    pub fraction: i64,
    /// 0 = Sunday, as .NET's `DayOfWeek`.
    pub day_of_week: i64,
}

pub(crate) fn civil(ticks: i64) -> Civil {
    let ticks = ticks.clamp(0, MAX_TICKS);
    let days = ticks / TICKS_PER_DAY;
    let rem = ticks % TICKS_PER_DAY;
    // Days from 0001-01-01 to 1970-01-01 are 719_162; the algorithm below counts from 1970.
    let (year, month, day) = civil_from_days(days - 719_162);
    Civil {
        year,
        month,
        day,
        hour: rem / TICKS_PER_HOUR,
        minute: rem % TICKS_PER_HOUR / TICKS_PER_MINUTE,
        second: rem % TICKS_PER_MINUTE / TICKS_PER_SECOND,
        fraction: rem % TICKS_PER_SECOND,
        // 0001-01-01 was a Monday.
        day_of_week: (days + 1) % 7,
    }
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year, month, day).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

const DAY_NAMES: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTH_NAMES: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// `DateTime.ToString(format)` for a UTC `DateTime` in the invariant culture. An empty
/// format is `ToString()` ("G").
pub(crate) fn format_datetime(ticks: i64, format: &str) -> Result<String, String> {
    let custom = match format {
        "" | "G" => "MM/dd/yyyy HH:mm:ss",
        "d" => "MM/dd/yyyy",
        "D" => "dddd, dd MMMM yyyy",
        "f" => "dddd, dd MMMM yyyy HH:mm",
        "F" => "dddd, dd MMMM yyyy HH:mm:ss",
        "g" => "MM/dd/yyyy HH:mm",
        "m" | "M" => "MMMM dd",
        "o" | "O" => "yyyy'-'MM'-'dd'T'HH':'mm':'ss'.'fffffffK",
        "r" | "R" => "ddd, dd MMM yyyy HH':'mm':'ss 'GMT'",
        "s" => "yyyy'-'MM'-'dd'T'HH':'mm':'ss",
        "t" => "HH:mm",
        "T" => "HH:mm:ss",
        "u" => "yyyy'-'MM'-'dd HH':'mm':'ss'Z'",
        "U" => "dddd, dd MMMM yyyy HH:mm:ss",
        "y" | "Y" => "yyyy MMMM",
        f if f.chars().count() == 1 => {
            return Err(format!("'{f}' is not a valid DateTime format string"))
        }
        f => f,
    };
    custom_datetime(ticks, custom)
}

fn custom_datetime(ticks: i64, f: &str) -> Result<String, String> {
    let c = civil(ticks);
    let chars: Vec<char> = f.chars().collect();
    let mut out = String::with_capacity(f.len() + 8);
    let mut i = 0;
    while i < chars.len() {
        let ch = chars[i];
        let mut n = 1;
        while i + n < chars.len() && chars[i + n] == ch {
            n += 1;
        }
        let pad = |out: &mut String, v: i64, width: usize| {
            out.push_str(&format!("{v:0width$}"));
        };
        match ch {
            'y' => match n {
                1 => pad(&mut out, c.year % 100, 1),
                2 => pad(&mut out, c.year % 100, 2),
                _ => pad(&mut out, c.year, n),
            },
            'M' => match n {
                1 | 2 => pad(&mut out, c.month, n),
                3 => out.push_str(&MONTH_NAMES[(c.month - 1) as usize % 12][..3]),
                _ => out.push_str(MONTH_NAMES[(c.month - 1) as usize % 12]),
            },
            'd' => match n {
                1 | 2 => pad(&mut out, c.day, n),
                3 => out.push_str(&DAY_NAMES[c.day_of_week as usize % 7][..3]),
                _ => out.push_str(DAY_NAMES[c.day_of_week as usize % 7]),
            },
            'H' => pad(&mut out, c.hour, n.min(2)),
            'h' => pad(&mut out, (c.hour + 11) % 12 + 1, n.min(2)),
            'm' => pad(&mut out, c.minute, n.min(2)),
            's' => pad(&mut out, c.second, n.min(2)),
            't' => {
                let ampm = if c.hour < 12 { "AM" } else { "PM" };
                out.push_str(if n == 1 { &ampm[..1] } else { ampm });
            }
            'f' | 'F' => {
                if n > 7 {
                    return Err("invalid DateTime format string: too many 'f'".to_string());
                }
                let digits = format!("{:07}", c.fraction);
                let mut part = &digits[..n];
                if ch == 'F' {
                    part = part.trim_end_matches('0');
                }
                out.push_str(part);
            }
            'K' => out.push('Z'),
            'z' => out.push_str(match n {
                1 => "+0",
                2 => "+00",
                _ => "+00:00",
            }),
            'g' => out.push_str("A.D."),
            '\'' | '"' => {
                // Quoted literal text, runs of the quote char toggle.
                let mut j = i + 1;
                while j < chars.len() && chars[j] != ch {
                    if chars[j] == '\\' && j + 1 < chars.len() {
                        j += 1;
                    }
                    out.push(chars[j]);
                    j += 1;
                }
                if j >= chars.len() {
                    return Err("invalid DateTime format string: unterminated quote".to_string());
                }
                i = j + 1;
                continue;
            }
            '\\' => {
                match chars.get(i + 1) {
                    Some(&lit) => out.push(lit),
                    None => return Err("invalid DateTime format string: trailing '\\'".into()),
                }
                i += 2;
                continue;
            }
            '%' => {
                // "%d": a single custom specifier.
                i += 1;
                continue;
            }
            other => {
                for _ in 0..n {
                    out.push(other);
                }
            }
        }
        i += n;
    }
    Ok(out)
}

/// `double.ToString()` in the invariant culture (.NET Core 3.0 and later): the shortest
/// digits that round-trip, fixed notation for exponents -5..=14, else "1E+15" style.
pub(crate) fn format_double(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "1.2345e-7".
    let sci = format!("{:e}", v);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let neg = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if (-4..15).contains(&exp) {
        if exp < 0 {
            out.push_str("0.");
            for _ in 0..(-exp - 1) {
                out.push('0');
            }
            out.push_str(&digits);
        } else {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                for _ in digits.len()..int_len {
                    out.push('0');
                }
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('E');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exp.unsigned_abs()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-03-05T07:08:09.1234567Z, a Tuesday.
    fn sample() -> i64 {
        let t = UNIX_EPOCH + Duration::new(1_709_622_489, 123_456_700);
        ticks_from_system(t)
    }

    #[test]
    fn ticks_round_trip() {
        assert_eq!(ticks_from_system(UNIX_EPOCH), UNIX_EPOCH_TICKS);
        let t = sample();
        assert_eq!(ticks_from_system(system_from_ticks(t).unwrap()), t);
        let before = UNIX_EPOCH - Duration::from_secs(86_400);
        assert_eq!(ticks_from_system(before), UNIX_EPOCH_TICKS - TICKS_PER_DAY);
        assert_eq!(
            ticks_from_system(system_from_ticks(UNIX_EPOCH_TICKS - 5).unwrap()),
            UNIX_EPOCH_TICKS - 5
        );
    }

    #[test]
    fn calendar_fields() {
        let c = civil(sample());
        assert_eq!(
            (c.year, c.month, c.day, c.hour, c.minute, c.second),
            (2024, 3, 5, 7, 8, 9)
        );
        assert_eq!(c.fraction, 1_234_567);
        assert_eq!(c.day_of_week, 2);
        let first = civil(0);
        assert_eq!((first.year, first.month, first.day), (1, 1, 1));
        assert_eq!(first.day_of_week, 1);
        let last = civil(MAX_TICKS);
        assert_eq!(
            (last.year, last.month, last.day, last.hour),
            (9999, 12, 31, 23)
        );
        let leap = civil(ticks_from_system(
            UNIX_EPOCH + Duration::from_secs(951_782_400),
        ));
        assert_eq!((leap.year, leap.month, leap.day), (2000, 2, 29));
    }

    #[test]
    fn standard_formats() {
        let t = sample();
        assert_eq!(
            format_datetime(t, "o").unwrap(),
            "2024-03-05T07:08:09.1234567Z"
        );
        assert_eq!(format_datetime(t, "s").unwrap(), "2024-03-05T07:08:09");
        assert_eq!(format_datetime(t, "u").unwrap(), "2024-03-05 07:08:09Z");
        assert_eq!(
            format_datetime(t, "r").unwrap(),
            "Tue, 05 Mar 2024 07:08:09 GMT"
        );
        assert_eq!(format_datetime(t, "").unwrap(), "03/05/2024 07:08:09");
        assert_eq!(format_datetime(t, "D").unwrap(), "Tuesday, 05 March 2024");
        assert!(format_datetime(t, "Q").is_err());
    }

    #[test]
    fn custom_formats() {
        let t = sample();
        assert_eq!(
            format_datetime(t, "yyyy-MM-ddTHH:mm:ss.fffZ").unwrap(),
            "2024-03-05T07:08:09.123Z"
        );
        assert_eq!(format_datetime(t, "yyyyMMdd").unwrap(), "20240305");
        assert_eq!(format_datetime(t, "h:m tt").unwrap(), "7:8 AM");
        assert_eq!(format_datetime(t, "'day' d").unwrap(), "day 5");
        assert_eq!(format_datetime(t, "%d").unwrap(), "5");
        assert_eq!(format_datetime(t, "FFFFFFF").unwrap(), "1234567");
        assert_eq!(format_datetime(t, "\\yyy").unwrap(), "y24");
        assert!(format_datetime(t, "'open").is_err());
        assert!(format_datetime(t, "ffffffff").is_err());
    }

    #[test]
    fn doubles_like_dotnet() {
        let cases = [
            (1.0, "1"),
            (0.1, "0.1"),
            (1.5, "1.5"),
            (-2.25, "-2.25"),
            (123456789012345.0, "123456789012345"),
            (1e15, "1E+15"),
            (1.5e20, "1.5E+20"),
            (0.0001, "0.0001"),
            (0.00001, "1E-05"),
            (1.0 / 3.0, "0.3333333333333333"),
            (0.0, "0"),
            (-0.0, "-0"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (100.0, "100"),
        ];
        for (v, want) in cases {
            assert_eq!(format_double(v), want, "{v}");
        }
    }
}

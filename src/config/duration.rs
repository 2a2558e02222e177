//! Duration values of the document: a number of seconds (`1.5`) or a decimal number
//! followed by a unit (`"500ms"`, `"10s"`, `"2m"`, `"1h"`). Parses only; what range a
//! particular setting accepts is decided where the setting is compiled.

use std::time::Duration;

use super::model::DurationValue;

/// The longest duration accepted anywhere: 100 days. Far beyond any sensible timeout,
/// far below the point where `Instant + Duration` could overflow.
pub const MAX: Duration = Duration::from_secs(100 * 24 * 3600);

/// Turns a document value into a [`Duration`]. Negative, non-finite and too large
/// values are errors; zero is accepted (the caller decides whether it makes sense).
pub fn parse(value: &DurationValue) -> Result<Duration, String> {
    match value {
        DurationValue::Seconds(secs) => from_secs(*secs, &format_number(*secs)),
        DurationValue::Text(text) => parse_str(text),
    }
}

/// Parses `"<number><unit>"` with unit `ms`, `s`, `m` or `h`. A bare number means
/// seconds, so `"30"` reads like `30`.
pub fn parse_str(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let scale = match unit.trim_start() {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "invalid duration {text:?}: unknown unit {other:?} (use ms, s, m or h)"
            ))
        }
    };
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return Err(format!(
            "invalid duration {text:?}: expected a number followed by ms, s, m or h"
        ));
    }
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: bad number {number:?}"))?;
    from_secs(value * scale, text)
}

fn from_secs(secs: f64, shown: &str) -> Result<Duration, String> {
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!(
            "invalid duration {shown}: must be a non-negative number of seconds"
        ));
    }
    if secs > MAX.as_secs_f64() {
        return Err(format!("invalid duration {shown}: longer than 100 days"));
    }
    // Cannot fail after the checks above; map the error rather than unwrap anyway.
    Duration::try_from_secs_f64(secs).map_err(|e| format!("invalid duration {shown}: {e}"))
}

fn format_number(secs: f64) -> String {
    format!("{secs}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Result<Duration, String> {
        parse(&DurationValue::Text(s.to_owned()))
    }

    #[test]
    fn units() {
        assert_eq!(text("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(text("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(text("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(text("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(text("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(text("30"), Ok(Duration::from_secs(30)));
        assert_eq!(text(" 10 s "), Ok(Duration::from_secs(10)));
        assert_eq!(text("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn numbers_are_seconds() {
        assert_eq!(
            parse(&DurationValue::Seconds(1.5)),
            Ok(Duration::from_millis(1500))
        );
        assert_eq!(
            parse(&DurationValue::Seconds(75.0)),
            Ok(Duration::from_secs(75))
        );
    }

    #[test]
    fn bad_values() {
        for bad in [
            "", "s", "ms", "10x", "10 sec", "-1s", "1..5s", ".5s", "5.s", "10s5", "1e3s", "NaNs",
            "infs", "1h1m",
        ] {
            assert!(text(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(text("10d").unwrap_err().contains("unknown unit"));
        assert!(text("2401h").unwrap_err().contains("longer than 100 days"));
        for bad in [-1.0, f64::NAN, f64::INFINITY, 1e300] {
            assert!(parse(&DurationValue::Seconds(bad)).is_err(), "{bad}");
        }
    }
}

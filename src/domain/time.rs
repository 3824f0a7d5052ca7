//! Time as Unix seconds, rendered as RFC 3339 UTC with seconds.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `2014-10-09T16:29:44Z`.
pub fn rfc3339(secs: i64) -> String {
    match jiff::Timestamp::from_second(secs) {
        Ok(ts) => ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Err(_) => "1970-01-01T00:00:00Z".to_string(),
    }
}

/// Optional timestamp as JSON (null when absent).
pub fn rfc3339_opt(secs: Option<i64>) -> serde_json::Value {
    secs.map(|s| serde_json::Value::String(rfc3339(s)))
        .unwrap_or(serde_json::Value::Null)
}

/// Parses an RFC 3339 timestamp with any offset into Unix seconds.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    text.trim()
        .parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_second())
}

/// True when `name` is an IANA time zone this build knows.
pub fn is_time_zone(name: &str) -> bool {
    jiff::tz::TimeZone::get(name).is_ok()
}

/// The Unix second at which `date` (YYYY-MM-DD) reaches `hour`:00 in `zone`.
pub fn local_hour_on(date: &str, hour: i8, zone: &str) -> Option<i64> {
    let date: jiff::civil::Date = date.trim().parse().ok()?;
    let tz = jiff::tz::TimeZone::get(zone).ok()?;
    let dt = date.at(hour, 0, 0, 0);
    dt.to_zoned(tz).ok().map(|z| z.timestamp().as_second())
}

/// The calendar date (YYYY-MM-DD) of `secs` in `zone` (UTC if unknown).
pub fn local_date(secs: i64, zone: &str) -> String {
    let tz = jiff::tz::TimeZone::get(zone).unwrap_or(jiff::tz::TimeZone::UTC);
    match jiff::Timestamp::from_second(secs) {
        Ok(ts) => ts.to_zoned(tz).date().to_string(),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses() {
        assert_eq!(rfc3339(1412872184), "2014-10-09T16:29:44Z");
        assert_eq!(parse_rfc3339("2014-10-09T16:29:44Z"), Some(1412872184));
        assert_eq!(parse_rfc3339("2014-10-09T18:29:44+02:00"), Some(1412872184));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn local_hours() {
        // 03:00 in New York on a winter day is 08:00 UTC.
        let t = local_hour_on("2026-01-15", 3, "America/New_York").unwrap();
        assert_eq!(rfc3339(t), "2026-01-15T08:00:00Z");
        assert!(is_time_zone("Europe/Berlin"));
        assert!(!is_time_zone("Mars/Olympus"));
        assert_eq!(local_date(t, "America/New_York"), "2026-01-15");
    }
}

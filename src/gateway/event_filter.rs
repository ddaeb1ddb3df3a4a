//! The filter query of Atlas's events endpoints (`eventType`, `minDate`, `maxDate`), read as
//! Atlas's clients send it: repeated `eventType`s, and dates in the ISO 8601 forms they write.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::extract::query_pairs;
use super::response::{ApiError, Reply};

/// The filter query of the events endpoints: `eventType` (repeatable; values are checked by
/// the core), `minDate` and `maxDate` (each at most once; the ISO 8601 forms of
/// [`parse_date`]).
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    /// `eventType` values, as given.
    pub event_types: Vec<String>,
    /// `minDate`.
    pub min_date: Option<prost_types::Timestamp>,
    /// `maxDate`.
    pub max_date: Option<prost_types::Timestamp>,
}

impl<S: Send + Sync> FromRequestParts<S> for EventFilter {
    type Rejection = Reply;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let mut filter = Self::default();
        for (name, value) in query_pairs(parts.uri.query()) {
            let invalid = || Reply::from(ApiError::invalid_query_parameter(&name, &value));
            let slot = match name.as_str() {
                "eventType" => {
                    filter.event_types.push(value);
                    continue;
                }
                "minDate" => &mut filter.min_date,
                "maxDate" => &mut filter.max_date,
                _ => continue,
            };
            if slot.is_some() {
                return Err(invalid());
            }
            *slot = Some(parse_date(&value).ok_or_else(invalid)?);
        }
        Ok(filter)
    }
}

/// Parses the ISO 8601 forms Atlas's `minDate`/`maxDate` take: a date-time with an offset
/// (RFC 3339, `2026-08-10T02:06:35Z`, `…+02:00`), with an offset without a colon (`…+0200`, what
/// the Atlas CLI sends), without an offset, meaning UTC (`2026-12-02T18:41:24.589048`, what
/// Python's `datetime.utcnow().isoformat()` gives), or a date (midnight UTC).
fn parse_date(value: &str) -> Option<prost_types::Timestamp> {
    use time::format_description::well_known::Rfc3339;
    use time::macros::format_description;
    let basic_offset = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]][offset_hour sign:mandatory][offset_minute]"
    );
    let no_offset = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    let date = format_description!("[year]-[month]-[day]");
    let at = time::OffsetDateTime::parse(value, &Rfc3339)
        .ok()
        .or_else(|| time::OffsetDateTime::parse(value, basic_offset).ok())
        .or_else(|| {
            time::PrimitiveDateTime::parse(value, no_offset)
                .ok()
                .map(|t| t.assume_utc())
        })
        .or_else(|| {
            time::Date::parse(value, date)
                .ok()
                .map(|date| date.midnight().assume_utc())
        })?;
    Some(prost_types::Timestamp {
        seconds: at.unix_timestamp(),
        nanos: i32::try_from(at.nanosecond()).ok()?,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn event_dates_take_the_iso_8601_forms_atlas_clients_send() {
        let at = |v: &str| parse_date(v).map(|t| (t.seconds, t.nanos));
        let utc = Some((1_796_236_884, 589_048_000));
        assert_eq!(at("2026-12-02T18:41:24.589048"), utc);
        assert_eq!(at("2026-12-02T18:41:24.589048Z"), utc);
        assert_eq!(at("2026-12-02T19:41:24.589048+01:00"), utc);
        assert_eq!(at("2026-12-02T19:41:24.589048+0100"), utc);
        assert_eq!(at("2026-12-02T18:41:24"), Some((1_796_236_884, 0)));
        assert_eq!(at("2026-12-02"), Some((1_796_169_600, 0)));
        for bad in [
            "",
            "2026-12-02T18:41",
            "2026-13-02",
            "yesterday",
            "2026-12-02T18:41:24+1",
        ] {
            assert_eq!(at(bad), None, "{bad}");
        }
    }

    #[test]
    fn event_dates() {
        let at = |s: &str| parse_date(s).map(|t| (t.seconds, t.nanos));
        assert_eq!(at("2026-08-10T02:06:35Z"), Some((1_786_327_595, 0)));
        assert_eq!(
            at("2026-08-10T04:06:35.25+02:00"),
            Some((1_786_327_595, 250_000_000))
        );
        assert_eq!(at("2026-08-10"), Some((1_786_320_000, 0)));
        for bad in [
            "",
            "yesterday",
            "2026-08-10T02:06",
            "2026-13-01",
            "1786327595",
        ] {
            assert_eq!(at(bad), None, "{bad}");
        }
    }
}

//! The validity window of a user certificate: Atlas's months, backdate and the CA's cap.

use time::{Duration, Month, OffsetDateTime};

use super::error::{AtlasError, AtlasResult, ErrorCode};

/// How far notBefore lies before the issue time, as Atlas does (tolerates clock skew).
pub const BACKDATE: Duration = Duration::hours(1);
/// Months of validity when the request names none.
pub const DEFAULT_MONTHS: u32 = 3;
/// The most months Atlas allows.
pub const MAX_MONTHS: u32 = 24;

/// A certificate's validity window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    /// notBefore: the issue time minus [`BACKDATE`].
    pub not_before: OffsetDateTime,
    /// notAfter: the issue time plus N calendar months, capped at the CA's notAfter.
    pub not_after: OffsetDateTime,
}

/// A validated number of months until expiration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Months(u32);

impl Months {
    /// Parses the request's `monthsUntilExpiration`: absent means 3; 1 to 24 accepted.
    pub fn parse(months: Option<i64>) -> AtlasResult<Self> {
        let Some(months) = months else {
            return Ok(Self(DEFAULT_MONTHS));
        };
        if months > i64::from(MAX_MONTHS) {
            return Err(AtlasError::new(
                ErrorCode::CertExpiryCannotExceedTwoYears,
                "Atlas-generated X.509 certificates have a maximum expiration of 24 months.",
                Vec::new(),
            )
            .with_field("months_until_expiration"));
        }
        if months < 1 {
            return Err(AtlasError::new(
                ErrorCode::InvalidAttribute,
                format!(
                    "Invalid attribute monthsUntilExpiration specified: {months} is not between 1 \
                     and 24."
                ),
                vec!["monthsUntilExpiration".to_owned()],
            )
            .with_field("months_until_expiration"));
        }
        Ok(Self(months as u32))
    }

    /// Returns the number of months.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl Validity {
    /// Computes the window of a certificate issued at `now` for `months`, never past `ca_not_after`.
    pub fn for_months(now: OffsetDateTime, months: Months, ca_not_after: OffsetDateTime) -> Self {
        let now = now.replace_nanosecond(0).expect("0 is a valid nanosecond");
        let not_after = add_calendar_months(now, months.get()).min(ca_not_after);
        Self {
            not_before: now - BACKDATE,
            not_after,
        }
    }
}

/// Adds calendar months, clamping the day to the target month's length (Jan 31 + 1 = Feb 28/29).
pub fn add_calendar_months(t: OffsetDateTime, months: u32) -> OffsetDateTime {
    let zero_based = t.month() as i32 - 1 + months as i32;
    let year = t.year() + zero_based.div_euclid(12);
    let month = Month::try_from((zero_based.rem_euclid(12) + 1) as u8).expect("1..=12 is a month");
    let day = t.day().min(time::util::days_in_month(month, year));
    let date = time::Date::from_calendar_date(year, month, day).expect("clamped day is valid");
    t.replace_date(date)
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn matches_the_recorded_atlas_certificate() {
        // atlas-managed-user-cert.pem: notBefore Aug 10 02:06:35, notAfter Nov 10 03:06:35 (3 months).
        let now = datetime!(2026-08-10 03:06:35.250 UTC);
        let v = Validity::for_months(
            now,
            Months::parse(None).unwrap(),
            datetime!(2036-01-01 0:00 UTC),
        );
        assert_eq!(v.not_before, datetime!(2026-08-10 02:06:35 UTC));
        assert_eq!(v.not_after, datetime!(2026-11-10 03:06:35 UTC));
    }

    #[test]
    fn clamps_to_month_end_and_crosses_years() {
        assert_eq!(
            add_calendar_months(datetime!(2027-01-31 12:00 UTC), 1),
            datetime!(2027-02-28 12:00 UTC)
        );
        assert_eq!(
            add_calendar_months(datetime!(2027-11-30 12:00 UTC), 24),
            datetime!(2029-11-30 12:00 UTC)
        );
        assert_eq!(
            add_calendar_months(datetime!(2027-12-15 0:00 UTC), 1),
            datetime!(2028-01-15 0:00 UTC)
        );
    }

    #[test]
    fn caps_at_the_ca_not_after() {
        let now = datetime!(2026-08-10 03:00 UTC);
        let cap = datetime!(2026-09-01 0:00 UTC);
        let v = Validity::for_months(now, Months::parse(Some(12)).unwrap(), cap);
        assert_eq!(v.not_after, cap);
    }

    #[test]
    fn months_are_bounded() {
        assert_eq!(Months::parse(Some(24)).unwrap().get(), 24);
        assert_eq!(Months::parse(Some(1)).unwrap().get(), 1);
        assert_eq!(
            Months::parse(Some(25)).unwrap_err().code(),
            ErrorCode::CertExpiryCannotExceedTwoYears
        );
        assert_eq!(
            Months::parse(Some(i64::MAX)).unwrap_err().code(),
            ErrorCode::CertExpiryCannotExceedTwoYears
        );
        for bad in [0, -1, i64::MIN] {
            assert_eq!(
                Months::parse(Some(bad)).unwrap_err().code(),
                ErrorCode::InvalidAttribute
            );
        }
    }
}

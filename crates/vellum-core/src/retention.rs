//! Retention periods: how long an organization's events are kept.
//!
//! WorkOS accepts two request forms (see `docs/events.md`): `retention_period` (`1_MONTH` to
//! `11_MONTHS`, `1_YEAR` to `10_YEARS`) and the older `retention_period_in_days` (30 to 330 in
//! steps of 30, or 365 to 3650 in steps of 365). Both are stored, and answered, in days.
//!
//! An organization that never set a period keeps its events for the server's default period
//! ([`DEFAULT_RETENTION_DAYS`] unless the operator configures another);
//! [`effective_retention_days`] is the one place that says so, for every reader of the rule.

/// The server's default retention when the operator configures none: 365 days.
///
/// WorkOS documents no default, but 30 and 365 are the only periods every version of its API
/// and SDKs accepts (the OpenAPI spec and its older SDKs allow just those two), and of the two a
/// year is the one that does not delete an audit trail a customer may still need.
pub const DEFAULT_RETENTION_DAYS: u32 = 365;

/// Days for a `retention_period` value: a month is 30 days, a year 365.
pub fn days_for_period(period: &str) -> Option<u32> {
    let (count, unit) = period.split_once('_')?;
    let count: u32 = count.parse().ok()?;
    match unit {
        "MONTH" if count == 1 => Some(30),
        "MONTHS" if (2..=11).contains(&count) => Some(count * 30),
        "YEAR" if count == 1 => Some(365),
        "YEARS" if (2..=10).contains(&count) => Some(count * 365),
        _ => None,
    }
}

/// True when `days` is one of the values `retention_period_in_days` accepts.
pub fn is_valid_days(days: i64) -> bool {
    ((30..=330).contains(&days) && days % 30 == 0) || ((365..=3650).contains(&days) && days % 365 == 0)
}

/// The retention in force for an organization: its own period when it set one, else the
/// server's default. Answers, and the purge that enforces them, both follow this rule.
pub fn effective_retention_days(organization_days: Option<u32>, server_default_days: u32) -> u32 {
    organization_days.unwrap_or(server_default_days)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_map_to_days() {
        assert_eq!(days_for_period("1_MONTH"), Some(30));
        assert_eq!(days_for_period("11_MONTHS"), Some(330));
        assert_eq!(days_for_period("1_YEAR"), Some(365));
        assert_eq!(days_for_period("10_YEARS"), Some(3650));
        for bad in [
            "12_MONTHS",
            "1_MONTHS",
            "2_MONTH",
            "0_YEARS",
            "11_YEARS",
            "FOREVER",
            "3_WEEKS",
            "",
        ] {
            assert_eq!(days_for_period(bad), None, "{bad}");
        }
    }

    #[test]
    fn days_follow_the_allowed_steps() {
        for good in [30, 60, 330, 365, 730, 3650] {
            assert!(is_valid_days(good), "{good}");
        }
        for bad in [0, 29, 31, 360, 366, 3651, -30, 7300] {
            assert!(!is_valid_days(bad), "{bad}");
        }
    }

    #[test]
    fn an_organization_without_a_period_gets_the_server_default() {
        assert!(is_valid_days(i64::from(DEFAULT_RETENTION_DAYS)));
        assert_eq!(effective_retention_days(None, DEFAULT_RETENTION_DAYS), 365);
        assert_eq!(effective_retention_days(None, 90), 90);
        assert_eq!(effective_retention_days(Some(30), 90), 30);
        assert_eq!(effective_retention_days(Some(3650), DEFAULT_RETENTION_DAYS), 3650);
    }
}

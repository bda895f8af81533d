//! US business days: weekends and US federal holidays (5 U.S.C. § 6103) skipped, as
//! the DMCA's counter-notice window counts them (§512(g)(2)(C): restore "not less than
//! 10, nor more than 14, business days" after receipt). Pure code, no clock.
//!
//! The holidays: New Year's Day (1 January), Birthday of Martin Luther King, Jr. (third
//! Monday of January), Washington's Birthday (third Monday of February), Memorial Day
//! (last Monday of May), Juneteenth (19 June, from 2021), Independence Day (4 July),
//! Labor Day (first Monday of September), Columbus Day (second Monday of October),
//! Veterans Day (11 November), Thanksgiving (fourth Thursday of November), Christmas
//! (25 December). A fixed-date holiday falling on a Saturday is observed the Friday
//! before (so New Year's Day on a Saturday is observed on 31 December of the year
//! before), on a Sunday the Monday after (Executive Order 11582). Inauguration Day
//! (Washington D.C. area only) is not counted.

use chrono::{Datelike, Days, NaiveDate, Weekday};

/// The `n`th `weekday` of `month` (n from 1).
fn nth_weekday(year: i32, month: u32, weekday: Weekday, n: u8) -> Option<NaiveDate> {
    NaiveDate::from_weekday_of_month_opt(year, month, weekday, n)
}

/// The last `weekday` of `month`.
fn last_weekday(year: i32, month: u32, weekday: Weekday) -> Option<NaiveDate> {
    (1..=5)
        .rev()
        .find_map(|n| NaiveDate::from_weekday_of_month_opt(year, month, weekday, n))
}

/// A fixed-date holiday's observed day.
fn observed(date: NaiveDate) -> NaiveDate {
    match date.weekday() {
        Weekday::Sat => date.pred_opt().unwrap_or(date),
        Weekday::Sun => date.succ_opt().unwrap_or(date),
        _ => date,
    }
}

/// The federal holidays (observed dates) of `year`'s calendar, plus the observed New
/// Year's Day of `year + 1` when it falls on 31 December of `year`.
pub fn federal_holidays(year: i32) -> Vec<NaiveDate> {
    let fixed = |m, d| NaiveDate::from_ymd_opt(year, m, d).map(observed);
    let mut days = vec![
        fixed(1, 1),
        nth_weekday(year, 1, Weekday::Mon, 3),
        nth_weekday(year, 2, Weekday::Mon, 3),
        last_weekday(year, 5, Weekday::Mon),
        if year >= 2021 { fixed(6, 19) } else { None },
        fixed(7, 4),
        nth_weekday(year, 9, Weekday::Mon, 1),
        nth_weekday(year, 10, Weekday::Mon, 2),
        fixed(11, 11),
        nth_weekday(year, 11, Weekday::Thu, 4),
        fixed(12, 25),
        NaiveDate::from_ymd_opt(year + 1, 1, 1).map(observed),
    ];
    days.retain(|d| d.is_some_and(|d| d.year() == year));
    days.into_iter().flatten().collect()
}

/// Whether `date` is a US federal holiday (as observed).
pub fn is_federal_holiday(date: NaiveDate) -> bool {
    federal_holidays(date.year()).contains(&date)
}

/// Monday to Friday, and not a federal holiday.
pub fn is_business_day(date: NaiveDate) -> bool {
    !matches!(date.weekday(), Weekday::Sat | Weekday::Sun) && !is_federal_holiday(date)
}

/// The `n`th business day after `date` (`date` itself not counted).
pub fn business_days_after(date: NaiveDate, n: u32) -> NaiveDate {
    let mut day = date;
    let mut counted = 0;
    while counted < n {
        day = day.checked_add_days(Days::new(1)).unwrap_or(day);
        if is_business_day(day) {
            counted += 1;
        }
    }
    day
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn the_2026_holidays() {
        assert_eq!(
            federal_holidays(2026),
            vec![
                d(2026, 1, 1),
                d(2026, 1, 19),
                d(2026, 2, 16),
                d(2026, 5, 25),
                d(2026, 6, 19),
                d(2026, 7, 3), // 4 July is a Saturday
                d(2026, 9, 7),
                d(2026, 10, 12),
                d(2026, 11, 11),
                d(2026, 11, 26),
                d(2026, 12, 25),
            ]
        );
    }

    #[test]
    fn the_2027_holidays_with_weekend_observances() {
        assert_eq!(
            federal_holidays(2027),
            vec![
                d(2027, 1, 1),
                d(2027, 1, 18),
                d(2027, 2, 15),
                d(2027, 5, 31),
                d(2027, 6, 18), // Juneteenth is a Saturday
                d(2027, 7, 5),  // 4 July is a Sunday
                d(2027, 9, 6),
                d(2027, 10, 11),
                d(2027, 11, 11),
                d(2027, 11, 25),
                d(2027, 12, 24), // Christmas is a Saturday
                d(2027, 12, 31), // New Year's Day 2028 is a Saturday
            ]
        );
        assert!(!federal_holidays(2028).contains(&d(2028, 1, 1)));
        assert!(is_federal_holiday(d(2027, 12, 31)));
        assert!(!is_federal_holiday(d(2027, 6, 19)));
    }

    #[test]
    fn juneteenth_only_from_2021() {
        assert!(!is_federal_holiday(d(2020, 6, 19)));
        assert!(is_federal_holiday(d(2023, 6, 19)));
    }

    #[test]
    fn ten_and_fourteen_business_days() {
        // Received Friday 12 June 2026: Juneteenth (Fri 19) and 3 July are skipped.
        assert_eq!(business_days_after(d(2026, 6, 12), 10), d(2026, 6, 29));
        assert_eq!(business_days_after(d(2026, 6, 12), 14), d(2026, 7, 6));
        assert_eq!(business_days_after(d(2026, 6, 22), 10), d(2026, 7, 7));
        // Across Thanksgiving and Christmas 2026.
        assert_eq!(business_days_after(d(2026, 11, 20), 10), d(2026, 12, 7));
        assert_eq!(business_days_after(d(2026, 12, 18), 10), d(2027, 1, 5));
        // Received on a Saturday: counting starts on Monday.
        assert_eq!(business_days_after(d(2026, 5, 16), 1), d(2026, 5, 18));
        // 2027: Christmas observed Friday 24, New Year's 2028 Friday 31.
        assert_eq!(business_days_after(d(2027, 12, 20), 10), d(2028, 1, 5));
    }
}

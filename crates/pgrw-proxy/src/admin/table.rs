//! A result set the console writes: named text or int8 columns, rows of
//! text values, then `CommandComplete "SHOW"`; and the console's way of
//! writing times (UTC, to the second).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;

use crate::protocol::backend::{
    INT8_OID, TEXT_OID, encode_command_complete, encode_data_row, encode_row_description,
};

/// A column's type, as psql aligns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Text, left-aligned.
    Text,
    /// A count, right-aligned.
    Int,
}

/// One answer to a `SHOW`.
pub(crate) struct Table {
    columns: Vec<(&'static str, Kind)>,
    rows: Vec<Vec<Option<String>>>,
}

impl Table {
    /// No rows yet, with these columns.
    pub(crate) fn new(columns: &[(&'static str, Kind)]) -> Table {
        Table {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (as many values as columns; `None` is NULL).
    pub(crate) fn row(&mut self, values: Vec<Option<String>>) {
        debug_assert_eq!(values.len(), self.columns.len(), "one value per column");
        self.rows.push(values);
    }

    /// Writes RowDescription, the DataRows and CommandComplete `SHOW`.
    pub(crate) fn encode(&self, out: &mut BytesMut) {
        let columns: Vec<(&str, u32)> = self
            .columns
            .iter()
            .map(|(name, kind)| {
                let oid = match kind {
                    Kind::Text => TEXT_OID,
                    Kind::Int => INT8_OID,
                };
                (*name, oid)
            })
            .collect();
        encode_row_description(out, &columns);
        for row in &self.rows {
            encode_data_row(out, row.iter().map(Option::as_deref));
        }
        encode_command_complete(out, b"SHOW");
    }
}

/// `Some(text)` of anything displayable: a cell.
pub(crate) fn cell(value: impl std::fmt::Display) -> Option<String> {
    Some(value.to_string())
}

/// `time` as `2026-12-07 15:54:22 UTC`.
pub(crate) fn utc(time: SystemTime) -> String {
    let seconds = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_in_utc_to_the_second() {
        assert_eq!(utc(UNIX_EPOCH), "1970-01-01 00:00:00 UTC");
        let leap_day = UNIX_EPOCH + Duration::from_secs(1_709_210_096);
        assert_eq!(utc(leap_day), "2024-02-29 12:34:56 UTC");
        let new_year = UNIX_EPOCH + Duration::from_secs(1_798_761_599);
        assert_eq!(utc(new_year), "2026-12-31 23:59:59 UTC");
    }
}

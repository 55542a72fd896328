//! The CSV export file: a header row, then one row per event (`docs/exports.md`).
//!
//! Columns, in this order: `id`, `organization_id`, `action`, `occurred_at`, `received_at`,
//! `version`, `log_index`, `actor_id`, `actor_type`, `actor_name`, `actor_metadata`,
//! `context_location`, `context_user_agent`, `metadata`, then `target_id_N`, `target_type_N`,
//! `target_name_N`, `target_metadata_N` for N = 1 up to the most targets any exported event names.
//! Metadata cells hold JSON objects; absent values are empty cells. Quoting is RFC 4180 and the
//! text UTF-8. A cell that a spreadsheet would run as a formula (starting with `=`, `+`, `-`,
//! `@`, a tab or a carriage return) is prefixed with `'`.

use vellum_core::Event;
use vellum_core::event::{Metadata, metadata_to_json};

/// The columns before the target columns.
pub const FIXED_COLUMNS: [&str; 14] = [
    "id",
    "organization_id",
    "action",
    "occurred_at",
    "received_at",
    "version",
    "log_index",
    "actor_id",
    "actor_type",
    "actor_name",
    "actor_metadata",
    "context_location",
    "context_user_agent",
    "metadata",
];

/// Writes CSV rows into memory, page by page.
pub struct CsvRows {
    writer: csv::Writer<Vec<u8>>,
    targets: usize,
}

/// Makes a cell safe to open in a spreadsheet.
pub fn neutralise(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

fn metadata_cell(metadata: Option<&Metadata>) -> String {
    metadata.map_or_else(String::new, |metadata| metadata_to_json(metadata).to_string())
}

impl CsvRows {
    /// A writer for events naming at most `targets` targets.
    pub fn new(targets: usize) -> Self {
        Self {
            writer: Self::writer(),
            targets,
        }
    }

    fn writer() -> csv::Writer<Vec<u8>> {
        csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .flexible(false)
            .from_writer(Vec::with_capacity(1 << 20))
    }

    /// Writes the header row.
    pub fn header(&mut self) -> csv::Result<()> {
        let mut row: Vec<String> = FIXED_COLUMNS.iter().map(|column| (*column).to_owned()).collect();
        for number in 1..=self.targets {
            for field in ["id", "type", "name", "metadata"] {
                row.push(format!("target_{field}_{number}"));
            }
        }
        self.writer.write_record(&row)
    }

    /// Writes one event's row.
    pub fn event(&mut self, event: &Event) -> csv::Result<()> {
        let input = &event.input;
        let mut cells: Vec<String> = Vec::with_capacity(FIXED_COLUMNS.len() + 4 * self.targets);
        cells.extend([
            event.id.to_string(),
            event.organization_id.to_string(),
            input.action.clone(),
            input.occurred_at.to_wire(),
            event.received_at.to_wire(),
            event.schema_version.to_string(),
            event.log_index.to_string(),
            input.actor.id.clone(),
            input.actor.actor_type.clone(),
            input.actor.name.clone().unwrap_or_default(),
            metadata_cell(input.actor.metadata.as_ref()),
            input.context.location.clone(),
            input.context.user_agent.clone().unwrap_or_default(),
            metadata_cell(input.metadata.as_ref()),
        ]);
        for number in 0..self.targets {
            match input.targets.get(number) {
                Some(target) => cells.extend([
                    target.id.clone(),
                    target.target_type.clone(),
                    target.name.clone().unwrap_or_default(),
                    metadata_cell(target.metadata.as_ref()),
                ]),
                None => cells.extend(std::iter::repeat_n(String::new(), 4)),
            }
        }
        self.writer
            .write_record(cells.iter().map(|cell| neutralise(cell).into_owned()))
    }

    /// Takes the bytes written so far.
    pub fn take(&mut self) -> csv::Result<Vec<u8>> {
        let writer = std::mem::replace(&mut self.writer, Self::writer());
        writer.into_inner().map_err(|error| error.into_error().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_neutralised_and_others_left_alone() {
        for cell in ["=1+1", "+SUM(A1)", "-2", "@cmd", "\tx", "\rx"] {
            assert_eq!(neutralise(cell), format!("'{cell}"));
        }
        for cell in ["", "plain", "1.2.3.4", "{\"a\":1}", " =x", "'quoted"] {
            assert_eq!(neutralise(cell), cell);
        }
    }

    #[test]
    fn header_has_a_group_of_columns_per_target() {
        let mut rows = CsvRows::new(2);
        rows.header().unwrap();
        let text = String::from_utf8(rows.take().unwrap()).unwrap();
        assert!(text.starts_with("id,organization_id,action,occurred_at,"));
        assert!(text.ends_with(
            "target_id_1,target_type_1,target_name_1,target_metadata_1,\
             target_id_2,target_type_2,target_name_2,target_metadata_2\r\n"
        ));
    }
}

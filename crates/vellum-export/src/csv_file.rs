//! The CSV export file: a header row, then one row per event (`docs/exports.md`).
//!
//! Columns, in this order: `id`, `organization_id`, `action`, `occurred_at`, `received_at`,
//! `version`, `log_index`, `actor_id`, `actor_type`, `actor_name`, `actor_metadata`,
//! `context_location`, `context_user_agent`, `metadata`, then `target_id_N`, `target_type_N`,
//! `target_name_N`, `target_metadata_N` for N = 1 up to the most targets any exported event names.
//! Metadata cells hold JSON objects (canonical JSON: keys sorted, no spaces); absent values are empty cells. Quoting is RFC 4180 and the
//! text UTF-8. A cell that a spreadsheet would run as a formula is prefixed with `'`: one that
//! starts with a tab or a carriage return, or whose first visible character (after any leading
//! white space, control or invisible format characters) is `=`, `+`, `-` or `@` (see
//! [`neutralise`]).

use vellum_core::Event;
use vellum_core::canonical::write_metadata_json;

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
    json: Vec<u8>,
}

/// Makes a cell safe to open in a spreadsheet (OWASP's CSV injection guidance): a cell that
/// starts with a tab or a carriage return, or whose first visible character is `=`, `+`, `-` or
/// `@`, is prefixed with `'`. Leading white space, control characters and invisible format
/// characters do not count as visible (spreadsheets skip them: `" =1+1"` and `"\n@SUM(A1)"`
/// run as formulas too).
pub fn neutralise(cell: &str) -> std::borrow::Cow<'_, str> {
    let invisible = |character: char| {
        character.is_whitespace()
            || character.is_control()
            || matches!(character, '\u{200b}'..='\u{200f}' | '\u{2060}' | '\u{feff}')
    };
    let starts_with_formula = cell
        .chars()
        .find(|character| !invisible(*character))
        .is_some_and(|character| matches!(character, '=' | '+' | '-' | '@'));
    if starts_with_formula || cell.starts_with(['\t', '\r']) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

impl CsvRows {
    /// A writer for events naming at most `targets` targets.
    pub fn new(targets: usize) -> Self {
        Self {
            writer: Self::writer(),
            targets,
            json: Vec::with_capacity(512),
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

    /// Writes one event's row (cell by cell, without building the row in memory first).
    pub fn event(&mut self, event: &Event) -> csv::Result<()> {
        let input = &event.input;
        let writer = &mut self.writer;
        let json = &mut self.json;
        fn cell(writer: &mut csv::Writer<Vec<u8>>, text: &str) -> csv::Result<()> {
            match neutralise(text) {
                std::borrow::Cow::Borrowed(text) => writer.write_field(text),
                std::borrow::Cow::Owned(text) => writer.write_field(text),
            }
        }
        fn metadata(
            writer: &mut csv::Writer<Vec<u8>>,
            json: &mut Vec<u8>,
            metadata: Option<&vellum_core::event::Metadata>,
        ) -> csv::Result<()> {
            json.clear();
            if let Some(metadata) = metadata {
                write_metadata_json(json, metadata);
            }
            writer.write_field(&json[..])
        }
        cell(writer, &event.id.to_string())?;
        cell(writer, &event.organization_id.to_string())?;
        cell(writer, &input.action)?;
        cell(writer, &input.occurred_at.to_wire())?;
        cell(writer, &event.received_at.to_wire())?;
        writer.write_field(event.schema_version.to_string())?;
        writer.write_field(event.log_index.to_string())?;
        cell(writer, &input.actor.id)?;
        cell(writer, &input.actor.actor_type)?;
        cell(writer, input.actor.name.as_deref().unwrap_or_default())?;
        metadata(writer, json, input.actor.metadata.as_ref())?;
        cell(writer, &input.context.location)?;
        cell(writer, input.context.user_agent.as_deref().unwrap_or_default())?;
        metadata(writer, json, input.metadata.as_ref())?;
        for number in 0..self.targets {
            match input.targets.get(number) {
                Some(target) => {
                    cell(writer, &target.id)?;
                    cell(writer, &target.target_type)?;
                    cell(writer, target.name.as_deref().unwrap_or_default())?;
                    metadata(writer, json, target.metadata.as_ref())?;
                }
                None => {
                    for _ in 0..4 {
                        writer.write_field("")?;
                    }
                }
            }
        }
        writer.write_record(None::<&[u8]>)
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
        for cell in ["=1+1", "+SUM(A1)", "-2", "@cmd", "\tx", "\rx", "\t", "\r"] {
            assert_eq!(neutralise(cell), format!("'{cell}"));
        }
        for cell in [
            "",
            "plain",
            "1.2.3.4",
            "{\"a\":1}",
            "'quoted",
            " x",
            "\nx",
            "a=1",
            "x-2",
            "user@example.com",
        ] {
            assert_eq!(neutralise(cell), cell);
        }
    }

    #[test]
    fn formulas_behind_leading_white_space_or_control_characters_are_neutralised() {
        for lead in [
            " ", "  ", "\t", "\r", "\n", "\r\n", "\u{0}", "\u{b}", "\u{c}", "\u{1b}", "\u{7f}", "\u{85}", "\u{a0}",
            "\u{3000}", "\u{200b}", "\u{feff}", " \n\t",
        ] {
            for formula in ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "=HYPERLINK(\"http://evil\")"] {
                let cell = format!("{lead}{formula}");
                assert_eq!(neutralise(&cell), format!("'{cell}"), "{cell:?}");
            }
        }
    }

    #[test]
    fn neutralised_cells_survive_the_csv_writer() {
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer.write_field(neutralise(" \n=1+1").as_ref()).unwrap();
        writer.write_record(None::<&[u8]>).unwrap();
        let text = String::from_utf8(writer.into_inner().unwrap()).unwrap();
        assert_eq!(text, "\"' \n=1+1\"\n");
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

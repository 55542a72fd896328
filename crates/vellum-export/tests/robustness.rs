//! Property-based robustness tests of the CSV export writer: any text in any cell writes a file
//! that a CSV reader parses back to the same rows and columns, and no cell reaches a spreadsheet
//! as a formula.
//!
//! Case counts are bounded so that these run in seconds; `PROPTEST_CASES=N` overrides them.

use proptest::prelude::*;
use serde_json::Value;
use vellum_core::event::{Actor, Context, Metadata, MetadataValue, Target, metadata_to_json};
use vellum_core::id::Ulid;
use vellum_core::{Event, EventId, EventInput, OrganizationId, Timestamp};
use vellum_export::csv_file::{CsvRows, FIXED_COLUMNS, neutralise};

/// `cases` unless `PROPTEST_CASES` says otherwise (an explicit count would hide the variable).
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// What a spreadsheet may run as a formula when a cell starts with it.
const FORMULA_STARTS: [char; 4] = ['=', '+', '-', '@'];

/// Cell text of every kind, with a bias toward what spreadsheets and CSV quoting care about:
/// formula characters (alone or after white space), quotes, separators and line breaks.
fn cell() -> impl Strategy<Value = String> {
    let whitespace = prop::sample::select(vec![
        " ", "  ", "\t", "\r", "\n", "\r\n", "\u{a0}", "\u{3000}", "\u{2003}",
    ]);
    prop_oneof![
        3 => prop::collection::vec(any::<char>(), 0..12).prop_map(String::from_iter),
        3 => "[=+@\\-\t\r\n,\"' a-z0-9;|]{0,10}",
        2 => (whitespace, prop::sample::select(FORMULA_STARTS.to_vec()), "[A-Z0-9(),\"]{0,8}")
            .prop_map(|(space, start, rest)| format!("{space}{start}{rest}")),
        1 => Just(String::new()),
    ]
}

fn metadata() -> impl Strategy<Value = Option<Metadata>> {
    prop::option::of(prop::collection::btree_map(
        "[a-zA-Z0-9_-]{0,6}",
        prop_oneof![
            cell().prop_map(MetadataValue::String),
            any::<bool>().prop_map(MetadataValue::Bool),
            (-(1i64 << 53)..(1i64 << 53)).prop_map(|number| MetadataValue::Number(number.into())),
        ],
        0..4,
    ))
}

fn target() -> impl Strategy<Value = Target> {
    (cell(), cell(), prop::option::of(cell()), metadata()).prop_map(|(id, target_type, name, metadata)| Target {
        id,
        target_type,
        name,
        metadata,
    })
}

fn event() -> impl Strategy<Value = Event> {
    (
        (
            any::<u128>(),
            any::<u128>(),
            0u64..1000,
            1u32..4,
            0i64..4_000_000_000_000,
        ),
        (cell(), cell(), cell(), prop::option::of(cell()), metadata()),
        (cell(), prop::option::of(cell()), metadata()),
        prop::collection::vec(target(), 0..3),
    )
        .prop_map(
            |(
                (id, organization, log_index, schema_version, millis),
                (action, actor_id, actor_type, actor_name, actor_metadata),
                (location, user_agent, event_metadata),
                targets,
            )| {
                let stamp = Timestamp::from_unix_millis(millis).expect("in range");
                Event {
                    id: EventId::from_ulid(Ulid(id)),
                    organization_id: OrganizationId::from_ulid(Ulid(organization)),
                    log_index,
                    received_at: stamp,
                    schema_version,
                    input: EventInput {
                        action,
                        occurred_at: stamp,
                        version: None,
                        actor: Actor {
                            id: actor_id,
                            actor_type,
                            name: actor_name,
                            metadata: actor_metadata,
                        },
                        targets,
                        context: Context { location, user_agent },
                        metadata: event_metadata,
                        audit_trail: None,
                        system: false,
                    },
                    seals: None,
                    erased_by: Vec::new(),
                }
            },
        )
}

/// Writes a file the way the export service does: the header, then pages of rows, taking the
/// bytes after each page.
fn write(events: &[Event], page: usize) -> Vec<u8> {
    let widest = events.iter().map(|event| event.input.targets.len()).max().unwrap_or(0);
    let mut rows = CsvRows::new(widest);
    rows.header().expect("header");
    let mut file = Vec::new();
    for chunk in events.chunks(page.max(1)) {
        for event in chunk {
            rows.event(event).expect("row");
        }
        file.extend(rows.take().expect("bytes"));
    }
    file.extend(rows.take().expect("bytes"));
    file
}

fn parse(file: &[u8]) -> Result<Vec<Vec<String>>, TestCaseError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(file);
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|error| TestCaseError::fail(format!("the file does not parse: {error}")))?;
        rows.push(record.iter().map(str::to_owned).collect());
    }
    Ok(rows)
}

/// The text cells of an event's row, in column order, paired with their position (metadata
/// cells are JSON, checked apart).
fn expected_text_cells(event: &Event, widest: usize) -> Vec<(usize, String)> {
    let input = &event.input;
    let mut cells = vec![
        (2, input.action.clone()),
        (7, input.actor.id.clone()),
        (8, input.actor.actor_type.clone()),
        (9, input.actor.name.clone().unwrap_or_default()),
        (11, input.context.location.clone()),
        (12, input.context.user_agent.clone().unwrap_or_default()),
    ];
    for number in 0..widest {
        let base = FIXED_COLUMNS.len() + 4 * number;
        if let Some(target) = input.targets.get(number) {
            cells.push((base, target.id.clone()));
            cells.push((base + 1, target.target_type.clone()));
            cells.push((base + 2, target.name.clone().unwrap_or_default()));
        }
    }
    cells
}

fn metadata_cell(metadata: Option<&Metadata>) -> Value {
    metadata.map_or(Value::Null, metadata_to_json)
}

proptest! {
    #![proptest_config(config(256))]

    /// Any events write a file a CSV reader parses to a header and one row per event, every row
    /// as wide as the header; every text cell reads back as written (or with the `'` that
    /// neutralises it) and every metadata cell as the metadata's JSON.
    #[test]
    fn any_cells_parse_back_to_the_same_rows_and_columns(events in prop::collection::vec(event(), 0..6), page in 1usize..4) {
        let widest = events.iter().map(|event| event.input.targets.len()).max().unwrap_or(0);
        let rows = parse(&write(&events, page))?;
        prop_assert_eq!(rows.len(), events.len() + 1);
        let width = FIXED_COLUMNS.len() + 4 * widest;
        for row in &rows {
            prop_assert_eq!(row.len(), width);
        }
        for (event, row) in events.iter().zip(&rows[1..]) {
            prop_assert_eq!(&row[0], &event.id.to_string());
            for (column, written) in expected_text_cells(event, widest) {
                let read = &row[column];
                prop_assert!(
                    *read == written || *read == format!("'{written}"),
                    "column {} reads {:?}, written {:?}", column, read, written
                );
                prop_assert_eq!(read, &neutralise(&written).into_owned(), "column {}", column);
            }
            for (column, metadata) in [(10, event.input.actor.metadata.as_ref()), (13, event.input.metadata.as_ref())] {
                let read: Value = if row[column].is_empty() { Value::Null } else {
                    serde_json::from_str(&row[column]).map_err(|error| TestCaseError::fail(format!("column {column}: {error}")))?
                };
                prop_assert_eq!(read, metadata_cell(metadata));
            }
        }
    }

    /// Writing in pages gives the same bytes as writing at once (exports stream page by page).
    #[test]
    fn pages_concatenate_to_the_whole_file(events in prop::collection::vec(event(), 0..8), page in 1usize..4) {
        prop_assert_eq!(write(&events, page), write(&events, usize::MAX));
    }

    /// The rule as it stands: no cell starts with a formula character, a tab or a carriage return.
    #[test]
    fn no_cell_starts_a_formula(events in prop::collection::vec(event(), 1..4)) {
        for row in parse(&write(&events, 2))?.iter().skip(1) {
            for cell in row {
                prop_assert!(
                    !cell.starts_with(FORMULA_STARTS) && !cell.starts_with(['\t', '\r']),
                    "cell {:?} reaches the spreadsheet as a formula", cell
                );
            }
        }
    }

    /// EXTENDED RULE (hardening; expected to fail until `neutralise` covers it): a formula
    /// character after leading white space (` =cmd`, `\n@SUM(…)`, `\u{3000}+1`) is a formula
    /// too, so such a cell must reach the spreadsheet neutralised, starting with `'`.
    #[test]
    fn extended_rule_no_cell_starts_a_formula_after_white_space(events in prop::collection::vec(event(), 1..4)) {
        for row in parse(&write(&events, 2))?.iter().skip(1) {
            for cell in row {
                prop_assert!(
                    cell.starts_with('\'') || !cell.trim_start().starts_with(FORMULA_STARTS),
                    "cell {:?} reaches the spreadsheet as a formula after white space", cell
                );
            }
        }
    }
}

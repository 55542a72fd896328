//! The benchmark harness (`vellum-bench`) end to end at a tiny size, against this build's
//! `vellum` binary: every phase runs, and every figure is present and positive. It asserts
//! nothing about speed (a debug build, on whatever machine runs the tests); `bench/run` measures.

use serde_json::Value;

use crate::helpers::vellum_binary;

/// Figures that may rightly be zero: the events a fresh store held before the fill, and how
/// much an export of a few thousand rows grew the server's memory.
const MAY_BE_ZERO: [&str; 2] = ["events_before", "rss_growth_bytes"];

/// Figures that are rightly zero on PostgreSQL, which has no search index of Vellum's own.
const ZERO_ON_POSTGRES: [&str; 3] = ["search_index_bytes", "search_index_wait_s", "search_index_after_fill_s"];

/// Every `null`, empty string, and number that is not positive (outside [`MAY_BE_ZERO`] and
/// `also_zero`).
fn missing_figures(value: &Value, path: &str, also_zero: &[&str], found: &mut Vec<String>) {
    match value {
        Value::Null => found.push(format!("{path} is null")),
        Value::String(text) if text.is_empty() => found.push(format!("{path} is empty")),
        Value::Number(number) => {
            let zero_allowed = MAY_BE_ZERO.iter().chain(also_zero).any(|name| path.ends_with(name));
            let acceptable = number
                .as_f64()
                .is_some_and(|number| number.is_finite() && (number > 0.0 || (zero_allowed && number == 0.0)));
            if !acceptable {
                found.push(format!("{path} is {number}"));
            }
        }
        Value::Array(items) => {
            if items.is_empty() {
                found.push(format!("{path} is an empty list"));
            }
            for (index, item) in items.iter().enumerate() {
                missing_figures(item, &format!("{path}[{index}]"), also_zero, found);
            }
        }
        Value::Object(members) => {
            for (name, member) in members {
                missing_figures(member, &format!("{path}.{name}"), also_zero, found);
            }
        }
        Value::Bool(_) | Value::String(_) => {}
    }
}

/// Runs the whole table at a tiny size and checks that every figure is there.
async fn every_phase_runs(on_postgres: bool) {
    let config = vellum_bench::BenchConfig {
        server_binary: vellum_binary(),
        events: 20_000,
        seconds: 0.5,
        repeats: 1,
        read_requests: 20,
        postgres_url: on_postgres.then(vellum_store::postgres::testing::server_url),
        on_postgres,
        ..vellum_bench::BenchConfig::default()
    };
    let report = vellum_bench::run(config).await.expect("every phase runs");
    println!("{}", report.render());

    let json = serde_json::to_value(&report).expect("the report serialises");
    let mut missing = Vec::new();
    let also_zero: &[&str] = if on_postgres { &ZERO_ON_POSTGRES } else { &[] };
    missing_figures(&json, "report", also_zero, &mut missing);
    assert!(missing.is_empty(), "figures missing or not positive: {missing:#?}");

    assert_eq!(report.backend, if on_postgres { "PostgreSQL" } else { "embedded" });
    assert_eq!(report.store_events, 20_000, "the fill stops at the size asked for");
    assert_eq!(report.fill.curve.len(), 10, "one point per tenth of the fill");
    assert_eq!(report.reads.measures.len(), 11);
    assert!(report.reads.measures.iter().all(|read| read.requests == 20));
    assert!(report.disk.events >= report.store_events);
    let measures: Vec<&str> = report.table.iter().map(|row| row.measure.as_str()).collect();
    for expected in [
        "HTTP stack, no store: single event, 32 clients",
        "store append_events: batch of 1,000, 4 tasks",
        "single event, 32 clients at half rate: p99",
        "batch of 1,000, 4 connections",
        "flat: batch of 1,000",
        "read: newest page, search for a rare word: p99",
        "verify store: events per CPU second",
        "export (CSV) of the largest organization",
        "disk per event",
    ] {
        assert!(measures.contains(&expected), "no row for {expected}: {measures:#?}");
    }
}

#[tokio::test]
async fn every_phase_runs_and_reports_every_figure() {
    every_phase_runs(false).await;
}

/// The same table on PostgreSQL (`--on-postgres`), on the test PostgreSQL server.
#[tokio::test]
async fn every_phase_runs_on_postgres_and_reports_every_figure() {
    every_phase_runs(true).await;
}

/// The scale-out measurement (embedded, PostgreSQL with one node, with three) runs end to end on
/// the test PostgreSQL server, so that it cannot rot. No assertion on speed.
#[tokio::test]
async fn the_scale_out_measurement_runs_every_setup() {
    let config = vellum_bench::BenchConfig {
        server_binary: vellum_binary(),
        seconds: 0.5,
        repeats: 1,
        postgres_url: Some(vellum_store::postgres::testing::server_url()),
        ..vellum_bench::BenchConfig::default()
    };
    let report = vellum_bench::scale_out(config).await.expect("every setup runs");
    println!("{}", report.render());
    let names: Vec<(&str, usize)> = report
        .setups
        .iter()
        .map(|setup| (setup.name.as_str(), setup.nodes))
        .collect();
    assert_eq!(
        names,
        [
            ("embedded store, 1 node", 1),
            ("PostgreSQL, 1 node", 1),
            ("PostgreSQL, 3 nodes", 3)
        ]
    );
    for setup in &report.setups {
        assert!(
            setup.single_32_clients.events_per_second > 0.0 && setup.batch_1000.events_per_second > 0.0,
            "{}: nothing was stored",
            setup.name
        );
    }
}

/// The purge measurement (`--purge`) runs end to end at a tiny size, so that it cannot rot:
/// about half of the events are purged while clients ingest, the database gives space back, and
/// the store verifies afterwards. No assertion on speed.
#[tokio::test]
async fn the_purge_measurement_runs_end_to_end() {
    let config = vellum_bench::BenchConfig {
        server_binary: vellum_binary(),
        events: 20_000,
        seconds: 0.5,
        repeats: 1,
        ..vellum_bench::BenchConfig::default()
    };
    let report = vellum_bench::purge(config).await.expect("the purge measurement runs");
    println!("{}", report.render());
    let json = serde_json::to_value(&report).expect("the report serialises");
    let mut missing = Vec::new();
    // A table or index may have no unused bytes.
    missing_figures(&json, "report", &["unused"], &mut missing);
    assert!(missing.is_empty(), "figures missing or not positive: {missing:#?}");
    assert_eq!(report.events_filled, 20_000);
    // Alone, the purge removes exactly the organizations' events; with the clients, also the
    // clients' events that arrive before the pass takes its sizes (they are old enough too).
    assert_eq!(report.quiet.events_purged, report.events_to_purge, "{report:?}");
    assert!(
        report.loaded.events_purged >= report.loaded.events_to_purge,
        "{report:?}"
    );
    assert!(
        report.events_to_purge * 10 >= report.events * 4 && report.events_to_purge * 10 <= report.events * 6,
        "about half: {} of {}",
        report.events_to_purge,
        report.events
    );
    assert!(
        report.quiet.database_bytes_after < report.quiet.database_bytes_before,
        "{report:?}"
    );
    for table in ["events", "purged_leaf_runs"] {
        assert!(
            report.quiet.tables_before.iter().any(|row| row.name == table),
            "{table} is in the breakdown"
        );
    }
}

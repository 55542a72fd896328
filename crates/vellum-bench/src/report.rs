//! The report: every figure of a run, typed, and the table printed from it.

use std::fmt::Write as _;

use serde::Serialize;

pub use crate::load::CurvePoint;

/// Everything one run measured.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// When the run started (UTC, RFC 3339).
    pub date: String,
    /// The cores this process may use (`std::thread::available_parallelism`).
    pub cores: usize,
    /// The `vellum` binary measured.
    pub server_binary: String,
    /// What it says of itself (`vellum --version`).
    pub server_version: String,
    /// The store measured: `embedded` or `PostgreSQL`.
    pub backend: String,
    /// A free-form label given on the command line (a commit, a machine).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The settings of the run.
    pub settings: Settings,
    /// The mean size of an event's compact JSON as generated (the `event` object as sent).
    pub event_json_bytes: f64,
    /// Events in the store when the full-size measurements began.
    pub store_events: u64,
    /// Events in the store at the end of the run.
    pub store_events_at_end: u64,
    /// The ceilings, measured in this run.
    pub ceilings: Ceilings,
    /// Ingest on an empty store (a fresh store for every run).
    pub empty_store: Ingest,
    /// Filling the store to its size.
    pub fill: Fill,
    /// Ingest on the full store.
    pub full_store: Ingest,
    /// Reads of the largest organization on the full store.
    pub reads: Reads,
    /// `vellum verify store` on the full store.
    pub verify: Verify,
    /// An export of the largest organization.
    pub export: Export,
    /// The store's size on disk.
    pub disk: Disk,
    /// The table printed on standard output: each figure with its ratio and target.
    pub table: Vec<Row>,
}

/// The settings of a run.
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    /// The store size asked for.
    pub events: u64,
    /// Seconds per measured run.
    pub seconds: f64,
    /// Runs per measurement (the median run is reported).
    pub repeats: usize,
    /// Requests per read measurement.
    pub read_requests: usize,
    /// The server's log filter (`VELLUM_LOG`).
    pub server_log: String,
}

/// A throughput measurement: the median of its runs, and every run.
#[derive(Clone, Debug, Serialize)]
pub struct Measured {
    /// Events per second of the median run.
    pub events_per_second: f64,
    /// Median latency of the median run's requests, in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency of the median run's requests, in milliseconds.
    pub p99_ms: f64,
    /// Every run, in order.
    pub runs: Vec<RunFigures>,
}

/// One run of a measurement.
#[derive(Clone, Debug, Serialize)]
pub struct RunFigures {
    /// Events stored (accepted, for the HTTP ceiling).
    pub events: u64,
    /// How long it lasted.
    pub seconds: f64,
    /// Events per second.
    pub events_per_second: f64,
    /// Requests sent.
    pub requests: usize,
    /// Median request latency, in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile request latency, in milliseconds.
    pub p99_ms: f64,
}

impl Measured {
    /// The median run (by events per second) stands for the measurement.
    pub(crate) fn of(runs: Vec<RunFigures>) -> Self {
        let mut order: Vec<usize> = (0..runs.len()).collect();
        order.sort_by(|&a, &b| runs[a].events_per_second.total_cmp(&runs[b].events_per_second));
        let median = order.get(order.len().saturating_sub(1) / 2).map(|&index| &runs[index]);
        Self {
            events_per_second: median.map_or(0.0, |run| run.events_per_second),
            p50_ms: median.map_or(0.0, |run| run.p50_ms),
            p99_ms: median.map_or(0.0, |run| run.p99_ms),
            runs,
        }
    }
}

/// The ceilings.
#[derive(Clone, Debug, Serialize)]
pub struct Ceilings {
    /// `vellum_http::null_ingest_router` (the HTTP stack, no store), single events, 32 clients.
    pub http_single_32_clients: Measured,
    /// The same, batches of 1,000 events, 4 connections.
    pub http_batch_1000: Measured,
    /// `EventStore::append_events` on a fresh store, batches of 1,000, 4 tasks.
    pub store_batch_1000: Measured,
}

/// Ingest over HTTP.
#[derive(Clone, Debug, Serialize)]
pub struct Ingest {
    /// Single events, one client.
    pub single_1_client: Measured,
    /// Single events, 32 clients.
    pub single_32_clients: Measured,
    /// Single events, 32 clients paced to half the rate of `single_32_clients`; latency counted
    /// from when each request was due.
    pub single_32_clients_half_rate: Measured,
    /// Batches of 100 events, 4 connections.
    pub batch_100: Measured,
    /// Batches of 1,000 events, 4 connections.
    pub batch_1000: Measured,
}

/// Filling the store.
#[derive(Clone, Debug, Serialize)]
pub struct Fill {
    /// The store size asked for.
    pub target_events: u64,
    /// Events the store held before the fill (a reused data directory).
    pub events_before: u64,
    /// Events sent by the fill.
    pub events: u64,
    /// How long it took.
    pub seconds: f64,
    /// Events per second over the whole fill.
    pub events_per_second: f64,
    /// The rate over each tenth of the target.
    pub curve: Vec<CurvePoint>,
    /// The server's peak resident memory during the fill, in bytes.
    pub server_rss_peak_bytes: u64,
}

/// Reads of the largest organization.
#[derive(Clone, Debug, Serialize)]
pub struct Reads {
    /// Its events when the reads began.
    pub organization_events: u64,
    /// Seconds the search index took, after the last ingest run, to cover every stored event
    /// (reads wait for it, as on a store at rest).
    pub search_index_wait_s: f64,
    /// Seconds the search index took, after the fill, to cover every stored event (the
    /// full-store ingest runs wait for it, so that they start from rest as the empty ones do).
    pub search_index_after_fill_s: f64,
    /// One entry per kind of read.
    pub measures: Vec<ReadFigure>,
}

/// One kind of read.
#[derive(Clone, Debug, Serialize)]
pub struct ReadFigure {
    /// What was read.
    pub name: String,
    /// One of its requests.
    pub example: String,
    /// Whether the product's latency target applies (the newest page, with one filter or a
    /// search).
    pub has_target: bool,
    /// Requests made (a slow kind stops after its time budget).
    pub requests: usize,
    /// Median latency, in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency, in milliseconds.
    pub p99_ms: f64,
}

/// `vellum verify store`.
#[derive(Clone, Debug, Serialize)]
pub struct Verify {
    /// Events checked (every organization).
    pub events: u64,
    /// Wall-clock seconds, start-up included.
    pub seconds: f64,
    /// CPU seconds (user and system) the process used.
    pub cpu_seconds: f64,
    /// Events per wall-clock second.
    pub events_per_second: f64,
    /// Events per CPU second: the rate on one core.
    pub events_per_cpu_second: f64,
}

/// An export of the largest organization through the API.
#[derive(Clone, Debug, Serialize)]
pub struct Export {
    /// `csv`.
    pub format: String,
    /// Rows written.
    pub rows: u64,
    /// The file's size.
    pub file_bytes: u64,
    /// From the request to seeing it ready (polled every 50 ms).
    pub seconds: f64,
    /// Rows per second.
    pub rows_per_second: f64,
    /// The server's resident memory just before the request, in bytes.
    pub rss_before_bytes: u64,
    /// Its peak while exporting (sampled every 50 ms).
    pub rss_peak_bytes: u64,
    /// Peak minus before.
    pub rss_growth_bytes: u64,
}

/// The store on disk.
#[derive(Clone, Debug, Serialize)]
pub struct Disk {
    /// Every `vellum.sqlite3*` file of the data directory, after the server stopped (on
    /// PostgreSQL: the database's size).
    pub database_bytes: u64,
    /// Every `vellum-search.sqlite3*` file (the search index, derived from the events).
    pub search_index_bytes: u64,
    /// Events in the store.
    pub events: u64,
    /// Bytes per event, the search index included.
    pub bytes_per_event: f64,
    /// The mean compact JSON size of the events as generated.
    pub json_bytes_per_event: f64,
    /// Bytes per event over JSON bytes per event.
    pub ratio_to_json: f64,
}

/// One line of the table.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// `ceiling`, `empty store`, `fill`, `10,000,000 events`, …
    pub phase: String,
    /// What was measured.
    pub measure: String,
    /// The figure.
    pub value: f64,
    /// Its unit.
    pub unit: String,
    /// More about it (latencies, counts).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// The figure over the relevant ceiling (or the empty store's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// What `ratio` divides by.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_to: Option<String>,
    /// The product's target for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Whether the target is met.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub met: Option<bool>,
}

impl Row {
    fn new(phase: &str, measure: &str, value: f64, unit: &str) -> Self {
        Self {
            phase: phase.to_owned(),
            measure: measure.to_owned(),
            value,
            unit: unit.to_owned(),
            detail: String::new(),
            ratio: None,
            ratio_to: None,
            target: None,
            met: None,
        }
    }

    fn detail(mut self, detail: String) -> Self {
        self.detail = detail;
        self
    }

    fn ratio(mut self, numerator: f64, denominator: f64, to: &str) -> Self {
        self.ratio = Some(if denominator > 0.0 {
            numerator / denominator
        } else {
            0.0
        });
        self.ratio_to = Some(to.to_owned());
        self
    }

    fn target(mut self, target: &str, met: bool) -> Self {
        self.target = Some(target.to_owned());
        self.met = Some(met);
        self
    }
}

fn latency_detail(measured: &Measured) -> String {
    format!("p50 {:.2} ms, p99 {:.2} ms", measured.p50_ms, measured.p99_ms)
}

const MB: f64 = 1024.0 * 1024.0;

/// The product's targets ("How good it must be").
const SINGLE_RATE: f64 = 20_000.0;
const SINGLE_SHARE: f64 = 0.5;
const P99_MS: f64 = 10.0;
const BATCH_RATE: f64 = 100_000.0;
const BATCH_SHARE: f64 = 0.8;
const FLAT_SHARE: f64 = 0.8;
const VERIFY_RATE: f64 = 300_000.0;
const EXPORT_RATE: f64 = 200_000.0;
const DISK_RATIO: f64 = 1.5;

/// The rows of the ingest measurements of one phase.
fn ingest_rows(phase: &str, ingest: &Ingest, ceilings: &Ceilings, empty: Option<&Ingest>) -> Vec<Row> {
    let http = ceilings.http_single_32_clients.events_per_second;
    let store = ceilings.store_batch_1000.events_per_second;
    let of_empty = |full: &Measured, empty: Option<&Measured>| match empty {
        Some(empty) if empty.events_per_second > 0.0 => {
            format!("; {:.2} of empty", full.events_per_second / empty.events_per_second)
        }
        _ => String::new(),
    };
    let single_32 = &ingest.single_32_clients;
    let batch_1000 = &ingest.batch_1000;
    let half = &ingest.single_32_clients_half_rate;
    let mut rows = vec![
        Row::new(
            phase,
            "single event, 1 client",
            ingest.single_1_client.events_per_second,
            "ev/s",
        )
        .detail(
            latency_detail(&ingest.single_1_client)
                + &of_empty(&ingest.single_1_client, empty.map(|empty| &empty.single_1_client)),
        )
        .ratio(ingest.single_1_client.events_per_second, http, "HTTP ceiling"),
        Row::new(phase, "single event, 32 clients", single_32.events_per_second, "ev/s")
            .detail(latency_detail(single_32) + &of_empty(single_32, empty.map(|empty| &empty.single_32_clients)))
            .ratio(single_32.events_per_second, http, "HTTP ceiling")
            .target(
                "≥20,000 ev/s and ≥0.50",
                single_32.events_per_second >= SINGLE_RATE && single_32.events_per_second >= SINGLE_SHARE * http,
            ),
        Row::new(phase, "single event, 32 clients at half rate: p99", half.p99_ms, "ms")
            .detail(format!("{:.0} ev/s, p50 {:.2} ms", half.events_per_second, half.p50_ms))
            .target("<10 ms", half.p99_ms < P99_MS),
        Row::new(
            phase,
            "batch of 100, 4 connections",
            ingest.batch_100.events_per_second,
            "ev/s",
        )
        .detail(latency_detail(&ingest.batch_100) + &of_empty(&ingest.batch_100, empty.map(|empty| &empty.batch_100)))
        .ratio(ingest.batch_100.events_per_second, store, "store ceiling"),
        Row::new(
            phase,
            "batch of 1,000, 4 connections",
            batch_1000.events_per_second,
            "ev/s",
        )
        .detail(latency_detail(batch_1000) + &of_empty(batch_1000, empty.map(|empty| &empty.batch_1000)))
        .ratio(batch_1000.events_per_second, store, "store ceiling")
        .target(
            "≥100,000 ev/s and ≥0.80",
            batch_1000.events_per_second >= BATCH_RATE && batch_1000.events_per_second >= BATCH_SHARE * store,
        ),
    ];
    if let Some(empty) = empty {
        for (measure, full, empty) in [
            ("flat: single event, 32 clients", single_32, &empty.single_32_clients),
            ("flat: batch of 1,000", batch_1000, &empty.batch_1000),
        ] {
            rows.push(
                Row::new(phase, measure, full.events_per_second, "ev/s")
                    .ratio(full.events_per_second, empty.events_per_second, "empty store")
                    .target("≥0.80", full.events_per_second >= FLAT_SHARE * empty.events_per_second),
            );
        }
    }
    rows
}

/// Builds the table from the figures.
pub(crate) fn table(report: &Report) -> Vec<Row> {
    let ceilings = &report.ceilings;
    let mut rows = vec![
        Row::new(
            "ceiling",
            "HTTP stack, no store: single event, 32 clients",
            ceilings.http_single_32_clients.events_per_second,
            "ev/s",
        )
        .detail(latency_detail(&ceilings.http_single_32_clients)),
        Row::new(
            "ceiling",
            "HTTP stack, no store: batch of 1,000, 4 connections",
            ceilings.http_batch_1000.events_per_second,
            "ev/s",
        )
        .detail(latency_detail(&ceilings.http_batch_1000)),
        Row::new(
            "ceiling",
            "store append_events: batch of 1,000, 4 tasks",
            ceilings.store_batch_1000.events_per_second,
            "ev/s",
        )
        .detail(latency_detail(&ceilings.store_batch_1000)),
    ];
    rows.extend(ingest_rows("empty store", &report.empty_store, ceilings, None));

    let fill = &report.fill;
    let curve = |point: Option<&CurvePoint>| point.map_or(0.0, |point| point.events_per_second);
    rows.push(
        Row::new(
            "fill",
            &format!(
                "to {} events, batches of 1,000, 4 connections",
                thousands(fill.target_events as f64)
            ),
            fill.events_per_second,
            "ev/s",
        )
        .detail(format!(
            "{} events in {:.1} s; first tenth {} ev/s, last tenth {} ev/s",
            thousands(fill.events as f64),
            fill.seconds,
            thousands(curve(fill.curve.first())),
            thousands(curve(fill.curve.last()))
        )),
    );
    rows.push(Row::new(
        "fill",
        "server peak resident memory",
        fill.server_rss_peak_bytes as f64 / MB,
        "MB",
    ));

    let full = format!("{} events", thousands(report.store_events as f64));
    rows.extend(ingest_rows(
        &full,
        &report.full_store,
        ceilings,
        Some(&report.empty_store),
    ));

    // The embedded store's search index follows ingest; PostgreSQL has none of its own.
    if report.backend == "embedded" {
        rows.push(
            Row::new(
                &full,
                "search index caught up after the fill",
                report.reads.search_index_after_fill_s,
                "s",
            )
            .detail("the ingest runs start once it has".to_owned()),
        );
        rows.push(
            Row::new(
                &full,
                "search index caught up after the ingest runs",
                report.reads.search_index_wait_s,
                "s",
            )
            .detail("reads start once it has".to_owned()),
        );
    }
    for read in &report.reads.measures {
        let mut row = Row::new(&full, &format!("read: {}: p99", read.name), read.p99_ms, "ms")
            .detail(format!("p50 {:.2} ms, {} requests", read.p50_ms, read.requests));
        if read.has_target {
            row = row.target("<10 ms", read.p99_ms < P99_MS);
        }
        rows.push(row);
    }

    let verify = &report.verify;
    rows.push(
        Row::new(
            &full,
            "verify store: events per CPU second",
            verify.events_per_cpu_second,
            "ev/s",
        )
        .detail(format!(
            "{} events, {:.1} s wall ({} ev/s), {:.1} s CPU",
            thousands(verify.events as f64),
            verify.seconds,
            thousands(verify.events_per_second),
            verify.cpu_seconds
        ))
        .target("≥300,000 ev/s on one core", verify.events_per_cpu_second >= VERIFY_RATE),
    );

    let export = &report.export;
    rows.push(
        Row::new(
            &full,
            "export (CSV) of the largest organization",
            export.rows_per_second,
            "rows/s",
        )
        .detail(format!(
            "{} rows in {:.1} s, {:.0} MB",
            thousands(export.rows as f64),
            export.seconds,
            export.file_bytes as f64 / MB
        ))
        .target("≥200,000 rows/s", export.rows_per_second >= EXPORT_RATE),
    );
    rows.push(
        Row::new(
            &full,
            "export: server memory growth",
            export.rss_growth_bytes as f64 / MB,
            "MB",
        )
        .detail(format!(
            "{:.1} MB before, {:.1} MB peak",
            export.rss_before_bytes as f64 / MB,
            export.rss_peak_bytes as f64 / MB
        )),
    );

    let disk = &report.disk;
    rows.push(
        Row::new(&full, "disk per event", disk.bytes_per_event, "B")
            .detail(if report.backend == "embedded" {
                format!(
                    "{:.0} MB for {} events ({:.0} MB of it the search index)",
                    (disk.database_bytes + disk.search_index_bytes) as f64 / MB,
                    thousands(disk.events as f64),
                    disk.search_index_bytes as f64 / MB
                )
            } else {
                format!(
                    "{:.0} MB for {} events (pg_database_size)",
                    disk.database_bytes as f64 / MB,
                    thousands(disk.events as f64)
                )
            })
            .ratio(disk.bytes_per_event, disk.json_bytes_per_event, "event JSON")
            .target("≤1.5× the JSON", disk.ratio_to_json <= DISK_RATIO),
    );
    rows
}

/// `1234567.8` → `1,234,568`.
pub(crate) fn thousands(value: f64) -> String {
    let rounded = format!("{:.0}", value.abs());
    let mut grouped = String::new();
    for (index, digit) in rounded.chars().enumerate() {
        if index > 0 && (rounded.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    if value < 0.0 && rounded != "0" {
        grouped.insert(0, '-');
    }
    grouped
}

fn value_text(row: &Row) -> String {
    let number = match row.unit.as_str() {
        "ms" => format!("{:.2}", row.value),
        "MB" => format!("{:.1}", row.value),
        _ => thousands(row.value),
    };
    format!("{number} {}", row.unit)
}

impl Report {
    /// The table as text, one line per figure, with a heading.
    pub fn render(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "Vellum benchmark, {}: {} cores, {} store of {} events ({} at the end), events of {:.0} bytes of JSON",
            self.date,
            self.cores,
            self.backend,
            thousands(self.store_events as f64),
            thousands(self.store_events_at_end as f64),
            self.event_json_bytes
        );
        let _ = writeln!(
            text,
            "server: {} ({}){}",
            self.server_binary,
            self.server_version,
            self.label.as_ref().map_or(String::new(), |label| format!(", {label}"))
        );
        let header = ["phase", "measure", "value", "ratio", "target", "met", "detail"].map(str::to_owned);
        let lines: Vec<[String; 7]> = self
            .table
            .iter()
            .map(|row| {
                [
                    row.phase.clone(),
                    row.measure.clone(),
                    value_text(row),
                    match (row.ratio, &row.ratio_to) {
                        (Some(ratio), Some(to)) => format!("{ratio:.2} of {to}"),
                        _ => String::new(),
                    },
                    row.target.clone().unwrap_or_default(),
                    match row.met {
                        Some(true) => "yes".to_owned(),
                        Some(false) => "NO".to_owned(),
                        None => String::new(),
                    },
                    row.detail.clone(),
                ]
            })
            .collect();
        let mut widths = header.clone().map(|cell| cell.chars().count());
        for line in &lines {
            for (width, cell) in widths.iter_mut().zip(line) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let render_line = |text: &mut String, cells: &[String; 7]| {
            let mut line = String::new();
            for (index, (cell, width)) in cells.iter().zip(widths).enumerate() {
                // The last column (details) is not padded.
                let width = if index + 1 == cells.len() { 0 } else { width };
                if index > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', width.saturating_sub(cell.chars().count())));
            }
            let _ = writeln!(text, "{}", line.trim_end());
        };
        render_line(&mut text, &header);
        let mut rule = widths.map(|width| "-".repeat(width));
        rule[6] = "-".repeat("detail".len());
        render_line(&mut text, &rule);
        for line in &lines {
            render_line(&mut text, line);
        }
        text
    }
}

/// Ingest on the embedded store and on PostgreSQL with one and with several nodes, measured in
/// one run (`--postgres-url`), each run on a fresh store.
#[derive(Clone, Debug, Serialize)]
pub struct ScaleOut {
    /// When the run started (UTC, RFC 3339).
    pub date: String,
    /// The cores this process may use.
    pub cores: usize,
    /// What the `vellum` binary says of itself.
    pub server_version: String,
    /// A free-form label given on the command line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Seconds per measured run.
    pub seconds: f64,
    /// Runs per measurement (the median run is reported).
    pub repeats: usize,
    /// One row per setup, in the order measured.
    pub setups: Vec<ScaleOutSetup>,
}

/// One setup of [`ScaleOut`].
#[derive(Clone, Debug, Serialize)]
pub struct ScaleOutSetup {
    /// What was measured (`embedded store, 1 node`, `PostgreSQL, 3 nodes`).
    pub name: String,
    /// `vellum serve` processes, the clients' connections spread over them in turn.
    pub nodes: usize,
    /// Single events, 32 clients, each request with its own `Idempotency-Key`.
    pub single_32_clients: Measured,
    /// Batches of 1,000 events, 4 connections.
    pub batch_1000: Measured,
}

impl ScaleOut {
    /// The table printed on standard output.
    pub fn render(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "Vellum scale-out, {}: {} cores, {} ({}), {} s per run, median of {}",
            self.date,
            self.cores,
            self.server_version,
            self.label.as_deref().unwrap_or("no label"),
            self.seconds,
            self.repeats
        );
        let base = self.setups.first().map(|setup| {
            (
                setup.single_32_clients.events_per_second,
                setup.batch_1000.events_per_second,
            )
        });
        let _ = writeln!(
            text,
            "| setup | single events, 32 clients | p99 | batches of 1,000, 4 connections |"
        );
        let _ = writeln!(text, "|---|---|---|---|");
        for setup in &self.setups {
            let ratio = |value: f64, of: Option<f64>| match of {
                Some(of) if of > 0.0 => format!(" ({:.2} of the first)", value / of),
                _ => String::new(),
            };
            let _ = writeln!(
                text,
                "| {} | {} ev/s{} | {:.1} ms | {} ev/s{} |",
                setup.name,
                thousands(setup.single_32_clients.events_per_second),
                ratio(setup.single_32_clients.events_per_second, base.map(|base| base.0)),
                setup.single_32_clients.p99_ms,
                thousands(setup.batch_1000.events_per_second),
                ratio(setup.batch_1000.events_per_second, base.map(|base| base.1)),
            );
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(1_234_567.8), "1,234,568");
    }

    #[test]
    fn the_median_run_stands_for_a_measurement() {
        let run = |rate: f64, p99: f64| RunFigures {
            events: 1,
            seconds: 1.0,
            events_per_second: rate,
            requests: 1,
            p50_ms: 1.0,
            p99_ms: p99,
        };
        let measured = Measured::of(vec![run(3.0, 30.0), run(1.0, 10.0), run(2.0, 20.0)]);
        assert_eq!((measured.events_per_second, measured.p99_ms), (2.0, 20.0));
        assert_eq!(measured.runs.len(), 3);
    }
}

/// What `--purge` measured.
#[derive(Clone, Debug, Serialize)]
pub struct PurgeReport {
    /// When the run started (UTC, RFC 3339).
    pub date: String,
    /// The cores this process may use.
    pub cores: usize,
    /// What the `vellum` binary says of itself.
    pub server_version: String,
    /// A free-form label given on the command line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Events in the store once filled and topped up.
    pub events: u64,
    /// Events the fill sent (before the top-up to exactly half).
    pub events_filled: u64,
    /// Events of the organizations given a 30-day retention.
    pub events_to_purge: u64,
    /// The purge of an identical copy with nothing else running: space and rate.
    pub quiet: QuietPurge,
    /// The purge of the live store while clients send single events: their latency.
    pub loaded: LoadedPurge,
}

/// `vellum purge` alone, on a stopped copy of the store.
#[derive(Clone, Debug, Serialize)]
pub struct QuietPurge {
    /// Events it reported removing.
    pub events_purged: u64,
    /// Events left (the purge records not counted).
    pub events_after: u64,
    /// From its start to its exit.
    pub seconds: f64,
    /// Events removed per second.
    pub events_purged_per_second: f64,
    /// `vellum.sqlite3` before and after.
    pub database_bytes_before: u64,
    /// See `database_bytes_before`.
    pub database_bytes_after: u64,
    /// Every file of the store (WAL and search index included) before and after.
    pub store_bytes_before: u64,
    /// See `store_bytes_before`.
    pub store_bytes_after: u64,
    /// The database's tables and indexes before, largest first.
    pub tables_before: Vec<TableBytes>,
    /// The same after.
    pub tables_after: Vec<TableBytes>,
    /// `vellum verify store` afterwards.
    pub verify_seconds: f64,
}

/// One table or index of the database (SQLite's `dbstat`).
#[derive(Clone, Debug, Serialize)]
pub struct TableBytes {
    /// The table's or index's name.
    pub name: String,
    /// The bytes of its pages.
    pub bytes: u64,
    /// The bytes of those pages that hold nothing.
    pub unused: u64,
}

/// `vellum purge` on the live store while clients send single events.
#[derive(Clone, Debug, Serialize)]
pub struct LoadedPurge {
    /// Clients sending single events.
    pub clients: usize,
    /// Events of the organizations to purge when it started (the clients' events that arrive
    /// before the pass reads the logs' sizes are purged too).
    pub events_to_purge: u64,
    /// Events it reported removing.
    pub events_purged: u64,
    /// From its start to its exit.
    pub seconds: f64,
    /// Events the clients stored meanwhile.
    pub events_sent: u64,
    /// The clients' load just before the purge.
    pub ingest_before: RunFigures,
    /// Their load during the purge.
    pub ingest_during: RunFigures,
    /// `vellum verify store` afterwards.
    pub verify_seconds: f64,
}

impl PurgeReport {
    /// The table printed on standard output.
    pub fn render(&self) -> String {
        let mut text = String::new();
        let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
        let quiet = &self.quiet;
        let loaded = &self.loaded;
        let _ = writeln!(
            text,
            "Vellum purge, {}: {} cores, {} ({})",
            self.date,
            self.cores,
            self.server_version,
            self.label.as_deref().unwrap_or("no label")
        );
        let _ = writeln!(text, "| figure | value |");
        let _ = writeln!(text, "|---|---|");
        let _ = writeln!(
            text,
            "| alone: events purged | {} of {} |",
            thousands(quiet.events_purged as f64),
            thousands(self.events as f64)
        );
        let _ = writeln!(
            text,
            "| alone: purge time | {:.1} s ({} events/s) |",
            quiet.seconds,
            thousands(quiet.events_purged_per_second)
        );
        let given_back = |what: &str, before: u64, after: u64| {
            format!(
                "| alone: {what} | {:.0} MiB -> {:.0} MiB ({:.3} given back) |",
                mib(before),
                mib(after),
                1.0 - after as f64 / before.max(1) as f64
            )
        };
        let _ = writeln!(
            text,
            "{}",
            given_back("database file", quiet.database_bytes_before, quiet.database_bytes_after)
        );
        let _ = writeln!(
            text,
            "| alone: database bytes per remaining event | {:.0} before, {:.0} after |",
            quiet.database_bytes_before as f64 / self.events.max(1) as f64,
            quiet.database_bytes_after as f64 / quiet.events_after.max(1) as f64
        );
        let _ = writeln!(
            text,
            "{}",
            given_back(
                "whole store (WAL, search index)",
                quiet.store_bytes_before,
                quiet.store_bytes_after
            )
        );
        let _ = writeln!(
            text,
            "| alone: verify store after | {:.1} s, passed |",
            quiet.verify_seconds
        );
        let _ = writeln!(
            text,
            "| with {} clients: events purged | {} ({} when it started) |",
            loaded.clients,
            thousands(loaded.events_purged as f64),
            thousands(loaded.events_to_purge as f64)
        );
        let _ = writeln!(
            text,
            "| with {} clients: purge time | {:.1} s, while they stored {} events |",
            loaded.clients,
            loaded.seconds,
            thousands(loaded.events_sent as f64)
        );
        for (when, figures) in [("before", &loaded.ingest_before), ("during", &loaded.ingest_during)] {
            let _ = writeln!(
                text,
                "| {} clients, single events, {when} the purge | {} ev/s, p50 {:.2} ms, p99 {:.2} ms |",
                loaded.clients,
                thousands(figures.events_per_second),
                figures.p50_ms,
                figures.p99_ms
            );
        }
        let _ = writeln!(
            text,
            "| p99 during / before | {:.2} |",
            loaded.ingest_during.p99_ms / loaded.ingest_before.p99_ms.max(f64::EPSILON)
        );
        let _ = writeln!(text, "| verify store after | {:.1} s, passed |", loaded.verify_seconds);
        let _ = writeln!(text);
        let _ = writeln!(
            text,
            "| table or index (alone) | MiB before | unused | MiB after | unused |"
        );
        let _ = writeln!(text, "|---|---|---|---|---|");
        for table in &quiet.tables_before {
            let after = quiet.tables_after.iter().find(|after| after.name == table.name);
            let _ = writeln!(
                text,
                "| {} | {:.1} | {:.1} | {:.1} | {:.1} |",
                table.name,
                mib(table.bytes),
                mib(table.unused),
                after.map_or(0.0, |after| mib(after.bytes)),
                after.map_or(0.0, |after| mib(after.unused))
            );
        }
        text
    }
}

/// What `--streams` measured.
#[derive(Clone, Debug, Serialize)]
pub struct StreamsReport {
    /// When the run started (UTC, RFC 3339).
    pub date: String,
    /// The cores this process may use.
    pub cores: usize,
    /// What the `vellum` binary says of itself.
    pub server_version: String,
    /// A free-form label given on the command line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// How far behind the stream started: the organization's log size at the replay.
    pub events_behind: u64,
    /// From the replay until the receiver had the last of those events.
    pub catch_up_seconds: f64,
    /// `events_behind / catch_up_seconds`.
    pub catch_up_events_per_second: f64,
    /// Requests the receiver answered.
    pub requests: u64,
    /// Events the receiver counted (the clients' new events included).
    pub events_received: u64,
    /// Clients sending single events.
    pub clients: usize,
    /// Their load with no stream.
    pub ingest_without_stream: RunFigures,
    /// Their load while the stream caught up.
    pub ingest_during_catch_up: RunFigures,
}

impl StreamsReport {
    /// The table printed on standard output.
    pub fn render(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "Vellum log stream catch-up, {}: {} cores, {} ({})",
            self.date,
            self.cores,
            self.server_version,
            self.label.as_deref().unwrap_or("no label")
        );
        let _ = writeln!(text, "| figure | value |");
        let _ = writeln!(text, "|---|---|");
        let _ = writeln!(
            text,
            "| catch-up | {} events in {:.1} s: {} events/s, {} requests |",
            thousands(self.events_behind as f64),
            self.catch_up_seconds,
            thousands(self.catch_up_events_per_second),
            thousands(self.requests as f64)
        );
        for (when, figures) in [
            ("without a stream", &self.ingest_without_stream),
            ("during the catch-up", &self.ingest_during_catch_up),
        ] {
            let _ = writeln!(
                text,
                "| {} clients, single events, {when} | {} ev/s, p50 {:.2} ms, p99 {:.2} ms |",
                self.clients,
                thousands(figures.events_per_second),
                figures.p50_ms,
                figures.p99_ms
            );
        }
        let _ = writeln!(
            text,
            "| p99 during / without | {:.2} |",
            self.ingest_during_catch_up.p99_ms / self.ingest_without_stream.p99_ms.max(f64::EPSILON)
        );
        text
    }
}

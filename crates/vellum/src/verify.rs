//! `vellum verify`: checks a log, trusting only event content and a pinned public key.
//!
//! - `verify store` reads an embedded store directly (the server may be running).
//! - `verify log` reads a live server over HTTP, recomputing every leaf from each event's content
//!   and checking consistency with the checkpoint remembered from the previous run.

use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};
use vellum_core::OrganizationId;
use vellum_core::audit::{Entry, LogAuditor, Problem, Summary};
use vellum_core::canonical::{
    EVENT_FORMAT_V1, EVENT_FORMAT_V2, RECORD_FORMAT_V1, canonical_event_bytes, canonical_json,
};
use vellum_core::checkpoint::{Checkpoint, NoteVerifier};
use vellum_core::merkle::{self, Hash};
use vellum_store::Store;

/// Reads `--public-key`: a C2SP verifier key string, or the base64 of a raw 32-byte key (then
/// published under `key_name`).
pub fn parse_public_key(text: &str, key_name: &str) -> anyhow::Result<NoteVerifier> {
    if let Ok(bytes) = BASE64.decode(text.trim())
        && let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice())
    {
        return NoteVerifier::from_public_key(key_name, &key).map_err(|error| anyhow::anyhow!("--public-key: {error}"));
    }
    NoteVerifier::parse(text).map_err(|error| anyhow::anyhow!("--public-key: {error}"))
}

/// How many entries are read per page.
const PAGE: u64 = 1000;

/// Audits one organization's log in a store.
pub async fn audit_store_log(
    store: &dyn Store,
    organization_id: OrganizationId,
    verifier: &NoteVerifier,
    origin: &str,
) -> anyhow::Result<Result<Summary, Problem>> {
    let note = store.log_scan(organization_id, 0, 0).await?.checkpoint_note;
    let checkpoint = match note {
        None => None,
        Some(note) => match verifier.verify(&note) {
            Ok(checkpoint) if checkpoint.origin == origin => Some(checkpoint),
            Ok(checkpoint) => {
                return Ok(Err(problem(format!(
                    "the stored checkpoint names log `{}`, not `{origin}`",
                    checkpoint.origin
                ))));
            }
            Err(error) => return Ok(Err(problem(format!("the stored checkpoint does not verify: {error}")))),
        },
    };
    let mut auditor = LogAuditor::new(checkpoint);
    let mut start = 0u64;
    let stored_size = loop {
        let scan = store.log_scan(organization_id, start, PAGE).await?;
        let (records, stored_size) = (scan.records, scan.tree_size);
        for record in &records {
            if let (Some(purged_by), Some(leaf)) = (record.purged_by, record.stored_leaf) {
                if !auditor.push_purged(record.log_index, leaf, purged_by) {
                    return Ok(auditor.finish(Some(stored_size)));
                }
                continue;
            }
            if let (Ok(event), Some(leaf)) = (&record.event, record.stored_leaf)
                && !vellum_core::canonical::leaf_is_recomputable(event)
            {
                if !auditor.push_redacted(record.log_index, Some(event.id.to_string()), leaf, &event.erased_by) {
                    return Ok(auditor.finish(Some(stored_size)));
                }
                continue;
            }
            let canonical = record.event.as_ref().map(canonical_event_bytes).map_err(Clone::clone);
            let erased_by = record
                .event
                .as_ref()
                .map(|event| event.erased_by.as_slice())
                .unwrap_or_default();
            let accepted = auditor.push(Entry {
                position: record.log_index,
                event_id: record.event_id.map(|id| id.to_string()),
                canonical: canonical.as_deref().map_err(Clone::clone),
                stored_leaf: Some(record.stored_leaf),
                erased_by,
            });
            if !accepted {
                return Ok(auditor.finish(Some(stored_size)));
            }
        }
        start += PAGE;
        if start >= stored_size && records.is_empty() {
            break stored_size;
        }
        if start >= stored_size.max(auditor.entries_checked()) + PAGE {
            break stored_size;
        }
    };
    let summary = match auditor.finish(Some(stored_size)) {
        Ok(summary) => summary,
        Err(problem) => return Ok(Err(problem)),
    };
    // Every stored node must match the hashes below it (proofs are served from them), and they
    // must compose to the same root as the recomputed leaves.
    if let Some(vellum_store::NodePosition { level, index }) =
        store.log_first_inconsistent_node(organization_id).await?
    {
        let (first, end) = (index << level, (index + 1) << level);
        return Ok(Err(problem(format!(
            "the stored log node at level {level} covering positions {first}..{end} does not match the hashes below it \
             (a stored hash was rewritten; proofs through it would fail)"
        ))));
    }
    let stored_root = store.log_tree_head(organization_id).await?.root;
    if stored_root != summary.root {
        return Ok(Err(problem(
            "the stored log nodes do not match the events' leaves (a stored hash was rewritten)".into(),
        )));
    }
    Ok(Ok(summary))
}

fn problem(message: String) -> Problem {
    Problem {
        position: None,
        event_id: None,
        message,
    }
}

/// Audits every log in a store (or one organization's); prints a line per log. Returns whether
/// everything verified.
pub async fn verify_store(
    store: &dyn Store,
    verifier: &NoteVerifier,
    log_name: &str,
    only: Option<OrganizationId>,
) -> anyhow::Result<bool> {
    let organizations = match only {
        Some(organization_id) => vec![(organization_id, false)],
        None => store
            .log_organizations()
            .await?
            .into_iter()
            .map(|owner| (owner.organization_id, owner.deleted))
            .collect(),
    };
    let mut all_good = true;
    for (organization_id, deleted) in organizations {
        let origin = format!("{log_name}/{organization_id}");
        let note = if deleted { " (deleted organization)" } else { "" };
        match audit_store_log(store, organization_id, verifier, &origin).await? {
            Ok(summary) => println!("ok {organization_id}{note}: {}", describe(&summary)),
            Err(problem) => {
                all_good = false;
                println!(
                    "FAILED {organization_id}{note}: {}",
                    crate::terminal::text(&problem.to_string())
                );
            }
        }
    }
    Ok(all_good)
}

fn describe(summary: &Summary) -> String {
    let checkpoint = match summary.checkpoint_size {
        Some(size) => format!("signed checkpoint at {size} verified"),
        None => "no checkpoint signed yet".to_owned(),
    };
    let purged = if summary.purged > 0 {
        format!(
            " ({} removed by {} purge records, each accounted for)",
            summary.purged, summary.purge_records
        )
    } else {
        String::new()
    };
    let erased = if summary.erased > 0 {
        format!(
            " ({} with personal data erased by {} erasure records, each accounted for)",
            summary.erased, summary.erasure_records
        )
    } else {
        String::new()
    };
    format!(
        "{} entries{purged}{erased}, root {}, {checkpoint}",
        summary.entries,
        BASE64.encode(summary.root)
    )
}

/// What `verify log` remembers between runs.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct State {
    verifier_key: String,
    organization_id: String,
    tree_size: u64,
    root: String,
}

/// A minimal client of the log endpoints.
struct Remote {
    client: reqwest::Client,
    base: String,
    api_key: String,
}

impl Remote {
    async fn get(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        let url = format!("{}{path}", self.base.trim_end_matches('/'));
        let response = self
            .client
            .get(&url)
            .bearer_auth(&self.api_key)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        if !response.status().is_success() {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            anyhow::bail!("GET {url}: {status}: {body}");
        }
        Ok(response)
    }

    async fn json(&self, path: &str) -> anyhow::Result<Value> {
        self.get(path)
            .await?
            .json()
            .await
            .context("the server answered with invalid JSON")
    }
}

/// Rebuilds the canonical envelope from an event as the read API serves it, with the format tag
/// the served bytes claim (an event's, or one of Vellum's own records'; anything else is
/// refused when the bytes are compared).
fn envelope_from_event(event: &Value, format: &str) -> Option<Value> {
    let mut object: Map<String, Value> = event.as_object()?.clone();
    object.remove("object");
    let version = object.remove("version")?;
    object.insert("schema_version".into(), version);
    object.insert("format".into(), json!(format));
    Some(Value::Object(object))
}

/// The format tag the served canonical bytes carry, if it is one Vellum writes.
fn served_format(served: Option<&[u8]>) -> &'static str {
    let claimed = served
        .and_then(|bytes| serde_json::from_slice::<Value>(bytes).ok())
        .and_then(|value| value.get("format").and_then(Value::as_str).map(str::to_owned));
    match claimed.as_deref() {
        Some(RECORD_FORMAT_V1) => RECORD_FORMAT_V1,
        Some(EVENT_FORMAT_V2) => EVENT_FORMAT_V2,
        _ => EVENT_FORMAT_V1,
    }
}

/// Checks one served entry and returns the canonical bytes recomputed from its content.
fn entry_bytes(entry: &Value, position: u64, organization_id: &str) -> Result<Vec<u8>, String> {
    let event = entry.get("event").ok_or("the entry has no event")?;
    let served = entry
        .get("canonical")
        .and_then(Value::as_str)
        .map(|text| BASE64.decode(text));
    let format = served_format(served.as_ref().and_then(|bytes| bytes.as_ref().ok()).map(Vec::as_slice));
    let mut envelope = envelope_from_event(event, format).ok_or("the event is not an object with a version")?;
    if format == EVENT_FORMAT_V2 {
        // Sealed parties: the seals are recomputed from the values shown and the served salts;
        // an erased party's seal is the one committed.
        let committed: Value = served
            .as_ref()
            .and_then(|bytes| bytes.as_ref().ok())
            .and_then(|bytes| serde_json::from_slice(bytes).ok())
            .unwrap_or(Value::Null);
        let salts: Vec<Option<String>> = entry
            .get("salts")
            .and_then(Value::as_array)
            .map(|salts| salts.iter().map(|salt| salt.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        envelope = vellum_core::seal::sealed_envelope(&envelope, &salts, &committed)?;
    }
    if envelope.get("log_index") != Some(&json!(position)) {
        return Err(format!("the event claims position {:?}", envelope.get("log_index")));
    }
    if envelope.get("organization_id") != Some(&json!(organization_id)) {
        return Err("the event belongs to another organization".into());
    }
    let bytes = canonical_json(&envelope);
    match served {
        Some(Ok(served)) if served == bytes => Ok(bytes),
        _ => Err("the served canonical bytes differ from the event's content".into()),
    }
}

/// Audits a live log over HTTP. Prints a one-line summary; returns whether it verified.
pub async fn verify_remote(
    url: &str,
    api_key: &str,
    organization_id: OrganizationId,
    public_key: Option<&str>,
    state_file: Option<&Path>,
) -> anyhow::Result<bool> {
    let remote = Remote {
        client: reqwest::Client::new(),
        base: url.to_owned(),
        api_key: api_key.to_owned(),
    };
    let previous: Option<State> = match state_file {
        Some(path) if path.try_exists()? => Some(
            serde_json::from_str(&std::fs::read_to_string(path)?)
                .with_context(|| format!("{} is not a vellum verify state file", path.display()))?,
        ),
        _ => None,
    };
    if let Some(previous) = &previous
        && previous.organization_id != organization_id.to_string()
    {
        anyhow::bail!(
            "the state file is for {}, not {organization_id}",
            previous.organization_id
        );
    }
    let published = remote.json("/audit_logs/log/public_key").await?;
    let key_name = published["key_name"].as_str().unwrap_or("vellum").to_owned();
    let verifier_key = match (public_key, &previous) {
        (Some(pinned), _) => parse_public_key(pinned, &key_name)?,
        (None, Some(previous)) => {
            NoteVerifier::parse(&previous.verifier_key).map_err(|error| anyhow::anyhow!("{error}"))?
        }
        (None, None) => {
            let served = published["verifier_key"]
                .as_str()
                .context("the server publishes no verifier_key")?;
            eprintln!(
                "warning: no --public-key given; trusting the key the server publishes on first use: {}",
                crate::terminal::text(served)
            );
            NoteVerifier::parse(served).map_err(|error| anyhow::anyhow!("{error}"))?
        }
    };
    let note = remote
        .get(&format!("/audit_logs/log/checkpoint?organization_id={organization_id}"))
        .await?
        .text()
        .await?;
    let checkpoint = match verifier_key.verify(&note) {
        Ok(checkpoint) => checkpoint,
        Err(error) => {
            println!(
                "FAILED {organization_id}: the checkpoint does not verify against the pinned key: {}",
                crate::terminal::text(&error.to_string())
            );
            return Ok(false);
        }
    };
    let expected_origin_suffix = format!("/{organization_id}");
    if !checkpoint.origin.ends_with(&expected_origin_suffix) {
        println!(
            "FAILED {organization_id}: the checkpoint is for log `{}`",
            crate::terminal::text(&checkpoint.origin)
        );
        return Ok(false);
    }
    let mut trusted = vec![checkpoint.clone()];
    if let Some(previous) = &previous {
        let root = decode_hash(&previous.root)?;
        if previous.tree_size > checkpoint.size {
            println!(
                "FAILED {organization_id}: the log shrank from {} to {} entries since the last run",
                previous.tree_size, checkpoint.size
            );
            return Ok(false);
        }
        // Ask for the server's consistency proof too, and check it independently.
        let proof = remote
            .json(&format!(
                "/audit_logs/log/proof/consistency?organization_id={organization_id}&first={}&second={}",
                previous.tree_size, checkpoint.size
            ))
            .await?;
        let hashes = proof["hashes"]
            .as_array()
            .context("no hashes in the consistency proof")?
            .iter()
            .map(|hash| decode_hash(hash.as_str().unwrap_or_default()))
            .collect::<anyhow::Result<Vec<Hash>>>()?;
        if !merkle::verify_consistency(previous.tree_size, checkpoint.size, &root, &checkpoint.root, &hashes) {
            println!(
                "FAILED {organization_id}: the checkpoint at {} is not consistent with the one remembered at {} (the log was rewritten)",
                checkpoint.size, previous.tree_size
            );
            return Ok(false);
        }
        trusted.push(Checkpoint {
            origin: checkpoint.origin.clone(),
            size: previous.tree_size,
            root,
        });
    }

    let mut auditor = LogAuditor::new(trusted);
    let organization_text = organization_id.to_string();
    let mut start = 0u64;
    while start < checkpoint.size {
        let end = (start + vellum_http::MAX_ENTRIES_PER_REQUEST).min(checkpoint.size);
        let page = remote
            .json(&format!(
                "/audit_logs/log/entries?organization_id={organization_id}&start={start}&end={end}"
            ))
            .await?;
        let entries = page["data"].as_array().context("no data in the entries page")?;
        if entries.is_empty() {
            break;
        }
        for (offset, entry) in entries.iter().enumerate() {
            let position = start + offset as u64;
            let claimed = entry["log_index"].as_i64().unwrap_or(-1);
            if let Some(purged_by) = entry.get("purged_by").and_then(Value::as_u64) {
                let leaf = entry
                    .get("leaf_hash")
                    .and_then(Value::as_str)
                    .map(decode_hash)
                    .transpose()?
                    .context("a purged entry without its leaf hash")?;
                if !auditor.push_purged(claimed, leaf, purged_by) {
                    break;
                }
                continue;
            }
            let erased_by: Vec<u64> = entry["event"]["erased_by"]
                .as_array()
                .map(|records| records.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default();
            if entry.get("canonical").is_none()
                && let Some(leaf) = entry.get("leaf_hash").and_then(Value::as_str)
            {
                // An event an erasure redacted: its leaf taken on the record's word.
                let leaf = decode_hash(leaf)?;
                if !auditor.push_redacted(claimed, entry["id"].as_str().map(str::to_owned), leaf, &erased_by) {
                    break;
                }
                continue;
            }
            let mut shown = entry.clone();
            if let Some(event) = shown.get_mut("event").and_then(Value::as_object_mut) {
                event.remove("erased_by");
            }
            let bytes = entry_bytes(&shown, position, &organization_text);
            let accepted = auditor.push(Entry {
                position: claimed,
                event_id: entry["id"].as_str().map(str::to_owned),
                canonical: bytes.as_deref().map_err(Clone::clone),
                stored_leaf: None,
                erased_by: &erased_by,
            });
            if !accepted {
                break;
            }
        }
        if auditor.problem().is_some() {
            break;
        }
        start += entries.len() as u64;
    }
    match auditor.finish(None) {
        Ok(summary) if summary.entries >= checkpoint.size => {
            println!("ok {organization_id}: {}", describe(&summary));
            if let Some(path) = state_file {
                save_state(
                    path,
                    &State {
                        verifier_key: verifier_key_string(&verifier_key, &published),
                        organization_id: organization_text,
                        tree_size: checkpoint.size,
                        root: BASE64.encode(checkpoint.root),
                    },
                )?;
            }
            Ok(true)
        }
        Ok(summary) => {
            println!(
                "FAILED {organization_id}: the checkpoint signs {} entries but the server served {}",
                checkpoint.size, summary.entries
            );
            Ok(false)
        }
        Err(problem) => {
            println!(
                "FAILED {organization_id}: {}",
                crate::terminal::text(&problem.to_string())
            );
            Ok(false)
        }
    }
}

fn verifier_key_string(verifier: &NoteVerifier, published: &Value) -> String {
    // Remember the pinned key in its C2SP form; the published string is used only if it names
    // the same key.
    match published["verifier_key"].as_str().map(NoteVerifier::parse) {
        Some(Ok(served)) if &served == verifier => published["verifier_key"].as_str().unwrap_or_default().to_owned(),
        _ => String::new(),
    }
}

fn decode_hash(text: &str) -> anyhow::Result<Hash> {
    let bytes = BASE64.decode(text).context("a hash is not base64")?;
    Hash::try_from(bytes.as_slice()).map_err(|_| anyhow::anyhow!("a hash is not 32 bytes"))
}

fn save_state(path: &Path, state: &State) -> anyhow::Result<()> {
    let temporary = PathBuf::from(format!("{}.tmp", path.display()));
    std::fs::write(&temporary, serde_json::to_string_pretty(state)?)?;
    std::fs::rename(&temporary, path).with_context(|| format!("cannot write {}", path.display()))
}

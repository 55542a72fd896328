//! The invariants of ARCHITECTURE.md that can be checked by reading the code: which crates may
//! know wire formats and HTTP, where events are appended, and where Merkle logic may live.

use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The dependencies a crate builds with: every `dependencies` and `build-dependencies` table,
/// plain, per target (`[target.'cfg(…)'.dependencies]`) or one per crate
/// (`[dependencies.axum]`); not dev-dependencies.
fn dependencies(krate: &str) -> Vec<String> {
    let manifest = std::fs::read_to_string(workspace().join("crates").join(krate).join("Cargo.toml")).unwrap();
    let mut in_dependencies = false;
    let mut names = Vec::new();
    for line in manifest.lines() {
        let line = line.trim();
        if let Some(header) = line.strip_prefix('[') {
            let header = header.trim_end_matches(']');
            let table = header.rsplit_once('.').map_or(header, |(_, last)| last);
            in_dependencies = false;
            if let Some(name) = header
                .strip_prefix("dependencies.")
                .or_else(|| header.strip_prefix("build-dependencies."))
            {
                names.push(name.to_owned());
            } else {
                in_dependencies = table == "dependencies" || table == "build-dependencies";
            }
            continue;
        }
        if in_dependencies && let Some((name, _)) = line.split_once(['=', '.']) {
            let name = name.trim();
            if !name.is_empty() && !name.starts_with('#') {
                names.push(name.to_owned());
            }
        }
    }
    names
}

/// Every `.rs` file under a folder of the workspace, with its text.
fn sources(folder: &str) -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    let mut pending = vec![workspace().join(folder)];
    while let Some(directory) = pending.pop() {
        for entry in std::fs::read_dir(&directory).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|extension| extension == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                found.push((path, text));
            }
        }
    }
    assert!(!found.is_empty(), "no sources under {folder}");
    found
}

#[test]
fn only_the_http_layer_and_the_binary_depend_on_http_crates() {
    for krate in [
        "vellum-core",
        "vellum-store",
        "vellum-jobs",
        "vellum-ingest",
        "vellum-export",
        "vellum-retention",
    ] {
        let dependencies = dependencies(krate);
        assert!(!dependencies.is_empty(), "{krate} has no dependencies section");
        for http in ["axum", "hyper", "hyper-util", "tower", "tower-http", "http-body"] {
            assert!(
                !dependencies.iter().any(|name| name == http),
                "{krate} depends on {http}; only vellum-http serves HTTP"
            );
        }
        assert!(
            !dependencies.iter().any(|name| name == "vellum-http"),
            "{krate} depends on vellum-http"
        );
    }
    // The job runner only decides when steps run: it knows no store and no job.
    for name in ["vellum-store", "vellum-export", "vellum-ingest", "rusqlite"] {
        assert!(
            !dependencies("vellum-jobs").iter().any(|dependency| dependency == name),
            "vellum-jobs depends on {name}"
        );
    }
    // The pure core does no I/O: no database, runtime or file-storage crates.
    for io in ["rusqlite", "tokio", "object_store", "getrandom"] {
        assert!(
            !dependencies("vellum-core").iter().any(|name| name == io),
            "vellum-core depends on {io}"
        );
    }
}

#[test]
fn events_are_appended_only_through_the_ingest_service() {
    for folder in [
        "crates/vellum-http/src",
        "crates/vellum/src",
        "crates/vellum-export/src",
        "crates/vellum-retention/src",
    ] {
        for (path, text) in sources(folder) {
            // Unit tests (at the end of a file, or in a `tests.rs` of their own, by convention)
            // may set a store up directly.
            if path.file_name().is_some_and(|name| name == "tests.rs") {
                continue;
            }
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            assert!(
                !code.contains("append_events"),
                "{} appends events without the ingest service",
                path.display()
            );
        }
    }
}

#[test]
fn no_merkle_logic_lives_in_a_storage_backend() {
    for (path, text) in sources("crates/vellum-store/src/sqlite") {
        for forbidden in [
            "merkle::tree_root",
            "merkle::inclusion_proof",
            "merkle::consistency_proof",
            "merkle::node_hash",
            "merkle::Frontier",
            "NoteSigner::sign",
            "signer.sign(",
        ] {
            assert!(
                !text.contains(forbidden),
                "{} uses {forbidden}: Merkle and signing logic belongs in verifiable_log.rs",
                path.display()
            );
        }
    }
}

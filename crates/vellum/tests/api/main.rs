//! Black-box tests: the real server on `127.0.0.1:0` with a fresh store, driven over HTTP the
//! way clients drive it. One test binary, one module per area.

// Helpers are shared between modules of this one binary; nothing here is a public API.
#![allow(unreachable_pub)]

mod architecture;
mod audit_trail;
mod auth;
mod bench_smoke;
mod browser;
mod cli;
mod connections;
mod copy;
mod crash;
mod dashboard;
mod erasure;
mod errors;
mod events;
mod export_s3;
mod export_scale;
mod exports;
mod files;
mod hardening_inputs;
mod health;
mod helpers;
mod isolation;
mod listing;
mod malformed;
mod migration;
mod openapi;
mod operations;
mod organizations;
mod portal;
mod purge;
mod rate_limit;
mod retention;
mod scale_out;
mod schemas;
mod schemathesis;
mod sdk_node;
mod sdk_python;
mod shutdown;
mod sign_in_limits;
mod streams;
mod verify;

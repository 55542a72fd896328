//! `vellum`: see `vellum --help`.

fn main() -> std::process::ExitCode {
    vellum::cli::run()
}

//! The `pkgr` binary: everything is in the library's `cli::main`.

fn main() -> std::process::ExitCode {
    pkgr::cli::main()
}

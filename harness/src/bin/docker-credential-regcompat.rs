//! The sandbox's credential helper; see `harness::credhelper`.

fn main() {
    std::process::exit(harness::credhelper::main_with_env());
}

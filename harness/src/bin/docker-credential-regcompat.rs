//! `docker-credential-regcompat get|store|erase|list`: see `harness::credhelper`.

use std::io::Read;
use std::path::PathBuf;

use harness::credhelper;

fn main() {
    let program = std::env::args().next().unwrap_or_default();
    let command = std::env::args().nth(1).unwrap_or_default();
    let store_env = credhelper::store_env_for(&program);
    let Some(path) = std::env::var_os(store_env).map(PathBuf::from) else {
        eprintln!("{store_env} is not set");
        std::process::exit(1);
    };
    let mut input = String::new();
    if std::io::stdin()
        .take(1 << 20)
        .read_to_string(&mut input)
        .is_err()
    {
        eprintln!("cannot read stdin");
        std::process::exit(1);
    }
    let (out, code) = credhelper::handle(&command, &input, &path);
    println!("{out}");
    std::process::exit(code);
}

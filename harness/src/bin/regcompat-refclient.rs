//! `regcompat-refclient`: the reference registry client with selectable mutants (see the
//! `refclient` crate). It lives in the harness package so harness tests can run it.

fn main() {
    std::process::exit(refclient::main_with_args(
        std::env::args().skip(1).collect(),
    ));
}

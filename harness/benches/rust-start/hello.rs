//! The smallest Rust program (std's start-up, one line to stdout), built by
//! `harness/benches/decompose` with nsapply's release settings (fat LTO, one
//! codegen unit, RELR relocations, the unwinder linked in statically): what
//! any Rust program pays to start, against `/bin/true` (C) and `nsapply
//! --version` (this binary's size).

fn main() {
    println!("hello");
}

//! `pgrw`: the command-line face of pgrw. (Stub.)

fn main() {}

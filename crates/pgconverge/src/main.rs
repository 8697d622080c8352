//! pgconverge command-line entry point.
fn main() {}

//! Planner benchmark (written below).
fn main() {}

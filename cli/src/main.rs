//! `halo`: uncertainty-aware auto-segmentation for radiotherapy planning.
fn main() {}

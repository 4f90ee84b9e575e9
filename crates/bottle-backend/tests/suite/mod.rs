mod harness;
mod lifecycle;

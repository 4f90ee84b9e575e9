mod attacks;
mod harness;
mod lifecycle;

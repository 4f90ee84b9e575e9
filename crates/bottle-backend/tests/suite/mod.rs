mod approve;
mod attacks;
mod git;
mod harness;
mod lifecycle;

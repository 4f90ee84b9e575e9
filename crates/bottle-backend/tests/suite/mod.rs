mod approve;
mod attacks;
mod git;
mod harness;
mod lifecycle;
mod sidecar_image;

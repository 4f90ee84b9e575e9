pub mod harness;
mod http;
mod https;
mod relay;

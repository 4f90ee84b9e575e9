pub mod harness;
mod http;
mod relay;

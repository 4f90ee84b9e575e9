mod agents;
mod bottle;
mod cli;
mod common;
mod keys;
mod tty;

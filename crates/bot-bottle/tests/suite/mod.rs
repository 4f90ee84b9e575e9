mod bottle;
mod cli;

mod agents;
mod bottle;
mod cli;

mod plans;
mod resolve;

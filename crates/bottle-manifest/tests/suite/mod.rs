//! Integration tests: the malformed-manifest corpus, valid manifests, file checks, env
//! resolution on a real (absent) terminal, the checked-in JSON Schema, and parser fuzzing.
mod env;
mod files;
mod fuzz;
mod malformed;
mod schema;
mod valid;

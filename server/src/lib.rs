//! locode: private, offline AI code completion as a language server.
//!
//! Data flows one way: `lsp` -> `session` (a document and its completion
//! state) -> `context` -> `prompt` -> `engine` -> `postprocess` -> `lsp`.
//! Only `lsp` knows the protocol and only `engine` links llama.cpp; the
//! modules between are pure.

pub mod commands;
pub mod complete;
pub mod config;
pub mod context;
pub mod documents;
pub mod engine;
#[cfg(test)]
pub(crate) mod fixture;
pub mod index;
pub mod lsp;
pub mod net;
pub mod outbound;
pub mod postprocess;
pub mod prompt;
pub mod redact;
pub mod secret_files;
pub mod session;
pub mod syntax;

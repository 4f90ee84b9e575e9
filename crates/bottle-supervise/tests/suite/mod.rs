//! Integration tests: real MCP clients (rmcp over streamable HTTP), real HTTP servers on
//! loopback, and a real terminal (tmux) for the console.

mod console_frames;
mod console_tmux;
mod control_api;
mod harness;
mod mcp_tools;

//! Integration tests: real MCP clients, real HTTP servers on loopback, a real terminal (tmux).

"""phasegate's MCP face and CLI: adapts the enforcer, decides nothing of its own."""

"""Developer tools: the stub generator and the encoder export (build time only)."""

"""TagRouter: an LLM router as three gRPC services over one domain core (docs/ARCHITECTURE.md)."""

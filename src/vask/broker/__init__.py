"""Fan-out between nodes: an in-process default and Redis pub/sub / NATS implementations."""

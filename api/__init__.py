"""HTTP interface: FastAPI app factory, REST compatibility routes, health probes."""

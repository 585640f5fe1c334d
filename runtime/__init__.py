"""Process wiring shared by every entry point (api, ticker, worker): logging, clients, services."""

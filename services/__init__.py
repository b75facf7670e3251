"""Everything with I/O and every entry point: config, Redis, the log, HTTP, CLI."""

"""Anonymous trafficking reports: keys and sealing, database, triage, service functions,
staff notifications and retention jobs. Python 3.11+ (the action server's environment)."""

"""The contracts between the service and its components: errors, config decoding, factories and references, the
host and lifecycle, telemetry, decision records, storage and the SQLite helper. Imports nothing else of processor/:
judge/ and stats/ may use it."""

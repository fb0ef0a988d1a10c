"""What the bridge and the operator agree on: the spec (its fields, defaults and parser), the
status vocabulary, the reasons a run ends with and their exit codes, the DTMF rules, redaction,
and the bridge pod's interface (mount paths, environment names).

Both programs import it and nothing else of each other, so it stays light: standard library and
PyYAML only (the import-linter contracts in pyproject.toml hold it to that).
"""

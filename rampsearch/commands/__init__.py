"""Sub-commands of the `rampsearch` CLI, one module each (see ``rampsearch.cli``)."""

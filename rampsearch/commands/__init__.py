"""Sub-commands of the `rampsearch` CLI, one module each, listed in ``rampsearch.cli``'s
command table. A command parses its flags (with ``rampsearch.options``), calls the library
and prints; it may import any library layer, never another command."""

"""Timing benchmarks (`make bench`). Each `bench_<topic>.py` has a `main()` that measures
side by side in one run and prints ratios; numbers are recorded in benchmarks/README.md."""

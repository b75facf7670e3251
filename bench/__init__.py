"""The benchmark harness (issue 5): `python -m bench.run --scale N`, or `make bench`."""

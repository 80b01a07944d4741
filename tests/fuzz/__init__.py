"""The fuzz suite (issue 19). A package, so that its test files may share a basename with tests
elsewhere (tests/fuzz/test_bindings.py next to tests/kernels/test_bindings.py): pytest imports them
as fuzz.test_bindings. conftest.py puts this directory on sys.path for `from harness import ...`."""

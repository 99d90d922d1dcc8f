"""pytest's shared setup: property tests run the same examples every time (issue 12: `make
test` must fail for a change, never for a random draw), with no example database left behind."""

from hypothesis import settings

settings.register_profile("balanca", derandomize=True, database=None, print_blob=True)
settings.load_profile("balanca")

"""Scripts run from the repository root: the set-up step, the test runner, the documentation's pictures and CRD reference."""

"""Scripts run from the repository root: the set-up step, the test runner, the README's pictures."""

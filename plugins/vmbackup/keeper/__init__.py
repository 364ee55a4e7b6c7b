"""The keeper: one DAG per environment that starts every VM this product stopped and could not start again."""

"""The restore workflow of a VMRestore: the plan, its operators, and the DAG built from them."""

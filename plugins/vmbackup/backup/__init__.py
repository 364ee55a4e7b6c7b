"""The backup workflow of a VMBackupPolicy: its steps, their operators, and the DAG built from them."""

"""Restore drills: the drill DAG (dag.py) and its steps (operators.py); the data is vmbackup.model.drill."""

"""Shared code of vmbackup-operator's DAGs, synced to the Composer bucket's plugins/ folder.

Importing this package must stay cheap and side-effect free: Airflow imports it while parsing every
rendered DAG, so Airflow and Google client imports happen inside the modules that need them.
"""

__version__ = "0.1.0"

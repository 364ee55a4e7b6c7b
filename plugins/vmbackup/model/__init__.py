"""The data both sides share: the policy and restore models, run reports, labels and derived names.

No Airflow, no Kubernetes: the controller image, Composer's workers and the tests all import these.
"""

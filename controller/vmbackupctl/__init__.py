"""``vmbackupctl``: what users do by hand with VMBackupPolicies, from a terminal or a script.

It reads the same things the controller reads and writes only what a user would: the policy objects
(through the Kubernetes API, honouring KUBECONFIG and contexts), the on-demand backup annotation,
Compute Engine snapshots, and Airflow's task logs (with the controller's ``VMBACKUP_*`` settings).
"""

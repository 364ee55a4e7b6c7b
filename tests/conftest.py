"""Fixtures for the real components the tests talk to, one module each under tests/fixtures/.

- gce:         the project's Compute Engine simulator (devstack), driven by google-cloud-compute
- airflow_env: an isolated AIRFLOW_HOME with a migrated metadata DB, for DagBag and dag.test()
- gcs:         gcp-storage-emulator, reached by google-cloud-storage via STORAGE_EMULATOR_HOST
- kube:        kmock as the Kubernetes API server, with a kubeconfig pointing at it
- airflow_api: `airflow standalone` on loopback, for the REST API
- tools:       the real helm and kubectl binaries fetched by scripts/bootstrap.sh
- rbac:        Kubernetes' RBAC matching of the controller's requests against the chart's roles
- leases:      kmock serving Leases with resourceVersions and optimistic concurrency, and the Lease client
- waits:       wait_until / eventually, the one way a test waits (a condition and a generous deadline)
- parallel:    how the tests are grouped over pytest-xdist workers (scripts/test.sh runs -n 3 --dist loadgroup)
- recovery:    `stack`, a backup then a restore or drill DAG run (dag.test()) on the simulator and the bucket
- file_times:  `--file-durations=N`, the N slowest test files (scripts/test.sh prints 10)
"""

pytest_plugins = [
    "tests.fixtures.parallel",  # first: airflow_api imports it (a plugin imported earlier is not assert-rewritten)
    "tests.fixtures.gce",
    "tests.fixtures.airflow_env",
    "tests.fixtures.gcs",
    "tests.fixtures.tools",
    "tests.fixtures.rbac",
    "tests.fixtures.kube",
    "tests.fixtures.airflow_api",
    "tests.fixtures.leases",
    "tests.fixtures.recovery",
    "tests.fixtures.file_times",
]

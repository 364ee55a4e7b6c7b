"""How long Cloud Composer takes to show Airflow a file written to its bucket: the local stack's model of it.

Two waits stand between an object written to the environment bucket's ``dags/`` and a DAG Airflow can run:

1. **The bucket sync.** Composer copies the bucket's ``dags/`` and ``plugins/`` to its Airflow components;
   "Changes to DAG propagate to Airflow within 3-5 minutes" ("Add and update DAGs",
   https://cloud.google.com/composer/docs/composer-3/manage-dags, "Before you begin"; the same sentence on the
   Composer 1 and 2 pages). ``COMPOSER_SYNC_DELAY_SECONDS`` = 240: ESTIMATE, the middle of that range (the docs
   give no distribution, nor how much of it is the copy and how much Airflow's own listing, below). The local
   stack's BucketMirror holds each new or changed object back this long after it first sees it.
2. **The DAG processor's listing.** A file Airflow has not seen before is only parsed once the DAG processor lists
   the folder again: every ``[dag_processor] refresh_interval`` seconds in Airflow 3 (300 by default, carried over
   from Airflow 2's ``[scheduler] dag_dir_list_interval``, also 300: Airflow configuration reference,
   https://airflow.apache.org/docs/apache-airflow/stable/configurations-ref.html#refresh-interval and
   apache/airflow PR #74479, "refresh_interval defaults to 300 seconds ... carried over from
   dag_dir_list_interval"). ``min_file_process_interval`` (30 s by default) only re-parses files already known.
   Composer does not list either option among the ones it overrides or limits ("Airflow configuration options
   blocked or limited in Cloud Composer", https://cloud.google.com/composer/docs/airflow-configurations: Composer 3
   only limits ``min_file_process_interval`` to >= 30), so ``AIRFLOW_DAG_LIST_INTERVAL_SECONDS`` = 300 is
   Airflow's default as Composer runs it (ESTIMATE that Composer does not change it without saying so). The
   local stack sets the real Airflow's own option to it; nothing is faked.

Modelling both at once is on the pessimistic side of the documented 3-5 minutes (the sync ESTIMATE may already
include some of the listing wait): up to 240 + 300 s in the worst case, which is what a user can see. The fast
profile (``ComposerTiming.fast()``, the tests' and the demo's default) models neither.
"""

from __future__ import annotations

from dataclasses import dataclass

COMPOSER_SYNC_DELAY_SECONDS = 240.0  # ESTIMATE: the middle of the documented 3-5 minutes (see above)
AIRFLOW_DAG_LIST_INTERVAL_SECONDS = 300  # [dag_processor] refresh_interval / [scheduler] dag_dir_list_interval
AIRFLOW_MIN_FILE_PROCESS_INTERVAL_SECONDS = 30  # Airflow's default; Composer 3's minimum
FAST_LIST_INTERVAL_SECONDS = 5  # the local stack's quick profile: a new file is parsed within seconds
# A known file is re-parsed this often in every profile: Airflow's default. A file the controller rewrites is
# parsed again at once whatever this says (Airflow's default [dag_processor] file_parsing_sort_mode,
# modified_time, queues a file changed since its last parse), so a shorter interval only burns CPU re-importing
# unchanged files: on a 2-core machine it starved the tasks themselves.


@dataclass(frozen=True)
class ComposerTiming:
    """The waits between the bucket and a runnable DAG: the one object the stack, the CLI and the bench share."""

    sync_delay_seconds: float = 0.0  # bucket object -> file in Airflow's dags/ or plugins/ folder
    dag_list_interval_seconds: int = FAST_LIST_INTERVAL_SECONDS  # Airflow lists its dags folder this often
    min_file_process_interval_seconds: int = AIRFLOW_MIN_FILE_PROCESS_INTERVAL_SECONDS  # unchanged files re-parsed

    def __post_init__(self) -> None:
        if self.sync_delay_seconds < 0:
            raise ValueError(f"sync delay {self.sync_delay_seconds} s: must be 0 or more seconds")
        if self.dag_list_interval_seconds < 1 or self.min_file_process_interval_seconds < 1:
            raise ValueError("the DAG list and file process intervals must be at least 1 second")

    @classmethod
    def fast(cls) -> ComposerTiming:
        """No modelled sync delay, new files listed every few seconds: the tests' and the demo's default."""
        return cls()

    @classmethod
    def composer(cls, sync_delay_seconds: float = COMPOSER_SYNC_DELAY_SECONDS) -> ComposerTiming:
        """Composer's defaults (see the module docstring for each figure's source)."""
        return cls(sync_delay_seconds, AIRFLOW_DAG_LIST_INTERVAL_SECONDS, AIRFLOW_MIN_FILE_PROCESS_INTERVAL_SECONDS)

    @property
    def worst_case_seconds(self) -> float:
        """The longest a new DAG file can take from the bucket to Airflow's DAG list (parsing aside)."""
        return self.sync_delay_seconds + self.dag_list_interval_seconds

    def describe(self) -> str:
        return (
            f"bucket sync delay {self.sync_delay_seconds:g} s, DAG folder listed every "
            f"{self.dag_list_interval_seconds} s (a new DAG reaches Airflow within {self.worst_case_seconds:g} s)"
        )

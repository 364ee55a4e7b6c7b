"""The vmbackup-operator controller: VMBackupPolicy resources -> DAGs in the Composer bucket -> status."""

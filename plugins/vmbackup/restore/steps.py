"""The task ids of the restore DAG, each defined once: the factory names its tasks with these, the report reads them."""

PLAN = "resolve"  # the plan step's id predates its name
DISKS_GROUP = "disks"  # one mapped group per planned disk
CREATE_DISK = "create"
WAIT_DISK = "wait"
CREATE_DISK_ID = f"{DISKS_GROUP}.{CREATE_DISK}"
WAIT_DISK_ID = f"{DISKS_GROUP}.{WAIT_DISK}"
PLANNED_DISKS = "planned_disks"
CREATE_INSTANCE = "create_instance"
WAIT_INSTANCE = "wait_instance"
CLEANUP = "cleanup_disks"
REPORT = "report"
# Mode InPlace: instead of create_instance / wait_instance
REPLACE_DISKS = "replace_disks"  # stop the VM, swap its disks for the restored ones, start it
SETTLE = "settle"  # always: label (or delete) the replaced disks, or put them back after a failure
# Which of spec.timeouts bounds a wait
DISKS_TIMEOUT = "disks"
INSTANCE_TIMEOUT = "instance"

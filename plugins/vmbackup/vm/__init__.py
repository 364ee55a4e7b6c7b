"""The VM layer: every change a workflow makes to a VM's power state, lock, labels and disks, written once.

backup/, restore/, drill/ and keeper/ use it and never reimplement it; it imports nothing of theirs.
"""

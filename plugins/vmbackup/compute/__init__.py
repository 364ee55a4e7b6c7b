"""Compute Engine from Airflow: the hook (every API call), the triggers (which use only the hook) and sensors."""

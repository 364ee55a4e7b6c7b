"""Local stand-ins for Google Cloud: the Compute Engine simulator and the Composer-in-a-box stack."""

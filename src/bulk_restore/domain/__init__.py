"""The domain: jobs, objects, accounting, progress, manifests. Pure Python, no AWS SDK."""

"""Health of the backend's dependencies (database, Redis, Celery, disk, FFmpeg): checks, report, metrics, endpoints."""

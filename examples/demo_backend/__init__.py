"""A demo of the monitored backend: FastAPI creates video projects, Celery tasks call the four providers."""

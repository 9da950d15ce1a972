"""The HTTP service (FastAPI): a front door over the same orchestration as the command line and
the workers. All media work stays in ``pipeline``, all queueing in ``workers``."""

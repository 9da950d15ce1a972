"""The Celery executor of storymedia: the app (built by ``workers.app.create_app``), its settings,
the thin tasks, the producer's client (submit, status, pull), live progress in Redis and reconcile.

Tasks here stay thin: ids and keys in, one ``pipeline`` call, a small JSON result out.
"""

"""Celery workers for the cluster executor (arrives with the cluster issue).

Tasks here stay thin: ids and keys in, one ``pipeline`` call, a small JSON result out.
"""

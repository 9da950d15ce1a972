"""Webhooks to the CMS after the Standard Webhooks spec (https://www.standardwebhooks.com/).

- :mod:`.signing`: endpoint secrets (``whsec_...``) and the ``webhook-signature`` header;
- :mod:`.targets`: which URLs may be called (the operator's allow list, no loopback, link-local
  or private address unless allowed: SSRF), checked at registration and again at every delivery;
- :mod:`.outbox`: endpoints and deliveries as JSON records in the private store; ``publish``;
- :mod:`.delivery`: ``deliver_due`` sends what is due, records each attempt, retries on the spec's
  schedule, disables an endpoint that answers 410.

The library part only: the HTTP service (``api.webhooks``, a background thread) and the Celery
workers (``workers.notify``, a beat task under a Redis lock) decide when ``deliver_due`` runs.
"""

"""Webhooks for key holders: ``balance.low`` and ``key.expired``, signed, sent from an outbox.

Pure parts: ``payload`` (event names, the body), ``signing`` (the HMAC header), ``backoff`` (the retry
schedule), ``destinations`` (which addresses may be called), ``registration`` (the request body).
Edges: ``events`` (decides events and writes them to the outbox in the deciding transaction) and
``delivery`` (sends the outbox, retries, gives up).
"""

"""Discovery: the node announces itself on Nostr (kind 38421) so that clients can find it.

``keys`` (the node's key), ``announcement`` (the event, pure) and ``relay`` (one WebSocket exchange)
are put together by ``publisher``, which a background job runs. Nothing here reads the settings
module, so the settings may use ``keys`` to check ``NSEC``.
"""

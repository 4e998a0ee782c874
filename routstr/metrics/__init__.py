"""The node's metrics: plain counters on the hot path, Prometheus families built at scrape time.

A request only increments ints in dicts and counts into fixed bucket arrays (``counters.py``,
``histogram.py``); ``collector.py`` turns them into Prometheus text when ``/metrics`` is scraped.
"""

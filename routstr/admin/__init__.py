"""The operator's dashboard at ``/admin/``: server-rendered pages over the same functions as the admin API."""

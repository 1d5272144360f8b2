"""The web console at ``/console``: server-rendered pages whose scripts call tollway's JSON APIs.

``web`` (pages, log-in, security headers, gzip), ``sessions`` (the session store the key
cache consults when a request has no bearer key), ``access`` (who may read the rankings,
over which traffic), ``data`` and ``queries`` (the console's own JSON routes), ``cache``
(rankings answers reused briefly).  Vendored ECharts, with its licence, is in
``static/vendor/``.
"""

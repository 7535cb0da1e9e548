"""The web console: pages over the registry and the services of :mod:`fmkit.jobs`.

``fmkit console`` (or ``python -m fmkit.console``) serves it on http://127.0.0.1:8788/.
Pages are HTML rendered on the server with inline SVG charts and a small script
(``static/console.js``) that polls JSON endpoints while something runs; nothing is fetched
from the network. :func:`fmkit.console.app.create_app` builds the ASGI app.
"""

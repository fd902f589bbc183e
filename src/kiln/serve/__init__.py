"""Step 6 of the lifecycle, deploy: a run folder behind an HTTP API with a try-it page.

kiln serve runs/<name>            # or, from Python:
from kiln.serve import ServeSettings, serve
serve("runs/<name>", ServeSettings(port=8000))
"""

from kiln.serve.app import create_app
from kiln.serve.server import serve
from kiln.serve.service import Service
from kiln.serve.settings import ServeSettings

__all__ = ["ServeSettings", "Service", "create_app", "serve"]

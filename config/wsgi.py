import gc
import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

# Load the URLconf (every view) now, not on the first request, then keep what is loaded out of
# the garbage collector's full passes: the thousands of dicts an ingested batch decodes set
# them off, and each walked the ≈ 135,000 objects of the loaded code (≈ 8 ms of CPU a Segment
# batch of 1,500 messages in orjson.loads alone; docs/benchmarks.md). They live as long as the
# process anyway.
get_resolver().url_patterns  # noqa: B018 (imports the views)
gc.freeze()

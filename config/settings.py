"""Settings for Cohortsync, all read from the environment (django-environ).

With no environment at all the project runs on an embedded SQLite database and a
filesystem Celery broker under ./var, so a newcomer's first command just works.
Production sets DATABASE_URL (PostgreSQL) and CELERY_BROKER_URL (Redis).
"""

import base64
import hashlib
from datetime import timedelta
from pathlib import Path

import environ
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")  # optional; a missing file is fine

DEBUG = env.bool("DJANGO_DEBUG", default=True)
DEV_SECRET_KEY = "dev-only-insecure-key-change-me-in-production"
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=DEV_SECRET_KEY)
if not DEBUG and SECRET_KEY == DEV_SECRET_KEY:
    # The default is public (it is in this file): sessions and password resets could be forged.
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG=false: the default key is public. "
                               "Generate one, e.g. python -c 'import secrets; print(secrets.token_urlsafe(50))'.")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI assets served from here: /api/docs/ works offline
    "django_celery_beat",
    "corsheaders",  # CORS for the SDK endpoints only (CORS_URLS_REGEX below)
    "axes",  # login lockout
    "cohorts",
    "integrations",
    "outbound",
    "deliveries",
    "campaigns",
    "alerts",
    "access",
    "sdk_ingest",
    "observability",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "corsheaders.middleware.CorsMiddleware",  # before CommonMiddleware, as django-cors-headers asks
    "access.api.ApiJsonErrorsMiddleware",  # /api/ errors are JSON even where DEBUG shows HTML pages
    # Serves /static/ from STATIC_ROOT (collectstatic) in production: no separate web server.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes requires: answers locked-out logins
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
# Keep a process's connection across requests and tasks (checked before reuse): a new PostgreSQL
# connection per task was a backend fork and a login for every sync run (docs/benchmarks.md).
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=300)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server, the worker and beat share one file: wait for locks instead of
    # failing, take the write lock up front, and let readers run beside a writer.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    VAR_DIR.mkdir(exist_ok=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Logins ---------------------------------------------------------------------------
# Both login pages (/login/, /admin/login/) lock a username from one address after
# COHORTSYNC_LOGIN_FAILURE_LIMIT failures in a row, for COHORTSYNC_LOGIN_COOLOFF_MINUTES (django-axes).
# The address is REMOTE_ADDR: behind a proxy, have it pass the client's address there.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out login before the password check
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("COHORTSYNC_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("COHORTSYNC_LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]  # one user from one address: others still log in
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_IPWARE_META_PRECEDENCE_ORDER = ["REMOTE_ADDR"]  # never a client-supplied X-Forwarded-For
AXES_VERBOSE = False  # no banner on every manage.py command

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("DJANGO_STATIC_ROOT", default=str(VAR_DIR / "static")))
# The status pages' login (the admin keeps its own); after it, the dashboard of one's syncs.
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "pages:dashboard"
LOGOUT_REDIRECT_URL = "login"

# --- Cache ----------------------------------------------------------------------------
# API throttling counts requests here. The default is per process; several web processes
# share counts through e.g. CACHE_URL=redis://127.0.0.1:6379/1
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}

# --- REST API (/api/v1/) ---------------------------------------------------------------
# Requests per API key (or per logged-in user), e.g. "1000/min", "50/s", "20000/hour".
COHORTSYNC_API_THROTTLE_RATE = env.str("COHORTSYNC_API_THROTTLE_RATE", default="1000/min")
# Requests with an invalid API key per client address (REMOTE_ADDR); more are answered 429.
COHORTSYNC_INVALID_API_KEY_RATE = env.str("COHORTSYNC_INVALID_API_KEY_RATE", default="30/min")
# SDK endpoints (Segment's, Mixpanel's): records (events, messages, profile updates) a key may
# send a minute, counted in the cache (per process unless CACHE_URL is shared); 0: no budget.
# A public browser token can be read by anyone: a budget bounds what a flood with it stores.
COHORTSYNC_SDK_RECORDS_PER_MINUTE = env.int("COHORTSYNC_SDK_RECORDS_PER_MINUTE", default=0)
# Largest request body: a batch of 10,000 profiles or events must fit (Django's default is 2.5 MB).
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("COHORTSYNC_MAX_REQUEST_BYTES", default=16 * 1024 * 1024)
REST_FRAMEWORK = {
    # The first class answers unauthenticated requests: 401 with `WWW-Authenticate: Bearer`.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "access.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["access.throttling.ApiClientThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["access.parsers.BoundedJSONParser"],
    "DEFAULT_PAGINATION_CLASS": "cohorts.api_common.PagePagination",
    "DEFAULT_SCHEMA_CLASS": "access.schema.ApiAutoSchema",
    "EXCEPTION_HANDLER": "access.api.api_exception_handler",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Cohortsync API",
    "DESCRIPTION": (
        "Connections, cohorts, exports (syncs), their runs, and data in (profiles, events) for one project. "
        "Authenticate with `Authorization: Bearer <API key>` (keys are created in the admin or with "
        "`manage.py create_api_key`), or with a logged-in session."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # No online validator badge: the page makes no request outside this server.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",  # tags and operation ids from the first word after it
    "ENUM_NAME_OVERRIDES": {
        "CohortKindEnum": "cohorts.models.Cohort.Kind",
        "RunKindEnum": "deliveries.models.SyncRun.Kind",
        "SyncRunStatusEnum": "deliveries.models.SyncRun.Status",
        "MessageRunStatusEnum": "campaigns.models.MessageRun.Status",
        "AlertFiringStatusEnum": "alerts.models.AlertFiring.Status",
        "AlertKindEnum": "alerts.models.Alert.Kind",
        "IngestKeyKindEnum": "sdk_ingest.models.IngestKey.Kind",
    },
}

# --- CORS: the browser SDKs (analytics.js, mixpanel-js) ---------------------------------
# Only the SDK endpoints of sdk_ingest/urls.py (Segment's /v1/…, Mixpanel's /track, /engage,
# /groups; not /import, a server-side secret's endpoint), never /api/ or the pages.
# Any origin, reflected with credentials allowed (mixpanel-js always sends withCredentials):
# safe only because these endpoints never authenticate by cookie (a key in the header or the
# body), so a page can send nothing it could not send without the browser. Keep it that way.
CORS_URLS_REGEX = r"^/(v1/|(track|engage|groups)/?$)"
CORS_ALLOW_ALL_ORIGINS = True
CORS_ALLOW_CREDENTIALS = True
CORS_ALLOW_METHODS = ("GET", "POST", "OPTIONS")
# analytics.js sends Authorization and, on a retry, X-Retry-Count; Content-Encoding for gzip.
CORS_ALLOW_HEADERS = ("accept", "authorization", "content-type", "content-encoding", "x-retry-count",
                      "user-agent", "x-requested-with")

# --- Email ----------------------------------------------------------------------------
# Console by default; SMTP with EMAIL_URL=smtp+tls://user:password@host:587
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Cohortsync <cohortsync@localhost>")

# --- Celery ---------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A run must finish (or be killed) well before the broker redelivers its unacked task.
CELERY_TASK_SOFT_TIME_LIMIT = env.int("COHORTSYNC_TASK_SOFT_TIME_LIMIT", default=3300)
CELERY_TASK_TIME_LIMIT = env.int("COHORTSYNC_TASK_TIME_LIMIT", default=3600)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Dispatch and runs on queues of their own: a backlog of runs must not delay the next tick.
# A worker started without -Q consumes all three (README, "Commands").
CELERY_TASK_DEFAULT_QUEUE = "celery"
# One exchange: the filesystem broker keeps a file for each, and creating one races a reader.
CELERY_TASK_QUEUES = [Queue(name, Exchange("celery"), routing_key=name) for name in ("dispatch", "runs", "celery")]
CELERY_TASK_ROUTES = {
    "deliveries.dispatch_due_syncs": {"queue": "dispatch"},
    "campaigns.dispatch_due_messages": {"queue": "dispatch"},
    "deliveries.run_sync": {"queue": "runs"},
    "campaigns.run_message": {"queue": "runs"},
}
if CELERY_BROKER_URL.startswith("filesystem://"):
    BROKER_DIR = VAR_DIR / "broker"
    for sub in ("queue", "processed", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),  # else kombu writes ./control
        "store_processed": False,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_TASK_TIME_LIMIT * 2}

# --- Cohortsync -----------------------------------------------------------------------
# Fernet keys (comma-separated, newest first): the first encrypts, all decrypt, so keys rotate by
# prepending a new one and running `manage.py rotate_encryption_keys`. Development derives one from
# SECRET_KEY; production must set them (a key derived from a public default decrypts nothing safely).
if not DEBUG and not env.list("COHORTSYNC_ENCRYPTION_KEYS", default=[]):
    raise ImproperlyConfigured("COHORTSYNC_ENCRYPTION_KEYS must be set when DJANGO_DEBUG=false: it encrypts the "
                               "connections' secrets. Generate a key with python -c 'from cryptography.fernet "
                               "import Fernet; print(Fernet.generate_key().decode())'.")
_dev_fernet_key = base64.urlsafe_b64encode(hashlib.sha256(SECRET_KEY.encode()).digest()).decode()
COHORTSYNC_ENCRYPTION_KEYS = env.list("COHORTSYNC_ENCRYPTION_KEYS", default=[_dev_fernet_key])
for _key in COHORTSYNC_ENCRYPTION_KEYS:
    try:
        Fernet(_key)
    except ValueError:
        raise ImproperlyConfigured("COHORTSYNC_ENCRYPTION_KEYS holds a value that is not a Fernet key (32 bytes, "
                                   "url-safe base64).") from None
# Loopback and private destinations are refused unless this is set (dev, tests, demo).
COHORTSYNC_ALLOW_PRIVATE_URLS = env.bool("COHORTSYNC_ALLOW_PRIVATE_URLS", default=False)
# Waits between tries of one page: 5 tries over about 60 s by default.
COHORTSYNC_RETRY_DELAYS = [float(d) for d in env.list("COHORTSYNC_RETRY_DELAYS", default=["4", "8", "16", "32"])]
# The longest Retry-After we honour; a receiver asking for more fails the run instead.
COHORTSYNC_RETRY_AFTER_MAX = env.float("COHORTSYNC_RETRY_AFTER_MAX", default=60.0)
COHORTSYNC_CONNECT_TIMEOUT = env.float("COHORTSYNC_CONNECT_TIMEOUT", default=5.0)
COHORTSYNC_READ_TIMEOUT = env.float("COHORTSYNC_READ_TIMEOUT", default=30.0)
# A run's claim on its sync or message lapses this long after its holder's last heartbeat
# (every quarter lease, outbound.claims): a crashed run's subject is free again within it.
COHORTSYNC_CLAIM_LEASE_SECONDS = env.int("COHORTSYNC_CLAIM_LEASE_SECONDS", default=20)
# A stopped run (failed, crashed, at the time limit) is resumed from its first undelivered page,
# with the same session and page ids, for this long after it started; past it, a new run starts over.
COHORTSYNC_RESUME_MAX_AGE_HOURS = env.float("COHORTSYNC_RESUME_MAX_AGE_HOURS", default=12)
# After a failed run the sync is retried sooner than its interval: 1, 2, 4, … minutes, up to the interval.
COHORTSYNC_RETRY_FIRST_MINUTES = env.float("COHORTSYNC_RETRY_FIRST_MINUTES", default=1)
# A dispatched run task expires after this, and only then does the dispatcher enqueue another
# for the same sync or queued run: one live task each however long workers are away.
COHORTSYNC_DISPATCH_LEASE_SECONDS = env.int("COHORTSYNC_DISPATCH_LEASE_SECONDS", default=600)
# Most due syncs one dispatcher tick enqueues (the most overdue first).
COHORTSYNC_DISPATCH_BATCH = env.int("COHORTSYNC_DISPATCH_BATCH", default=10_000)
COHORTSYNC_SNAPSHOT_MAX_AGE_HOURS = env.float("COHORTSYNC_SNAPSHOT_MAX_AGE_HOURS", default=72)
# Auto-pause (outbound.autopause): a sync or user message whose runs failed this many times in a row,
# or failed for this many hours without a success, pauses and emails its people (0 turns a rule off).
COHORTSYNC_AUTO_PAUSE_FAILED_RUNS = env.int("COHORTSYNC_AUTO_PAUSE_FAILED_RUNS", default=10)
COHORTSYNC_AUTO_PAUSE_HOURS = env.float("COHORTSYNC_AUTO_PAUSE_HOURS", default=72)
# Per-receiver limits (outbound.limits): their shared state lives in this Redis (default: the broker's, when the
# broker is Redis), else in the database. A run waits this long for a free concurrent-run slot.
COHORTSYNC_LIMITS_REDIS_URL = env.str(
    "COHORTSYNC_LIMITS_REDIS_URL",
    default=CELERY_BROKER_URL if CELERY_BROKER_URL.startswith(("redis://", "rediss://")) else "")
COHORTSYNC_RUN_SLOT_WAIT_SECONDS = env.float("COHORTSYNC_RUN_SLOT_WAIT_SECONDS", default=300)
COHORTSYNC_BASE_URL = env.str("COHORTSYNC_BASE_URL", default="http://127.0.0.1:8000")
# Events older than this are refused on the way in and pruned daily (cohorts.prune_events).
COHORTSYNC_EVENT_RETENTION_DAYS = env.int("COHORTSYNC_EVENT_RETENTION_DAYS", default=90)
# A profile's properties, as JSON: an item that would grow them past it is refused (SDK clients
# append to lists with a public token; nothing else bounds a profile).
COHORTSYNC_PROFILE_MAX_BYTES = env.int("COHORTSYNC_PROFILE_MAX_BYTES", default=1024 * 1024)
# Rule cohorts referring to cohorts: how long a chain, and how many cohorts one may reach.
COHORTSYNC_RULE_MAX_REFERENCE_DEPTH = env.int("COHORTSYNC_RULE_MAX_REFERENCE_DEPTH", default=5)
COHORTSYNC_RULE_MAX_REFERENCED_COHORTS = env.int("COHORTSYNC_RULE_MAX_REFERENCED_COHORTS", default=20)
# ASAP messages run whenever their cohort is recomputed; this is how often the dispatcher
# also checks them for cohorts that nothing else recomputes.
COHORTSYNC_MESSAGE_ASAP_CHECK_MINUTES = env.int("COHORTSYNC_MESSAGE_ASAP_CHECK_MINUTES", default=15)
# Cohorts watched by size alerts are recomputed when their newest size is older than this.
COHORTSYNC_ALERT_RECOMPUTE_MINUTES = env.int("COHORTSYNC_ALERT_RECOMPUTE_MINUTES", default=30)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
# The built-in test receiver (/receiver/<inbox>/): anyone may post to it, so it is off unless
# asked for (quickstart and the tests turn it on). Bodies over the cap are refused with a 413.
COHORTSYNC_TEST_RECEIVER = env.bool("COHORTSYNC_TEST_RECEIVER", default=False)
COHORTSYNC_TEST_RECEIVER_MAX_BYTES = env.int("COHORTSYNC_TEST_RECEIVER_MAX_BYTES", default=1024 * 1024)
# Refuse plain-http destinations (contract: https in production).
COHORTSYNC_REQUIRE_HTTPS = env.bool("COHORTSYNC_REQUIRE_HTTPS", default=False)
# CI sets this: a test that needs PostgreSQL or Redis fails instead of skipping.
COHORTSYNC_REQUIRE_SERVICES = env.bool("COHORTSYNC_REQUIRE_SERVICES", default=False)

# --- Production serving, metrics and health (README "Deploying", "Operations") --------------
# Every default is for development; production sets DJANGO_DEBUG=false, which turns the
# secure defaults on, and the README's production environment passes `check --deploy`.
if not DEBUG:
    # Compressed, content-hashed file names cached for a year (needs `collectstatic`).
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
# Development serves the apps' files as they change; production indexes STATIC_ROOT at start.
WHITENOISE_AUTOREFRESH = WHITENOISE_USE_FINDERS = DEBUG
# Behind a TLS-terminating proxy (load balancer, ingress) that sets X-Forwarded-Proto.
if env.bool("DJANGO_BEHIND_TLS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
# Probes and scrapers often speak plain HTTP to the instance itself.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
# Runs at once per worker process (prefork children); each run holds one for its whole length.
CELERY_WORKER_CONCURRENCY = env.int("COHORTSYNC_WORKER_CONCURRENCY", default=4)
# /metrics answers only `Authorization: Bearer <this>`; empty (the default) turns it off (404).
COHORTSYNC_METRICS_TOKEN = env.str("COHORTSYNC_METRICS_TOKEN", default="")
# prometheus-client reads this variable itself, from the environment of every process (web
# and workers), at import: set it in the environment, pointing at an empty directory.
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="")
if PROMETHEUS_MULTIPROC_DIR:
    Path(PROMETHEUS_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)
# /healthz fails when beat's last dispatch is older: beat runs it each minute and
# django-celery-beat writes the time back every 3 minutes.
COHORTSYNC_HEALTH_BEAT_MAX_AGE_SECONDS = env.int("COHORTSYNC_HEALTH_BEAT_MAX_AGE_SECONDS", default=300)

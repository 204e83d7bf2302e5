"""gunicorn's settings: read from the working directory (the repository) whatever the command
line, the Procfile's `web` or a gunicorn started by hand."""

# gunicorn's default access log format with `%(u)s`, the Basic username, left out: the SDKs send
# their write key or project secret there, and a key must never reach the logs.
access_log_format = '%(h)s %(l)s - %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'

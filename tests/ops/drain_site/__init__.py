"""The site the graceful-shutdown tests serve with real gunicorn (settings and URLconf)."""

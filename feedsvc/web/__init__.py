"""The web archive (FastAPI, server-rendered Jinja2): `create_app(settings, factory)` in `feedsvc.web.app`.

An edge: it reads the store, renders digests, items and search results, and takes the signed one-click
actions. Nothing is built at import time.
"""

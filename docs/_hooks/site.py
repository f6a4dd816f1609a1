"""mkdocs hook: source links only when the repository's address is known.

``repo_url`` comes from the environment (``NEUROSNAP_REPO_URL``, see mkdocs.yml); when it is set, the
"edit this page" and "view source" links point into the ``main`` branch's ``docs/`` folder of it.
"""
from __future__ import annotations


def on_config(config):
    if config.repo_url and not config.edit_uri:
        config.edit_uri = "edit/main/docs/"
    return config

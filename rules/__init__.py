"""The bundled rule pack, installed as the package ``monitor.bundled_rules`` (see setup.py).

Only the YAML files here are rules; this file lets the wheel and an editable install
resolve the folder through importlib.resources.
"""

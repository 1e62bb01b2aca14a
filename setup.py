"""Packaging beyond pyproject.toml: the bundled rule pack inside the wheel.

The rule pack lives in ``rules/`` at the repository's root, where people read and edit it;
mapped to the package ``monitor.bundled_rules`` it ships in the wheel and resolves in an
editable install alike, so ``demo`` and ``replay`` find it through importlib.resources
(:func:`monitor.cli.bundled_rules`) wherever the monitor is installed.
"""

from setuptools import find_namespace_packages, setup

setup(
    # Namespace packages too: monitor/rules has no __init__.py.
    packages=[*find_namespace_packages(include=["monitor", "monitor.*"], exclude=["*.__pycache__"]), "monitor.bundled_rules"],
    package_dir={"monitor.bundled_rules": "rules"},
    package_data={
        "monitor": ["py.typed"],
        "monitor.bundled_rules": ["*.yaml", "*.yml", "fixtures/*"],
    },
)

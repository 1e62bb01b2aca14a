"""Windows, suppression and alerts: the part of the monitor that decides."""

from monitor.engine.alert import Alert
from monitor.engine.engine import Engine, EngineOptions
from monitor.engine.episodes import Episode, Resolution

__all__ = ["Alert", "Engine", "EngineOptions", "Episode", "Resolution"]

"""Where partitions' engine state is kept between runs: a compacted Kafka topic or files.

See :mod:`monitor.checkpoints.base` for what a checkpoint is; the daemon takes and
restores them (README "Nothing lost").
"""

from monitor.checkpoints.base import Checkpoint, CheckpointError, Loaded, Store, key_of

__all__ = ["Checkpoint", "CheckpointError", "Loaded", "Store", "key_of"]

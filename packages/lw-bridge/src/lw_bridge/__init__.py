"""lw-bridge: the LatentWire bridge (encoders, adapters, losses, trainer, checkpoints)."""

from lw_bridge.adapters import Adapter
from lw_bridge.bridge import Bridge, BridgeConfig
from lw_bridge.config import TrainConfig
from lw_bridge.encoders import ENCODERS, EncoderConfig
from lw_bridge.pipeline import BridgePipeline
from lw_bridge.scorer import BridgeScorer

__all__ = ["ENCODERS", "Adapter", "Bridge", "BridgeConfig", "BridgePipeline", "BridgeScorer", "EncoderConfig",
           "TrainConfig"]

"""lw-serve: a trained bridge behind HTTP endpoints, whole or split into a sender and a receiver service."""

from lw_serve.app import Limits, Server
from lw_serve.engine import ROLES, Engine, load_engine

__all__ = ["ROLES", "Engine", "Limits", "Server", "load_engine"]

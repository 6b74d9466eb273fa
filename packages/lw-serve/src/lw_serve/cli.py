"""`lw-serve [ROLE] RUN_DIR`: serve a trained bridge over HTTP.

Roles: `pipeline` (the default: `POST /v1/predict`, texts → answers, plus encode and decode), `sender`
(`POST /v1/encode`: texts → quantised messages at the run's wire format, base64, with the bridge's
fingerprint) and `receiver` (`POST /v1/decode`: those messages → answers). Binds 127.0.0.1 unless
`--host`; with `--api-key` (or $LW_SERVE_API_KEY) the /v1 endpoints need `Authorization: Bearer KEY`.
SIGTERM or Ctrl-C stops taking requests and answers every one already in flight."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field

from lw_core import LwError, cli_errors
from lw_core.config import ArgumentParser, parse_config
from lw_core.options import DeviceOptions, ThreadOptions, shared_field

from lw_serve.app import Limits, Server
from lw_serve.backends import BACKENDS
from lw_serve.engine import ROLES, load_engine
from lw_serve.process import exit_with_parent
from lw_serve.receiver_gguf import PRECISIONS

API_KEY_ENV = "LW_SERVE_API_KEY"


@dataclass
class ServeConfig(Limits):
    run_dir: str = field(default="", metadata={"help": "a run directory written by lw-train (or a bridge folder)",
                                               "positional": True})
    host: str = field(default="127.0.0.1", metadata={"help": "address to bind (0.0.0.0 exposes it to the network)"})
    port: int = field(default=8000, metadata={"help": "TCP port"})
    api_key: str | None = field(default=None, metadata={
        "help": f"bearer token the /v1 endpoints require (default: ${API_KEY_ENV} if set, else none)"})
    wire: str | None = field(default=None, metadata={
        "help": "wire format of messages: fp32 fp16 int8 int6 int4 (default: the run's first evaluated "
                "wire format, else fp16)", "flag": "wire_formats", "one_value": True, "aliases": ["wire"]})
    receiver: str | None = field(default=None, metadata={"help": "which of the bridge's receivers answers (trained name)"})
    receiver_backend: str = field(default="hf", metadata={"help": "what runs the receiver", "choices": list(BACKENDS)})
    gguf: str | None = field(default=None, metadata={
        "help": "llama-cpp: the receiver's GGUF file (default: derived from its embedded preset at --gguf-precision)"})
    gguf_precision: str = field(default="f32", metadata={
        "help": "llama-cpp: precision of the GGUF derived from the preset (f32 holds exactly the HF receiver's "
                "weights; shipped = the preset's own file)", "choices": list(PRECISIONS)})
    vllm_url: str | None = field(default=None, metadata={
        "help": "vllm: base URL of a vLLM server started with --enable-prompt-embeds on the receiver's weights"})
    vllm_model: str | None = field(default=None, metadata={
        "help": "vllm: the server's model name (default: the first it lists)"})
    vllm_logprobs: int = field(default=20, metadata={
        "help": "vllm: top log-probabilities asked for per position (at most the server's --max-logprobs); "
                "an answer token outside them is refused, raise both up to the vocabulary for every answer"})
    device: str = shared_field(DeviceOptions, "device")
    dtype: str | None = shared_field(DeviceOptions, "dtype", default=None)
    threads: int | None = shared_field(ThreadOptions, "threads")
    drain_seconds: float = field(default=30.0, metadata={"help": "on SIGTERM, longest wait for in-flight requests"})

    def __post_init__(self):
        super().__post_init__()
        if not self.run_dir:
            raise LwError("lw-serve: give a RUN_DIR (see lw-serve --help)")
        if not 0 <= self.port < 65536:
            raise LwError(f"port must be 0..65535, got {self.port}")


def split_role(argv: list[str]) -> tuple[str, list[str]]:
    """`lw-serve sender RUN_DIR ...` → ("sender", ["RUN_DIR", ...]); no role word means the pipeline."""
    if argv and argv[0] in ROLES:
        return argv[0], argv[1:]
    return "pipeline", argv


@cli_errors
def main(argv: list[str] | None = None) -> None:
    exit_with_parent()  # started by lw_serve.process (a load test): stop when it stops
    role, rest = split_role(list(sys.argv[1:] if argv is None else argv))
    parser = ArgumentParser(prog="lw-serve" + ("" if role == "pipeline" else f" {role}"), description=__doc__)
    config, _ = parse_config(ServeConfig, rest, parser)
    import uvicorn

    api_key = config.api_key or os.environ.get(API_KEY_ENV) or None
    engine = load_engine(config.run_dir, role, wire=config.wire, receiver=config.receiver,
                         backend=config.receiver_backend, device=config.device, dtype=config.dtype,
                         backend_options={"gguf": config.gguf, "gguf_precision": config.gguf_precision,
                                          "threads": config.threads, "max_batch": config.max_batch,
                                          "vllm_url": config.vllm_url, "vllm_model": config.vllm_model,
                                          "vllm_logprobs": config.vllm_logprobs})
    limits = Limits(**{k: getattr(config, k) for k in Limits.__dataclass_fields__})
    app = Server(engine, role, limits, api_key).app()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(f"lw-serve: {role} of bridge {engine.fingerprint} ({engine.bridge.config.task}, wire {engine.wire.name}) "
          f"on http://{config.host}:{config.port}" + (" (bearer token required)" if api_key else ""),
          file=sys.stderr, flush=True)
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning",
                timeout_graceful_shutdown=int(config.drain_seconds) or None)


if __name__ == "__main__":
    main()

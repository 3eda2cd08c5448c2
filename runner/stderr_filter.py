"""The stderr filter: a small process that reads what a job writes to file descriptor 2
(TensorFlow's C++ logs), drops the lines known to be noise, and writes every other line to
the terminal as soon as it is complete.

It lives outside the job's process, so a line written just before the job aborts (a failed
TensorFlow CHECK ends in `abort()`) still reaches the terminal: the filter reads on until the
pipe's last writer is gone, however the job ended, then exits. It asks nothing of the
runner's package (standard library only), so it starts as `python -I -S stderr_filter.py`.

Its protocol, on the job's side in `runner.console`: lines in on stdin; a line that starts
with SYNC and a number asks for the lines kept since the last such request, answered on
stdout once every line before it has been written out, as one JSON line `[number, lines]`;
the line ABANDONED drops TensorFlow's lines below FATAL from then on."""

import collections
import json
import os
import re
import shutil
import subprocess
import sys

# Written by TensorFlow's C++ side on every start, whatever the machine
NOISE = (
    "All log messages before absl::InitializeLog() is called are written to STDERR",
    "oneDNN custom operations are on",
    "Could not find cuda drivers on your machine",
    "rebuild TensorFlow with the appropriate compiler flags",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "only on platforms with AVX-512. Falling back to the default Eigen",  # masks, float16 on this CPU
    "TF-TRT Warning: Could not find TensorRT",  # TensorFlow 2.16 and 2.17, where TensorRT is not
)
# Written where no NVIDIA driver is installed: expected on a CPU machine, a failure on a GPU box
NO_DRIVER = ("failed call to cuInit",)
# absl's prefix, `E0000 00:00:1795984326.286932   30673 `: a level, a time, a thread id
_ABSL_PREFIX = re.compile(r"^[IWEF]\d{4} [\d:.]+\s+\d+ ")
SYNC = b"\0runner-stderr-filter sync "
# From this line on, TensorFlow's C++ lines below FATAL are dropped: they are about a
# computation the job left running when a signal stopped it (an aborted rendezvous, a
# cancelled op), written after the job has said how it ended
ABANDONED = b"\0runner-stderr-filter abandoned\n"
KEPT = 100  # lines kept for the next SYNC; the job reads the last few


def has_nvidia_gpu() -> bool:
    """Whether `nvidia-smi -L` lists a GPU on this machine, and the user did not hide it
    (`CUDA_VISIBLE_DEVICES=` or `-1`: the CPU, on purpose)."""
    if shutil.which("nvidia-smi") is None or os.environ.get("CUDA_VISIBLE_DEVICES") in ("", "-1"):
        return False
    listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    return any(line.startswith("GPU ") for line in listing.stdout.splitlines())


def noise(line: str, gpu: bool) -> bool:
    return any(text in line for text in NOISE) or (not gpu and any(t in line for t in NO_DRIVER))


def below_fatal(line: str) -> bool:
    """A line of TensorFlow's C++ logging at INFO, WARNING or ERROR (absl's prefix)."""
    return _ABSL_PREFIX.match(line) is not None and line[0] != "F"


def shown(line: str) -> str:
    """A kept line as the terminal shows it: without absl's prefix."""
    return _ABSL_PREFIX.sub("", line)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


def main() -> None:
    kept = collections.deque(maxlen=KEPT)
    gpu = None  # asked of nvidia-smi only when a no-driver line comes
    terminal = True  # False once the terminal is gone: the pipe is still read to its end
    abandoned = False
    for raw in sys.stdin.buffer:  # each line as soon as it is complete
        if raw == ABANDONED:
            abandoned = True
            continue
        if raw.startswith(SYNC):
            number = raw[len(SYNC):].strip().decode()
            try:
                _write_all(1, json.dumps([number, list(kept)]).encode() + b"\n")
            except OSError:  # the job stopped listening; the lines still go to the terminal
                pass
            kept.clear()
            continue
        line = raw.rstrip(b"\r\n").decode(errors="surrogateescape")
        if not line.strip():
            continue
        if gpu is None and any(text in line for text in NO_DRIVER):
            gpu = has_nvidia_gpu()
        if noise(line, bool(gpu)) or (abandoned and below_fatal(line)):
            continue
        text = shown(line)
        if terminal:
            try:
                _write_all(2, text.encode(errors="surrogateescape") + b"\n")
            except OSError:
                terminal = False
        kept.append(text.encode(errors="surrogateescape").decode(errors="replace"))


if __name__ == "__main__":
    main()

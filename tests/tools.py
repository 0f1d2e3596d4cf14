"""Real tools the suite checks recordings against: util-linux scriptreplay, asciinema."""

import os
import pty
import subprocess
from pathlib import Path


def scriptreplay(timing: Path, typescript: Path) -> bytes:
    """What ``scriptreplay --timing TIMING TYPESCRIPT`` writes to the terminal."""
    # A large divisor replays without the recorded pauses; the output is unchanged.
    command = ["scriptreplay", "--timing", str(timing), str(typescript), "--divisor", "10000"]
    return subprocess.run(command, capture_output=True, check=True, timeout=60).stdout


def asciinema_cat(cast: Path) -> tuple[int, bytes]:
    """Exit status and output of ``asciinema cat CAST`` (which needs a terminal)."""
    pid, fd = pty.fork()
    if pid == 0:  # child: the pty is its /dev/tty
        os.execv("/usr/bin/asciinema", ["asciinema", "cat", str(cast)])  # noqa: S606
    output = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output

"""Child processes for the signal and kill tests: wait for a marker the child prints, never for a fixed time."""
import os
import queue
import subprocess
import sys
import threading
import time


class Child:
    """``python -m physampler ARGS`` with its stderr read line by line on a thread."""

    def __init__(self, *args, env=None, command=None):
        """``command``: the program to run instead of ``python -m physampler`` (e.g. [python, script])."""
        env = dict(os.environ, **(env or {}))
        command = command or [sys.executable, "-m", "physampler"]
        self.proc = subprocess.Popen([*command, *map(str, args)], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)
        self.lines: list[str] = []
        self._q: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            self._q.put(line.rstrip("\n"))
        self._q.put(None)

    def wait_for(self, text: str, timeout: float = 300.0) -> bool:
        """True once a stderr line containing ``text`` has been printed; False if the child ended first."""
        if any(text in ln for ln in self.lines):
            return True
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                line = self._q.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                self._q.put(None)
                return False
            self.lines.append(line)
            if text in line:
                return True
        raise TimeoutError(f"no line with {text!r} within {timeout} s; got {self.lines}")

    def finish(self, timeout: float = 300.0) -> tuple[int, list[str]]:
        """(exit status, every stderr line)."""
        self.proc.wait(timeout=timeout)
        while True:
            line = self._q.get(timeout=timeout)
            if line is None:
                break
            self.lines.append(line)
        return self.proc.returncode, self.lines

    def signal(self, sig):
        self.proc.send_signal(sig)

    def poll(self):
        return self.proc.poll()

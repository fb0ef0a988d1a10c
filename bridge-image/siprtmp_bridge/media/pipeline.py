"""Call audio from pjsua's WAV recorder, through a FIFO, to the encoder and the publisher.

pjsua2's ``AudioMediaRecorder`` writes the conference bridge's mix for the call as WAV into a
named pipe; this thread reads it in bursts (about 16 kB, 500 ms). Per-sample work stays in C
(pjmedia, FFmpeg): copying 20 ms frames out of an ``AudioMediaPort`` in Python costs
several times more CPU. The stream clock is kept level with the wall clock by silence.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
from collections.abc import Callable
from pathlib import Path

from siprtmp_bridge.media.clock import StreamPosition, silence_needed
from siprtmp_bridge.media.encoder import AacEncoder
from siprtmp_bridge.media.wav import WAV_HEADER_SIZE, WavHeaderError, parse_wav_header
from siprtmp_bridge.rtmp.fanout import BURST_SECONDS, Fanout
from siprtmp_bridge.supervision import Supervisor

# The recorder flushes about every 40-120 ms; more lag than this means no audio is coming.
MAX_LAG_SECONDS = 0.3
POLL_SECONDS = 0.05
# After a read, let about four of the recorder's flushes (~125 ms each) gather in the FIFO
# before the next (one burst for the publisher, ``BURST_SECONDS``); the first read is at once.
# The FIFO holds 2 s of audio at 16 kHz.
THREAD_NAME = "media-pipeline"


class MediaPipeline:
    """Runs from ``start()`` (the stream's time zero) until ``stop()``; feeds the publisher,
    never starts or finishes it."""

    def __init__(
        self,
        fifo_path: Path,
        clock_rate: int,
        encoder: AacEncoder,
        publisher: Fanout,
        on_first_audio: Callable[[], None],
        supervisor: Supervisor,
    ) -> None:
        self.fifo_path = fifo_path
        self.clock_rate = clock_rate
        self.encoder = encoder
        self.publisher = publisher
        self.on_first_audio = on_first_audio
        self.audio_samples = 0
        self.silence_samples = 0
        os.mkfifo(fifo_path, 0o600)
        # Non-blocking, so that opening does not wait for pjsua and pjsua's open never blocks.
        self._fd: int | None = os.open(fifo_path, os.O_RDONLY | os.O_NONBLOCK)
        self._header = b""
        self._odd_byte = b""
        self._writer_seen = False
        self._stop = threading.Event()
        self._supervisor = supervisor
        self._thread = threading.Thread(
            target=supervisor.supervised(THREAD_NAME, self._run), name=THREAD_NAME, daemon=True
        )
        self._started_at = 0.0
        self.error: str | None = None
        # Where "now" is on the stream's timeline, for tracks that follow the audio (video/).
        self.position = StreamPosition()

    def start(self) -> None:
        self._started_at = time.monotonic()
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Drain what pjsua wrote and flush the encoder into the publisher, within ``timeout``.
        The publisher is left running: its owner (``chain.MediaChain``) finishes it next."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout)
        if not self._thread.is_alive():  # never started, or ended (a failure included)
            self._close_fifo()
        with contextlib.suppress(FileNotFoundError):
            self.fifo_path.unlink()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._supervisor.beat(THREAD_NAME)  # at least every BURST_SECONDS
            got_audio = self._read_available(POLL_SECONDS)
            self._fill_silence()
            if got_audio:
                self._stop.wait(BURST_SECONDS)
        self._read_available(0)
        self.publisher.submit(self.encoder.flush())
        self._close_fifo()

    def _read_available(self, wait: float) -> bool:
        if self._fd is None:
            self._stop.wait(wait)
            return False
        readable, _, _ = select.select([self._fd], [], [], wait)
        if not readable:
            return False
        try:
            data = os.read(self._fd, 65536)
        except BlockingIOError:
            return False
        if not data:
            if self._writer_seen:  # pjsua closed the recorder: the call's audio is over
                self._close_fifo()
            else:
                self._stop.wait(wait)
            return False
        if not self._writer_seen:
            self._writer_seen = True
            self.on_first_audio()
        self._consume(data)
        return True

    def _consume(self, data: bytes) -> None:
        if len(self._header) < WAV_HEADER_SIZE:
            needed = WAV_HEADER_SIZE - len(self._header)
            self._header += data[:needed]
            data = data[needed:]
            if len(self._header) == WAV_HEADER_SIZE:
                self._check_header()
        data = self._odd_byte + data
        whole = len(data) - len(data) % 2
        self._odd_byte = data[whole:]
        if whole:
            self.audio_samples += whole // 2
            self._encode(data[:whole])

    def _check_header(self) -> None:
        try:
            pcm_format = parse_wav_header(self._header)
        except WavHeaderError as error:
            self.error = str(error)
            return
        if pcm_format.sample_rate != self.clock_rate or pcm_format.channels != 1:
            self.error = (
                f"recorder writes {pcm_format.sample_rate} Hz x{pcm_format.channels}, "
                f"expected {self.clock_rate} Hz mono"
            )

    def _fill_silence(self) -> None:
        missing = silence_needed(
            self.encoder.samples_in,
            time.monotonic() - self._started_at,
            self.clock_rate,
            MAX_LAG_SECONDS,
        )
        if missing:
            self.silence_samples += missing
            self._encode(bytes(2 * missing))

    def _encode(self, pcm: bytes) -> None:
        self.publisher.submit(self.encoder.encode(pcm))
        self.position.mark(time.monotonic(), self.encoder.samples_in / self.clock_rate)

    def stream_seconds_at(self, moment: float) -> float:
        """The stream time of audio that reaches the encoder at monotonic time ``moment``."""
        position = self.position.at(moment)
        return max(0.0, moment - self._started_at) if position is None else position

    def _close_fifo(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

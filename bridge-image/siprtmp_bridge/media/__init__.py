"""The audio chain: call audio (PCM from pjsua's recorder) → AAC on a steady clock, handed to the
publisher (``rtmp``)."""

"""Media side: call audio (PCM from pjsua's recorder) → AAC → FLV → RTMP, with a steady clock."""

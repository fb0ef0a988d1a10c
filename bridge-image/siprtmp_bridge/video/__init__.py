"""Video: the far end's H.264 taken past pjsua (audio-only) and published beside the audio."""

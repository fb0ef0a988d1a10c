"""The operator: SipRtmpBridge resources → one bridge pod per call (built on branch operator)."""
